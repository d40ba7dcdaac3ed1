"""A plan of 100,000 rows of codes streams: the peak resident memory of the run barely differs from
a 1,000-row plan's. Every row of both plans is read, checked and passed through the runner; each run
mixes every 100th row (``--shard 0/100``: 1,000 images and 10) so the test takes seconds — images a
run kept would show as growth too (each rendered row carries tens of kB of arrays)."""

from __future__ import annotations

from tests.batch.conftest import write_plan
from tests.util import run_python

GROWTH_LIMIT_MB = 40


def peak_rss_mb(bundle, plan, out) -> float:
    args = ["mix", str(bundle), "--batch", str(plan), "--out", str(out), "--shard", "0/100"]
    code = (f"import resource, sys; from mnm.cli import run; code = run({args!r}); "
            "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")
    result = run_python(code, block_torch=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split("PEAK")[1]) / 1024  # Linux: kB


def test_a_100000_row_plan_streams_in_bounded_memory(tiny_bundle, tmp_path):
    def plan(rows: int):
        return write_plan(tmp_path / f"plan{rows}.csv",
                          [(f"seed:{i}", f"seed:{i}", f"code:{i % 2}", f"code:{i % 4}", "") for i in range(rows)])

    small = peak_rss_mb(tiny_bundle, plan(1_000), tmp_path / "small")
    large = peak_rss_mb(tiny_bundle, plan(100_000), tmp_path / "large")
    assert len(list((tmp_path / "large").glob("*.png"))) == 1_000
    assert large - small < GROWTH_LIMIT_MB, f"peak RSS {large:.0f} MB for 100,000 rows vs {small:.0f} MB for 1,000"
