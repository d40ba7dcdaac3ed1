"""Benchmarks of a bundle on its backends (``mnm bench``); numpy + onnxruntime, never torch.

What is measured, per backend: each graph's latency per batch size; mix-and-match throughput (one
mix of four different references, and a 4×4×4 grid); img2gif per-frame latency in code and
feature mode. Every number is the median (and p95) of ``repeats`` timed runs after ``warmup``
untimed ones, with the machine it ran on, because a number without its machine means nothing.
The same timing helpers serve ``benchmarks/compare_reference.py``, which interleaves the PyTorch
reference with the runtime so both see the same machine load.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnm.errors import MnmError
from mnm.provenance import utc_now
from mnm.runtime import machine

FORMAT = "mnm-bench"
FORMAT_VERSION = 1
GRID_SIDE = 4  # the grid scenario: 4 backgrounds × 4 textures × 4 poses = 64 images


# --- timing -------------------------------------------------------------------------------------


def measure(fn: Callable[[], object], repeats: int, warmup: int, tick: Callable[[], None] | None = None) -> list[float]:
    """Seconds per call of ``fn`` over ``repeats`` timed calls, after ``warmup`` untimed ones."""
    return interleaved({"_": fn}, repeats, warmup, tick)["_"]


def interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int, tick: Callable[[], None] | None = None
) -> dict[str, list[float]]:
    """Time several functions round-robin (a, b, a, b, ...) so load on a shared machine hits each alike.

    ``tick`` is called after every timed round (a progress bar's update).
    """
    if repeats < 1 or warmup < 0:
        raise MnmError(f"repeats must be at least 1 and warmup at least 0 (got {repeats}, {warmup})")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
        if tick:
            tick()
    return times


def summarize(times: list[float], images: int = 1) -> dict:
    """Median and p95 latency in ms (p95 interpolated; with few repeats it is near the maximum),
    and images (or frames) per second from the median."""
    t = np.asarray(times, dtype=np.float64)
    median = float(np.median(t))
    return {
        "median_ms": median * 1e3,
        "p95_ms": float(np.percentile(t, 95)) * 1e3,
        "min_ms": float(t.min()) * 1e3,
        "repeats": len(times),
        "images": images,
        "images_per_s": images / median if median > 0 else float("inf"),
    }


# --- graphs -------------------------------------------------------------------------------------

CATEGORICAL = ("b", "p", "c")


def graph_inputs(bundle, graph: str, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Plausible inputs for one graph at ``batch``: images and features in [-1, 1], z ~ N(0, I),
    b/p/c one-hot (values do not change the arithmetic, but keep activations in their usual range)."""
    feeds = {}
    for spec in bundle.graph(graph).inputs:
        shape = (batch, *spec.shape[1:])
        if spec.name in CATEGORICAL:
            array = np.zeros(shape, np.float32)
            array[np.arange(batch), rng.integers(0, shape[1], batch)] = 1.0
        elif spec.name == "z":
            array = rng.standard_normal(shape).astype(np.float32)
        else:
            array = rng.uniform(-1.0, 1.0, shape).astype(np.float32)
        feeds[spec.name] = array
    return feeds


def bench_graph(backend, bundle, graph: str, batch: int, repeats: int, warmup: int, tick=None) -> dict:
    """Latency of one graph at one batch size (inputs made once, outputs copied back to the host)."""
    feeds = graph_inputs(bundle, graph, batch, np.random.default_rng(batch))
    times = measure(lambda: backend.run(graph, feeds), repeats, warmup, tick)
    return summarize(times, images=batch)


# --- scenarios ----------------------------------------------------------------------------------

SCENARIOS = ("single_mix", "grid", "img2gif_code", "img2gif_feature")
SCENARIO_TITLES = {
    "single_mix": "single mix (4 different references)",
    "grid": f"grid {GRID_SIDE}x{GRID_SIDE}x{GRID_SIDE} (backgrounds x poses x textures)",
    "img2gif_code": "img2gif per frame, code mode",
    "img2gif_feature": "img2gif per frame, feature mode",
}
FRAMES = 8  # distinct video frames, cycled


@dataclass
class ScenarioInputs:
    """The reference images of every scenario (H x W x 3 uint8, already S x S), shared by the runtime
    and the PyTorch reference in ``benchmarks/compare_reference.py`` so both do the same work.

    The grid's shape is one code ``grid_shape`` (the pipeline's grid samples one p for the whole
    grid when no shape reference is given; the reference procedure gets the same p).
    """

    mix: dict[str, np.ndarray]  # background, pose, shape, texture: four different images
    grid: dict[str, list[np.ndarray]]  # background, pose, texture: GRID_SIDE images each
    grid_shape: int
    static: np.ndarray
    frames: list[np.ndarray]

    @classmethod
    def random(cls, size: int, n_parent: int, seed: int = 0) -> ScenarioInputs:
        rng = np.random.default_rng(seed)

        def image() -> np.ndarray:
            return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)

        return cls(
            mix={k: image() for k in ("background", "pose", "shape", "texture")},
            grid={k: [image() for _ in range(GRID_SIDE)] for k in ("background", "pose", "texture")},
            grid_shape=int(rng.integers(n_parent)),
            static=image(),
            frames=[image() for _ in range(FRAMES)],
        )


@dataclass
class Scenario:
    """A timed unit of work: ``run()`` produces ``images`` images (a frame counts as one)."""

    name: str
    images: int
    run: Callable[[], object]


def scenarios(pipeline, inputs: ScenarioInputs) -> dict[str, Scenario]:
    """The runtime side of each scenario on ``pipeline``.

    Caches are cleared before each mix and grid, so every timed call encodes its references and
    runs every stage it needs (a cold request, as a user's first request is). An animator encodes
    its static image once, before timing, as ``mnm animate`` does; each frame then runs the
    per-frame graphs only.
    """
    grid_shape = int(inputs.grid_shape)

    def single():
        pipeline.clear_caches()
        m = inputs.mix
        return pipeline.mix(m["background"], m["pose"], m["shape"], m["texture"])

    def grid():
        pipeline.clear_caches()
        g = inputs.grid
        return pipeline.grid(background=g["background"], pose=g["pose"], shape=grid_shape, texture=g["texture"])

    found = {
        "single_mix": Scenario("single_mix", 1, single),
        "grid": Scenario("grid", GRID_SIDE**3, grid),
    }
    for mode in ("code", "feature"):
        if mode in pipeline.bundle.modes:
            animator = pipeline.animator(inputs.static, mode=mode)
            frames = itertools.cycle(inputs.frames)
            found[f"img2gif_{mode}"] = Scenario(f"img2gif_{mode}", 1, lambda a=animator, f=frames: a.frame(next(f)))
    return found


# --- mnm bench ----------------------------------------------------------------------------------


def backend_names(requested: list[str]) -> list[tuple[str, bool]]:
    """``(name, optional)`` pairs: ``all`` expands into every backend, fastest first, each optional
    (one that does not start is skipped with its reason); a named one must start."""
    from mnm.runtime.backends import AUTO_ORDER, check_name

    names: dict[str, bool] = {}
    for name in requested:
        check_name(name, also=("auto", "all"))
        if name == "all":
            for candidate in AUTO_ORDER:
                names.setdefault(candidate, True)
        else:
            names[name] = False
    return list(names.items())


def start_pipeline(bundle, name: str, optional: bool, precision: str = "auto"):
    """``(key, pipeline, None)`` for a backend that starts (created for real, as ``--backend auto``
    would), ``(name, None, reason)`` for an optional one that does not; a required one raises."""
    from mnm.runtime.backends import BackendUnavailable, start
    from mnm.runtime.pipeline import Pipeline

    if not optional:
        pipeline = Pipeline(bundle, backend=name, precision=precision)
        return (pipeline.backend.name if name == "auto" else name), pipeline, None
    try:
        return name, Pipeline(bundle, backend=start(bundle, name, precision=precision)), None
    except BackendUnavailable as exc:
        return name, None, str(exc)


def run_bench(
    bundle_path: str | os.PathLike,
    backends: list[str] = ("auto",),
    batches: list[int] = (1, 8, 32),
    repeats: int = 20,
    warmup: int = 3,
    progress: Callable[[int], object] | None = None,
    precision: str = "auto",
) -> dict:
    """Benchmark the bundle on each backend at ``precision``; returns the report ``mnm bench --json`` writes.

    ``progress(total)`` returns a context manager with ``update()``, a settable ``total`` and
    ``refresh()`` (``mnm.progress.track``). Backends are started, measured and closed one at a time.
    """
    from mnm.progress import track
    from mnm.runtime.bundle import Bundle

    if not batches or any(b < 1 for b in batches):
        raise MnmError(f"batch sizes must be positive integers, got {list(batches)}")
    if repeats < 1 or warmup < 0:
        raise MnmError(f"--repeats must be at least 1 and --warmup at least 0 (got {repeats}, {warmup})")
    names = backend_names(list(backends))  # before the bundle is opened: a typo fails at once
    bundle = Bundle.open(bundle_path)
    cfg = bundle.config
    inputs = ScenarioInputs.random(cfg.image_size, cfg.n_parent)
    per_backend = repeats * (len(bundle.graphs) * len(batches) + 2 + len(bundle.modes))
    report = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": utc_now(),
        "bundle": str(Path(bundle_path)),
        "config": cfg.to_dict(),
        "modes": list(bundle.modes),
        "source": bundle.manifest.get("source"),
        "settings": {"batches": list(batches), "repeats": repeats, "warmup": warmup, "grid": [GRID_SIDE] * 3,
                     "precision": precision},
        "machine": machine.details(),
        "skipped_backends": {},
        "auto_skipped": {},
        "backends": {},
    }
    # One backend at a time, closed before the next starts: a GPU machine never holds the sessions
    # and engines of several backends at once. The bar counts every named backend; one that does
    # not start takes its share off the total.
    with (progress or (lambda n: track(total=n, desc="bench", unit="run")))(len(names) * per_backend) as bar:
        for requested, optional in names:
            name, pipeline, reason = start_pipeline(bundle, requested, optional, precision)
            if pipeline is None:
                report["skipped_backends"][name] = reason
                bar.total -= per_backend
                bar.refresh()
                continue
            if getattr(pipeline.backend, "skipped", []):
                report["auto_skipped"][name] = pipeline.backend.skipped
            try:
                report["backends"][name] = _bench_pipeline(pipeline, bundle, inputs, batches, repeats, warmup, bar)
            finally:
                pipeline.close()
    if not report["backends"]:
        reasons = "; ".join(f"{k}: {v}" for k, v in report["skipped_backends"].items())
        raise MnmError(f"no backend to benchmark: {reasons}")
    report["load_average_after"] = machine.load_average()  # machine.load_average is the one before
    return report


def _bench_pipeline(pipeline, bundle, inputs: ScenarioInputs, batches, repeats: int, warmup: int, bar) -> dict:
    """One backend's entry of the report: every graph at every batch, then every scenario."""
    backend = pipeline.backend
    entry = {"backend": backend.name, "description": backend.description, "graphs": {}, "scenarios": {}}
    for graph in bundle.graphs:
        entry["graphs"][graph] = {
            str(batch): bench_graph(backend, bundle, graph, batch, repeats, warmup, bar.update) for batch in batches
        }
    for scenario in scenarios(pipeline, inputs).values():
        pipeline.counters.reset()
        times = measure(scenario.run, repeats, warmup, bar.update)
        runs = {g: n // (repeats + warmup) for g, n in pipeline.counters.snapshot()["runs"].items()}
        entry["scenarios"][scenario.name] = {**summarize(times, scenario.images), "graph_runs_per_call": runs}
    return entry


def format_report(report: dict) -> str:
    """The terminal table: machine, then per backend the graph latencies and the scenarios."""
    m = report["machine"]
    gpu = ", ".join(g["name"] for g in m["gpus"]) or "none"
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items())
    s = report["settings"]
    lines = [
        f"machine: {m['cpu']}, {m['physical_cores']} physical cores ({m['usable_cpus']} usable CPUs), GPU: {gpu}",
        f"CPU features: {', '.join(m['cpu_features']) or 'unknown'}",
        _load_line(m["load_average"], report.get("load_average_after"), m["usable_cpus"]),
        f"libraries: {libs}",
        f"bundle: {report['bundle']} (S={report['config']['image_size']}, modes: {', '.join(report['modes'])}); "
        f"medians of {s['repeats']} runs after {s['warmup']} warm-up runs",
    ]
    for name, reason in report["skipped_backends"].items():
        lines.append(f"skipped {name}: {reason}")
    for name, entry in report["backends"].items():
        lines += ["", f"== {name}: {entry['description']}"]
        rows = [("graph", "batch", "median ms", "p95 ms", "images/s")]
        for graph, per_batch in entry["graphs"].items():
            for batch, r in per_batch.items():
                rows.append((graph, batch, f"{r['median_ms']:.2f}", f"{r['p95_ms']:.2f}", f"{r['images_per_s']:.1f}"))
        lines += _table(rows)
        lines.append("")
        rows = [("scenario", "images", "median ms", "p95 ms", "images/s")]
        for key, r in entry["scenarios"].items():
            unit = " fps" if key.startswith("img2gif") else ""
            rows.append((SCENARIO_TITLES[key], str(r["images"]), f"{r['median_ms']:.2f}", f"{r['p95_ms']:.2f}",
                         f"{r['images_per_s']:.1f}{unit}"))
        lines += _table(rows)
        lines += frame_notes(entry)
    return "\n".join(lines)


def _load_line(before: list[float] | None, after: list[float] | None, cpus: int) -> str:
    """The 1/5/15-minute load averages around the run: above the CPU count, other work shared the CPUs
    and every number above is slower than this machine alone would give."""
    if before is None:
        return "load average: unknown on this OS"
    text = f"load average (1, 5, 15 min): {' '.join(f'{v:.2f}' for v in before)} before"
    if after is not None:
        text += f", {' '.join(f'{v:.2f}' for v in after)} after"
    busy = max(before[0], after[0] if after else 0.0) > cpus
    return text + (f"; above {cpus} CPUs: other work competed, the numbers are slower than an idle machine's"
                   if busy else f" (for {cpus} CPUs)")


def frame_notes(entry: dict) -> list[str]:
    """Why the two img2gif numbers differ: the graphs each mode runs per frame, with their batch-1
    latencies; where feature mode is faster, the reason in words (S replaces E_z and g_parent)."""
    scenes = entry["scenarios"]
    if "img2gif_code" not in scenes or "img2gif_feature" not in scenes:
        return []
    graphs, parts = {}, {}
    for mode in ("code", "feature"):
        graphs[mode] = [g for g, n in scenes[f"img2gif_{mode}"]["graph_runs_per_call"].items() if n]
        latency = [entry["graphs"].get(g, {}).get("1", {}).get("median_ms") for g in graphs[mode]]
        total = f" ({sum(latency):.2f} ms at batch 1)" if graphs[mode] and None not in latency else ""
        parts[mode] = f"{' + '.join(graphs[mode])}{total}"
    notes = ["", f"per img2gif frame, code mode runs {parts['code']}; feature mode runs {parts['feature']}."]
    if scenes["img2gif_feature"]["median_ms"] < scenes["img2gif_code"]["median_ms"]:
        replaced = [g for g in graphs["code"] if g not in graphs["feature"]]
        added = [g for g in graphs["feature"] if g not in graphs["code"]]
        notes.append(f"feature mode is faster here: {' + '.join(added) or 'nothing'} takes the place of "
                     f"{' + '.join(replaced) or 'nothing'}, so a frame runs {len(graphs['feature'])} graphs "
                     f"instead of {len(graphs['code'])}.")
    return notes


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]).rstrip()
            for r in rows]
