"""UDP MPEG-TS streams on loopback, read back by a real receiver (a socket, then PyAV decoding)."""

from __future__ import annotations

import json

from tests.live.conftest import DEMO, animate_to
from tests.live.receivers import UdpReceiver, decode, free_port, psnr
from tests.util import run_cli

MIN_PSNR_DB = 30.0


def accounted(report) -> bool:
    return report.frames_in == report.frames_out + report.drops + report.failed


def test_stream_carries_every_frame_given_within_codec_loss(clip, still):
    receiver = UdpReceiver()
    report, given, sink = animate_to(receiver.url, clip, still)
    frames = decode(receiver.close(), "mpegts")
    assert report.error is None and accounted(report)
    assert len(frames) == report.frames_out == len(given) == sink.count > 0
    assert min(psnr(a, b) for a, b in zip(given, frames, strict=True)) >= MIN_PSNR_DB
    assert sink.most_held == 0  # each frame's packet left the encoder with the frame


def test_cli_udp_size_and_accounting_without_torch(clip, still, tmp_path):
    receiver = UdpReceiver()
    stats = tmp_path / "stats.json"
    result = run_cli("animate", DEMO, "--image", still, "--source", clip, "--out", receiver.url,
                     "--size", "96x64", "--backend", "ort-cpu", "--json", stats, block_torch=True)
    frames = decode(receiver.close(), "mpegts")
    assert result.returncode == 0, result.stderr
    report = json.loads(stats.read_text())
    assert report["realtime"] and report["frames_in"] == report["frames_out"] + report["drops"] + report["failed"]
    assert len(frames) == report["frames_out"] > 0
    assert frames[0].shape == (64, 96, 3)
    assert frames[0][:, :16].max() <= 24 and frames[0][:, -16:].max() <= 24  # the square picture, pillarboxed
    assert f"sent {report['frames_out']} frames to {receiver.url} (H.264 in mpegts, 96x64 at 15 fps)" in result.stdout


def test_nobody_listening_keeps_going(clip, still):
    report, given, sink = animate_to(f"udp://127.0.0.1:{free_port(2)}", clip, still)
    assert report.error is None and report.stopped == "end of source" and accounted(report)
    assert sink.count == report.frames_out == len(given) > 0


def test_receiver_that_vanishes_does_not_stop_the_stream(clip, still):
    receiver = UdpReceiver()
    report, given, sink = animate_to(receiver.url, clip, still, after_frame=lambda n: n == 5 and receiver.close())
    assert report.error is None and report.stopped == "end of source" and accounted(report)
    assert sink.count == report.frames_out == len(given) > 5
    received = decode(b"".join(data for _, data in receiver.datagrams), "mpegts")
    assert len(received) == 4  # it vanished while the 5th frame was being made, before it was sent


def rtp_payloads(datagrams: list[bytes]) -> bytes:
    """The MPEG-TS carried by RTP datagrams: each without its 12-byte header and CSRC list."""
    assert all(d[0] >> 6 == 2 and d[1] & 0x7F == 33 for d in datagrams)  # RTP version 2, payload type MP2T
    return b"".join(d[12 + 4 * (d[0] & 0x0F) :] for d in datagrams)


def test_rtp_carries_mpegts_with_the_static_payload_type(clip, still):
    receiver = UdpReceiver()
    report, given, _ = animate_to(f"rtp://127.0.0.1:{receiver.port}", clip, still)
    receiver.close()
    frames = decode(rtp_payloads([data for _, data in receiver.datagrams]), "mpegts")
    assert report.error is None and len(frames) == report.frames_out == len(given) > 0
