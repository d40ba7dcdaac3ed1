"""`mnm serve` under load: concurrent clients on loopback, with and without cross-request batching.

For each bundle (``demo``: the shipped model; ``paper``: a random-init bundle of the paper preset,
exported once into ``out/serve-bench/paper-bundle``), a real ``mnm serve`` process is started per
configuration and ``--clients`` threads send ``POST /v1/mix`` requests until ``--requests`` are done
or ``--time-limit`` seconds have passed (bounded in count and time). Every request uploads four
reference images never seen before (random pixels, made before the clock starts), so each one runs
the whole pipeline (E_z twice, E_b, E_p, E_c, g_background, g_parent, g_child) with no cache hits:
the batching effect alone. Reported per configuration: mixes/s, client-side latency p50/p95/p99,
errors, and the server's images-per-graph-run histogram (``mnm_batch_images`` from ``/metrics``).

Configurations: batching with ``--max-batch 16`` (``--max-wait-ms`` as given), ``--max-batch 1``
(the batcher's one-run-at-a-time without merging), and with ``--ray``, Ray Serve with 1 and 2 replicas
(a local Ray instance on loopback; its batch histogram is one replica's). Each runs beside a
``--no-batching`` server (each request runs its graphs alone, concurrently), chunks of requests
alternating between the two, so every ratio compares numbers taken under the same machine load.
The machine, its load average before and after, and library versions go with the numbers; ``--markdown`` writes the
section between the SERVE markers inside the notes of benchmarks/RESULTS.md (the part
``results_md.py`` keeps when it regenerates the file).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from notes_section import write_section
from PIL import Image

from mnm.atomic import write_text
from mnm.runtime import machine

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = {"demo": ROOT / "mnm" / "assets" / "demo" / "bundle", "paper": ROOT / "out" / "serve-bench" / "paper-bundle"}
SERVE_BEGIN = "<!-- SERVE: written by benchmarks/serve_load.py -->"
SERVE_END = "<!-- END SERVE -->"
LISTENING = re.compile(r"on (?:Ray Serve at )?http://127\.0\.0\.1:(\d+)")


def make_requests(n: int, size: int, seed: int = 0) -> list[list[tuple]]:
    """``n`` requests' multipart files: four distinct random-pixel PNGs each (S x S: no resize work)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        files = []
        for kind in ("background", "pose", "shape", "texture"):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, "PNG")
            files.append((kind, (f"{kind}{i}.png", buffer.getvalue(), "image/png")))
        out.append(files)
    return out


def start_server(bundle: Path, args: list[str], env: dict, port: int = 0, timeout: float = 300) -> tuple:
    """``mnm serve`` in a subprocess; returns (process, url, log lines) once /healthz answers."""
    cmd = [sys.executable, "-m", "mnm", "serve", str(bundle), "--port", str(port), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    deadline = time.monotonic() + timeout
    url = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = LISTENING.search("".join(log))
        url = url or (f"http://127.0.0.1:{found.group(1)}" if found else None)
        if url:
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    return proc, url, log
            except httpx.TransportError:
                pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"mnm serve did not start: {' '.join(cmd)}\n{''.join(log)[-3000:]}")


def stop_server(proc) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(180)


class Tally:
    """Latencies, errors and busy wall time of one server over the chunks sent to it."""

    def __init__(self):
        self.latencies: list[float] = []
        self.errors: dict[int, int] = {}
        self.wall = 0.0

    def summary(self) -> dict:
        lat = np.array(self.latencies) * 1000
        return {
            "requests": len(self.latencies), "errors": self.errors, "wall_s": round(self.wall, 2),
            "mixes_per_s": round(len(self.latencies) / self.wall, 2) if self.wall else None,
            **{f"p{q}_ms": round(float(np.percentile(lat, q)), 1) if len(lat) else None for q in (50, 95, 99)},
        }


def load(url: str, requests: list, clients: int, deadline: float, tally: Tally | None = None) -> Tally:
    """``clients`` threads send the requests (each once) until all are done or ``deadline`` passes."""
    tally = tally or Tally()
    lock = threading.Lock()
    next_index = iter(range(len(requests)))

    def client():
        with httpx.Client(timeout=300) as http:
            while time.perf_counter() < deadline:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                response = http.post(url + "/v1/mix", files=requests[i], data={"seed": str(i)})
                elapsed = time.perf_counter() - t0
                with lock:
                    if response.status_code == 200:
                        tally.latencies.append(elapsed)
                    else:
                        tally.errors[response.status_code] = tally.errors.get(response.status_code, 0) + 1

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tally.wall += time.perf_counter() - start
    return tally


def batch_histogram(metrics_text: str, graph: str = "g_child") -> dict:
    """``mnm_batch_images`` buckets of one graph → {images per run (upper bound): runs}."""
    cumulative = {}
    for line in metrics_text.splitlines():
        found = re.match(rf'mnm_batch_images_bucket\{{graph="{graph}",le="([^"]+)"\}} (\S+)', line)
        if found:
            cumulative[found.group(1)] = float(found.group(2))
    out, previous = {}, 0.0
    for bound, count in cumulative.items():
        if count > previous:
            out[bound.removesuffix(".0")] = int(count - previous)
        previous = count
    return out


def compare(name: str, base_url: str, bundle: Path, args: list[str], size: int, options, env: dict,
            port: int = 0, seed: int = 0) -> dict:
    """Start the configuration, then alternate chunks of requests between it and the baseline server
    (each chunk new images), so both see the same machine load; warm-up chunks are not counted."""
    proc, url, _ = start_server(bundle, args, env, port)
    chunk = 2 * options.clients
    rounds = max(1, options.requests // chunk)
    fresh = iter(make_requests(2 * (rounds + 1) * chunk, size, seed=seed))  # a new seed per call: no cache hits

    def take() -> list:
        return [next(fresh) for _ in range(chunk)]

    deadline = time.perf_counter() + options.time_limit
    try:
        load(url, take(), options.clients, deadline)
        load(base_url, take(), options.clients, deadline)
        before = batch_histogram(httpx.get(url + "/metrics", timeout=30).text)
        mine, base = Tally(), Tally()
        for _ in range(rounds):
            load(base_url, take(), options.clients, deadline, base)
            load(url, take(), options.clients, deadline, mine)
        after = batch_histogram(httpx.get(url + "/metrics", timeout=30).text)
    finally:
        code = stop_server(proc)
    result = {"name": name, "args": args, "exit_code": code, **mine.summary(), "baseline": base.summary(),
              "batch_images_g_child": {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}}
    ratio = (result["mixes_per_s"] or 0) / (base.summary()["mixes_per_s"] or float("nan"))
    result["vs_baseline"] = round(ratio, 2)
    print(f"  {name}: {result['mixes_per_s']} mixes/s ({ratio:.2f}x the interleaved no-batching server at "
          f"{result['baseline']['mixes_per_s']}), p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, "
          f"p99 {result['p99_ms']} ms, errors {result['errors']}, g_child batches {result['batch_images_g_child']}",
          flush=True)
    return result


def ensure_bundle(name: str) -> Path:
    path = BUNDLES.get(name, Path(name))
    if name == "paper" and not (path / "manifest.json").exists():
        print(f"exporting the paper preset (random init) into {path} (needs the train extra)...", flush=True)
        subprocess.run([sys.executable, "-m", "mnm", "export", "--preset", "paper", "--random-init",
                        "--out", str(path)], check=True)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", action="append", help="demo, paper or a bundle folder (repeat) [demo, paper]")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=160, help="timed requests per configuration")
    parser.add_argument("--time-limit", type=float, default=300, help="seconds per configuration at most")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--max-batches", type=lambda text: [int(v) for v in text.split(",")], default=[16, 1],
                        help="the --max-batch values to measure, comma-separated [16,1]")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads per server")
    parser.add_argument("--ray", action="store_true", help="also Ray Serve with 1 and 2 replicas")
    parser.add_argument("--json", default="benchmarks/results/serve-load.json")
    parser.add_argument("--markdown", help="write the SERVE section into this RESULTS.md")
    options = parser.parse_args(argv)
    env = {**os.environ, "MNM_NO_PROGRESS": "1"}
    common = ["--max-wait-ms", str(options.max_wait_ms), "--max-queue", str(4 * options.clients)]
    if options.threads:
        common += ["--threads", str(options.threads)]
    report = {"created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "command": " ".join(sys.argv),
              "machine": machine.details(("fastapi", "uvicorn", "ray")), "clients": options.clients, "bundles": {}}
    for name in options.bundle or ["demo", "paper"]:
        bundle = ensure_bundle(name)
        size = json.loads((bundle / "manifest.json").read_text())["config"]["image_size"]
        print(f"{name} (S={size}): {options.requests} requests per configuration, {options.clients} clients",
              flush=True)
        configs = [(f"batching, max batch {n}" + (" (one run at a time, no merging)" if n == 1 else ""),
                    ["--max-batch", str(n), *common], {}, 0) for n in options.max_batches]
        session = tempfile.mkdtemp(prefix="mnm-ray-", dir="/tmp") if options.ray else None
        ray_env = {"RAY_DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES": str(200 * 2**20), "RAY_USAGE_STATS_ENABLED": "0",
                   "RAY_TMPDIR": str(session)}
        configs += [(f"Ray Serve, {n} replica(s), max batch 16", ["--ray", "--replicas", str(n), "--max-batch", "16",
                                                                  *common], ray_env, free_port())
                    for n in ((1, 2) if options.ray else ())]
        base_proc, base_url, _ = start_server(bundle, ["--no-batching", *common], env)
        try:
            results = [compare(label, base_url, bundle, args, size, options, {**env, **extra}, port, seed)
                       for seed, (label, args, extra, port) in enumerate(configs)]
        finally:
            stop_server(base_proc)
            if session:
                shutil.rmtree(session, ignore_errors=True)
        report["bundles"][name] = {"path": str(bundle), "image_size": size, "results": results}
    report["load_average_end"] = machine.load_average()
    Path(options.json).parent.mkdir(parents=True, exist_ok=True)
    write_text(options.json, json.dumps(report, indent=2) + "\n")
    if options.markdown:
        write_section(Path(options.markdown), render(report, options.json), SERVE_BEGIN, SERVE_END)
    return 0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def render(report: dict, json_path: str) -> str:
    m = report["machine"]
    load_start = ", ".join(f"{v:.2f}" for v in m.get("load_average") or [])
    load_end = ", ".join(f"{v:.2f}" for v in report.get("load_average_end") or [])
    lines = [
        SERVE_BEGIN,
        "### `mnm serve` under load (`benchmarks/serve_load.py`)",
        "",
        f"Run {report['created']}: `{report['command']}`; numbers in `{json_path}`. Machine: {m['cpu']}, "
        f"{m['physical_cores']} physical cores ({', '.join(m['cpu_features'])}), {m['memory_gib']} GiB; "
        f"{', '.join(f'{k} {v}' for k, v in m['libraries'].items())}. Load average (1, 5, 15 min) {load_start} "
        f"at the start, {load_end} at the end: **the machine is shared and busy** (other sessions' tests and a "
        "training run), so absolute numbers are low and noisy. The servers and the clients share the cores.",
        "",
        f"{report['clients']} concurrent clients on loopback, each `POST /v1/mix` uploading four never-seen "
        "reference images (so every request runs E_z x2, E_b, E_p, E_c, g_background, g_parent and g_child); "
        "latency measured by the client. Each configuration runs beside a `--no-batching` server, chunks of "
        f"{2 * report['clients']} requests alternating between the two, so the ratio compares numbers taken "
        "under the same load.",
        "",
        "| bundle | configuration | mixes/s | no batching, interleaved | ratio | p50 / p95 / p99 ms | no batching "
        "p50 / p95 / p99 ms | errors | g_child images per run: runs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in report["bundles"].items():
        for r in entry["results"]:
            base = r["baseline"]
            histogram = ", ".join(f"≤{k}: {v}" for k, v in r["batch_images_g_child"].items()) or "—"
            lines.append(f"| {name} (S={entry['image_size']}) | {r['name']} | {r['mixes_per_s']} | "
                         f"{base['mixes_per_s']} | {r['vs_baseline']:.2f}x | {r['p50_ms']} / {r['p95_ms']} / "
                         f"{r['p99_ms']} | {base['p50_ms']} / {base['p95_ms']} / {base['p99_ms']} | "
                         f"{sum(r['errors'].values()) + sum(base['errors'].values())} | {histogram} |")
    lines += [SERVE_END]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
