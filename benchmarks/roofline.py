"""How close each graph comes to the machine's fp32 peak, and where its time goes.

Achieved fraction of peak = 2 · MACs per image · batch / latency / peak, with MACs counted from the
ONNX graph by the exporter (``macs_per_image`` in the manifest) and the peak measured here
(``machine.measure_peak``). On a machine shared with other work the peak a graph can reach moves
with the load, so each graph's runs are interleaved with runs of the peak's matrix product, and
the fraction is taken of the higher of that alongside peak and the peak measured up front
(never flattering the graph). The profile (onnxruntime's ``enable_profiling``) splits a graph's
time by operator type, which says what a graph below the target spends its time on.

``python benchmarks/roofline.py BUNDLE [--batch 1,8] [--json out.json]`` prints both for a bundle.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from mnm.runtime.bench import graph_inputs, interleaved, summarize


def roofline(bundle, backend, peak: dict, product=None, batches=(1, 8), repeats: int = 10,
             warmup: int = 2) -> dict:
    """Per graph and batch: latency, achieved GFLOP/s and fraction of the peak.

    ``peak`` is ``machine.measure_peak``'s result; ``product`` (a callable doing one of its
    size³ matrix products) is timed alongside each graph, interleaved, when given.
    """
    flops = 2 * peak["size"] ** 3
    result = {}
    for name, entry in bundle.graphs.items():
        per_batch = {}
        for batch in batches:
            feeds = graph_inputs(bundle, name, batch, np.random.default_rng(batch))
            run = lambda f=feeds, g=name: backend.run(g, f)  # noqa: E731
            # After the product (which evicts the caches) an untimed run refills them, so the timed
            # run sees the caches a graph sees in a steady stream of requests.
            fns = {"peak": product, "refill": run, "graph": run} if product is not None else {"graph": run}
            times = interleaved(fns, repeats, warmup)
            stats = summarize(times["graph"], batch)
            gflops = 2 * entry.macs_per_image * batch / (stats["median_ms"] / 1e3) / 1e9
            alongside = flops / (summarize(times["peak"])["median_ms"] / 1e3) / 1e9 if product else None
            reference = max(peak["peak_gflops"], alongside or 0.0)
            per_batch[str(batch)] = {**stats, "gflops": gflops, "peak_alongside_gflops": alongside,
                                     "fraction_of_peak": gflops / reference}
        result[name] = {"macs_per_image": entry.macs_per_image, "batches": per_batch}
    return result


def profile_graph(bundle, graph: str, batch: int, runs: int = 3, threads: int | None = None) -> dict:
    """Time per operator type (and the slowest nodes) of one graph on onnxruntime CPU, per run,
    from onnxruntime's profiler; the first (warm-up) run is left out."""
    from mnm.runtime.backends.ort import OrtBackend

    with tempfile.TemporaryDirectory(prefix="mnm-profile-") as tmp:
        options = {"enable_profiling": True, "profile_file_prefix": str(Path(tmp) / graph)}
        backend = OrtBackend(bundle, "ort-cpu", threads=threads, session_overrides=options)
        feeds = graph_inputs(bundle, graph, batch, np.random.default_rng(0))
        for _ in range(runs + 1):
            backend.run(graph, feeds)
        trace = json.loads(Path(backend.session(graph).end_profiling()).read_text())
        backend.close()
    return summarize_trace(trace, skip_runs=1)


def summarize_trace(events: list[dict], skip_runs: int = 1, top: int = 8) -> dict:
    """Operator-type totals per run from an onnxruntime profile, after the first ``skip_runs`` runs."""
    starts = sorted(e["ts"] for e in events if e.get("name") == "model_run")
    if len(starts) <= skip_runs:
        raise ValueError("the profile holds no timed runs")
    cutoff = starts[skip_runs]
    runs = len(starts) - skip_runs
    by_op: dict[str, float] = {}
    by_node: dict[str, tuple[str, float]] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time") or e["ts"] < cutoff:
            continue
        op = e.get("args", {}).get("op_name", "?")
        ms = e["dur"] / 1e3 / runs
        by_op[op] = by_op.get(op, 0.0) + ms
        node = e["name"].removesuffix("_kernel_time")
        by_node[node] = (op, by_node.get(node, (op, 0.0))[1] + ms)
    total = sum(by_op.values()) or 1.0
    ops = sorted(by_op.items(), key=lambda kv: -kv[1])
    nodes = sorted(by_node.items(), key=lambda kv: -kv[1][1])[:top]
    return {
        "runs": runs,
        "kernel_ms_per_run": sum(by_op.values()),
        "ops": [{"op": op, "ms": ms, "share": ms / total} for op, ms in ops],
        "slowest_nodes": [{"node": n, "op": op, "ms": ms, "share": ms / total} for n, (op, ms) in nodes],
    }


def main(argv: list[str] | None = None) -> int:
    from peak import measure_peak, ort_product
    from results_md import peak_sources

    from mnm.runtime.backends import create
    from mnm.runtime.bundle import Bundle

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="Also profile each graph at the largest batch.")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    bundle = Bundle.open(args.bundle)
    batches = [int(b) for b in args.batch.split(",")]
    peak = measure_peak()
    graphs = roofline(bundle, create(bundle, "ort-cpu"), peak, ort_product(peak["size"]), batches, args.repeats,
                      args.warmup)
    report = {"peak": peak, "graphs": graphs}
    if args.profile:
        report["profile"] = {g: profile_graph(bundle, g, max(batches)) for g in bundle.graphs}
    for name, entry in report["graphs"].items():
        cells = ", ".join(f"batch {b}: {r['median_ms']:.2f} ms, {r['gflops']:.1f} GFLOP/s ({r['fraction_of_peak']:.0%})"
                          for b, r in entry["batches"].items())
        print(f"{name:13s} {entry['macs_per_image'] / 1e9:.3f} GMAC/image; {cells}")
    print(f"peak {peak['peak_gflops']:.1f} GFLOP/s ({peak_sources(peak)})")
    if args.json:
        from mnm.atomic import write_text

        write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
