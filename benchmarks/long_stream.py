"""A long synthetic stream through the img2gif path of ``mnm animate``: flat memory and honest drop counts.

Two runs over one synthetic video (MJPG, each frame carrying its index in black and white blocks),
both through the functions ``mnm animate`` itself calls (``video.open_source``, ``video.open_sink``,
``Pipeline.animator``, ``realtime.run``), in this process so memory can be read per frame:

1. every frame, into an MP4: resident memory (psutil RSS) is sampled every ``--sample-every`` frames;
   after the warm-up (the first 20% of the frames) it may not grow by more than ``--rss-bound-mib``
   (default 8 MiB: over the 3200 frames after warm-up of a default run that catches a leak of 2.6 kB
   per frame, less than one 32 x 32 output frame of 3 kB; measured here: 1.5 MiB, all of it at the end
   when the MP4 is finalised);
2. real time, the file played at several times the measured inference rate so inference is slower
   than capture: the frames the model saw must be a strictly increasing subsequence of the stream,
   and frames in = frames out + drops, with drops = the frames it never saw and out = the frames
   the sink received.

``--short`` runs a few hundred frames (the test suite runs it); the default is 4000. Exit status 1
when a check fails; ``--json`` writes every number. Without ``--bundle`` a tiny random-init bundle is
exported first (needs the train extra); with one, nothing here imports torch.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import psutil

from mnm.atomic import write_text

FRAME_SIZE = (64, 48)  # width, height: a 4 x 3 grid of 16 x 16 blocks
INDEX_BITS = 12  # blocks 0-11 carry the frame index, so up to 4096 frames are told apart
FULL_FRAMES, SHORT_FRAMES = 4000, 300
WARMUP_FRACTION = 0.2
REALTIME_SPEEDUP = 4.0
"""The real-time run plays the file this many times faster than inference keeps up with."""


def frame_rgb(index: int) -> np.ndarray:
    """Frame ``index``: a block per bit of the index (white = 1), with a little moving texture."""
    frame = np.zeros((FRAME_SIZE[1], FRAME_SIZE[0], 3), np.uint8)
    for bit in range(INDEX_BITS):
        row, col = divmod(bit, 4)
        if (index >> bit) & 1:
            frame[16 * row : 16 * row + 16, 16 * col : 16 * col + 16] = 255
    frame[::8, :, 0] = (index * 7) % 256  # thin lines that change every frame, for the encoders
    return frame


def index_of(frame: np.ndarray) -> int:
    """The index a frame carries, read from the centre of each block (survives JPEG)."""
    value = 0
    for bit in range(INDEX_BITS):
        row, col = divmod(bit, 4)
        if frame[16 * row + 12, 16 * col + 8].mean() > 128:  # off the lines drawn every 8 rows
            value |= 1 << bit
    return value


def write_stream(path: Path, frames: int, fps: float) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, FRAME_SIZE)
    if not writer.isOpened():
        raise SystemExit(f"{path}: this OpenCV cannot write MJPG")
    for i in range(frames):
        writer.write(cv2.cvtColor(frame_rgb(i), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_static(path: Path) -> Path:
    """The static image: a smooth background with an ellipse, as a reference photo would have."""
    yy, xx = np.mgrid[0:52, 0:70]
    image = np.stack([xx * 3, yy * 4, 255 - xx * 2], axis=-1).clip(0, 255).astype(np.uint8)
    image[((xx - 35) / 14) ** 2 + ((yy - 26) / 12) ** 2 < 1] = (200, 40, 60)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def export_tiny(folder: Path) -> Path:
    from mnm.config import PRESETS
    from mnm.export import export_random

    out = folder / "bundle"
    export_random(PRESETS["tiny"], out, seed=0, preset="tiny", parity_batches=(1,))
    return out


def memory_run(animator, stream: Path, out: Path, sample_every: int, warmup: int) -> dict:
    """Every frame through the model into an MP4, RSS read every ``sample_every`` frames."""
    from mnm.runtime import realtime, video

    process = psutil.Process()
    samples: list[tuple[int, int]] = []
    frame_count = [0]

    def animate(frame: np.ndarray) -> np.ndarray:
        result = animator.frame(frame)
        if frame_count[0] % sample_every == 0:
            samples.append((frame_count[0], process.memory_info().rss))
        frame_count[0] += 1
        return result

    source = video.open_source(str(stream))
    sink = video.open_sink(out, source.fps or 25.0)
    try:
        report = realtime.run(source, animate, sink, realtime=False, show_progress=False)
    finally:
        source.close()
    samples.append((frame_count[0], process.memory_info().rss))
    after = [rss for index, rss in samples if index >= warmup]
    at_warmup = after[0]
    return {
        "frames": report.frames_out,
        "error": None if report.error is None else str(report.error),
        "warmup_frames": warmup,
        "rss_mib": {"start": samples[0][1] / 2**20, "after_warmup": at_warmup / 2**20,
                    "max_after_warmup": max(after) / 2**20, "end": samples[-1][1] / 2**20},
        "growth_after_warmup_mib": (max(after) - at_warmup) / 2**20,
        "samples": [[index, rss] for index, rss in samples],
        "inference_ms": report.inference_ms,
        "output_frames": _count_frames(out),
    }


def drop_run(animator, stream: Path, frames: int, pace_fps: float) -> dict:
    """The file played as if live at ``pace_fps``: only the newest frame is animated, the rest dropped."""
    from mnm.runtime import realtime, video

    seen: list[int] = []

    def animate(frame: np.ndarray) -> np.ndarray:
        seen.append(index_of(frame))
        return animator.frame(frame)

    class Counting:
        """A sink that keeps nothing: counts frames (and would keep memory flat at any length)."""

        full = False
        count = 0

        def write(self, frame: np.ndarray, t: float | None = None) -> None:
            self.count += 1

        def close(self, end: float | None = None) -> None:
            pass

    sink = Counting()
    source = video.open_source(str(stream))
    try:
        report = realtime.run(source, animate, sink, realtime=True, pace_fps=pace_fps, show_progress=False)
    finally:
        source.close()
    increasing = all(b > a for a, b in zip(seen, seen[1:], strict=False))
    return {
        "frames": frames,
        "pace_fps": pace_fps,
        "frames_in": report.frames_in,
        "frames_out": report.frames_out,
        "drops": report.drops,
        "sink_frames": sink.count,
        "frames_animated": len(seen),
        "never_animated": frames - len(set(seen)),
        "animated_in_stream_order": increasing,
        "error": None if report.error is None else str(report.error),
        "latency_ms": report.latency_ms,
    }


def _count_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def checks(memory: dict, drops: dict, frames: int, bound_mib: float) -> dict[str, bool]:
    return {
        "memory: every frame animated and in the MP4": memory["frames"] == memory["output_frames"] == frames,
        f"memory: RSS growth after warm-up <= {bound_mib:g} MiB": memory["growth_after_warmup_mib"] <= bound_mib,
        "drops: the whole stream was read": drops["frames_in"] == frames,
        "drops: frames in = out + drops": drops["frames_in"] == drops["frames_out"] + drops["drops"],
        "drops: inference slower than capture dropped frames": drops["drops"] > 0,
        "drops: drops = frames never animated": drops["drops"] == drops["never_animated"],
        "drops: every animated frame reached the sink": drops["frames_out"] == drops["sink_frames"]
        == drops["frames_animated"],
        "drops: frames animated in stream order": drops["animated_in_stream_order"],
        "no source or model error": memory["error"] is None and drops["error"] is None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, help="Bundle folder (default: export a tiny random-init one).")
    parser.add_argument("--frames", type=int, help=f"Stream length (default {FULL_FRAMES}; --short: {SHORT_FRAMES}).")
    parser.add_argument("--short", action="store_true", help="A few hundred frames, for the test suite.")
    parser.add_argument("--mode", choices=("code", "feature"), default="code")
    parser.add_argument("--sample-every", type=int, default=10, help="Frames between RSS readings.")
    parser.add_argument("--rss-bound-mib", type=float, default=8.0, help="Allowed RSS growth after warm-up.")
    parser.add_argument("--json", type=Path, help="Write the full report here.")
    args = parser.parse_args(argv)
    frames = args.frames or (SHORT_FRAMES if args.short else FULL_FRAMES)
    if not 2 <= frames <= 2**INDEX_BITS:
        parser.error(f"--frames must be 2..{2**INDEX_BITS} (the index fits in {INDEX_BITS} blocks)")

    from mnm.runtime.pipeline import Pipeline

    with tempfile.TemporaryDirectory(prefix="mnm-long-stream-") as tmp:
        tmp = Path(tmp)
        bundle = args.bundle or export_tiny(tmp)
        stream = write_stream(tmp / "stream.avi", frames, fps=25.0)
        pipeline = Pipeline(bundle, backend="ort-cpu", max_batch=1)
        animator = pipeline.animator(str(write_static(tmp / "static.png")), mode=args.mode)
        started = time.perf_counter()
        memory = memory_run(animator, stream, tmp / "out.mp4", args.sample_every, int(frames * WARMUP_FRACTION))
        per_frame_s = memory["inference_ms"]["p50"] / 1000
        drops = drop_run(animator, stream, frames, pace_fps=REALTIME_SPEEDUP / per_frame_s)
        wall = time.perf_counter() - started
    results = checks(memory, drops, frames, args.rss_bound_mib)
    report = {"frames": frames, "mode": args.mode, "bundle": str(args.bundle or "tiny random-init"),
              "rss_bound_mib": args.rss_bound_mib, "wall_s": wall, "memory": memory, "drops": drops,
              "checks": results, "ok": all(results.values())}
    rss = memory["rss_mib"]
    print(f"{frames} frames, {args.mode} mode, {wall:.1f} s")
    print(f"memory: RSS {rss['after_warmup']:.1f} MiB after {memory['warmup_frames']} warm-up frames, "
          f"max {rss['max_after_warmup']:.1f} MiB, growth {memory['growth_after_warmup_mib']:.2f} MiB "
          f"(bound {args.rss_bound_mib:g} MiB)")
    print(f"real time at {drops['pace_fps']:.0f} fps: in {drops['frames_in']}, out {drops['frames_out']}, "
          f"dropped {drops['drops']}")
    for name, ok in results.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    if args.json:
        write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
