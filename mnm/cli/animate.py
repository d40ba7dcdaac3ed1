"""`mnm animate`: img2gif, a static image animated by the pose (and shape) of a video, folder or webcam."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from mnm.cli.app import app
from mnm.cli.pipeline import FIT_HELP, VERBOSE_HELP, precision_option
from mnm.errors import MnmError

DEFAULT_FPS = 15.0
"""Output frame rate when neither --fps nor the source gives one (a frame folder)."""


@app.command("animate")
def animate(
    bundle: Path = typer.Argument(..., help="Exported bundle folder (mnm export)."),
    image: Path = typer.Option(..., "--image", help="Static image: background, shape and texture come from it."),
    source: str = typer.Option(..., "--source", help="Video file, folder of frames, or webcam index (0, 1, ...)."),
    mode: str = typer.Option("code", "--mode", help="code: pose from each frame; feature: pose and shape."),
    out: str | None = typer.Option(
        None,
        "--out",
        help="Output: FILE.gif, FILE.mp4, a folder of numbered PNGs, a stream (udp://HOST:PORT, rtp://, srt://, "
        "rtmp://HOST/APP/KEY, rtsp://) or a V4L2 device (/dev/videoN); streams and devices run in real time.",
    ),
    vcam: bool = typer.Option(
        False, "--vcam", help="Send to the platform's virtual camera (pip install 'mnm[live]'; docs/realtime.md)."
    ),
    size: str | None = typer.Option(
        None, "--size", help="Output size N or WxH (even sides), resized from the model's S: bicubic up, area down."
    ),
    show: bool = typer.Option(False, "--show", help="Show the frames in a window (needs GUI OpenCV); q or Esc stops."),
    fps: float | None = typer.Option(None, "--fps", help="Output frame rate (default: the video's, else 15)."),
    max_frames: int | None = typer.Option(None, "--max-frames", help="Stop after this many output frames."),
    realtime: bool = typer.Option(
        False,
        "--realtime",
        help="Play a file or folder at its frame rate and animate only the newest frame (drops counted); "
        "webcams always run this way.",
    ),
    backend: str = typer.Option("auto", "--backend", help="auto, ort-cpu, ort-cuda, ort-trt or tensorrt."),
    precision: str = precision_option(),
    box: str | None = typer.Option(None, "--box", help="Pose region in each frame: x,y,w,h pixels (default: all)."),
    fit: str = typer.Option("crop", "--fit", help=FIT_HELP + " Applies to the image and to each frame."),
    json_path: Path | None = typer.Option(None, "--json", help="Also write the run's statistics as JSON here."),
    allow_short: bool = typer.Option(
        False, "--allow-short",
        help="Accept a source that stops before its end (a damaged or cut video, a frame file that does not "
        "decode, a webcam that stops): say so and exit 0 with the frames made. Without it such a run exits 2.",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
) -> None:
    """Animate a static image with the pose of each frame of a video, a frame folder or a webcam."""
    from mnm.atomic import write_text
    from mnm.cli.pipeline import open_pipeline
    from mnm.imaging import load_image
    from mnm.runtime import realtime as loop
    from mnm.runtime import video
    from mnm.runtime import window as display
    from mnm.runtime.live import outputs
    from mnm.runtime.live.sizing import fit_frame, parse_size
    from mnm.runtime.requests import parse_box

    if mode not in ("code", "feature"):
        raise MnmError(f"--mode: expected code or feature, got {mode!r}")
    if fit not in ("crop", "squash"):
        raise MnmError(f"--fit: expected crop or squash, got {fit!r}")
    if fps is not None and not fps > 0:
        raise MnmError(f"--fps: must be positive, got {fps:g}")
    if max_frames is not None and max_frames < 1:
        raise MnmError(f"--max-frames: must be at least 1, got {max_frames}")
    if out is None and not vcam and not show:
        raise MnmError("nowhere to put the frames: give --out FILE.gif|FILE.mp4|FOLDER|STREAM|DEVICE, --vcam, --show")
    if show and (problem := display.gui_problem()):
        raise MnmError(f"--show: {problem}")
    pose_box = parse_box(box) if box is not None else None
    out_size = parse_size(size) if size is not None else None
    static = load_image(image)  # every input is checked before the bundle is opened

    src = video.open_source(source)
    window = None
    try:
        out_fps = fps or src.fps or DEFAULT_FPS
        sink = outputs.open_output(out, vcam, out_fps)
        live_out = outputs.is_live(sink)
        pipe = open_pipeline(bundle, backend, max_batch=1, verbose=verbose, fit=fit, precision=precision)
        animator = pipe.animator(static, mode=mode, box=pose_box)
        if show:
            window = display.Window()
        live = realtime or src.live or live_out
        report = loop.run(
            src,
            animator.frame if out_size is None else lambda frame: fit_frame(animator.frame(frame), out_size),
            sink,
            window,
            realtime=live,
            max_frames=max_frames,
            pace_fps=None if src.live or not live else (src.fps or out_fps),
            show_progress=not src.live,
        )
    finally:
        src.close()
        if window is not None:
            window.close()

    written = sink.count if sink is not None else 0
    duration = getattr(sink, "duration_s", None)
    for line in report.summary_lines():
        typer.echo(line)
    if sink is not None and written:
        timing = f", {duration:.2f} s at {out_fps:g} fps" if duration is not None else ""
        typer.echo(sink.summary if live_out else f"wrote {out} ({written} frames{timing})")
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)
    if json_path is not None:
        data = {
            **report.to_dict(),
            "mode": mode,
            "backend": backend,
            "output": "virtual camera" if vcam else out,
            "frames_written": written,
            "output_fps": out_fps,
            "output_duration_s": duration,
        }
        write_text(json_path, json.dumps(data, indent=2) + "\n")

    if live_out:
        kept = sink.kept
    else:
        kept = f"kept the {written} frames produced in {out}" if written else "nothing was written"
    if allow_short and isinstance(report.error, video.SourceEndedEarly):
        typer.echo(f"note: {report.error} (allowed by --allow-short)", err=True)
    elif report.error is not None:
        raise MnmError(f"{report.error}; {kept}" if sink is not None else str(report.error))
    if report.stopped == "interrupted":
        typer.echo(f"interrupted; {kept}" if sink is not None else "interrupted", err=True)
        sys.exit(130)
