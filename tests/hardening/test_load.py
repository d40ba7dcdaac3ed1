"""Load: one pipeline shared by 8 threads issuing mixed requests, and a long animation stream.

The threads' results must equal the single-threaded results for the same inputs, and every thread
must finish within a bound (a deadlock fails the test instead of hanging it). The long stream is
``benchmarks/long_stream.py --short``: flat memory after warm-up and exact drop counts.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from mnm.codes import one_hot, z_from_seed
from mnm.imaging import load_image
from mnm.runtime.pipeline import Pipeline
from tests.hardening.conftest import TINY
from tests.util import run_python

THREADS = 8
ROUNDS = 3
JOIN_TIMEOUT_S = 120.0
REPO = Path(__file__).resolve().parents[2]


def requests(photos) -> list:
    """Eight kinds of request, each a function of a pipeline returning float arrays to compare."""
    a, b, c, d, e, f = (str(p) for p in photos[:6])
    dims = TINY.code_dims()
    frames = [load_image(p) for p in (d, e, f)]

    def animate(mode):
        def run(pipe):
            animator = pipe.animator(a, mode=mode)
            return [animator.frame(frame) for frame in frames]
        return run

    def codes(pipe):
        return list(pipe.encode([a, b, c], factors=("z", "b", "p", "c")).values())

    def generate(pipe):
        z = np.stack([z_from_seed(s, TINY.z_dim) for s in (1, 2)])
        out = pipe.generate(z, one_hot([0, 3], dims["b"]), one_hot([1, 2], dims["c"]), z_pose=z[::-1],
                            p=one_hot([1, 0], dims["p"]))
        return [out["image"], out["child_mask"]]

    def grid(pipe):
        cells = pipe.grid(background=[a, b], pose=[c], texture=[d, "code:1"], seed=4).cells
        return [cell.outputs["image"] for cell in cells]

    def render(pipe):
        mixes = [pipe.make_mix(a, b, "code:1", c), pipe.make_mix(d, e, None, f), pipe.make_mix(b, a, c, "code:2"),
                 pipe.make_mix("random", a, None, "random")]
        return [r.outputs["image"] for r in pipe.render(mixes, seed=5)]

    def stitched(pipe):
        mixes = [pipe.make_mix(a, b, "code:1", c), pipe.make_mix(e, a, None, "code:3")]
        return [r.image for r in pipe.render(mixes, seed=6, stitch="background")]

    def feature(pipe):
        return [pipe.render([pipe.make_mix(b, c, None, d)], mode="feature")[0].outputs["image"]]

    return [animate("code"), animate("feature"), codes, generate, grid, render, stitched, feature]


@pytest.mark.parametrize("cache_size", [256, 1], ids=["caches", "evicting-caches"])
def test_eight_threads_with_mixed_requests_get_the_single_thread_results(tiny_bundle, corpus, cache_size):
    """Each thread runs all eight kinds of request, starting at a different one, ROUNDS times; with
    one-entry caches every request also evicts what another thread is about to read."""
    work = requests(corpus.photos + [corpus.valid[name][0] for name in ("cmyk", "exif", "palette")])
    single = Pipeline(tiny_bundle, backend="ort-cpu")
    expected = [kind(single) for kind in work]
    shared = Pipeline(tiny_bundle, backend="ort-cpu", cache_size=cache_size)
    results: dict[int, list] = {i: [] for i in range(THREADS)}
    errors: list = []
    barrier = threading.Barrier(THREADS)

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=JOIN_TIMEOUT_S)
            for round_ in range(ROUNDS):
                for k in range(len(work)):
                    kind = (i + k + round_) % len(work)
                    results[i].append((kind, work[kind](shared)))
        except Exception as exc:  # reported below with the thread's index
            errors.append((i, repr(exc)))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    assert not [t.name for t in threads if t.is_alive()], "threads still running: deadlock or starvation"
    assert not errors, errors
    for i in range(THREADS):
        assert len(results[i]) == ROUNDS * len(work)
        for kind, arrays in results[i]:
            for got, want in zip(arrays, expected[kind], strict=True):
                if got.dtype == np.uint8:
                    assert np.abs(got.astype(int) - want).max() <= 1, (i, kind)
                else:
                    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5, err_msg=f"thread {i}, request {kind}")
    runs = shared.counters.snapshot()["runs"]
    assert runs["g_child"] >= THREADS * ROUNDS  # the work really went through the shared pipeline


def test_long_stream_short_mode_memory_flat_and_drops_counted(tiny_bundle, tmp_path):
    """``benchmarks/long_stream.py --short`` with torch blocked: a few hundred frames, every check passing."""
    report_path = tmp_path / "long_stream.json"
    script = REPO / "benchmarks" / "long_stream.py"
    argv = [str(script), "--short", "--bundle", str(tiny_bundle), "--json", str(report_path)]
    result = run_python(f"import runpy; sys.argv = {argv!r}; runpy.run_path({str(script)!r}, run_name='__main__')",
                        block_torch=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(report_path.read_text())
    assert report["ok"] and all(report["checks"].values()), report["checks"]
    memory, drops = report["memory"], report["drops"]
    assert memory["frames"] == memory["output_frames"] == report["frames"] >= 300
    assert memory["growth_after_warmup_mib"] <= report["rss_bound_mib"] == 8.0
    assert drops["frames_in"] == report["frames"] == drops["frames_out"] + drops["drops"]
    assert 0 < drops["drops"] == drops["never_animated"] and drops["frames_out"] == drops["frames_animated"]
    assert "RSS" in result.stdout and f"in {report['frames']}, out {drops['frames_out']}" in result.stdout
