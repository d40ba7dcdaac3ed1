"""OUT/gpu.md from the prepared GPU run's report (``gpu_run.py``): one table per measurement."""

from __future__ import annotations


def markdown(report: dict) -> str:
    lines = ["# The prepared GPU run", "", f"`{report['command']}`, {report.get('created')}, "
             f"{report.get('wall_s')} s in all.", ""]
    lines += _machine(report.get("machine"))
    lines += _table("Training (code mode, steps after the first log record)",
                    ("preset", "precision", "batch", "steps", "steps/s", "images/s"),
                    [(t["preset"], t["precision"], t["batch"], t["steps"], t["steps_per_s"], t["images_per_s"])
                     for t in report.get("training") or []])
    baselines = report.get("torch_baselines")
    if baselines:
        rows = []
        for graph, per_batch in baselines["graphs"].items():
            for batch, r in per_batch.items():
                graph_ms = f"{r['cuda_graph']['median_ms']:.3f}" if "cuda_graph" in r else "—"
                rows.append((graph, batch, f"{r['eager']['median_ms']:.3f}", graph_ms))
        lines += _table(f"PyTorch on {baselines['device']} ({baselines['weights']}, {baselines['precision']}), "
                        "median ms", ("graph", "batch", "eager", "CUDA graph"), rows)
    lines += _table("GPU backends (each created for real)", ("backend", "starts", "detail"),
                    [(name, "yes" if b["starts"] else "no", b["detail"])
                     for name, b in (report.get("backends") or {}).items()])
    for entry in (report.get("bench") or {}).values():
        rows = [(graph, batch, f"{r['median_ms']:.3f}", f"{r['images_per_s']:.1f}")
                for graph, per_batch in entry["graphs"].items() for batch, r in per_batch.items()]
        rows += [(scenario, r["images"], f"{r['median_ms']:.3f}", f"{r['images_per_s']:.1f}")
                 for scenario, r in entry["scenarios"].items()]
        lines += _table(f"mnm bench: {entry['description']}", ("graph or scenario", "batch", "median ms", "images/s"),
                        rows)
    tests = report.get("gpu_tests")
    if tests:
        lines += [f"GPU tests: {tests['passed']} passed, {tests['failure']} failed, {tests['error']} errors, "
                  f"{tests['skipped']} skipped.", ""]
        lines += _table("GPU tests that did not pass", ("test", "outcome", "message"),
                        [(c["test"], c["outcome"], c["message"]) for c in tests["cases"]])
    lines += _table("Not run, and why", ("what", "why"), [(s["what"], s["why"]) for s in report["skipped"]])
    return "\n".join(lines).rstrip() + "\n"


def _machine(machine: dict | None) -> list[str]:
    if not machine:
        return ["Machine: not recorded.", ""]
    inst, torch = machine["installation"], machine.get("torch", {})
    gpus = "; ".join(f"{g['name']} (sm {g['compute_capability']}, driver {g['driver']})"
                     for g in inst["gpus"]) or "none"
    devices = "; ".join(f"{d['index']}: {d['name']}" for d in torch.get("devices", [])) or "none"
    packages = ", ".join(f"{k} {v}" for k, v in inst["packages"].items())
    return [f"- GPUs (nvidia-smi order): {gpus}; driver's newest CUDA {inst.get('driver_cuda')}",
            f"- torch {torch.get('version')} (CUDA {torch.get('cuda')}) devices (CUDA order): {devices}; "
            f"CUDA_VISIBLE_DEVICES={machine.get('CUDA_VISIBLE_DEVICES')}, "
            f"CUDA_DEVICE_ORDER={machine.get('CUDA_DEVICE_ORDER')}",
            f"- packages: {packages}; onnxruntime providers listed: {', '.join(inst['providers_listed'])}", ""]


def _table(title: str, header: tuple, rows: list[tuple]) -> list[str]:
    if not rows:
        return []
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows), ""]
