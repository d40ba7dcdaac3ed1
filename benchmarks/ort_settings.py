"""Which onnxruntime session settings pay on this machine: each alternative against the chosen one.

The runtime's settings (``mnm.runtime.backends.ort.session_options``) are the baseline; every
variant changes one thing. Per graph and batch size the variants run round-robin in one process
(so machine load hits them alike), after warm-up; the table prints ``median(variant) /
median(chosen)`` and, in brackets, the same ratio of the fastest runs (less sensitive to other
processes on a shared machine): above 1 means the chosen setting is faster.

    python benchmarks/ort_settings.py --preset lite --preset paper [--repeats 15] [--json out.json]
    python benchmarks/ort_settings.py --bundle path/to/bundle

Presets are exported as random-init bundles into ``runs/bench-bundles/<preset>`` on first use
(torch needed for that only). The numbers behind the choices are in the docstring of
``mnm/runtime/backends/ort.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from mnm.runtime.backends.ort import OrtBackend
from mnm.runtime.bench import graph_inputs, interleaved
from mnm.runtime.bundle import Bundle
from mnm.runtime.machine import details, physical_cores

GRAPHS = ("enc_z", "g_background", "g_parent", "g_child", "extractor")


def variants() -> dict[str, dict]:
    """Name → OrtBackend options; "chosen" is the runtime's default."""
    import onnxruntime as ort

    cores = physical_cores()
    table = {
        "chosen": {},
        "opt_basic": {"session_overrides": {"graph_optimization_level": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}},
        "opt_off": {"session_overrides": {"graph_optimization_level": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}},
        "threads_1": {"threads": 1},
        "no_spin": {"session_overrides": {"session.intra_op.allow_spinning": "0"}},
        "spin_1ms": {"session_overrides": {"session.intra_op.spin_duration_us": "1000"}},
        "parallel": {"session_overrides": {"execution_mode": ort.ExecutionMode.ORT_PARALLEL,
                                           "inter_op_num_threads": cores}},
        "no_arena": {"session_overrides": {"enable_cpu_mem_arena": False}},
        "io_binding": {"io_binding": True},
    }
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if logical and logical != cores:
        table["threads_logical"] = {"threads": logical}
    return table


def compare(bundle: Bundle, batches: tuple[int, ...], repeats: int, warmup: int) -> dict:
    """{graph: {batch: {variant: ratio to chosen}}} plus the chosen medians in ms."""
    backends = {name: OrtBackend(bundle, "ort-cpu", **opts) for name, opts in variants().items()}
    result = {}
    for graph in (g for g in GRAPHS if g in bundle.graphs):
        result[graph] = {}
        for batch in batches:
            feeds = graph_inputs(bundle, graph, batch, np.random.default_rng(batch))
            times = interleaved(
                {name: (lambda b=b, g=graph, f=feeds: b.run(g, f)) for name, b in backends.items()}, repeats, warmup
            )
            medians = {name: float(np.median(t)) for name, t in times.items()}
            fastest = {name: float(np.min(t)) for name, t in times.items()}
            entry = {
                "chosen_median_ms": medians["chosen"] * 1e3,
                "chosen_min_ms": fastest["chosen"] * 1e3,
                "median_ratios": {n: m / medians["chosen"] for n, m in medians.items() if n != "chosen"},
                "min_ratios": {n: m / fastest["chosen"] for n, m in fastest.items() if n != "chosen"},
            }
            result[graph][batch] = entry
            print(f"  {graph:<13} batch {batch:>2}: chosen {entry['chosen_median_ms']:8.2f} ms  " + "  ".join(
                f"{n} {r:.2f}x ({entry['min_ratios'][n]:.2f}x)" for n, r in entry["median_ratios"].items()
            ), flush=True)
    return result


def random_bundle(preset: str) -> Path:
    out = Path("runs/bench-bundles") / preset
    if not (out / "manifest.json").is_file():
        from mnm.config import PRESETS
        from mnm.export import export_random

        print(f"exporting a random-init {preset} bundle to {out} ...", flush=True)
        export_random(PRESETS[preset], out, seed=0, preset=preset)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", default=[], help="lite, paper or tiny (repeatable)")
    parser.add_argument("--bundle", action="append", default=[], help="an existing bundle folder (repeatable)")
    parser.add_argument("--batch", type=int, action="append", default=None, help="batch sizes [1, 8]")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    presets = args.preset or ([] if args.bundle else ["lite"])
    paths = [Path(b) for b in args.bundle] + [random_bundle(p) for p in presets]
    report = {"machine": details(), "physical_cores": physical_cores(), "bundles": {}}
    for path in paths:
        print(f"{path}:", flush=True)
        bundle = Bundle.open(path)
        report["bundles"][str(path)] = compare(bundle, tuple(args.batch or (1, 8)), args.repeats, args.warmup)
    if args.json:
        from mnm.atomic import write_text

        write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
