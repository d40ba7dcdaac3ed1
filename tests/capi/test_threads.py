"""Four C++ threads sharing one pipeline make the same images as one thread, and a pipeline closed while
four threads are inside calls stops them cleanly (threads_test.cpp, via mnm.hpp and mnm.h)."""

from __future__ import annotations

from tests.capi.conftest import DEMO_BUNDLE, HERE, run


def test_four_threads_sharing_one_pipeline_make_the_images_of_one_thread(cpp):
    result = run(cpp.compile(HERE / "threads_test.cpp"), DEMO_BUNDLE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "mixes identical 32/32 (3 rounds, 4 threads)",
        "animated frames identical 96/96",
        "own error messages 2400/2400",  # each thread reads its own mnm_last_error
        "closed while in calls: 4/4 threads stopped cleanly",
    ]
    assert result.stderr == ""
