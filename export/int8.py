"""INT8 graphs: onnxruntime's static quantization, per graph, calibrated on reference images (docs/int8.md).

Each fp32 graph becomes a QDQ graph: weights int8 per output channel (symmetric), activations
uint8 per tensor with ranges from the calibration data (min/max), the form onnxruntime's CPU
provider fuses into integer kernels (u8 × s8, VNNI where the CPU has it). Inputs and outputs stay
float32, so a caller feeds the same arrays at any precision.

Calibration data is what each graph sees in use: the encoders and the extractor get the reference
images; the generator stages get the codes the fp32 encoders give those images, plus sampled codes
(one-hot b, p, c and normal z, as ``random`` and ``code:K`` factors give); ``g_child`` gets the
shape features and backgrounds the fp32 stages make from them. Whether a graph is good enough is
not decided here: :mod:`mnm.export.int8_gate` measures it.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx

from mnm.codes import sample_codes
from mnm.config import ModelConfig

CALIBRATION_BATCH = 8
QUANTIZER = {
    "format": "QDQ",
    "activations": "uint8, per tensor, asymmetric, min/max calibration",
    "weights": "int8, per output channel, symmetric",
    "reduce_range": False,  # 8-bit weights: U8S8 kernels may saturate on x86 without VNNI (Bundle.int8_choice)
}


def quantize(src: Path, dst: Path, samples: list[dict[str, np.ndarray]]) -> None:
    """Write the INT8 (QDQ) form of graph ``src`` to ``dst``, calibrated on ``samples`` (input batches)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Samples(CalibrationDataReader):
        def __init__(self):
            self._items = iter(samples)

        def get_next(self):
            return next(self._items, None)

    with tempfile.TemporaryDirectory(prefix="mnm-int8-") as work, _root_logger_quiet():
        prepared = Path(work) / "prepared.onnx"
        # Shape inference and onnxruntime's basic fusions first, as the quantizer's documentation asks.
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(dst), Samples(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,  # the calibrator keeps per-batch min/max only
        )


@contextlib.contextmanager
def _root_logger_quiet():
    """The quantizer warns on the root logger (per-channel axes of a BatchNorm): keep the CLI clean."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def calibration_samples(run, graphs: list[str], cfg: ModelConfig, images: np.ndarray,
                        rng: np.random.Generator) -> dict[str, list[dict[str, np.ndarray]]]:
    """Input batches per graph. ``run(graph, feeds)`` runs an fp32 graph; ``images`` [N, 3, S, S]."""
    def batches(feeds: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        n = len(next(iter(feeds.values())))
        return [{k: np.ascontiguousarray(v[i:i + CALIBRATION_BATCH]) for k, v in feeds.items()}
                for i in range(0, n, CALIBRATION_BATCH)]

    def stage(graph: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([next(iter(run(graph, batch).values())) for batch in batches(feeds)])

    n = len(images)
    encoded = {kind: stage(f"enc_{kind}", {"image": images}) for kind in "zbpc"}
    sampled = sample_codes(cfg, n, rng, constrained=False)
    codes = {k: np.concatenate([encoded[k], getattr(sampled, k)]).astype(np.float32) for k in "zbpc"}
    shuffled = {k: v[rng.permutation(len(v))] for k, v in codes.items()}  # mixes: codes of different images
    background = stage("g_background", {"z": codes["z"], "b": codes["b"]})
    feature = stage("g_parent", {"z": shuffled["z"], "p": shuffled["p"]})
    if "extractor" in graphs:
        feature = np.concatenate([feature, stage("extractor", {"image": images})])
    child = {"shape_feature": feature, "c": codes["c"][rng.integers(0, len(codes["c"]), len(feature))],
             "background": background[rng.integers(0, len(background), len(feature))]}
    feeds = {
        "g_background": {"z": codes["z"], "b": codes["b"]},
        "g_parent": {"z": shuffled["z"], "p": shuffled["p"]},
        "g_child": child,
        "extractor": {"image": images},
        **{f"enc_{kind}": {"image": images} for kind in "zbpc"},
    }
    return {graph: batches(feeds[graph]) for graph in graphs}


def add_int8_graphs(folder: Path, manifest: dict, cfg: ModelConfig, calibrate: Path | None,
                    default_gate, gates: dict | None = None) -> None:
    """Quantize every graph of the bundle being written in ``folder``, gate them, and record in
    ``manifest``: ``graphs_int8`` (the graphs that passed) and ``int8`` (calibration, gate, every
    measurement). A graph that fails stays fp32: its INT8 file is not kept."""
    from mnm.export.calibration import reference_set
    from mnm.export.int8_gate import Judge, select
    from mnm.export.manifest import graph_entry
    from mnm.progress import track
    from mnm.runtime.backends.ort import OrtBackend
    from mnm.runtime.bundle import Bundle

    names = list(manifest["graphs"])
    fp32 = OrtBackend(Bundle(folder, manifest), "ort-cpu", precision="fp32")
    (folder / "int8").mkdir(exist_ok=True)
    with reference_set(calibrate, cfg.image_size) as refs:
        samples = calibration_samples(fp32.run, names, cfg, refs.calibration, np.random.default_rng(0))
        fp32.close()
        candidates = {}
        for name in track(names, desc="int8 quantize", unit="graph"):
            path = folder / "int8" / f"{name}.onnx"
            quantize(folder / manifest["graphs"][name]["file"], path, samples[name])
            fp32_entry = manifest["graphs"][name]
            candidates[name] = graph_entry(folder, path, onnx.load(str(path)), "int8", fp32_entry["params"],
                                           fp32_entry["macs_per_image"], {})
        result = select(Judge(folder, manifest, candidates, refs.held_out, refs.truth), gates or {}, default_gate)
    for name, entry in candidates.items():
        entry["quality"] = result["graphs"][name]
        if name not in result["chosen"]:
            (folder / entry["file"]).unlink()
    manifest["graphs_int8"] = {name: candidates[name] for name in result["chosen"]}
    manifest["int8"] = {
        "quantizer": {**QUANTIZER, "onnxruntime": _ort_version()},
        "calibration": refs.source,
        "gate": default_gate.to_dict(),
        "gate_machine": gate_machine(),
        "graphs": result["graphs"],
        "combined": result["combined"],
        "disentangle": result["disentangle"],
    }


def add_fp16_gate(folder: Path, manifest: dict, cfg: ModelConfig, calibrate: Path | None, gate) -> None:
    """Gate the fp16 graphs of the bundle being written as INT8 graphs are gated (held-out mixes
    against fp32, and disentanglement where there is ground truth), recorded in ``manifest["fp16"]``:
    ``auto`` takes fp16 on a GPU only where it passed (docs/int8.md)."""
    from mnm.export.calibration import reference_set
    from mnm.export.int8_gate import Judge, gate_fp16

    with reference_set(calibrate, cfg.image_size) as refs:
        judge = Judge(folder, manifest, dict(manifest["graphs_fp16"]), refs.held_out, refs.truth, precision="fp16")
        manifest["fp16"] = {**gate_fp16(judge, gate), "held_out": refs.source, "gate_machine": gate_machine()}


def gate_machine() -> dict:
    """The CPU the gate measured on: whether the verdicts carry over to another CPU depends on VNNI."""
    from mnm.runtime import machine

    features = machine.cpu_features()
    return {"cpu": machine.cpu_model(), "cpu_features": features, "vnni": any(f in features for f in machine.VNNI)}


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
