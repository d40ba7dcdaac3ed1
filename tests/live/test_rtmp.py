"""RTMP to a real nginx-rtmp server on loopback: played back from it while it is sent, recorded by
it, refused by it, lost in the middle, and a server that accepts and never answers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from mnm.errors import MnmError
from mnm.runtime.live.stream import StreamSink
from mnm.runtime.live.targets import classify
from tests.live.conftest import DEMO, animate_to
from tests.live.receivers import RtmpPlayer, RtmpServer, decode, free_port, nginx_missing, psnr
from tests.util import run_cli

MIN_PSNR_DB = 30.0


def animate_cli(out, clip, still, stats, **kwargs):
    return run_cli("animate", DEMO, "--image", still, "--source", clip, "--out", out, "--backend", "ort-cpu",
                   "--json", stats, block_torch=True, **kwargs)


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: ") and sum(x.startswith("error: ") for x in lines) == 1, stderr
    return lines[-1]


def test_played_back_and_recorded_by_the_server(rtmp_server, clip, still):
    url = rtmp_server.url("played")
    player = RtmpPlayer(url)
    player.start()
    assert rtmp_server.wait_for_log("play: name='played'"), rtmp_server.log()[-2000:]
    report, given, sink = animate_to(url, clip, still, mode="feature")
    player.join(30)
    assert report.error is None and report.frames_in == report.frames_out + report.drops + report.failed
    assert len(player.frames) == report.frames_out == len(given) > 0, player.error
    recorded = decode(rtmp_server.recording("played"))
    assert len(recorded) == report.frames_out
    assert min(psnr(a, b) for a, b in zip(given, recorded, strict=True)) >= MIN_PSNR_DB
    assert min(psnr(a, b) for a, (_, b) in zip(given, player.frames, strict=True)) >= MIN_PSNR_DB
    assert sink.most_held == 0


def test_refused_by_the_server_is_one_line(rtmp_server, clip, still, tmp_path):
    stats = tmp_path / "stats.json"
    result = animate_cli(rtmp_server.url("nope", app="closed"), clip, still, stats, timeout=60)
    assert result.returncode != 0
    assert "cannot send the stream" in error_line(result.stderr)
    report = json.loads(stats.read_text())
    assert (report["frames_out"], report["failed"]) == (0, 1)
    assert report["frames_in"] == report["drops"] + 1  # frames captured while the first one failed are drops
    assert "access forbidden" in rtmp_server.log()


def test_nobody_listening_is_one_line(clip, still, tmp_path):
    result = animate_cli(f"rtmp://127.0.0.1:{free_port()}/live/key", clip, still, tmp_path / "s.json", timeout=60)
    assert result.returncode != 0
    assert "cannot send the stream (Connection refused)" in error_line(result.stderr)


def test_server_lost_mid_stream_is_one_line(long_clip, still, tmp_path):
    if reason := nginx_missing():
        pytest.skip(reason)
    server = RtmpServer(tmp_path / "nginx")
    stats = tmp_path / "stats.json"
    args = ["animate", str(DEMO), "--image", str(still), "--source", str(long_clip), "--out", server.url("lost"),
            "--backend", "ort-cpu", "--json", str(stats)]
    code = f"import sys; from mnm.cli import run; sys.exit(run({args!r}))"
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as cli:
        try:
            assert server.wait_for_log("publish: name='lost'", timeout=60), server.log()[-2000:]
            time.sleep(0.5)
            server.stop()
            _, stderr = cli.communicate(timeout=60)
        finally:
            cli.kill()
            server.stop()
    assert cli.returncode != 0
    assert "the stream stopped after" in error_line(stderr)
    report = json.loads(stats.read_text())
    assert report["frames_in"] == report["frames_out"] + report["drops"] + report["failed"]
    assert report["failed"] == 1 and 0 < report["frames_out"] < 120


def test_server_that_never_answers_gives_up_in_bounded_time():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        sink = StreamSink(classify(f"rtmp://127.0.0.1:{port}/live/key"), 15, io_timeout_s=1.0)
        began = time.monotonic()
        with pytest.raises(MnmError, match="cannot send the stream"):
            sink.write(np.zeros((32, 32, 3), np.uint8))
        assert time.monotonic() - began < 10
        sink.close()


def test_rtsp_with_no_server_is_one_line():
    sink = StreamSink(classify(f"rtsp://127.0.0.1:{free_port()}/mnm"), 15, io_timeout_s=1.0)
    with pytest.raises(MnmError, match=r"^rtsp://127\.0\.0\.1:\d+/mnm: cannot send the stream \(Connection refused\)$"):
        sink.write(np.zeros((32, 32, 3), np.uint8))
    sink.close()


def test_server_that_stops_reading_mid_stream_gives_up_in_bounded_time(tmp_path):
    """nginx frozen (SIGSTOP) while frames of noise fill the socket buffers: the write that cannot
    make progress for ``io_timeout_s`` ends the stream with one line instead of blocking for ever."""
    if reason := nginx_missing():
        pytest.skip(reason)
    server = RtmpServer(tmp_path / "nginx")
    sink = StreamSink(classify(server.url("frozen")), 15, io_timeout_s=1.0)
    noise = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    try:
        sink.write(noise)
        os.kill(server.process.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        with pytest.raises(MnmError, match=r"the stream stopped after \d+ frames \(Connection timed out\)$"):
            for _ in range(2000):  # a few megabytes of socket buffers, then the timeout
                sink.write(np.roll(noise, sink.count, axis=1))
        assert time.monotonic() - frozen < 30
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        sink.close()
        server.stop()
