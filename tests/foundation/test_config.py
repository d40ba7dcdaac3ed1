"""Config presets, JSON and CLI overrides, and the checks on invalid combinations."""

import json

import pytest

from mnm.config import PRESETS, ModelConfig, resolve_config
from mnm.errors import MnmError


def test_paper_preset_is_the_reference_model():
    cfg = PRESETS["paper"]
    assert (cfg.image_size, cfg.z_dim, cfg.ngf, cfg.ndf, cfg.n_parent, cfg.n_child) == (128, 100, 64, 64, 20, 200)
    assert cfg.n_bg == cfg.n_child and cfg.feature_channels == 16 and cfg.children_per_parent == 10


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_valid_and_round_trips_through_json(name):
    cfg = PRESETS[name].validate()
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_file_then_overrides_win_in_order(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"image_size": 64, "ngf": 32}))
    cfg = resolve_config("paper", path, ["ngf=16", "n_parent=10"])
    assert (cfg.image_size, cfg.ngf, cfg.n_parent, cfg.n_child) == (64, 16, 10, 200)


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["n_child=201"], "multiple of n_parent"),
        (["image_size=96"], "power of two"),
        (["image_size=16"], "power of two"),
        (["image_size=512"], "power of two"),
        (["ngf=12"], "multiple of 8"),
        (["z_dim=0"], "positive"),
        (["colour=3"], "unknown config field"),
        (["ngf"], "key=value"),
        (["ngf=wide"], "integer"),
    ],
)
def test_invalid_combinations_get_one_clear_line(overrides, words):
    with pytest.raises(MnmError, match=words) as info:
        resolve_config("tiny", None, overrides)
    assert "\n" not in str(info.value)


def test_bad_config_files_name_the_file(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(MnmError, match="nope.json"):
        resolve_config("tiny", missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(MnmError, match="broken.json"):
        resolve_config("tiny", broken)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(MnmError, match="JSON object"):
        resolve_config("tiny", listed)
    with pytest.raises(MnmError, match="unknown preset"):
        resolve_config("huge")
