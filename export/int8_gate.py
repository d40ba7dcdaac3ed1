"""The quality gate of INT8 and fp16 graphs (docs/int8.md): what users would see, measured end to end.

For each graph with an INT8 candidate, the held-out references are mixed (code mode, and feature
mode when the bundle has it: mix i takes background, pose, shape and texture from held-out images
i, i+1, i+2, i+3) by the runtime twice: all fp32, and fp32 except that graph in INT8. The images are
compared as users see them, in 0-255: PSNR over all mixes and the largest pixel difference. A graph
passes when both are within its :class:`Gate`. The passing graphs are then checked together
(errors add up), and, when the references have ground truth, so is ``mnm eval disentangle``: no
score may move more than 0.02. If the combination fails, the passing graph with the lowest PSNR of
its own goes back to fp32 and the combination is checked again.

fp16 graphs get the same gate as a whole (``gate_fp16``): the fp16 set runs all or nothing (one
table on onnxruntime, one engine precision on TensorRT), so ``auto`` takes it only if it passed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from mnm.runtime.bundle import Bundle

PSNR_CAP_DB = 100.0  # identical images: recorded as 100 dB (JSON has no infinity)
DISENTANGLE_PAIRS = 300
DISENTANGLE_SCORES = ("shape_iou", "texture_chi2", "background_chi2")


@dataclass(frozen=True)
class Gate:
    """What an INT8 graph must keep, against the fp32 graphs, on the held-out mixes."""

    min_psnr_db: float = 30.0
    max_abs_diff: int = 64  # of 255
    max_disentangle_change: float = 0.02

    def passes(self, measured: dict) -> bool:
        return measured["psnr_db"] >= self.min_psnr_db and measured["max_abs_diff"] <= self.max_abs_diff

    def to_dict(self) -> dict:
        return asdict(self)


def compare(reference: np.ndarray, images: np.ndarray) -> dict:
    """PSNR (dB, over every pixel of every image) and largest difference of two uint8 image stacks."""
    diff = reference.astype(np.float64) - images.astype(np.float64)
    mse = float(np.mean(diff**2))
    psnr = PSNR_CAP_DB if mse == 0 else min(PSNR_CAP_DB, 10 * math.log10(255.0**2 / mse))
    return {"psnr_db": round(psnr, 3), "max_abs_diff": int(np.abs(diff).max()), "images": len(images)}


class Judge:
    """Renders the held-out mixes with a chosen set of INT8 (or fp16) graphs, on the bundle being written."""

    def __init__(self, folder, manifest: dict, candidates: dict, held_out: list[np.ndarray], truth=None,
                 precision: str = "int8"):
        self.folder, self.manifest, self.candidates = folder, manifest, candidates
        self.held_out, self.truth, self.precision = held_out, truth, precision
        self.modes = [m for m in ("code", "feature") if m in manifest["modes"]]
        self.fp32 = self.render(())
        self._fp32_scores = None

    def bundle(self, int8: tuple[str, ...]) -> Bundle:
        """The bundle as it would be with exactly these INT8 graphs (fp16: the bundle as written)."""
        if self.precision == "fp16":
            return Bundle(self.folder, self.manifest)
        return Bundle(self.folder, {**self.manifest, "graphs_int8": {g: self.candidates[g] for g in int8}})

    def precision_for(self, chosen: tuple[str, ...]) -> str:
        """The candidates' precision by name (auto would leave INT8 out on a CPU without VNNI,
        Bundle.int8_choice, and never picks fp16 on the CPU), fp32 for none."""
        return self.precision if chosen else "fp32"

    def pipeline(self, int8: tuple[str, ...]):
        from mnm.runtime.pipeline import Pipeline

        return Pipeline(self.bundle(int8), backend="ort-cpu", precision=self.precision_for(int8), concurrent=False)

    def render(self, int8: tuple[str, ...]) -> np.ndarray:
        refs, n = self.held_out, len(self.held_out)
        pipe = self.pipeline(int8)
        try:
            images = []
            for mode in self.modes:
                mixes = [pipe.make_mix(refs[i], refs[(i + 1) % n], refs[(i + 2) % n] if mode == "code" else None,
                                       refs[(i + 3) % n]) for i in range(n)]
                images += [r.image for r in pipe.render(mixes, mode=mode, seed=0)]
        finally:
            pipe.close()
        return np.stack(images)

    def mixes(self, int8: tuple[str, ...]) -> dict:
        return compare(self.fp32, self.render(int8))

    def disentangle_change(self, int8: tuple[str, ...]) -> dict | None:
        """Largest move of any disentanglement score (code mode) from fp32 to these INT8 graphs."""
        if self.truth is None:
            return None
        if self._fp32_scores is None:
            self._fp32_scores = self._disentangle(())
        scores = self._disentangle(int8)
        change = max(abs(scores[k] - self._fp32_scores[k]) for k in DISENTANGLE_SCORES)
        return {"fp32": self._fp32_scores, "int8": scores, "max_change": round(change, 4), "pairs": DISENTANGLE_PAIRS}

    def _disentangle(self, int8: tuple[str, ...]) -> dict:
        from mnm.training.metrics import disentangle
        from mnm.training.metrics.inputs import open_bundle_model

        model = open_bundle_model(self.folder, self.precision_for(int8), "cpu", bundle=self.bundle(int8))
        try:
            result = disentangle.evaluate(model, str(self.truth), pairs=DISENTANGLE_PAIRS, mode="code", seed=0,
                                          split="test", baselines=False)
        finally:
            model.pipeline.close()
        return {k: round(result["results"]["model"][k]["mean"], 4) for k in DISENTANGLE_SCORES}


def gate_fp16(judge: Judge, gate: Gate) -> dict:
    """The fp16 graphs together against fp32, with the INT8 gate's thresholds: the record for the
    manifest's ``fp16`` section (``passed`` decides whether ``auto`` may run them)."""
    every = tuple(judge.candidates)
    measured = judge.mixes(every)
    disentangle = judge.disentangle_change(every)
    passed = gate.passes(measured) and (disentangle is None or disentangle["max_change"] <= gate.max_disentangle_change)
    return {"gate": gate.to_dict(), "combined": measured, "disentangle": disentangle, "passed": passed,
            "provider": "CPUExecutionProvider (ops without fp16 kernels computed in float32)"}


def select(judge: Judge, gates: dict[str, Gate], default: Gate) -> dict:
    """Gate every candidate alone, then the passing ones together; the record for the manifest."""
    graphs = {}
    for name in judge.candidates:
        gate = gates.get(name, default)
        measured = judge.mixes((name,))
        graphs[name] = {**measured, "gate": gate.to_dict(), "passed": gate.passes(measured)}
    chosen = [n for n in judge.candidates if graphs[n]["passed"]]
    combined, disentangle = None, None
    while chosen:
        combined = {**judge.mixes(tuple(chosen)), "graphs": list(chosen)}
        disentangle = judge.disentangle_change(tuple(chosen))
        ok = default.passes(combined) and (
            disentangle is None or disentangle["max_change"] <= default.max_disentangle_change)
        combined["passed"] = ok
        if ok:
            break
        worst = min(chosen, key=lambda n: graphs[n]["psnr_db"])
        graphs[worst]["dropped"] = "the INT8 graphs together failed the gate; this one had the lowest PSNR alone"
        chosen.remove(worst)
    for name, record in graphs.items():
        record["precision"] = "int8" if name in chosen else "fp32"
    return {"graphs": graphs, "combined": combined, "disentangle": disentangle, "chosen": chosen}
