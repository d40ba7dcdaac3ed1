"""RESULTS.md from a ``compare_reference.py`` report: every table is regenerated from the numbers;
the hand-written notes between the two NOTES markers are carried over from the existing file,
so an analysis survives a re-run (and should be re-read against the new numbers)."""

from __future__ import annotations

from pathlib import Path

from mnm.atomic import write_text

NOTES_BEGIN = "<!-- NOTES: hand-written, kept when this file is regenerated -->"
NOTES_END = "<!-- END NOTES -->"
DEFAULT_NOTES = "(no notes yet)"
VARIANT_TITLES = {
    "baseline": "no export rewrites, workers never spin (the runtime before these levers)",
    "fp32": "+ export rewrites + brief spinning (the fp32 result)",
    "no_spin": "fp32 with workers that never spin",
    "concurrent": "fp32 + independent graph runs side by side",
    "int8": "fp32 + INT8 graphs that passed their gate (the int8 result)",
}
SHORT_TITLES = {"single_mix": "single mix", "grid": "grid 4x4x4", "img2gif_code": "img2gif code",
                "img2gif_feature": "img2gif feature"}
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
        f"reference: PyTorch eager on {s['reference_device']}; export rewrites: "
        f"{', '.join(report.get('rewrites') or []) or 'none recorded'}.",
        f"- Timing: {s['threads']} threads for torch and onnxruntime; medians of {s['repeats']} interleaved repeats "
        f"({s['grid_repeats']} for the grid) after {s['warmup']} warm-up run(s); graph latencies: medians of "
        f"{s['roofline_repeats']}. Whole run: {report['duration_s'] / 60:.1f} min; load average (1, 5, 15 min) "
        f"{_load(m.get('load_average'))} at the start, {_load(report.get('load_average_end'))} at the end"
        f"{_contention(m, report)}.",
        "",
        "## Targets",
        "",
        f"Top-level result: precision `{report['precision']}`"
        + (f" (INT8 graphs: {', '.join(report['int8_graphs'])}; the others fp32)" if report["int8_graphs"] else "")
        + " (the faster overall of the precisions that passed their gate: geometric mean of the three speed-ups)"
        + "; the fp32 result is under `fp32` in the JSON, the int8 one under `int8`.",
        "",
        "| precision | target | goal | measured | met |",
        "|---|---|---|---|---|",
    ]
    for row in report["targets"]:
        unit = "of peak" if row["target"].startswith("fraction") else "x"
        goal = f"{row['goal']:.0%} {unit}" if unit == "of peak" else f"{row['goal']:g}x"
        value = f"{row['value']:.0%} {unit}" if unit == "of peak" else f"{row['value']:.1f}x"
        met = "yes" if row["met"] else "**no**"
        lines.append(f"| {row['precision']} | `{row['target']}` | {goal} | {value} | {met} |")
    lines += [
        "",
        "## PyTorch reference procedure vs the runtime",
        "",
        "Same weights on both sides; the joint-conv rewrite (`code_conv`) is in both (it is part of the networks). "
        "The reference runs all four encoders on every reference image and then the whole generator, for every "
        "output image (per frame for img2gif: the frame and the static image); the runtime encodes only what a "
        "request needs, each reference once, and caches the background and shape stages. Runtime variants "
        "(levers): " + ", ".join(f"`{v}`" for v in VARIANT_TITLES) + f" ({_variants_note()}).",
        "",
        "| scenario | reference ms | " + " | ".join(f"{v} ms" for v in VARIANT_TITLES) + " | speed-up fp32 | "
        "speed-up int8 | max diff vs reference (int8 vs fp32) |",
        "|---|---|" + "---|" * len(VARIANT_TITLES) + "---|---|---|",
    ]
    for name, r in report["scenarios"].items():
        runs, speedups, agree = r["runtimes"], r["speedups"], r["agreement_max_abs_uint8"]
        cells = [f"{runs[v]['median_ms']:.1f}" if v in runs else "—" for v in VARIANT_TITLES]
        rate = " fps" if name.startswith("img2gif") else " img/s"
        fp32 = f"{speedups['fp32']:.1f}x ({runs['fp32']['images_per_s']:.1f}{rate})"
        int8 = f"{speedups['int8']:.1f}x ({runs['int8']['images_per_s']:.1f}{rate})" if "int8" in runs else "—"
        diff = str(agree.get("fp32", "")) + (f" ({agree['int8_vs_fp32']})" if "int8_vs_fp32" in agree else "")
        lines.append(f"| {TITLES.get(name, name)} | {r['reference']['median_ms']:.1f} | " + " | ".join(cells)
                     + f" | {fp32} | {int8} | {diff} |")
    lines += _lever_lines(report) + _int8_lines(report)
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
        "from the ONNX graphs (manifest `macs_per_image`)."
        + (f" INT8 peak: {report['int8_peak']['peak_gflops']:.1f} GOP/s (onnxruntime uint8 x int8 MatMulInteger, "
           "2 ops per multiply-accumulate): the INT8 table below gives each INT8 graph's fraction of the higher "
           "of it and the same product timed alongside the graph; the table here is the fp32 graphs."
           if report.get("int8_peak") else ""),
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


def _variants_note() -> str:
    return "; ".join(f"`{v}`: {t}" for v, t in VARIANT_TITLES.items())


def _lever_lines(report: dict) -> list[str]:
    """One row per lever: the runtime's time without it over the time with it, same run."""
    levers = report.get("levers") or []
    if not levers:
        return []
    names = list(report["scenarios"])
    lines = ["", "## Levers", "",
             "Each lever's own effect: time without it / time with it, from the same interleaved run (scenarios "
             "above; graphs: medians of interleaved runs at batch 1 and 8).", "",
             "| lever | " + " | ".join(SHORT_TITLES.get(n, n) for n in names) + " | graphs (batch 1 / 8) |",
             "|---|" + "---|" * (len(names) + 1)]
    for row in levers:
        cells = [f"{row['scenarios'][n]:.2f}x" if n in row["scenarios"] else "—" for n in names]
        graphs = ", ".join(f"{g} {v.get('1', 0):.2f}x / {v.get('8', 0):.2f}x" for g, v in row["graphs"].items()
                           if any(abs(x - 1) > 0.0 for x in v.values()))
        lines.append(f"| {row['lever']}: {row['what']} | " + " | ".join(cells) + f" | {graphs or '—'} |")
    return lines


def _int8_lines(report: dict) -> list[str]:
    """The INT8 gate's measurements (manifest ``int8``) and the INT8 graphs' speed."""
    q = report.get("int8_quality")
    if not q:
        return []
    gate = q["gate"]
    lines = ["", "## INT8 quality gate", "",
             f"Calibration: {_calibration(q['calibration'])}. Gate per graph: held-out mixes against fp32, PSNR >= "
             f"{gate['min_psnr_db']:g} dB and largest pixel difference <= {gate['max_abs_diff']}; together, the same"
             f" and disentanglement scores within {gate['max_disentangle_change']:g}.", "",
             "| graph | PSNR dB | max diff | precision | int8 speed-up batch 1 / 8 | of int8 peak batch 1 / 8 |",
             "|---|---|---|---|---|---|"]
    levers = report.get("graph_levers", {})
    for name, r in q["graphs"].items():
        speed = levers.get(name, {})
        ratios = [speed[b]["fp32"]["median_ms"] / speed[b]["int8"]["median_ms"]
                  for b in ("1", "8") if b in speed and "int8" in speed[b]]
        cell = " / ".join(f"{x:.2f}x" for x in ratios) or "—"
        int8_run = report.get("int8") or {}
        fraction = int8_run.get("fraction_of_peak", {}).get(name, {}) if r["precision"] == "int8" else {}
        of_peak = " / ".join(f"{fraction[b]:.0%}" for b in ("1", "8") if b in fraction) or "—"
        why = f" ({r['dropped']})" if r.get("dropped") else ""
        lines.append(f"| {name} | {r['psnr_db']:.1f} | {r['max_abs_diff']} | {r['precision']}{why} | {cell} | "
                     f"{of_peak} |")
    if q.get("combined"):
        c = q["combined"]
        lines.append(f"| together ({len(c['graphs'])} graphs) | {c['psnr_db']:.1f} | {c['max_abs_diff']} | "
                     f"{'passed' if c['passed'] else 'failed'} | | |")
    if q.get("disentangle"):
        d = q["disentangle"]
        lines += ["", f"Disentanglement ({d['pairs']} pairs, code mode): fp32 {_scores(d['fp32'])}; INT8 "
                  f"{_scores(d['int8'])}; largest change {d['max_change']}."]
    return lines


def _calibration(c: dict) -> str:
    """``synthetic (mnm data synth ...), 64 images calibrate, 16 held out``."""
    source = f"{c['kind']} ({c['command']})" if c.get("command") else f"{c['kind']} {c.get('path', '')}".strip()
    return f"{source}, {c['calibration_images']} images calibrate, {c['held_out_images']} held out"


def _scores(scores: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in scores.items())


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


def _contention(machine: dict, report: dict) -> str:
    """Say so when the 1-minute load rose above the CPUs the run may use: other work competed."""
    loads = [x[0] for x in (machine.get("load_average"), report.get("load_average_end")) if x]
    if loads and max(loads) > machine["usable_cpus"]:
        return f" (above {machine['usable_cpus']}: other work competed for the CPUs)"
    return ""


def _load(values) -> str:
    return "/".join(f"{v:.1f}" for v in values) if values else "unknown"


def _source(source: dict | None) -> str:
    if not source:
        return "of unknown origin"
    if source.get("kind") == "random-init":
        return f"random init (seed {source.get('seed')})"
    return f"from checkpoint {source.get('path')} (step {source.get('step')})"
