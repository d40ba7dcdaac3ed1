"""Export orchestration: every graph exported, checked against PyTorch and recorded in one bundle
folder that appears atomically (an interrupted export leaves no half-written bundle).

TensorRT engines come after the ONNX bundle is complete, so a machine without TensorRT or a GPU
still gets the full ONNX bundle before ``--trt`` stops with its one-line reason.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import onnxscript
import torch

import mnm
from mnm.atomic import atomic_dir
from mnm.config import ModelConfig
from mnm.errors import MnmError
from mnm.export import fp16 as fp16_graphs
from mnm.export.int8 import add_fp16_gate, add_int8_graphs
from mnm.export.int8_gate import Gate
from mnm.export.macs import count_macs
from mnm.export.manifest import MANIFEST, graph_entry, new_manifest, write_manifest
from mnm.export.onnx_graphs import EXPORTER, check_graph, export_graph
from mnm.export.parity import check_parity
from mnm.export.rewrites import DEFAULT_REWRITES, REWRITES, check_rewrites, rewrites_in, rewritten
from mnm.export.specs import FP16_TOLERANCE, FP32_TOLERANCE, ExportModules, GraphSpec, graphs_for, modes_for
from mnm.export.summary import summarize
from mnm.export.tensorrt_build import TIMING_CACHE
from mnm.progress import track

DEFAULT_OPSET = 18
DEFAULT_MAX_BATCH = 16
PARITY_BATCHES = (1, 3)


def random_init_modules(cfg: ModelConfig, seed: int = 0) -> ExportModules:
    """(generator, encoders, extractor) with the reference init drawn from ``seed``, in eval mode.

    The same (cfg, seed) gives the same weights in any process, so a test or benchmark can rebuild
    the torch twin of a ``--random-init`` bundle. The global torch RNG is left untouched.
    """
    from mnm.nn import Encoders, FeatureExtractor, Generator, init_weights

    cfg.validate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = init_weights(Generator(cfg))
        encoders = init_weights(Encoders(cfg))
        extractor = init_weights(FeatureExtractor(cfg))
    return ExportModules(generator.eval(), encoders.eval(), extractor.eval())


def export_bundle(
    out: str | Path,
    cfg: ModelConfig,
    modules: Sequence,
    source: dict,
    fp16: bool = False,
    trt: bool = False,
    opset: int = DEFAULT_OPSET,
    max_batch: int = DEFAULT_MAX_BATCH,
    parity_batches: tuple[int, ...] = PARITY_BATCHES,
    parity_seed: int | None = None,
    rewrites: Sequence[str] = DEFAULT_REWRITES,
    int8: bool = False,
    calibrate: str | Path | None = None,
    int8_gate: Gate | None = None,
    int8_gates: dict[str, Gate] | None = None,
) -> dict:
    """Write the bundle folder ``out`` from ``modules`` = (generator, encoders, extractor or None)
    and return its manifest.

    ``source`` is recorded as is (``{"kind": "checkpoint", "path", "step"}`` or ``{"kind":
    "random-init", "seed"}``). Every graph must match PyTorch to 1e-4 (fp32; fp16: 2e-2 of the
    output scale) on fresh inputs at ``parity_batches``, else nothing is written. ``trt`` then
    builds engines (profile batch 1..``max_batch``) into the finished bundle. ``rewrites`` names the
    exact export rewrites (``mnm.export.rewrites``) applied to copies of the modules; parity is
    always against the modules as given. ``int8`` adds INT8 graphs calibrated on the reference
    images in ``calibrate`` (a synthetic set when None), each kept only if it passes ``int8_gate``
    (or its own entry in ``int8_gates``); see docs/int8.md.
    """
    out = Path(out)
    _check_options(out, opset, max_batch)
    rewrites = check_rewrites(rewrites)
    modules = ExportModules(*modules)
    for module in modules:
        if module is not None:
            module.eval()
    exported = ExportModules(*(None if m is None else rewritten(m, rewrites) for m in modules))
    naive_macs = {name: g["macs_naive"] for name, g in summarize(cfg)["graphs"].items()}
    seed = secrets.randbits(31) if parity_seed is None else parity_seed
    rng = np.random.default_rng(seed)
    specs = graphs_for(modules)
    manifest = new_manifest(cfg, modes_for(modules), opset, exporter_versions(), source)
    manifest["rewrites"] = {name: REWRITES[name] for name in ("code_conv", *rewrites)}
    previous_cache = out / TIMING_CACHE
    with atomic_dir(out) as tmp, track(total=len(specs) * (2 if fp16 else 1), desc="export", unit="graph") as bar:
        for spec in specs:
            bar.set_postfix_str(spec.name)
            model, entry = _export_checked(spec, modules, exported, cfg, tmp, opset, parity_batches, rng, seed)
            entry["rewrites"] = rewrites_in(spec.module(modules), rewrites)
            entry["macs_per_image_naive"] = naive_macs[spec.name]
            manifest["graphs"][spec.name] = entry
            bar.update()
            if fp16:
                bar.set_postfix_str(f"{spec.name} fp16")
                manifest["graphs_fp16"][spec.name] = _fp16_checked(
                    spec, model, entry, modules, cfg, tmp, parity_batches, rng, seed
                )
                bar.update()
        if fp16:
            add_fp16_gate(tmp, manifest, cfg, None if calibrate is None else Path(calibrate), int8_gate or Gate())
        if int8:
            add_int8_graphs(tmp, manifest, cfg, None if calibrate is None else Path(calibrate),
                            int8_gate or Gate(), int8_gates)
        if previous_cache.is_file():  # a rebuild on the same machine reuses the measured timings
            shutil.copyfile(previous_cache, tmp / TIMING_CACHE)
        write_manifest(tmp, manifest)
    if trt:
        manifest = build_bundle_engines(out, manifest, max_batch)
    return manifest


def build_bundle_engines(out: str | Path, manifest: dict, max_batch: int = DEFAULT_MAX_BATCH) -> dict:
    """TensorRT engines for a finished bundle (fp16 too where it has fp16 graphs); see
    :func:`mnm.export.tensorrt_build.build_engines`."""
    from mnm.export.tensorrt_build import build_engines

    out = Path(out)
    fp16 = bool(manifest.get("graphs_fp16"))
    return build_engines(out, manifest, max_batch, rebuild_command(manifest["source"], out, fp16))


def export_checkpoint(path: str | Path, out: str | Path, **options) -> dict:
    """Export a training run folder (its ``latest`` checkpoint) or a checkpoint folder."""
    from mnm.training.export_source import load_for_export

    cfg, generator, encoders, extractor, meta = load_for_export(path)
    source = {"kind": "checkpoint", "path": str(meta["path"]), "step": meta.get("step"), "stage": meta.get("stage")}
    return export_bundle(out, cfg, (generator, encoders, extractor), source, **options)


def export_random(cfg: ModelConfig, out: str | Path, seed: int = 0, preset: str | None = None, **options) -> dict:
    """Export randomly initialised networks (for benchmarking before a model is trained)."""
    source = {"kind": "random-init", "seed": seed, "preset": preset}
    return export_bundle(out, cfg, random_init_modules(cfg, seed), source, **options)


def exporter_versions() -> dict:
    return {
        "mnm": mnm.__version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxscript": onnxscript.__version__,
        "method": EXPORTER,
    }


def rebuild_command(source: dict, out: Path, fp16: bool) -> str:
    """The command that rebuilds this bundle's engines on another machine."""
    extra = " --fp16" if fp16 else ""
    if source.get("kind") == "checkpoint":
        return f"mnm export {source['path']} --out {out} --trt{extra}"
    preset = source.get("preset") or "<preset>"
    return f"mnm export --preset {preset} --random-init --seed {source.get('seed', 0)} --out {out} --trt{extra}"


def _export_checked(spec: GraphSpec, modules, exported, cfg, folder: Path, opset, batches, rng, seed):
    """Export ``exported`` (the rewritten copies) with the exporter's clean-up, checked against ``modules``;
    fall back to the plain graph if the clean-up broke parity."""
    module = spec.module(modules)
    path = folder / f"{spec.name}.onnx"
    for optimize in (True, False):
        model = export_graph(spec, spec.module(exported), cfg, path, opset, optimize=optimize)
        result = check_parity(spec, path, module, modules, cfg, batches, rng)
        worst = max(result["max_abs_diff"], key=result["max_abs_diff"].get)
        if result["max_abs_diff"][worst] <= FP32_TOLERANCE:
            break
    else:
        raise MnmError(
            f"{spec.name}: ONNX output {worst} differs from PyTorch by {result['max_abs_diff'][worst]:.3g} "
            f"> {FP32_TOLERANCE:g}; no bundle was written"
        )
    parity = {"reference": "torch", **result, "tolerance": FP32_TOLERANCE, "tolerance_mode": "absolute", "seed": seed}
    entry = graph_entry(folder, path, model, "fp32", _params(module), count_macs(model), parity)
    entry["optimized"] = optimize
    return model, entry


def _fp16_checked(spec: GraphSpec, model, fp32_entry: dict, modules, cfg, folder: Path, batches, rng, seed) -> dict:
    path = folder / "fp16" / f"{spec.name}.onnx"
    path.parent.mkdir(exist_ok=True)
    half = fp16_graphs.to_fp16(model)
    onnx.save(half, str(path))
    check_graph(half, path)
    module = spec.module(modules)
    result = check_parity(spec, path, module, modules, cfg, batches, rng, providers=_fp16_providers())
    for name, diff in result["max_abs_diff"].items():
        bound = FP16_TOLERANCE * max(1.0, result["output_scale"][name])
        if not diff <= bound:
            raise MnmError(
                f"{spec.name} (fp16): output {name} differs from PyTorch fp32 by {diff:.3g} > {bound:.3g} "
                f"({FP16_TOLERANCE:g} of the output scale); no bundle was written"
            )
    parity = {
        "reference": "torch fp32", **result, "tolerance": FP16_TOLERANCE,
        "tolerance_mode": "max_abs_diff <= tolerance * max(1, output_scale)", "seed": seed,
    }
    entry = graph_entry(folder, path, half, "fp16", fp32_entry["params"], fp32_entry["macs_per_image"], parity)
    entry["optimized"] = fp32_entry["optimized"]
    entry["io_dtype"] = fp16_graphs.IO_DTYPE
    return entry


def _fp16_providers() -> list[str]:
    """fp16 parity where fp16 really runs when a GPU build of onnxruntime is present; the CPU
    provider computes ops that lack fp16 kernels in float32, which the record names."""
    available = onnxruntime.get_available_providers()
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if "CUDAExecutionProvider" in available else None


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _check_options(out: Path, opset: int, max_batch: int) -> None:
    newest = onnx.defs.onnx_opset_version()
    if not DEFAULT_OPSET <= opset <= newest:
        raise MnmError(f"--opset {opset}: the exporter supports opsets {DEFAULT_OPSET} to {newest}")
    if max_batch < 1:
        raise MnmError(f"--max-batch must be at least 1, got {max_batch}")
    if out.exists() and not out.is_dir():
        raise MnmError(f"{out}: --out must name a bundle folder, and this is a file")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise MnmError(f"{out}: folder exists and is not a bundle (no {MANIFEST}); refusing to replace it")
