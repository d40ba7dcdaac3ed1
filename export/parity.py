"""Parity of an exported graph against PyTorch: onnxruntime and the torch module on the same fresh
random inputs, outputs matched by name, the max absolute difference recorded per output.

Inputs are realistic for each graph: images uniform in [-1, 1], z normal, b/p/c soft codes
(softmax of random logits), and the child stage's shape feature and background produced by the
parent and background stages themselves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from mnm.config import ModelConfig
from mnm.errors import MnmError
from mnm.export.specs import ExportModules, GraphModule, GraphSpec

CODE_TEMPERATURE = 3.0  # logits ~ N(0, 3²): soft codes that range from flat to nearly one-hot


def sample_inputs(
    spec: GraphSpec, modules: ExportModules, cfg: ModelConfig, batch: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Fresh float32 inputs for ``spec`` at ``batch``, keyed by input name."""
    out = {}
    for name in spec.inputs:
        if name == "shape_feature":
            z, p = _normal(rng, batch, cfg.z_dim), _soft_code(rng, batch, cfg.n_parent)
            out[name] = _run(modules.generator.parent, z, p)
        elif name == "background":
            z, b = _normal(rng, batch, cfg.z_dim), _soft_code(rng, batch, cfg.n_bg)
            out[name] = _run(modules.generator.background, z, b)
        elif name == "image":
            shape = spec.shape(name, cfg)
            out[name] = rng.uniform(-1.0, 1.0, (batch, *shape)).astype(np.float32)
        elif name == "z":
            out[name] = _normal(rng, batch, cfg.z_dim)
        else:
            out[name] = _soft_code(rng, batch, spec.shape(name, cfg)[0])
    return out


def torch_outputs(module: GraphModule, spec: GraphSpec, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The reference: the torch module on ``inputs``, outputs keyed by the spec's names."""
    with torch.no_grad():
        result = module(*(torch.from_numpy(inputs[name]) for name in spec.inputs))
    result = result if isinstance(result, tuple) else (result,)
    return {name: value.numpy() for name, value in zip(spec.outputs, result, strict=True)}


def session(path: Path, providers: list[str] | None = None) -> ort.InferenceSession:
    """An onnxruntime session with its full graph optimisation, as the runtime will load it."""
    try:
        return ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        first = str(exc).strip().splitlines()[0]
        raise MnmError(f"{path}: onnxruntime cannot load the graph: {first}") from None


def ort_outputs(sess: ort.InferenceSession, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a session; outputs keyed by the names the graph declares."""
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, inputs), strict=True))


def check_parity(
    spec: GraphSpec,
    path: Path,
    module: GraphModule,
    modules: ExportModules,
    cfg: ModelConfig,
    batches: tuple[int, ...],
    rng: np.random.Generator,
    providers: list[str] | None = None,
) -> dict:
    """Max abs diff and max abs reference value per output over ``batches``.

    Raises ``MnmError`` when the graph's input or output names differ from the spec.
    """
    sess = session(path, providers)
    declared_in = tuple(i.name for i in sess.get_inputs())
    declared_out = tuple(o.name for o in sess.get_outputs())
    if set(declared_in) != set(spec.inputs) or set(declared_out) != set(spec.outputs):
        raise MnmError(
            f"{path}: graph has inputs {declared_in} and outputs {declared_out}, "
            f"expected {spec.inputs} and {spec.outputs}"
        )
    diff = dict.fromkeys(spec.outputs, 0.0)
    scale = dict.fromkeys(spec.outputs, 0.0)
    for batch in batches:
        inputs = sample_inputs(spec, modules, cfg, batch, rng)
        expected = torch_outputs(module, spec, inputs)
        got = ort_outputs(sess, inputs)
        for name, ref in expected.items():
            if got[name].shape != ref.shape:
                raise MnmError(f"{path}: output {name} has shape {got[name].shape}, torch gives {ref.shape}")
            delta = np.abs(got[name].astype(np.float64) - ref.astype(np.float64))
            diff[name] = max(diff[name], float(delta.max()) if np.all(np.isfinite(delta)) else float("inf"))
            scale[name] = max(scale[name], float(np.abs(ref).max()))
    return {"batches": list(batches), "max_abs_diff": diff, "output_scale": scale,
            "provider": sess.get_providers()[0]}


def _normal(rng: np.random.Generator, batch: int, dim: int) -> np.ndarray:
    return rng.standard_normal((batch, dim)).astype(np.float32)


def _soft_code(rng: np.random.Generator, batch: int, n: int) -> np.ndarray:
    logits = CODE_TEMPERATURE * rng.standard_normal((batch, n))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _run(module: torch.nn.Module, *arrays: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(*(torch.from_numpy(a) for a in arrays)).numpy()
