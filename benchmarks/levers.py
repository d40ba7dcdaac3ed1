"""The levers of the CPU speed work, measured one by one in ``compare_reference.py``'s run.

Five runtime variants (``VARIANTS``): the baseline (graphs exported without the export rewrites
of docs/export-rewrites.md), fp32 (with them: the runtime's fp32 default), no_spin (fp32 with
onnxruntime's idle workers sleeping at once instead of spinning briefly for the next operator),
concurrent (fp32 with independent graph runs side by side) and int8 (fp32 with the INT8 graphs
that passed their gate, docs/int8.md). A lever's own effect is the ratio of the variants without
and with it (``LEVERS``), timed in the same interleaved run; ``graph_levers`` does the same per graph.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

NO_SPIN = {"session.intra_op.allow_spinning": "0"}
# The runtime variants timed against the reference:
# name -> (bundle, concurrent graph runs, precision, onnxruntime session overrides).
# "baseline" is the runtime before these levers; "fp32" and "int8" are the runtime's defaults.
VARIANTS = {
    "baseline": ("naive", False, "fp32", NO_SPIN),
    "fp32": ("main", False, "fp32", None),
    "no_spin": ("main", False, "fp32", NO_SPIN),
    "concurrent": ("main", True, "fp32", None),
    "int8": ("main", False, "auto", None),
}
LEVERS = {  # lever -> (variant without it, variant with it, what it is)
    "rewrites": ("baseline", "no_spin", "exact export rewrites: upBlocks and ConvTranspose as four 2x2 phase "
                 "convs, GLUs as value and gate convs, image and mask heads as one conv"),
    "spin": ("no_spin", "fp32", "idle onnxruntime workers spin up to 100 us for the next operator"),
    "concurrent": ("fp32", "concurrent", "independent graph runs of a request side by side"),
    "int8": ("fp32", "int8", "INT8 graphs where they passed their quality gate"),
}


# The levers that change single graphs: lever -> (backend without it, backend with it) in graph_levers.
GRAPH_LEVERS = {"rewrites": ("baseline", "fp32"), "int8": ("fp32", "int8")}


def variant_pipelines(bundles: dict, opts) -> dict:
    """One Pipeline per runtime variant whose bundle is there (int8: only with INT8 graphs, on the CPU)."""
    from mnm.runtime.pipeline import Pipeline

    out = {}
    for name, (which, concurrent, precision, overrides) in VARIANTS.items():
        bundle = bundles.get(which)
        if bundle is None or (name == "int8" and (not bundle.graphs_int8 or opts.backend != "ort-cpu")):
            continue
        options = backend_options(opts)
        if overrides and opts.backend == "ort-cpu":
            options["session_overrides"] = overrides
        out[name] = Pipeline(bundle, backend=opts.backend, concurrent=concurrent, precision=precision, **options)
    return out


def graph_levers(bundles: dict, opts, int8_product=None, batches=(1, 8)) -> dict:
    """Per graph and batch, interleaved: the graph as exported before the rewrites (baseline), with
    them (fp32), and in INT8 where it passed its gate: each graph-level lever in one measurement.
    ``int8_product`` (the INT8 peak's matrix product) runs alongside the INT8 graphs, so their
    fraction of peak is taken against the peak the machine gave at that moment too."""
    from mnm.runtime.backends import create
    from mnm.runtime.bench import graph_inputs, interleaved, summarize

    main = bundles["main"]
    backends = {"fp32": create(main, opts.backend, precision="fp32", **backend_options(opts))}
    if bundles.get("naive") is not None:
        backends["baseline"] = create(bundles["naive"], opts.backend, precision="fp32", **backend_options(opts))
    if main.graphs_int8 and opts.backend == "ort-cpu":
        backends["int8"] = create(main, opts.backend, precision="int8", **backend_options(opts))
    out = {}
    for graph in main.graphs:
        out[graph] = {}
        for batch in batches:
            feeds = graph_inputs(main, graph, batch, np.random.default_rng(batch))
            fns = {name: (lambda b=b, g=graph, f=feeds: b.run(g, f)) for name, b in backends.items()
                   if name != "int8" or graph in main.graphs_int8}
            if "int8" in fns and int8_product is not None:
                fns["int8_product"] = int8_product
            times = interleaved(fns, opts.roofline_repeats, 2)
            product = times.pop("int8_product", None)
            out[graph][str(batch)] = {name: summarize(t, batch) for name, t in times.items()}
            if product is not None:
                seconds = summarize(product)["median_ms"] / 1e3
                out[graph][str(batch)]["int8_peak_alongside_gflops"] = 2 * opts.peak_size**3 / seconds / 1e9
    for backend in backends.values():
        backend.close()
    return out


def int8_fractions(bundle, levers: dict, int8_peak: dict, fp32: dict) -> dict:
    """Fraction of peak per graph as the int8 variant runs it: INT8 graphs against the measured
    uint8 x int8 product (2 ops per multiply-accumulate; the higher of the peak up front and the one
    alongside), the others as in the fp32 roofline."""
    out = {}
    for graph, per_batch in fp32.items():
        if graph not in bundle.graphs_int8:
            out[graph] = per_batch
            continue
        macs = bundle.graphs[graph].macs_per_image
        out[graph] = {}
        for b in per_batch:
            r = levers[graph][b]
            peak = max(int8_peak["peak_gflops"], r.get("int8_peak_alongside_gflops") or 0.0)
            out[graph][b] = 2 * macs * int(b) / (r["int8"]["median_ms"] / 1e3) / 1e9 / peak
    return out


def lever_rows(result: dict, levers: dict) -> list[dict]:
    """One row per lever: its own effect (time without / time with) on each scenario and graph."""
    rows = []
    for lever, (before, after, what) in LEVERS.items():
        scenarios = {name: s["runtimes"][before]["median_ms"] / s["runtimes"][after]["median_ms"]
                     for name, s in result["scenarios"].items() if before in s["runtimes"] and after in s["runtimes"]}
        if not scenarios:
            continue
        graph_before, graph_after = GRAPH_LEVERS.get(lever, (None, None))
        graphs = {}
        if graph_after:
            for graph, per_batch in levers.items():
                for batch, r in per_batch.items():
                    if graph_before in r and graph_after in r:
                        graphs.setdefault(graph, {})[batch] = r[graph_before]["median_ms"] / r[graph_after]["median_ms"]
        rows.append({"lever": lever, "what": what, "without": before, "with": after, "scenarios": scenarios,
                     "graphs": graphs})
    return rows


def open_bundles(args, stack, log) -> dict:
    """``main`` (the bundle under test: export rewrites, INT8 graphs) and ``naive`` (the same weights
    without the export rewrites, for the rewrites lever; None when not given with --bundle)."""
    from mnm.config import resolve_config
    from mnm.runtime.bundle import Bundle

    if args.bundle:
        naive = Bundle.open(args.baseline_bundle) if args.baseline_bundle else None
        return {"main": Bundle.open(args.bundle), "naive": naive}
    from mnm.export import export_random

    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mnm-compare-")))
    cfg = resolve_config(args.preset)
    log(f"exporting a random-init {args.preset} bundle (seed {args.seed}) without the export rewrites")
    export_random(cfg, folder / "naive", seed=args.seed, preset=args.preset, rewrites=())
    log(f"exporting it with the rewrites and INT8 graphs (calibration: {args.calibrate or 'synthetic'})")
    export_random(cfg, folder / "main", seed=args.seed, preset=args.preset, int8=args.backend == "ort-cpu",
                  calibrate=args.calibrate)
    return {"main": Bundle.open(folder / "main"), "naive": Bundle.open(folder / "naive")}


def backend_options(opts) -> dict:
    """torch and onnxruntime CPU get the same thread count."""
    return {"threads": opts.threads} if opts.backend.startswith("ort") else {}
