"""The CPUs this process may use: the cgroup CPU quota (v1 and v2 files written under a temporary
root) and the core count staying within the affinity mask (set for real in a child process)."""

from __future__ import annotations

import os

import pytest

from mnm.runtime import machine
from tests.util import run_python


def own_v2_file(root):
    """Where ``cpu_quota`` looks first under ``root``: this process's own cgroup v2 folder."""
    own = machine._own_cgroup() or "/"
    path = root / own.lstrip("/") / "cpu.max"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.parametrize(("text", "quota"), [("200000 100000", 2.0), ("150000 100000", 1.5), ("50000 100000", 0.5),
                                             ("max 100000", None)])
def test_cgroup_v2_quota(tmp_path, text, quota):
    own_v2_file(tmp_path).write_text(text + "\n")
    assert machine.cpu_quota(tmp_path) == quota


@pytest.mark.parametrize(("quota_us", "period_us", "quota"), [("300000", "100000", 3.0), ("25000", "100000", 0.25),
                                                              ("-1", "100000", None)])
def test_cgroup_v1_quota(tmp_path, quota_us, period_us, quota):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(quota_us + "\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(period_us + "\n")
    assert machine.cpu_quota(tmp_path) == quota


def test_no_cgroup_files_mean_no_quota_and_v2_wins_over_v1(tmp_path):
    assert machine.cpu_quota(tmp_path) is None
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    own_v2_file(tmp_path).write_text("400000 100000\n")
    assert machine.cpu_quota(tmp_path) == 4.0


def test_usable_cores_stay_within_the_affinity_mask():
    cores = machine.usable_cores()
    assert 1 <= cores <= machine.physical_cores() <= machine.usable_cpus() <= (os.cpu_count() or 1)
    # A process pinned to one CPU gets one thread, whatever the machine has.
    result = run_python("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
                        "from mnm.runtime.machine import usable_cores, usable_cpus; "
                        "print(usable_cores(), usable_cpus())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1"]
