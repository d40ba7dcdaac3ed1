"""mnm.checkpoint: bit-exact round trips, one clear line for every broken checkpoint, atomic saves."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import mnm.checkpoint as ckpt
from mnm.atomic import TMP_PREFIX
from mnm.checkpoint import (
    FORMAT_VERSION,
    META_FILE,
    TENSORS_FILE,
    config_from_meta,
    load_checkpoint,
    load_state,
    save_checkpoint,
    state_tensors,
)
from mnm.config import PRESETS
from mnm.errors import MnmError
from mnm.provenance import file_digest


def _net(width: int = 4, seed: int = 0) -> nn.Sequential:
    """A small conv + BN stack standing in for the real networks; trained one step so the BN
    running statistics and counters differ from their initial values."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, 2, 1)
    )
    net.train()
    net(torch.randn(2, 3, 5, 5))
    return net


def _assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert a[key].shape == b[key].shape, key
        assert torch.equal(a[key], b[key]), key


def _meta(step: int = 5) -> dict:
    return {"config": PRESETS["tiny"].to_dict(), "step": step, "stage": "code", "notes": {"lr": [2e-4, 0.5]}}


def test_round_trip_is_bit_exact(tmp_path):
    base = torch.randn(6, 4, dtype=torch.float64)
    tensors = {
        "w.float32": torch.randn(3, 5),
        "w.float16": torch.randn(7).half(),
        "w.bfloat16": torch.randn(2, 2).bfloat16(),
        "steps.int64": torch.tensor([0, -1, 2**62], dtype=torch.int64),
        "mask.bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
        "transposed": base.t(),  # non-contiguous
        "strided": base[::2, 1:3],  # non-contiguous view
        "alias": base,  # shares storage with the views above and below
        "tied": base,  # the same tensor under two names, as tied weights are
        "rows": base[1:3],  # a contiguous view overlapping "alias"
        "leaf": torch.randn(3, requires_grad=True),
    }
    assert not tensors["transposed"].is_contiguous()
    save_checkpoint(tmp_path / "ck", tensors, _meta())
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [META_FILE, TENSORS_FILE]
    loaded, meta = load_checkpoint(tmp_path / "ck")
    _assert_same(loaded, {k: v.detach() for k, v in tensors.items()})
    assert all(t.is_contiguous() and t.device.type == "cpu" for t in loaded.values())
    assert meta["format"] == FORMAT_VERSION
    assert meta["step"] == 5 and meta["stage"] == "code" and meta["notes"] == {"lr": [2e-4, 0.5]}
    assert meta["versions"]["torch"] == torch.__version__
    assert len(meta["tensors_sha256"]) == 64
    assert meta["tensors_bytes"] == (tmp_path / "ck" / TENSORS_FILE).stat().st_size
    assert config_from_meta(meta) == PRESETS["tiny"]
    # A loaded meta can be saved again: the reserved fields are recomputed, not duplicated.
    save_checkpoint(tmp_path / "again", loaded, meta)
    _assert_same(load_checkpoint(tmp_path / "again")[0], loaded)


def test_module_state_round_trip_including_batchnorm_buffers(tmp_path):
    source = {"generator": _net(seed=1), "encoders": _net(seed=2)}
    state = state_tensors(source)
    assert "generator.1.running_mean" in state and "encoders.1.num_batches_tracked" in state
    assert state["generator.1.num_batches_tracked"].item() == 1
    save_checkpoint(tmp_path / "ck", state, _meta())
    tensors, _ = load_checkpoint(tmp_path / "ck")
    target = {"generator": _net(seed=3), "encoders": _net(seed=4)}
    load_state(target, tensors, "ck")
    for prefix in source:
        _assert_same(source[prefix].state_dict(), target[prefix].state_dict())
    x = torch.randn(1, 3, 5, 5)
    for prefix in source:
        source[prefix].eval()
        target[prefix].eval()
        assert torch.equal(source[prefix](x), target[prefix](x))


def test_state_tensors_is_a_snapshot():
    net = _net()
    state = state_tensors({"g": net})
    before = state["g.0.weight"].clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
    assert torch.equal(state["g.0.weight"], before)


def test_load_state_ignores_other_prefixes(tmp_path):
    state = state_tensors({"generator": _net(), "discriminators": _net(width=8)})
    state["optim.g.step"] = torch.tensor(3)
    target = _net(seed=9)
    load_state({"generator": target}, state, "ck")
    assert torch.equal(target[0].weight, state["generator.0.weight"])


def test_wrong_config_gives_one_clear_mismatch_message():
    tensors = state_tensors({"generator": _net(width=4)})
    target = _net(width=6, seed=5)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(MnmError) as info:
        load_state({"generator": target}, tensors, "runs/a/checkpoints/100")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("runs/a/checkpoints/100 does not match the model config: 7 mismatches, e.g. ")
    assert "generator.0.weight is [4, 3, 3, 3] in the checkpoint but [6, 3, 3, 3] in the model" in message
    assert "(and 4 more)" in message
    _assert_same(target.state_dict(), before)  # nothing loaded


def test_missing_unexpected_and_absent_modules_are_all_reported():
    tensors = state_tensors({"generator": _net()})
    del tensors["generator.1.running_var"]
    tensors["generator.9.weight"] = torch.zeros(1)
    with pytest.raises(MnmError) as info:
        load_state({"generator": _net(), "extractor": _net()}, tensors, "ck")
    message = str(info.value)
    assert "3 mismatches" in message
    assert "generator.1.running_var is missing from the checkpoint" in message
    assert "generator.9.weight is in the checkpoint but not in the model" in message
    assert "no 'extractor.*' tensors in the checkpoint" in message


def test_truncated_tensors_file(tmp_path):
    save_checkpoint(tmp_path / "ck", state_tensors({"g": _net()}), _meta())
    tensor_file = tmp_path / "ck" / TENSORS_FILE
    data = tensor_file.read_bytes()
    tensor_file.write_bytes(data[: len(data) - 100])
    pattern = rf"{TENSORS_FILE}: {len(data) - 100} bytes but meta.json records {len(data)}; the file is trunc"
    with pytest.raises(MnmError, match=pattern):
        load_checkpoint(tmp_path / "ck")


def test_tampered_tensors_file(tmp_path):
    save_checkpoint(tmp_path / "ck", state_tensors({"g": _net()}), _meta())
    tensor_file = tmp_path / "ck" / TENSORS_FILE
    data = bytearray(tensor_file.read_bytes())
    data[-5] ^= 0xFF  # flip bits inside a weight: still a valid safetensors file
    tensor_file.write_bytes(bytes(data))
    with pytest.raises(MnmError, match=f"{TENSORS_FILE}: sha256 does not match meta.json"):
        load_checkpoint(tmp_path / "ck")


def test_corrupt_safetensors_with_matching_hash(tmp_path):
    save_checkpoint(tmp_path / "ck", {"a": torch.ones(3)}, _meta())
    tensor_file = tmp_path / "ck" / TENSORS_FILE
    tensor_file.write_bytes(b"\xff" * 64)
    meta_file = tmp_path / "ck" / META_FILE
    meta = json.loads(meta_file.read_text())
    meta["tensors_sha256"], meta["tensors_bytes"] = file_digest(tensor_file)
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(MnmError, match=f"{TENSORS_FILE}: not a readable safetensors file"):
        load_checkpoint(tmp_path / "ck")


@pytest.mark.parametrize("content, pattern", [
    ("{not json", "meta.json: unreadable checkpoint meta, not valid JSON"),
    ("[1, 2]", "meta.json: the checkpoint meta must hold a JSON object"),
    ('{"tensors_sha256": "x"}', "meta.json: missing or invalid checkpoint format version None"),
    ('{"format": "1", "tensors_sha256": "x"}', "missing or invalid checkpoint format version '1'"),
    ('{"format": 99, "tensors_sha256": "x"}', "format 99 is newer than this mnm reads .*; upgrade mnm"),
    ('{"format": 1}', "meta.json: no tensors_sha256 recorded"),
])
def test_bad_meta(tmp_path, content, pattern):
    save_checkpoint(tmp_path / "ck", {"a": torch.ones(3)}, _meta())
    (tmp_path / "ck" / META_FILE).write_text(content)
    with pytest.raises(MnmError, match=pattern):
        load_checkpoint(tmp_path / "ck")


def test_missing_paths(tmp_path):
    with pytest.raises(MnmError, match="nothere: checkpoint not found"):
        load_checkpoint(tmp_path / "nothere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(MnmError, match="file: not a checkpoint; a checkpoint is a folder"):
        load_checkpoint(tmp_path / "file")
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(MnmError, match=r"emptydir: not a checkpoint \(no meta.json\)"):
        load_checkpoint(tmp_path / "emptydir")
    save_checkpoint(tmp_path / "ck", {"a": torch.ones(3)}, _meta())
    (tmp_path / "ck" / TENSORS_FILE).unlink()
    with pytest.raises(MnmError, match=f"{TENSORS_FILE}: missing; the checkpoint is incomplete"):
        load_checkpoint(tmp_path / "ck")


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    old = state_tensors({"g": _net(seed=1)})
    save_checkpoint(tmp_path / "ck", old, _meta(step=1))

    written = []

    def interrupted_digest(path, sync=False):
        written.append(path.stat().st_size)  # the new tensors file is on disk at this point
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "file_digest", interrupted_digest)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "ck", state_tensors({"g": _net(seed=2)}), _meta(step=2))
    monkeypatch.undo()

    assert written and written[0] > 0
    tensors, meta = load_checkpoint(tmp_path / "ck")
    assert meta["step"] == 1
    _assert_same(tensors, old)
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]  # no temporary folder left behind


def test_config_from_meta_errors():
    with pytest.raises(MnmError, match="runs/x: meta.json has no model config"):
        config_from_meta({"step": 1}, source="runs/x")
    with pytest.raises(MnmError, match="runs/x config: unknown config field"):
        config_from_meta({"config": {**PRESETS["tiny"].to_dict(), "depth": 3}}, source="runs/x")
    with pytest.raises(MnmError, match="n_child .* must be a multiple of n_parent"):
        config_from_meta({"config": {**PRESETS["tiny"].to_dict(), "n_child": 5}})


def test_meta_must_be_plain_json(tmp_path):
    with pytest.raises(TypeError, match="plain JSON"):
        save_checkpoint(tmp_path / "ck", {"a": torch.ones(1)}, {"config": PRESETS["tiny"]})
    with pytest.raises(TypeError, match="plain JSON"):
        save_checkpoint(tmp_path / "ck", {"a": torch.ones(1)}, {"loss": float("nan")})
    assert not (tmp_path / "ck").exists()
    assert not list(tmp_path.glob(TMP_PREFIX + "*"))


def test_checkpoint_files_get_the_umask_mode(tmp_path):
    import stat

    from mnm.atomic import FILE_MODE

    save_checkpoint(tmp_path / "ck", {"w": torch.zeros(3)}, {"config": {}})
    for name in ("tensors.safetensors", "meta.json"):
        assert stat.S_IMODE((tmp_path / "ck" / name).stat().st_mode) == FILE_MODE
