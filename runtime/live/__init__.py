"""Live outputs of ``mnm animate``: network streams, V4L2 devices and the platform's virtual camera.

Each is a sink with the interface of ``mnm.runtime.video``'s (``write(frame, t)``, ``close(end)``,
``count``, ``full``), so the real-time loop drives it like a file: one frame in flight, stale frames
dropped and counted before the model, frames in = out + dropped + failed. ``targets`` says what an
``--out`` names and sizes the frames, ``stream`` encodes with PyAV (FFmpeg) for udp, rtp, srt, rtmp
and rtsp, ``v4l2`` writes to a v4l2loopback device, ``vcam`` sends through pyvirtualcam. PyAV and
pyvirtualcam are the ``live`` extra, imported only when such an output is asked for. docs/realtime.md.
"""
