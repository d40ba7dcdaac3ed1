"""Imported and exported, the authors' files compute what our PyTorch networks compute with the same
tensors: every graph and whole mixes in code and feature mode, CUB and Dogs code widths, to 1e-4."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mnm.codes import one_hot
from mnm.imaging import prepare_reference
from mnm.provenance import sha256_file
from mnm.runtime.bundle import Bundle
from mnm.runtime.pipeline import Pipeline
from tests.importers.conftest import LAYOUTS, check_graphs_against
from tests.runtime.conftest import photo

TOL = 1e-4


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_import_and_export_succeed_and_record_the_inputs(imported, layout):
    item = imported[layout]
    assert item.import_run.returncode == 0, item.import_run.stderr
    assert item.export_run.returncode == 0, item.export_run.stderr
    assert f"N_p {item.cfg.n_parent}, N_c = N_b {item.cfg.n_child}" in item.import_run.stdout
    meta = json.loads((item.checkpoint / "meta.json").read_text())
    assert meta["config"] == item.cfg.to_dict() and meta["stage"] == "feature" and meta["has_extractor"]
    files = meta["imported"]["files"]
    assert {slot: record["sha256"] for slot, record in files.items()} == {
        slot: sha256_file(path) for slot, path in item.files.items()
    }
    assert {record["file"] for record in files.values()} == {"G.pth", "E.pth", "EX.pth"}
    assert all(record["module_prefix"] == LAYOUTS[layout]["prefix"] for record in files.values())
    assert not meta["imported"]["code_mode_only"]
    bundle = Bundle.open(item.bundle)
    assert bundle.config == item.cfg and set(bundle.modes) == {"code", "feature"}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_graph_equals_the_torch_networks_holding_the_same_tensors(imported, layout):
    item = imported[layout]
    check_graphs_against(item.bundle, item.twin, item.cfg, TOL)


@torch.no_grad()
def _torch_mix(twin, cfg, refs: dict, mode: str) -> dict[str, np.ndarray]:
    """The authors' eval procedure with our torch modules: z and b from the background reference,
    z from the pose reference, p from the shape reference, c from the texture reference; in
    feature mode S(pose reference) replaces the parent stage."""
    x = {k: torch.from_numpy(prepare_reference(v, cfg.image_size))[None] for k, v in refs.items()}
    enc = twin.encoders
    z_bg, b = enc.z(x["background"]), torch.softmax(enc.b(x["background"]), 1)
    c = torch.softmax(enc.c(x["texture"]), 1)
    background = twin.generator.background(z_bg, b)
    if mode == "feature":
        phi = twin.extractor(x["pose"])
    else:
        phi = twin.generator.parent(enc.z(x["pose"]), torch.softmax(enc.p(x["shape"]), 1))
    out = twin.generator.child(phi, c, background)
    return {k: v[0].numpy() for k, v in out.items()}


@pytest.mark.parametrize("mode", ["code", "feature"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_mixes_equal_the_authors_procedure_on_our_torch_networks(imported, layout, mode, tmp_path):
    item = imported[layout]
    refs = {kind: photo(tmp_path / f"{kind}.png", seed, size=(150, 120))
            for seed, kind in enumerate(("background", "pose", "shape", "texture"))}
    pipe = Pipeline(item.bundle, backend="ort-cpu")
    shape = refs["shape"] if mode == "code" else None
    [rendered] = pipe.render([pipe.make_mix(refs["background"], refs["pose"], shape, refs["texture"])], mode=mode)
    want = _torch_mix(item.twin, item.cfg, refs, mode)
    for key in ("image", "child_mask", "parent_image", "parent_mask"):
        np.testing.assert_allclose(rendered.outputs[key], want[key], atol=TOL, rtol=0, err_msg=f"{mode} {key}")


def test_codes_are_usable_as_in_the_reference(imported):
    """Sampled codes go through the imported generator too (the reference's random generation)."""
    item = imported["dogs"]
    pipe = Pipeline(item.bundle, backend="ort-cpu")
    cfg = item.cfg
    out = pipe.generate(z_bg=np.zeros((1, cfg.z_dim)), b=one_hot([3], cfg.n_bg), c=one_hot([7], cfg.n_child),
                        z_pose=np.zeros((1, cfg.z_dim)), p=one_hot([1], cfg.n_parent))
    with torch.no_grad():
        z = torch.zeros(1, cfg.z_dim)
        b, p, c = (torch.from_numpy(one_hot([k], n)) for k, n in ((3, cfg.n_bg), (1, cfg.n_parent), (7, cfg.n_child)))
        want = item.twin.generator(z, b, p, c)
    np.testing.assert_allclose(out["image"][0], want["image"][0].numpy(), atol=TOL, rtol=0)
