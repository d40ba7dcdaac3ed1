"""Two real `mnm export` runs at the tiny preset, shared by the export tests.

One exports a trained-format checkpoint (BatchNorm statistics and biases moved off their init,
feature mode, with --fp16 --trt), the other random weights; they run as subprocesses side by side.
The torch twins are kept so every test can compare the graphs against PyTorch itself.
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from mnm.checkpoint import save_checkpoint, state_tensors
from mnm.config import PRESETS
from mnm.export.bundle import random_init_modules
from tests.util import run_cli

CFG = PRESETS["tiny"]
CHECKPOINT_SEED = 3
RANDOM_SEED = 5
STEP = 7


def trained_like(seed: int):
    """Networks whose BatchNorm layers are not at their init, so folding them is really tested."""
    modules = random_init_modules(CFG, seed)
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for module in modules:
            for m in module.modules():
                if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    m.running_mean.normal_(0.0, 0.2, generator=gen)
                    m.running_var.uniform_(0.5, 2.0, generator=gen)
                    m.bias.normal_(0.0, 0.2, generator=gen)
    return modules


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    modules = trained_like(CHECKPOINT_SEED)
    tensors = state_tensors({"generator_ema": modules.generator, "encoders": modules.encoders,
                             "extractor": modules.extractor})
    checkpoint = save_checkpoint(
        root / "checkpoint",
        tensors,
        {"config": CFG.to_dict(), "stage": "feature", "step": STEP, "has_extractor": True},
    )
    checkpoint_bundle, random_bundle = root / "from_checkpoint", root / "from_random"
    one_thread = {"env": {"OMP_NUM_THREADS": "1"}}  # two exports side by side: one core each
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        from_checkpoint = pool.submit(
            run_cli, "export", str(checkpoint), "--out", str(checkpoint_bundle), "--fp16", "--trt", "--max-batch", "4",
            **one_thread,
        )
        from_random = pool.submit(
            run_cli, "export", "--preset", "tiny", "--random-init", "--seed", str(RANDOM_SEED),
            "--out", str(random_bundle), **one_thread,
        )
    return SimpleNamespace(
        checkpoint=checkpoint,
        checkpoint_bundle=checkpoint_bundle,
        checkpoint_run=from_checkpoint.result(),
        checkpoint_modules=modules,
        random_bundle=random_bundle,
        random_run=from_random.result(),
        random_modules=random_init_modules(CFG, RANDOM_SEED),
    )


def soft_codes(rng: np.random.Generator, batch: int, n: int) -> np.ndarray:
    return rng.dirichlet(np.full(n, 0.3), size=batch).astype(np.float32)


def graph_inputs(names, modules, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Inputs as a caller would build them; the child stage gets real stage outputs."""
    s, dims = CFG.image_size, CFG.code_dims()
    out = {}
    for name in names:
        if name == "image":
            out[name] = rng.uniform(-1, 1, (batch, 3, s, s)).astype(np.float32)
        elif name == "z":
            out[name] = rng.standard_normal((batch, CFG.z_dim)).astype(np.float32)
        elif name in ("b", "p", "c"):
            out[name] = soft_codes(rng, batch, dims[name])
        elif name == "shape_feature":
            z = torch.from_numpy(rng.standard_normal((batch, CFG.z_dim)).astype(np.float32))
            with torch.no_grad():
                out[name] = modules.generator.parent(z, torch.from_numpy(soft_codes(rng, batch, dims["p"]))).numpy()
        elif name == "background":
            z = torch.from_numpy(rng.standard_normal((batch, CFG.z_dim)).astype(np.float32))
            with torch.no_grad():
                out[name] = modules.generator.background(z, torch.from_numpy(soft_codes(rng, batch, dims["b"]))).numpy()
    return out


def torch_graph(name: str, modules):
    """What each graph promises (docs/bundle.md, "Graphs"), stated with the torch modules."""
    g, e, x = modules
    table = {
        "enc_z": lambda image: {"z": e.z(image)},
        "enc_b": lambda image: {"b": torch.softmax(e.b(image), 1)},
        "enc_p": lambda image: {"p": torch.softmax(e.p(image), 1)},
        "enc_c": lambda image: {"c": torch.softmax(e.c(image), 1)},
        "g_background": lambda z, b: {"background": g.background(z, b)},
        "g_parent": lambda z, p: {"shape_feature": g.parent(z, p)},
        "g_child": lambda shape_feature, c, background: g.child(shape_feature, c, background),
        "extractor": lambda image: {"shape_feature": x(image)},
    }
    fn = table[name]

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            result = fn(**{k: torch.from_numpy(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in result.items()}

    return run


def bundle_file(bundle: Path, entry: dict) -> Path:
    return bundle / entry["file"]
