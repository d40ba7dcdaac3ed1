"""What --out names, --size, and the outputs that cannot be opened here (no v4l2loopback module in
this sandbox): everything up to opening the device, and the one line each refusal gives."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mnm.errors import MnmError
from mnm.runtime.live.sizing import fit_frame, parse_size
from mnm.runtime.live.targets import Device, Stream, classify
from mnm.runtime.live.v4l2 import open_loopback
from tests.live.conftest import DEMO
from tests.util import run_python


@pytest.mark.parametrize(("out", "expected"), [
    ("udp://127.0.0.1:5000", Stream("udp://127.0.0.1:5000", "udp")),
    ("rtp://239.0.0.1:5004", Stream("rtp://239.0.0.1:5004", "rtp")),
    ("srt://host:9000?mode=caller", Stream("srt://host:9000?mode=caller", "srt")),
    ("rtmp://live.example/app/key", Stream("rtmp://live.example/app/key", "rtmp")),
    ("rtsp://localhost:8554/mnm", Stream("rtsp://localhost:8554/mnm", "rtsp")),
    ("/dev/video7", Device("/dev/video7")),
    ("/dev/null", Device("/dev/null")),  # a character device: checked as one
    ("out.mp4", Path("out.mp4")),
    ("C:\\clips\\out.mp4", Path("C:\\clips\\out.mp4")),
])
def test_targets(out, expected):
    assert classify(out) == expected


@pytest.mark.parametrize(("out", "message"), [
    ("http://host/x", "unsupported stream 'http'"),
    ("udp://127.0.0.1", "udp needs a port"),
    ("udp://:5000", "no host"),
    ("udp://127.0.0.1:99999", "not a number from 0 to 65535"),
    ("rtmp://host/app", "an application and a stream key"),
])
def test_bad_stream_urls(out, message):
    with pytest.raises(MnmError, match=message):
        classify(out)


def test_sizes():
    assert parse_size("512") == (512, 512) and parse_size("1280x720") == (1280, 720)
    for bad in ("0", "513", "12x", "abc", "8x8", "8192"):
        with pytest.raises(MnmError, match="--size"):
            parse_size(bad)


def test_fit_frame_is_bicubic_and_centred_on_black():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    square = fit_frame(frame, (128, 128))
    assert np.array_equal(square, cv2.resize(frame, (128, 128), interpolation=cv2.INTER_CUBIC))
    wide = fit_frame(frame, (96, 64))
    assert wide.shape == (64, 96, 3) and not wide[:, :16].any() and not wide[:, -16:].any()
    assert np.array_equal(wide[:, 16:80], cv2.resize(frame, (64, 64), interpolation=cv2.INTER_CUBIC))
    assert np.array_equal(fit_frame(frame, (16, 16)), cv2.resize(frame, (16, 16), interpolation=cv2.INTER_AREA))


def test_device_that_is_not_v4l2():
    with pytest.raises(MnmError, match=r"^/dev/null: not a V4L2 device \(.*\); make a virtual camera with sudo"):
        open_loopback("/dev/null")


def test_missing_device():
    with pytest.raises(MnmError, match="^/dev/video63: no such device; make a virtual camera with sudo modprobe"):
        open_loopback("/dev/video63")


def cli_error(*args: str, prefix: str = "") -> str:
    """Run ``mnm animate`` on the demo bundle and return its one error line (stderr's last line)."""
    argv = ["animate", str(DEMO), *args]
    result = run_python(prefix + f"import sys; from mnm.cli import run; sys.exit(run({argv!r}))", block_torch=True,
                        timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and [x for x in lines if x.startswith("error: ")] == lines[-1:], result.stderr
    return lines[-1]


def test_cli_refuses_a_non_v4l2_device_before_model_work(clip, still):
    line = cli_error("--image", str(still), "--source", str(clip), "--out", "/dev/null")
    assert line.startswith("error: /dev/null: not a V4L2 device")


def test_cli_vcam_without_pyvirtualcam(clip, still):
    line = cli_error("--image", str(still), "--source", str(clip), "--vcam",
                     prefix="import sys; sys.modules['pyvirtualcam'] = None; ")
    assert line.startswith("error: --vcam needs pyvirtualcam: pip install 'mnm[live]'")


@pytest.mark.skipif(any(Path("/sys/devices/virtual/video4linux").glob("video*")),
                    reason="a v4l2loopback device exists here, so --vcam would open it")
def test_cli_vcam_without_a_virtual_camera(clip, still):
    line = cli_error("--image", str(still), "--source", str(clip), "--vcam")
    assert line.startswith("error: --vcam: no virtual camera to open (")
    assert "sudo modprobe v4l2loopback" in line


def test_cli_srt_without_libsrt_or_receiver_is_one_line(clip, still):
    line = cli_error("--image", str(still), "--source", str(clip), "--out", "srt://127.0.0.1:9/x")
    assert line.startswith("error: srt://127.0.0.1:9/x: ")


def test_cli_refuses_two_outputs_and_a_bad_size(clip, still):
    both = cli_error("--image", str(still), "--source", str(clip), "--vcam", "--out", "udp://127.0.0.1:9")
    assert both == "error: --vcam and --out: give one output (the virtual camera or a target)"
    size = cli_error("--image", str(still), "--source", str(clip), "--out", "udp://127.0.0.1:9", "--size", "33")
    assert size.startswith("error: --size 33: each side must be even")


def test_files_need_no_live_extra_and_take_size(clip, still, tmp_path):
    """The base install has neither PyAV nor pyvirtualcam: files still work, resized by --size."""
    out = tmp_path / "out.gif"
    argv = ["animate", str(DEMO), "--image", str(still), "--source", str(clip), "--out", str(out), "--size", "48"]
    blocked = "import sys; sys.modules['av'] = None; sys.modules['pyvirtualcam'] = None; "
    result = run_python(blocked + f"from mnm.cli import run; sys.exit(run({argv!r}))", block_torch=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with Image.open(out) as gif:
        assert gif.size == (48, 48)


def test_stream_without_pyav_is_one_line(clip, still):
    line = cli_error("--image", str(still), "--source", str(clip), "--out", "udp://127.0.0.1:9",
                     prefix="import sys; sys.modules['av'] = None; ")
    assert line == "error: --out STREAM needs PyAV: pip install 'mnm[live]'"


def test_v4l2_requests_match_the_kernel_layouts():
    """The ioctl numbers are _IOR('V', 0, 104 bytes) and _IOWR('V', 5, 208 bytes), as <linux/videodev2.h>
    defines them on 64-bit Linux; a wrong size would make the kernel refuse every request."""
    from mnm.runtime.live import v4l2

    def ioc(direction: int, number: int, size: int) -> int:
        return direction << 30 | size << 16 | ord("V") << 8 | number

    assert (v4l2.CAPABILITY.size, v4l2.FORMAT.size) == (104, 208)
    assert ioc(2, 0, v4l2.CAPABILITY.size) == v4l2.VIDIOC_QUERYCAP
    assert ioc(3, 5, v4l2.FORMAT.size) == v4l2.VIDIOC_S_FMT
    assert ord("Y") | ord("U") << 8 | ord("1") << 16 | ord("2") << 24 == v4l2.V4L2_PIX_FMT_YUV420
