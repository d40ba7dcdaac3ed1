"""Glass-to-glass latency of ``mnm animate``'s live outputs: capture to a decoded frame at a receiver.

A synthetic camera (a live source: each read waits for the frame's moment, like a webcam) feeds the
real-time loop (``mnm.runtime.realtime.run``, what ``mnm animate`` runs) on loopback. The frame
number travels beside the picture: each animated frame, resized to ``--size``, gets its number
drawn into its top row as black and white blocks, which H.264 keeps. The receiver decodes the
stream as it arrives and reads the number back: latency = decode time - capture time of that frame.

Targets, in one run per bundle and mode, interleaved so they share the machine's load:
- ``udp``: MPEG-TS over UDP, received by PyAV on ``udp://127.0.0.1:PORT`` (the receiver binds first);
- ``rtmp``: FLV to a local nginx-rtmp server (Debian's ``libnginx-mod-rtmp``), played back from it;
- ``file``: an MP4 on disk for comparison; nothing decodes it live, so its figure is capture to the
  frame handed to the writer (the loop's own latency, which every target reports too).

Bundles: the demo bundle and a random-init paper bundle (S=128, exported first; needs the train
extra), in code and feature mode. ``--short`` runs a few seconds per target (a smoke test);
``--json`` keeps every number, ``--markdown RESULTS.md`` writes the LIVE section of its notes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test suite's receivers (tests/live/receivers.py)

from notes_section import machine_sentence, write_section  # noqa: E402

from mnm.atomic import write_text  # noqa: E402
from mnm.runtime import machine, realtime  # noqa: E402
from mnm.runtime.live.outputs import open_output  # noqa: E402
from mnm.runtime.live.sizing import fit_frame  # noqa: E402
from mnm.runtime.pipeline import Pipeline  # noqa: E402
from tests.live.receivers import RtmpPlayer, RtmpServer, free_port, nginx_missing  # noqa: E402

DEMO = ROOT / "mnm" / "assets" / "demo" / "bundle"
TARGETS = ("file", "udp", "rtmp")
BITS = 12  # frame numbers up to 4095
BLOCK = 16  # pixels per bit block, in the top row of the output
WARMUP_S = 2.0  # frames captured in the first 2 s are not counted (sessions warm up, players probe)
LIVE_BEGIN = "<!-- LIVE: written by benchmarks/live_latency.py -->"
LIVE_END = "<!-- END LIVE -->"


def stamp(frame: np.ndarray, number: int) -> np.ndarray:
    """``frame`` with ``number`` in its top row: one BLOCK x BLOCK square per bit, white = 1."""
    out = frame.copy()
    for bit in range(BITS):
        out[:BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = 255 if (number >> bit) & 1 else 0
    return out


def read_stamp(frame: np.ndarray) -> int:
    """The number ``stamp`` drew, read from the centre of each block (survives the codec)."""
    centres = [frame[BLOCK // 2 - 2 : BLOCK // 2 + 2, (bit * BLOCK) + BLOCK // 2 - 2 :][:, :4] for bit in range(BITS)]
    return sum(1 << bit for bit, centre in enumerate(centres) if centre.mean() > 128)


class Camera:
    """A live source of ``count`` frames at ``fps``: each read waits for its frame's moment, as a
    webcam's does, and records when the frame was captured. The frame carries its number too
    (lossless, in memory), so the model's side knows which capture it is animating."""

    live = True
    name = "synthetic camera"
    frame_count = None

    def __init__(self, count: int, fps: float, side: int = 64):
        self.count, self.fps = count, fps
        self.captured: dict[int, float] = {}
        yy, xx = np.mgrid[0:side, 0:side]
        self._base = np.dstack([xx * 3, yy * 3, np.full_like(xx, 90)]).clip(0, 255).astype(np.uint8)

    def frames(self) -> Iterator[np.ndarray]:
        start = time.perf_counter()
        for i in range(self.count):
            wait = start + i / self.fps - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            frame = self._base.copy()
            frame[20:44, (2 * i) % 40 : (2 * i) % 40 + 24] = (40, 170, 230)  # a moving object for the pose
            frame[0, :BITS] = np.array([(i >> bit & 1) * 255 for bit in range(BITS)])[:, None]
            self.captured[i] = time.perf_counter()
            yield frame

    @staticmethod
    def number(frame: np.ndarray) -> int:
        return sum(1 << bit for bit in range(BITS) if frame[0, bit, 0] > 127)

    def close(self) -> None:
        pass


class UdpPlayer(threading.Thread):
    """Decodes MPEG-TS from ``udp://127.0.0.1:port`` as it arrives, keeping (decode time, frame)."""

    def __init__(self, port: int, quiet_s: float = 3.0):
        super().__init__(name="udp-player", daemon=True)
        self.url = f"udp://127.0.0.1:{port}"
        self.quiet_s = quiet_s
        self.frames: list[tuple[float, np.ndarray]] = []
        self.error: str | None = None

    def run(self) -> None:
        import av

        options = {"analyzeduration": "1", "probesize": "32", "fpsprobesize": "0", "fflags": "+noparse+nofillin"}
        try:
            with av.open(self.url, format="mpegts", timeout=(30, self.quiet_s), options=options) as container:
                for frame in container.decode(video=0):
                    self.frames.append((time.perf_counter(), frame.to_ndarray(format="rgb24")))
        except av.ExitError:
            pass
        except (av.FFmpegError, OSError) as exc:
            self.error = str(exc)


def still_image(side: int = 80) -> np.ndarray:
    """The picture animated: a smooth gradient (background, shape and texture come from it)."""
    yy, xx = np.mgrid[0:side, 0:side]
    return np.dstack([xx * 3, yy * 3, (xx + yy) * 1.5]).clip(0, 255).astype(np.uint8)


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p95": None, "n": 0}
    p50, p95 = np.percentile(values, [50, 95])
    return {"p50": round(float(p50), 1), "p95": round(float(p95), 1), "n": len(values)}


def run_target(target: str, pipeline: Pipeline, still: np.ndarray, mode: str, args, server, folder: Path) -> dict:
    """One run of the loop into ``target``; the receiver (if any) starts first and is joined after."""
    camera = Camera(args.frames, args.fps)
    animator = pipeline.animator(still, mode=mode)

    def process(frame):
        return stamp(fit_frame(animator.frame(frame), args.size), camera.number(frame))

    player = None
    if target == "udp":
        port = free_port(2)
        player, out = UdpPlayer(port), f"udp://127.0.0.1:{port}"
        player.start()
        time.sleep(1.0)  # the player binds its socket inside av.open
    elif target == "rtmp":
        key = f"bench{time.monotonic_ns()}"
        out = server.url(key)
        player = RtmpPlayer(out)
        player.start()
        if not server.wait_for_log(f"play: name='{key}'"):
            raise RuntimeError("the RTMP player did not reach the server")
    else:
        out = str(folder / f"{mode}.mp4")
    sink = open_output(out, False, args.fps)
    report = realtime.run(camera, process, sink, realtime=True, show_progress=False)
    if player is not None:
        player.join(30)
    result = {
        "target": target,
        "frames_in": report.frames_in, "frames_out": report.frames_out, "drops": report.drops,
        "failed": report.failed, "error": None if report.error is None else str(report.error),
        "fps": round(report.fps, 2), "loop_latency_ms": report.latency_ms, "inference_ms": report.inference_ms,
    }
    if player is not None:
        # Steady state: frames captured once the receiver shows pictures (its start-up, probing the
        # stream, is not the output's latency) and after the first WARMUP_S seconds.
        warm = min(camera.captured.values()) + WARMUP_S
        if player.frames:
            warm = max(warm, player.frames[0][0])
        latencies, unreadable = [], 0
        for decoded_at, frame in player.frames:
            number = read_stamp(frame)
            captured = camera.captured.get(number)
            if args.verbose and captured is not None:
                print(f"{target} frame {number}: {(decoded_at - captured) * 1000:.1f} ms", file=sys.stderr)
            if captured is None:
                unreadable += 1
            elif captured >= warm:
                latencies.append((decoded_at - captured) * 1000)
        result.update(received=len(player.frames), unreadable_stamps=unreadable, player_error=player.error,
                      glass_to_glass_ms=percentiles(latencies))
    return result


def export_paper(folder: Path) -> Path:
    from mnm.config import PRESETS
    from mnm.export import export_random

    out = folder / "paper"
    export_random(PRESETS["paper"], out, seed=0, preset="paper", parity_batches=(1,))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=150, help="Frames per run (default 150: 10 s at 15 fps).")
    parser.add_argument("--fps", type=float, default=15.0, help="The camera's frame rate.")
    parser.add_argument("--size", type=int, default=256, help="Output side (frames resized from the model's S).")
    parser.add_argument("--short", action="store_true", help="45 frames per run: a smoke test.")
    parser.add_argument("--paper-bundle", type=Path, help="A paper bundle (default: export a random-init one).")
    parser.add_argument("--skip-paper", action="store_true", help="Only the demo bundle.")
    parser.add_argument("--verbose", action="store_true", help="Print each received frame's latency.")
    parser.add_argument("--json", type=Path, help="Write every number here.")
    parser.add_argument("--markdown", type=Path, help="Write the LIVE section of this RESULTS.md.")
    args = parser.parse_args(argv)
    if args.short:
        args.frames = 45
    args.size = (args.size, args.size)
    if reason := nginx_missing():
        print(f"live_latency: {reason}", file=sys.stderr)
        return 1
    report = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": "python benchmarks/live_latency.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": machine.details(("av",)), "frames": args.frames, "fps": args.fps,
              "size": list(args.size), "bundles": {}}
    with tempfile.TemporaryDirectory(prefix="mnm-live-") as tmp:
        folder = Path(tmp)
        still = still_image()
        bundles = {"demo": DEMO}
        if not args.skip_paper:
            bundles["paper (random init)"] = args.paper_bundle or export_paper(folder)
        server = RtmpServer(folder / "nginx")
        try:
            for name, path in bundles.items():
                pipeline = Pipeline(path, backend="ort-cpu", max_batch=1)
                entry = report["bundles"][name] = {"image_size": pipeline.config.image_size, "modes": {}}
                for mode in ("code", "feature"):
                    runs = entry["modes"][mode] = []
                    for target in TARGETS:
                        result = run_target(target, pipeline, still, mode, args, server, folder)
                        runs.append(result)
                        print(json.dumps({"bundle": name, "mode": mode, **result}), file=sys.stderr)
        finally:
            server.stop()
    report["load_average_end"] = machine.load_average()
    if args.json:
        write_text(args.json, json.dumps(report, indent=2) + "\n")
    section = render(report, str(args.json) if args.json else "(not kept)")
    print(section)
    if args.markdown:
        write_section(args.markdown, section, LIVE_BEGIN, LIVE_END)
    return 0


def render(report: dict, json_path: str) -> str:
    lines = [
        LIVE_BEGIN,
        "### Live outputs: glass-to-glass latency (`benchmarks/live_latency.py`)",
        "",
        f"Run {report['created']}: `{report['command']}`; numbers in `{json_path}`. "
        + machine_sentence(report["machine"], report.get("load_average_end")),
        "",
        f"A synthetic camera at {report['fps']:g} fps, {report['frames']} frames per run, output "
        f"{report['size'][0]}x{report['size'][1]} (bicubic from S), onnxruntime CPU fp32; everything on loopback, "
        "the receiver in the same process. Glass to glass: capture of a frame to its decoded picture at the "
        "receiver (the frame number is drawn into the picture); frames captured in the first 2 s, or before the "
        "receiver showed its first picture (its start-up), are not counted. "
        "Loop: capture to the frame handed to the output (for the file, to the MP4 writer). "
        "fps: frames out per second of the run.",
        "",
        "| bundle | mode | target | glass to glass p50 / p95 ms | loop p50 / p95 ms | inference p50 ms | fps | "
        "in / out / dropped / failed | received |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in report["bundles"].items():
        for mode, runs in entry["modes"].items():
            for r in runs:
                g2g = r.get("glass_to_glass_ms")
                g2g_text = f"{g2g['p50']} / {g2g['p95']}" if g2g else "— (a file)"
                loop = r["loop_latency_ms"]
                counts = f"{r['frames_in']} / {r['frames_out']} / {r['drops']} / {r['failed']}"
                lines.append(
                    f"| {name} (S={entry['image_size']}) | {mode} | {r['target']} | {g2g_text} | "
                    f"{loop['p50']:.1f} / {loop['p95']:.1f} | {r['inference_ms']['p50']:.1f} | {r['fps']} | "
                    f"{counts} | {r.get('received', '—')} |"
                )
    lines.append(LIVE_END)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
