"""Reduced-width MixNMatch files in the authors' layout, imported and exported through the real CLI.

Two layouts with the published tensor names and order and smaller channel widths (ngf 16, ndf 8;
S = 128 as the reference layout fixes): CUB code widths saved as DataParallel state dicts in
today's zip format, Dogs code widths without "module." in the legacy format of the authors'
PyTorch 1.3. Each is imported with `mnm import mixnmatch` and exported with `mnm export` (two
subprocesses side by side, one core each). The torch twin of each holds the same tensors, paired
with our modules by the files' own order (the authors' registration order), independently of the
importer's name table.
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mnm.config import ModelConfig
from mnm.importers.mixnmatch import reference_layout
from mnm.nn import Encoders, FeatureExtractor, Generator
from tests.importers.reference_files import CUB, DOGS, FILES, random_state, save_reference, unprefixed, with_shapes
from tests.util import run_cli

SMALL_WIDTHS = {"image_size": 128, "ngf": 16, "ndf": 8}
LAYOUTS = {
    "cub": {"widths": CUB, "prefix": True, "legacy": False, "seed": 11},
    "dogs": {"widths": DOGS, "prefix": False, "legacy": True, "seed": 12},
}


def small_config(widths: dict) -> ModelConfig:
    return ModelConfig(**SMALL_WIDTHS, **widths).validate()


def reference_states(cfg: ModelConfig, seed: int, prefix: bool = True) -> dict:
    """Random state dicts in the authors' layout (published names and order) at ``cfg``'s widths."""
    states = {}
    for index, (slot, file) in enumerate(FILES.items()):
        shapes = {name: want.shape for name, want in reference_layout(cfg, slot).items()}
        states[slot] = random_state(with_shapes(file, shapes), seed * 10 + index, prefix=prefix)
    return states


def write_files(states: dict, folder: Path, legacy: bool = False) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {slot: save_reference(state, folder / FILES[slot], legacy=legacy) for slot, state in states.items()}


def torch_twin(cfg: ModelConfig, states: dict) -> SimpleNamespace:
    """Our networks holding the files' tensors, paired by position in the files' order."""
    modules = {"generator": Generator(cfg), "encoders": Encoders(cfg), "extractor": FeatureExtractor(cfg)}
    for slot, module in modules.items():
        theirs = list(unprefixed(states[slot]).values())
        ours = list(module.state_dict())
        assert len(theirs) == len(ours), slot
        module.load_state_dict(dict(zip(ours, theirs, strict=True)), strict=True)
        module.eval()
    return SimpleNamespace(**modules)


def graph_feeds(bundle, name: str, cfg: ModelConfig, rng) -> dict[str, np.ndarray]:
    """Inputs of one graph at batch 2: images and backgrounds in [-1, 1], soft codes, normal z and features."""
    s, dims = cfg.image_size, cfg.code_dims()
    feeds = {}
    for key in bundle.graphs[name].input_names:
        if key in ("image", "background"):
            feeds[key] = rng.uniform(-1, 1, (2, 3, s, s))
        elif key == "z":
            feeds[key] = rng.standard_normal((2, cfg.z_dim))
        elif key in dims:
            feeds[key] = rng.dirichlet(np.full(dims[key], 0.3), size=2)
        else:  # shape_feature
            feeds[key] = rng.standard_normal((2, cfg.feature_channels, s, s))
    return {k: v.astype(np.float32) for k, v in feeds.items()}


def check_graphs_against(bundle_path: Path, twin: SimpleNamespace, cfg: ModelConfig, tolerance: float = 1e-4) -> None:
    """Every graph of the bundle (onnxruntime CPU) equals the torch twin on the same inputs."""
    from mnm.runtime.backends import create
    from mnm.runtime.bundle import Bundle
    from tests.export.conftest import torch_graph

    bundle = Bundle.open(bundle_path)
    backend = create(bundle, "ort-cpu")
    modules = (twin.generator, twin.encoders, twin.extractor)
    rng = np.random.default_rng(5)
    for name in bundle.graphs:
        feeds = graph_feeds(bundle, name, cfg, rng)
        got = backend.run(name, feeds)
        for key, value in torch_graph(name, modules)(feeds).items():
            assert np.abs(value).max() > 1e-3, f"{name}.{key} is ~0: the comparison would prove nothing"
            np.testing.assert_allclose(got[key], value, atol=tolerance, rtol=0, err_msg=f"{name}.{key}")


def import_args(files: dict[str, Path], out: Path, extractor: bool = True) -> list[str]:
    args = ["import", "mixnmatch", "--generator", str(files["generator"]), "--encoders", str(files["encoders"])]
    if extractor:
        args += ["--extractor", str(files["extractor"])]
    return [*args, "--out", str(out)]


@pytest.fixture(scope="session")
def imported(tmp_path_factory) -> dict[str, SimpleNamespace]:
    """Per layout: cfg, states, files, twin, the import and export results, checkpoint and bundle."""
    root = tmp_path_factory.mktemp("importers")
    found = {}
    for name, layout in LAYOUTS.items():
        cfg = small_config(layout["widths"])
        states = reference_states(cfg, layout["seed"], prefix=layout["prefix"])
        files = write_files(states, root / name / "reference", legacy=layout["legacy"])
        checkpoint = root / name / "checkpoint"
        found[name] = SimpleNamespace(cfg=cfg, states=states, files=files, checkpoint=checkpoint,
                                      bundle=root / name / "bundle", twin=torch_twin(cfg, states),
                                      import_run=run_cli(*import_args(files, checkpoint)))
    one_thread = {"env": {"OMP_NUM_THREADS": "1"}}
    with concurrent.futures.ThreadPoolExecutor(len(found)) as pool:
        runs = {name: pool.submit(run_cli, "export", str(item.checkpoint), "--out", str(item.bundle), **one_thread)
                for name, item in found.items()}
        for name, run in runs.items():
            found[name].export_run = run.result()
    return found
