"""No leaks across 1000 mixes through the C API (leak_test.c): the resident set stays flat and the
bytes malloc holds do not grow; the same measure sees a leak of the outputs made on purpose."""

from __future__ import annotations

from tests.capi.conftest import DEMO_BUNDLE, HERE, run

MIXES = 1000
RSS_BOUND_KB = 16 * 1024  # generous: the resident set also moves with the allocator's and onnxruntime's pools
HEAP_BOUND = 256 * 1024  # bytes; one kept 32x32 output per two mixes would be 1.5 MB


def _measure(cpp, *extra) -> dict[str, tuple[int, int]]:
    result = run(cpp.compile(HERE / "leak_test.c"), DEMO_BUNDLE, MIXES, *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    return {name: tuple(int(v) for v in values.split()) for name, values in rows.items()}


def test_1000_mixes_leave_resident_memory_and_the_heap_flat(cpp):
    memory = _measure(cpp)
    (rss_warm, heap_warm), (rss_after, heap_after) = memory["warm"], memory["after"]
    assert rss_after - rss_warm < RSS_BOUND_KB, memory
    assert heap_after - heap_warm < HEAP_BOUND, memory


def test_the_measure_sees_outputs_that_are_never_freed(cpp):
    memory = _measure(cpp, "--keep-outputs")
    (_, heap_warm), (_, heap_after) = memory["warm"], memory["after"]
    assert heap_after - heap_warm > (MIXES // 2) * 32 * 32 * 3 * 0.9, memory
