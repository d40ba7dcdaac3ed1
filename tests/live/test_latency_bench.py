"""``benchmarks/live_latency.py --short`` on the demo bundle: every target runs, every frame sent is
received and its stamped number read back, and the accounting holds (numbers are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live.receivers import nginx_missing

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "live_latency.py"


@pytest.mark.slow
def test_short_run_on_the_demo_bundle(tmp_path):
    if reason := nginx_missing():
        pytest.skip(reason)
    out = tmp_path / "live.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--short", "--skip-paper", "--json", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    for runs in report["bundles"]["demo"]["modes"].values():
        assert [r["target"] for r in runs] == ["file", "udp", "rtmp"]
        for r in runs:
            assert r["error"] is None and r["frames_in"] == r["frames_out"] + r["drops"] + r["failed"]
            if r["target"] != "file":
                assert r["received"] == r["frames_out"] and r["unreadable_stamps"] == 0, r
                assert r["glass_to_glass_ms"]["n"] > 0
    assert "### Live outputs: glass-to-glass latency" in result.stdout
