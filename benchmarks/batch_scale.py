"""`mnm mix --batch` at scale on this machine: one process, two shards, Ray Data with 1 and 2 workers,
and the cache hit rate with and without grouping rows by reference.

A plan of ``--rows`` rows (default 2,000) is made over ``--refs`` distinct reference images per
factor (random smooth pictures, made before any clock starts), in shuffled order: backgrounds and
textures are images, poses ``seed:N`` or images, shapes ``code:K``. Each configuration is a real
``mnm mix --batch`` process (two at once for the shards) writing into a fresh folder; reported are
images/s over the mixing (the command's own count: from the first row to the last, pipelines opened
inside it for Ray, Ray's start-up not counted) and over the wall time of the whole command(s). The
configurations run in turn, ``--repeats`` times in alternating order, and the medians are kept; the
folders of every configuration are checked byte-identical. The hit rate is measured in this process
with the library (``runner.run_here``), grouping on and off, with the default caches and with caches
of 16 entries (fewer than the plan's references, as on a large catalogue). Results: JSON
(``--json``) and a Markdown table on stdout; the machine, CPU features and load go with them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mnm.runtime import machine

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "mnm" / "assets" / "demo" / "bundle"
SUMMARY = re.compile(r"wrote (\d+) images to .* in ([\d.]+) s")


def make_plan(folder: Path, rows: int, refs: int, seed: int = 0) -> Path:
    """The plan and its reference images: every factor repeats each reference about rows/refs times."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(refs * 2):
        low = rng.uniform(0, 255, (4, 4, 3))
        picture = np.asarray(Image.fromarray(low.astype(np.uint8)).resize((64, 64), Image.BICUBIC))
        path = folder / f"ref{i:04d}.png"
        Image.fromarray(picture).save(path)
        images.append(path)
    backgrounds, textures = images[:refs], images[refs:]
    lines = ["background,pose,shape,texture"]
    for i in rng.permutation(rows):
        pose = f"seed:{i}" if i % 2 else str(backgrounds[(i * 7) % refs])
        lines.append(f"{backgrounds[i % refs]},{pose},code:{i % 2},{textures[(i // 3) % refs]}")
    plan = folder / "plan.csv"
    plan.write_text("\n".join(lines) + "\n")
    return plan


def command(bundle: Path, plan: Path, out: Path, *extra: str) -> list[str]:
    cli = [sys.executable, "-c", "from mnm.cli import main; main()"]
    return [*cli, "mix", str(bundle), "--batch", str(plan), "--out", str(out), *extra]


def run_config(name: str, bundle: Path, plan: Path, out: Path, env: dict) -> dict:
    """One configuration's processes (two at once for the shards); images and seconds they report."""
    if name.startswith("one process"):
        threads = name.split(", ")[1].split()[0]  # "one process, 2 threads"
        commands = [command(bundle, plan, out, "--threads", threads)]
    elif name == "two shards":
        commands = [command(bundle, plan, out, "--shard", f"{i}/2", "--threads", "1") for i in (0, 1)]
    else:
        workers = name.split()[1]
        commands = [command(bundle, plan, f"file://{out}", "--ray", "--workers", workers, "--threads", "1")]
    start = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for c in commands]
    outputs = [p.communicate(timeout=1800) for p in procs]
    wall = time.perf_counter() - start
    images, seconds = 0, 0.0
    for proc, (stdout, stderr) in zip(procs, outputs, strict=True):
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed:\n{stderr[-2000:]}")
        found = SUMMARY.search(stdout)
        images += int(found.group(1))
        seconds = max(seconds, float(found.group(2)))  # shards run side by side: the slower one ends the job
    return {"images": images, "mixing_s": seconds, "wall_s": wall,
            "mixing_images_per_s": images / seconds, "wall_images_per_s": images / wall}


def digest_folder(folder: Path) -> dict[str, str]:
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.png"))}


def hit_rates(bundle: Path, plan_path: Path, work: Path) -> list[dict]:
    """Cache hit rate and images/s of one pipeline over the plan, grouping on and off, two cache sizes."""
    from mnm.runtime.batch import runner
    from mnm.runtime.batch.mixing import Job
    from mnm.runtime.batch.plan import Plan, scan
    from mnm.runtime.batch.store import LocalStore
    from mnm.runtime.executor import DEFAULT_CACHE_SIZE
    from mnm.runtime.pipeline import Pipeline

    plan = Plan(plan_path)
    found = scan(plan, runner.SCAN_WINDOW, keep_going=False)
    results = []
    for cache_size in (DEFAULT_CACHE_SIZE, 16):
        for group in (False, True):
            pipe = Pipeline(bundle, threads=2, cache_size=cache_size)
            out = work / f"hits-{cache_size}-{group}"
            start = time.perf_counter()
            tally = runner.run_here(pipe, Job(plan, group=group), found.windows, LocalStore(str(out)), lambda n: None)
            seconds = time.perf_counter() - start
            pipe.close()
            results.append({"cache_size": cache_size, "grouped": group, "hit_rate": round(tally.hit_rate, 4),
                            "images_per_s": round(tally.written / seconds, 1),
                            "stage_results_needed": tally.stage_needed, "stage_results_run": tally.stage_run})
            shutil.rmtree(out)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=DEMO)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--refs", type=int, default=64, help="distinct reference images per factor")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray configurations")
    parser.add_argument("--json", help="write the results here")
    options = parser.parse_args(argv)

    configs = ["one process, 1 thread", "one process, 2 threads", "two shards"]
    configs += [] if options.no_ray else ["ray 1 worker", "ray 2 workers"]
    work = Path(tempfile.mkdtemp(prefix="mnm-batch-bench-", dir="/tmp"))  # short: Ray's socket paths
    env = {**os.environ, "MNM_NO_PROGRESS": "1", "RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": str(work / "ray")}
    (work / "ray").mkdir()
    report = {"command": " ".join(["benchmarks/batch_scale.py", *(argv or sys.argv[1:])]),
              "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "machine": machine.details(("ray", "pyarrow")), "rows": options.rows, "refs": options.refs}
    try:
        plan = make_plan(work, options.rows, options.refs)
        runs: dict[str, list[dict]] = {c: [] for c in configs}
        reference = None
        for repeat in range(options.repeats):
            for name in configs if repeat % 2 == 0 else configs[::-1]:
                out = work / f"{name.replace(' ', '-')}-{repeat}"
                runs[name].append(run_config(name, options.bundle, plan, out, env))
                digests = digest_folder(out)
                reference = reference or digests
                if digests != reference:
                    raise SystemExit(f"{name}: the outputs differ from the first configuration's")
                shutil.rmtree(out)
        report["configs"] = {name: {k: round(statistics.median(r[k] for r in rs), 2) for k in rs[0]}
                             for name, rs in runs.items()}
        report["identical_outputs"] = True
        report["cache"] = hit_rates(options.bundle, plan, work)
        report["load_average_end"] = machine.load_average()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if options.json:
        Path(options.json).write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))
    return 0


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"Run {report['started']}: `{report['command']}`. Machine: {m['cpu']}, {m['physical_cores']} physical "
             f"cores ({', '.join(m['cpu_features'])}); load average {m['load_average']} at the start, "
             f"{report['load_average_end']} at the end. {report['rows']} rows over {report['refs']} references "
             "per factor; outputs byte-identical across every configuration.", "",
             "| configuration | images/s (mixing) | images/s (wall, whole command) |", "|---|---|---|"]
    base = report["configs"].get("two shards")
    for name, r in report["configs"].items():
        ratio = f" ({r['mixing_images_per_s'] / base['mixing_images_per_s']:.2f}x two shards)" if base else ""
        lines.append(f"| {name} | {r['mixing_images_per_s']}{ratio} | {r['wall_images_per_s']} |")
    lines += ["", "| caches | grouping | cache hit rate | images/s |", "|---|---|---|---|"]
    for c in report["cache"]:
        lines.append(f"| {c['cache_size']} entries | {'by reference' if c['grouped'] else 'plan order'} | "
                     f"{c['hit_rate']:.1%} | {c['images_per_s']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
