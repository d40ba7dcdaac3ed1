"""RESULTS.md from a ``compare_reference.py`` report: every table is regenerated from the numbers;
the hand-written notes between the two NOTES markers are carried over from the existing file,
so an analysis survives a re-run (and should be re-read against the new numbers)."""

from __future__ import annotations

from pathlib import Path

from mnm.atomic import write_text

NOTES_BEGIN = "<!-- NOTES: hand-written, kept when this file is regenerated -->"
NOTES_END = "<!-- END NOTES -->"
DEFAULT_NOTES = "(no notes yet)"
TITLES = {
    "single_mix": "single mix, 4 different references (code mode, batch 1)",
    "grid": "grid 4 backgrounds x 4 poses x 4 textures (64 images)",
    "img2gif_code": "img2gif per frame, code mode",
    "img2gif_feature": "img2gif per frame, feature mode",
}


def write_results(path: str | Path, report: dict, json_path: str | None = None) -> None:
    path = Path(path)
    notes = DEFAULT_NOTES
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        if NOTES_BEGIN in text and NOTES_END in text:
            notes = text.split(NOTES_BEGIN, 1)[1].split(NOTES_END, 1)[0].strip() or DEFAULT_NOTES
    write_text(path, render(report, notes, json_path))


def render(report: dict, notes: str = DEFAULT_NOTES, json_path: str | None = None) -> str:
    m, s, cfg = report["machine"], report["settings"], report["config"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items())
    gpu = ", ".join(g["name"] for g in m["gpus"]) or "none"
    peak = report["peak"]
    model = report["preset"] or report["bundle"]
    lines = [
        "# Benchmark results",
        "",
        f"Generated {report['created']} by `{report['command']}`"
        + (f"; the full numbers are in `{json_path}`." if json_path else "."),
        "",
        f"- Machine: {m['cpu']}, {m['physical_cores']} physical cores ({m['usable_cpus']} usable CPUs; "
        f"{', '.join(m['cpu_features'])}), {m['memory_gib']} GiB, GPU: {gpu}; {m['os']}; Python {m['python']}.",
        f"- Libraries: {libs}; numpy BLAS {m.get('numpy_blas', '?')}.",
        f"- Model: {model} (S={cfg['image_size']}, ngf={cfg['ngf']}, ndf={cfg['ndf']}, N_p={cfg['n_parent']}, "
        f"N_c={cfg['n_child']}), weights {_source(report['source'])}; runtime: {report['runtime_backend']}; "
        f"reference: PyTorch eager on {s['reference_device']}.",
        f"- Timing: {s['threads']} threads for torch and onnxruntime; medians of {s['repeats']} interleaved repeats "
        f"({s['grid_repeats']} for the grid) after {s['warmup']} warm-up run(s); graph latencies: medians of "
        f"{s['roofline_repeats']}. Whole run: {report['duration_s'] / 60:.1f} min; load average (1, 5, 15 min) "
        f"{_load(m.get('load_average'))} at the start, {_load(report.get('load_average_end'))} at the end "
        f"(above {m['usable_cpus']}, other work competed for the CPUs).",
        "",
        "## Targets",
        "",
        "| target | goal | measured | met |",
        "|---|---|---|---|",
    ]
    for row in report["targets"]:
        unit = "of peak" if row["target"].startswith("fraction") else "x"
        goal = f"{row['goal']:.0%} {unit}" if unit == "of peak" else f"{row['goal']:g}x"
        value = f"{row['value']:.0%} {unit}" if unit == "of peak" else f"{row['value']:.1f}x"
        lines.append(f"| `{row['target']}` | {goal} | {value} | {'yes' if row['met'] else '**no**'} |")
    lines += [
        "",
        "## PyTorch reference procedure vs the runtime",
        "",
        "Same weights on both sides; the joint-conv rewrite of DESIGN §4 is in both (it is part of the networks). "
        "The reference runs all four encoders on every reference image and then the whole generator, for every "
        "output image (per frame for img2gif: the frame and the static image); the runtime encodes only what a "
        "request needs, each reference once, and caches the background and shape stages.",
        "",
        "| scenario | reference median ms | runtime median ms (p95) | runtime images/s | speed-up | max diff (0-255) |",
        "|---|---|---|---|---|---|",
    ]
    agree = report.get("agreement_max_abs_uint8", {})
    for name, r in report["scenarios"].items():
        rt = r["runtime"]
        rate = f"{rt['images_per_s']:.1f}" + (" fps" if name.startswith("img2gif") else "")
        lines.append(
            f"| {TITLES.get(name, name)} | {r['reference']['median_ms']:.1f} | {rt['median_ms']:.1f} "
            f"({rt['p95_ms']:.1f}) | {rate} | {r['speedup']:.1f}x | {agree.get(name, '')} |"
        )
    c = report["components"]
    lines += [
        "",
        "What the backend alone gives at batch 1 (no caching involved):",
        "",
        "| part | torch eager ms | runtime ms | ratio |",
        "|---|---|---|---|",
        _component_row("one encoder (E_z)", c["torch_encoder"], c["runtime_encoder"]),
        _component_row("whole generator (3 stages)", c["torch_generator"], c["runtime_generator"]),
        "",
        "## Roofline",
        "",
        f"Peak fp32: {peak['peak_gflops']:.1f} GFLOP/s up front, the highest of {peak_sources(peak)} on "
        f"{peak['size']}x{peak['size']} matrices (medians){_alongside(report['graphs'])}. Fraction of peak = "
        "2 x MACs x batch / latency / peak, taking the higher of the two peaks; MACs per image are counted "
        "from the ONNX graphs (manifest `macs_per_image`).",
        "",
        "| graph | GMAC/image | batch 1 ms | GFLOP/s | of peak | batch 8 ms | GFLOP/s | of peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in report["graphs"].items():
        cells = [f"{name}", f"{entry['macs_per_image'] / 1e9:.3f}"]
        for batch in ("1", "8"):
            r = entry["batches"].get(batch)
            if r:
                cells += [f"{r['median_ms']:.2f}", f"{r['gflops']:.1f}", f"{r['fraction_of_peak']:.0%}"]
        lines.append("| " + " | ".join(cells) + " |")
    if report.get("profile"):
        lines += [
            "",
            "## Where the time goes (onnxruntime profiler, batch 8)",
            "",
            "| graph | kernel ms/run | operators by share |",
            "|---|---|---|",
        ]
        for name, prof in report["profile"].items():
            ops = ", ".join(f"{o['op']} {o['share']:.0%}" for o in prof["ops"][:5])
            lines.append(f"| {name} | {prof['kernel_ms_per_run']:.1f} | {ops} |")
    lines += ["", "## Notes", "", NOTES_BEGIN, notes, NOTES_END, ""]
    return "\n".join(lines)


def peak_sources(peak: dict) -> str:
    """``numpy 41.0, onnxruntime 89.0`` (GFLOP/s per measurement)."""
    return ", ".join(f"{name} {v['gflops']:.1f}" for name, v in peak.items() if isinstance(v, dict))


def _alongside(graphs: dict) -> str:
    values = [r["peak_alongside_gflops"] for g in graphs.values() for r in g["batches"].values()
              if r.get("peak_alongside_gflops")]
    if not values:
        return ""
    return (f"; the same product interleaved with each graph's runs reached {min(values):.1f}-{max(values):.1f} "
            "GFLOP/s (the load moved during the run)")


def _component_row(label: str, torch_stats: dict, ort_stats: dict) -> str:
    ratio = torch_stats["median_ms"] / ort_stats["median_ms"]
    return f"| {label} | {torch_stats['median_ms']:.1f} | {ort_stats['median_ms']:.1f} | {ratio:.1f}x |"


def _load(values) -> str:
    return "/".join(f"{v:.1f}" for v in values) if values else "unknown"


def _source(source: dict | None) -> str:
    if not source:
        return "of unknown origin"
    if source.get("kind") == "random-init":
        return f"random init (seed {source.get('seed')})"
    return f"from checkpoint {source.get('path')} (step {source.get('step')})"
