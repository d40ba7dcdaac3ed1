"""The runtime against the PyTorch reference procedure, on the same weights, in one interleaved run.

(a) The reference procedure is the authors' per-image procedure with our networks in PyTorch
    eager mode: every reference image of an output goes through all four encoders, then the whole
    generator runs, for each output image. For img2gif it does that per frame for the frame and
    the static image (nothing cached). Both sides use the same networks, so the code-conv rewrite
    (docs/export-rewrites.md) is in both.
(b) The runtime is ``mnm.runtime.Pipeline`` on onnxruntime CPU: encoders only for the codes a
    request needs, each reference once, cached stages, g_child per combination; in the five
    variants of ``levers.py``: the baseline (graphs without the export rewrites of
    docs/export-rewrites.md, workers that never spin), fp32 (the runtime's default), no_spin (fp32
    with workers that never spin), concurrent (fp32 with independent graph runs side by side) and
    int8 (fp32 with the INT8 graphs that passed their gate, docs/int8.md).

The top-level keys are those of the precision that ran fastest overall among those that passed
their gate (``best_precision``), named by ``precision``; ``fp32`` and ``int8`` hold each run's.

Each scenario alternates (a) and every variant of (b) every repeat after warm-up, so all see the
same machine load; the reported ratios are of medians, and each lever's own effect is the ratio of
the variants without and with it in that same run. torch threads = onnxruntime threads = physical
cores. Without ``--bundle`` the random-init bundles of ``--preset`` are exported first (without
and with the rewrites, the latter with INT8 graphs); with one, the torch twin is rebuilt from its
manifest's source (the random-init seed, or the checkpoint).

    python benchmarks/compare_reference.py --preset paper --json benchmarks/results/cpu-paper.json \\
        --markdown benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
import time

import numpy as np
from levers import backend_options, graph_levers, int8_fractions, lever_rows, open_bundles, variant_pipelines

TARGETS = {  # the targets on the 2-core CPU, paper preset, onnxruntime CPU, per precision
    "fp32": {"single_mix_speedup": 8.0, "grid_speedup": 20.0, "img2gif_speedup": 8.0,
             "fraction_of_peak.g_child.8": 0.6},
    "int8": {"single_mix_speedup": 10.0, "grid_speedup": 25.0, "img2gif_speedup": 10.0},
}
def reference_procedures(modules, inputs, cfg, device: str = "cpu") -> dict:
    """Scenario name → callable running the PyTorch reference procedure on ``inputs``
    (``mnm.runtime.bench.ScenarioInputs``); each returns uint8 images like the runtime (which
    also waits for a GPU to finish)."""
    import torch

    from mnm.imaging import to_model_input, to_uint8

    generator, encoders, extractor = (None if m is None else m.to(device) for m in modules)

    def tensor(image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(to_model_input(image))[None].to(device)

    def encode_all(x: torch.Tensor) -> dict:
        """All four encoders on one reference; b, p, c as probabilities, as the bundle's graphs give them."""
        codes = {kind: getattr(encoders, kind)(x) for kind in ("z", "b", "p", "c")}
        return {k: v if k == "z" else torch.softmax(v, dim=1) for k, v in codes.items()}

    def generate(bg: dict, pose: dict, p: torch.Tensor, texture: dict) -> np.ndarray:
        out = generator(bg["z"], bg["b"], p, texture["c"], z_pose=pose["z"])
        return to_uint8(out["image"][0].cpu().numpy())

    mix = {k: tensor(v) for k, v in inputs.mix.items()}
    grid = {k: [tensor(v) for v in vs] for k, vs in inputs.grid.items()}
    grid_p = torch.zeros(1, cfg.n_parent, device=device)
    grid_p[0, inputs.grid_shape] = 1.0
    static = tensor(inputs.static)
    frames = [tensor(f) for f in inputs.frames]
    frame_index = {"code": 0, "feature": 0}

    def next_frame(mode: str) -> torch.Tensor:
        i = frame_index[mode]
        frame_index[mode] = (i + 1) % len(frames)
        return frames[i]

    @torch.inference_mode()
    def single_mix():
        codes = {k: encode_all(x) for k, x in mix.items()}
        return generate(codes["background"], codes["pose"], codes["shape"]["p"], codes["texture"])

    @torch.inference_mode()
    def grid_all():
        images = []
        for bg in grid["background"]:
            for pose in grid["pose"]:
                for texture in grid["texture"]:
                    images.append(generate(encode_all(bg), encode_all(pose), grid_p, encode_all(texture)))
        return images

    @torch.inference_mode()
    def img2gif_code():
        frame, still = encode_all(next_frame("code")), encode_all(static)
        return generate(still, frame, still["p"], still)

    @torch.inference_mode()
    def img2gif_feature():
        # Feature mode: shape and pose are S(frame); the static image gives z_bg, b, c.
        frame = next_frame("feature")
        still = encode_all(static)
        background = generator.background(still["z"], still["b"])
        out = generator.child(extractor(frame), still["c"], background)
        return to_uint8(out["image"][0].cpu().numpy())

    found = {"single_mix": single_mix, "grid": grid_all, "img2gif_code": img2gif_code}
    if extractor is not None:
        found["img2gif_feature"] = img2gif_feature
    return found


def torch_modules(bundle):
    """The torch networks the bundle was exported from, rebuilt from its manifest's source."""
    from mnm.errors import MnmError

    source = bundle.manifest.get("source") or {}
    if source.get("kind") == "random-init":
        from mnm.export import random_init_modules

        return random_init_modules(bundle.config, int(source.get("seed", 0)))
    if source.get("kind") == "checkpoint":
        from mnm.training.export_source import load_for_export

        _, generator, encoders, extractor, _ = load_for_export(source["path"])
        return generator, encoders, extractor
    where = bundle.path / "manifest.json"
    raise MnmError(f"{where}: source {source!r} names no weights to rebuild the torch twin from")


def _max_abs_diff(name: str, reference_out, runtime_out) -> int:
    """Largest difference (0-255) between the two sides' images: they must compute the same thing."""
    if name == "grid":
        reference_out, runtime_out = np.stack(reference_out), np.stack([cell.image for cell in runtime_out.cells])
    return int(np.abs(np.asarray(reference_out, np.int16) - np.asarray(runtime_out, np.int16)).max())


def _max_abs_diff_images(name: str, a, b) -> int:
    """Largest difference (0-255) between two runtime variants' images."""
    if name == "grid":
        a, b = np.stack([cell.image for cell in a.cells]), np.stack([cell.image for cell in b.cells])
    return int(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max())


def compare(bundles: dict, modules, opts, log) -> dict:
    """Interleaved timings of every scenario: the reference and every runtime variant, with ratios.

    The first, untimed run of each side is a warm-up whose images are compared (the fp32 variants
    must agree with the reference; the int8 variant's difference is recorded). The grid gets no
    further warm-up (one reference grid is 64 reference mixes: a minute at paper scale on a CPU).
    """
    from mnm.runtime.bench import ScenarioInputs, interleaved, scenarios, summarize

    cfg = bundles["main"].config
    inputs = ScenarioInputs.random(cfg.image_size, cfg.n_parent)
    pipelines = variant_pipelines(bundles, opts)
    runtime = {name: scenarios(pipe, inputs) for name, pipe in pipelines.items()}
    reference = reference_procedures(modules, inputs, cfg, opts.device)
    result = {"backends": {name: pipe.backend.description for name, pipe in pipelines.items()}, "scenarios": {}}
    for name, ref_fn in reference.items():
        n = opts.grid_repeats if name == "grid" else opts.repeats
        log(f"{name}: warm-up, then {n} interleaved repeats of the reference and {len(runtime)} runtime variants")
        ref_images = ref_fn()
        first = {variant: sc[name].run() for variant, sc in runtime.items()}
        agreement = {v: _max_abs_diff(name, ref_images, images) for v, images in first.items()}
        if "int8" in first:
            agreement["int8_vs_fp32"] = _max_abs_diff_images(name, first["fp32"], first["int8"])
        more = 0 if name == "grid" else opts.warmup - 1
        fns = {"reference": ref_fn, **{variant: sc[name].run for variant, sc in runtime.items()}}
        times = interleaved(fns, n, more)
        images = runtime["fp32"][name].images
        ref = summarize(times["reference"], images)
        runs = {variant: summarize(times[variant], images) for variant in runtime}
        result["scenarios"][name] = {
            "reference": ref, "runtimes": runs, "agreement_max_abs_uint8": agreement,
            "speedups": {variant: ref["median_ms"] / r["median_ms"] for variant, r in runs.items()},
        }
    for pipe in pipelines.values():
        pipe.close()
    return result


def components(bundle, modules, opts) -> dict:
    """Batch-1 latency of one encoder and of the whole generator, torch eager vs the runtime's
    backend: the backend's share of the speed-up, apart from what caching saves."""
    import torch

    from mnm.runtime.backends import create
    from mnm.runtime.bench import graph_inputs, interleaved, summarize

    generator, encoders, _ = modules
    backend = create(bundle, opts.backend, precision="fp32", **backend_options(opts))
    rng = np.random.default_rng(0)
    enc_feeds = graph_inputs(bundle, "enc_z", 1, rng)
    z = graph_inputs(bundle, "g_background", 1, rng)
    p = graph_inputs(bundle, "g_parent", 1, rng)["p"]
    c = graph_inputs(bundle, "g_child", 1, rng)["c"]
    x, tz, tb, tp, tc = (torch.from_numpy(a).to(opts.device) for a in (enc_feeds["image"], z["z"], z["b"], p, c))
    sync = torch.cuda.synchronize if opts.device.startswith("cuda") else (lambda: None)

    @torch.inference_mode()
    def torch_encoder():
        encoders.z(x)
        sync()

    @torch.inference_mode()
    def torch_generator():
        generator(tz, tb, tp, tc)
        sync()

    def runtime_generator():
        bg = backend.run("g_background", z)["background"]
        phi = backend.run("g_parent", {"z": z["z"], "p": p})["shape_feature"]
        return backend.run("g_child", {"shape_feature": phi, "c": c, "background": bg})

    times = interleaved({
        "torch_encoder": torch_encoder, "runtime_encoder": lambda: backend.run("enc_z", enc_feeds),
        "torch_generator": torch_generator, "runtime_generator": runtime_generator,
    }, max(opts.repeats, 5), opts.warmup)
    backend.close()
    return {name: summarize(t) for name, t in times.items()}


def headline(result: dict, variant: str, fractions: dict) -> dict:
    """The keys the issue asks for, for one runtime variant."""
    s = result["scenarios"]

    def speedup(name: str) -> float:
        return s[name]["speedups"][variant]

    def rate(name: str) -> float:
        return s[name]["runtimes"][variant]["images_per_s"]

    out = {
        "single_mix_speedup": speedup("single_mix"),
        "grid_speedup": speedup("grid"),
        "img2gif_speedup": speedup("img2gif_code"),
        "img2gif_fps": rate("img2gif_code"),
        "reference_img2gif_fps": s["img2gif_code"]["reference"]["images_per_s"],
        "single_mix_images_per_s": rate("single_mix"),
        "grid_images_per_s": rate("grid"),
        "reference_images_per_s": s["single_mix"]["reference"]["images_per_s"],
    }
    if "img2gif_feature" in s:
        out["img2gif_feature_speedup"] = speedup("img2gif_feature")
        out["img2gif_feature_fps"] = rate("img2gif_feature")
    out["fraction_of_peak"] = fractions
    return out


SPEEDUP_KEYS = ("single_mix_speedup", "grid_speedup", "img2gif_speedup")


def best_precision(heads: dict) -> str:
    """The precision whose run was fastest overall (geometric mean of the three speed-ups).

    Only precisions that passed their gate are in ``heads``: the int8 variant exists only with INT8
    graphs that passed, and it runs the others in fp32. A slower int8 run leaves fp32 on top."""
    def overall(name: str) -> float:
        return float(np.prod([heads[name][k] for k in SPEEDUP_KEYS])) ** (1 / len(SPEEDUP_KEYS))

    return max(heads, key=overall)


def fp32_fractions(graphs: dict) -> dict:
    return {g: {b: r["fraction_of_peak"] for b, r in entry["batches"].items()} for g, entry in graphs.items()}


def check_targets(head: dict, precision: str) -> list[dict]:
    """Each target of ``precision`` with the measured value and whether it was met."""
    rows = []
    for key, target in TARGETS[precision].items():
        value = head
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            rows.append({"precision": precision, "target": key, "goal": target, "value": value,
                         "met": value >= target})
    return rows


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description="Runtime vs the PyTorch reference procedure, interleaved.")
    parser.add_argument("--preset", default="paper", help="Model preset of the random-init bundle (paper, lite, tiny).")
    parser.add_argument("--bundle", help="Benchmark this bundle instead of exporting a random-init one.")
    parser.add_argument("--baseline-bundle",
                        help="With --bundle: the same weights exported without the export rewrites "
                        "(mnm.export.export_bundle(..., rewrites=())), for the rewrites lever.")
    parser.add_argument("--calibrate", help="INT8 calibration images of the exported bundle [default: synthetic].")
    parser.add_argument("--seed", type=int, default=0, help="Weight seed of the exported random-init bundle.")
    parser.add_argument("--repeats", type=int, default=5, help="Interleaved timed repeats per scenario.")
    parser.add_argument("--grid-repeats", type=int, help="Repeats of the 64-image grid [default: --repeats].")
    parser.add_argument("--warmup", type=int, default=1,
                        help="Untimed runs of each side first (at least 1: its images are compared).")
    parser.add_argument("--roofline-repeats", type=int, default=10, help="Repeats per graph latency.")
    parser.add_argument("--peak-size", type=int, default=2048, help="Side of the matrices of the peak measurement.")
    parser.add_argument("--threads", type=int, help="torch and onnxruntime threads [default: physical cores].")
    parser.add_argument("--backend", default="ort-cpu", help="Runtime backend: ort-cpu, ort-cuda, ort-trt, tensorrt.")
    parser.add_argument("--device", default="cpu", help="torch device of the reference: cpu or cuda.")
    parser.add_argument("--no-profile", action="store_true", help="Skip the onnxruntime operator profile.")
    parser.add_argument("--json", help="Write the full results here.")
    parser.add_argument("--markdown", help="Rewrite this RESULTS.md from the results (notes section kept).")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 1 or (args.grid_repeats is not None and args.grid_repeats < 1):
        parser.error("--repeats, --grid-repeats and --warmup must be at least 1")
    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        parser.error(f"--device: expected cpu or cuda, got {args.device!r}")
    args.grid_repeats = args.grid_repeats or args.repeats
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mnm.errors import MnmError

    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python", "benchmarks/compare_reference.py", *map(shlex.quote, given)])
    try:
        report = run(args, command)
    except MnmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        from mnm.atomic import write_text

        write_text(args.json, json.dumps(report, indent=2) + "\n")
    if args.markdown:
        from results_md import write_results

        write_results(args.markdown, report, args.json)
    keys = ("single_mix_speedup", "grid_speedup", "img2gif_speedup", "img2gif_fps")
    print(json.dumps({"precision": report["precision"], **{k: report[k] for k in keys},
                      "fp32": {k: report["fp32"][k] for k in keys}}, indent=2))
    return 0


def run(args, command: str) -> dict:
    import torch
    from peak import cuda_product, details, measure_int8_peak, measure_peak, ort_int8_product, ort_product
    from roofline import profile_graph, roofline

    from mnm.errors import MnmError
    from mnm.provenance import utc_now
    from mnm.runtime.backends import create
    from mnm.runtime.machine import load_average, usable_cores

    args.threads = args.threads or usable_cores()
    torch.set_num_threads(args.threads)
    if args.device != "cpu" and not torch.cuda.is_available():
        raise MnmError(f"--device {args.device}: this torch build sees no CUDA GPU")
    started = time.perf_counter()
    machine = details()  # at the start: its load average is the one before this run

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    with contextlib.ExitStack() as stack:
        bundles = open_bundles(args, stack, log)
        main = bundles["main"]
        modules = torch_modules(main)
        cpu = args.backend == "ort-cpu"
        peak_device = "cpu" if cpu else args.device
        log(f"measuring the fp32 peak ({peak_device})" + (" and the int8 peak" if cpu else ""))
        peak = measure_peak(args.peak_size, threads=args.threads, device=peak_device)
        int8_peak = measure_int8_peak(args.peak_size, threads=args.threads) if cpu else None
        log(f"reference (torch eager, {args.device}) vs runtime ({args.backend}), interleaved")
        result = compare(bundles, modules, args, log)
        log("graph levers: each graph before the rewrites, with them, and in INT8, interleaved")
        levers = graph_levers(bundles, args, ort_int8_product(args.peak_size, args.threads) if cpu else None)
        log("components: one encoder and the generator, torch eager vs the runtime backend")
        parts = components(main, modules, args)
        log("roofline: every graph at batch 1 and 8, interleaved with the peak's matrix product")
        backend = create(main, args.backend, precision="fp32", **backend_options(args))
        product = ort_product(peak["size"], args.threads) if peak_device == "cpu" else cuda_product(
            peak["size"], peak_device)
        graphs = roofline(main, backend, peak, product, (1, 8), args.roofline_repeats, 2)
        backend.close()
        profile = {}
        if cpu and not args.no_profile:
            log("onnxruntime operator profile of every graph at batch 8")
            profile = {g: profile_graph(main, g, 8, threads=args.threads) for g in main.graphs}
        heads = {"fp32": headline(result, "fp32", fp32_fractions(graphs))}
        if "int8" in result["backends"]:
            heads["int8"] = headline(result, "int8", int8_fractions(main, levers, int8_peak,
                                                                     heads["fp32"]["fraction_of_peak"]))
        precision = best_precision(heads)
        report = {
            **heads[precision],
            "precision": precision,
            "int8_graphs": sorted(main.graphs_int8) if precision == "int8" else [],
            "fp32": heads["fp32"],
            "int8": heads.get("int8"),
            "format": "mnm-compare-reference",
            "format_version": 2,
            "created": utc_now(),
            "command": command,
            "preset": None if args.bundle else args.preset,
            "bundle": args.bundle,
            "config": main.config.to_dict(),
            "source": main.manifest.get("source"),
            "rewrites": main.manifest.get("rewrites"),
            "settings": {"repeats": args.repeats, "grid_repeats": args.grid_repeats, "warmup": args.warmup,
                         "roofline_repeats": args.roofline_repeats, "threads": args.threads,
                         "backend": args.backend, "reference_device": args.device},
            "machine": machine,
            "targets": [row for name, head in heads.items() for row in check_targets(head, name)],
            "peak": peak,
            "int8_peak": int8_peak,
            "runtime_backend": result["backends"].get(precision),
            **result,
            "levers": lever_rows(result, levers),
            "graph_levers": levers,
            "int8_quality": main.manifest.get("int8"),
            "components": parts,
            "graphs": graphs,
            "profile": profile,
            "duration_s": time.perf_counter() - started,
            "load_average_end": load_average(),
        }
    log("done")
    return report


if __name__ == "__main__":
    sys.exit(main())
