"""The sink for ``mnm animate --out TARGET`` or ``--vcam``: a stream, a device, the virtual camera, or a file.

Live outputs (streams, devices, the virtual camera) are fed in real time: a file or folder source is
played at its frame rate and only the newest frame is animated, as for a webcam.
"""

from __future__ import annotations

from mnm.errors import MnmError
from mnm.runtime import video
from mnm.runtime.live.targets import Device, Stream, classify


def open_output(out: str | None, vcam: bool, fps: float):
    """The sink for ``--out``/``--vcam`` (None when neither is given); every check runs here, before model work."""
    if vcam and out is not None:
        raise MnmError("--vcam and --out: give one output (the virtual camera or a target)")
    if vcam:
        from mnm.runtime.live.vcam import VirtualCameraSink

        return VirtualCameraSink(fps)
    if out is None:
        return None
    target = classify(out)
    if isinstance(target, Stream):
        from mnm.runtime.live.stream import StreamSink

        return StreamSink(target, fps)
    if isinstance(target, Device):
        from mnm.runtime.live.v4l2 import V4l2Sink

        return V4l2Sink(target, fps)
    return video.open_sink(target, fps)


def is_live(sink) -> bool:
    """Whether ``sink`` is a live output: its frames are shown as they come, not stored."""
    from mnm.runtime.live.stream import StreamSink
    from mnm.runtime.live.v4l2 import V4l2Sink
    from mnm.runtime.live.vcam import VirtualCameraSink

    return isinstance(sink, StreamSink | V4l2Sink | VirtualCameraSink)
