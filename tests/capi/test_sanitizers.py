"""The C API's test programs again, on libmnm built with AddressSanitizer and UndefinedBehaviorSanitizer
(MNM_SANITIZE=address;undefined; the programs are built with them too): any invalid access, leak,
use after free, data race on a freed handle or undefined behaviour in the library fails the run."""

from __future__ import annotations

import pytest

from tests.capi.conftest import DEMO_BUNDLE, HERE, run
from tests.capi.test_c_api import code_only_and_damaged, fake_libraries

# Stop at the first report, with its stack; leaks are checked at exit.
SANITIZER_ENV = {
    "ASAN_OPTIONS": "halt_on_error=1:detect_leaks=1:abort_on_error=0:exitcode=23",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=24",
}

pytestmark = pytest.mark.slow


def run_sanitized(program, *args, timeout=600):
    result = run(program, *args, timeout=timeout, env=SANITIZER_ENV)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-6000:]
    assert "Sanitizer" not in result.stderr and "runtime error" not in result.stderr, result.stderr[-6000:]
    return result


def test_every_function_of_mnm_h_under_the_sanitizers(cpp_sanitized, tmp_path):
    code_only, damaged = code_only_and_damaged(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    result = run_sanitized(cpp_sanitized.compile(HERE / "c_api_test.c"), DEMO_BUNDLE, code_only, damaged, work,
                           *fake_libraries(tmp_path))
    assert result.stdout.endswith(" checks, 0 failed\n")


def test_threads_and_closing_under_the_sanitizers(cpp_sanitized):
    result = run_sanitized(cpp_sanitized.compile(HERE / "threads_test.cpp"), DEMO_BUNDLE)
    assert "closed while in calls: 4/4 threads stopped cleanly" in result.stdout


def test_the_cpp_wrapper_under_the_sanitizers(cpp_sanitized, tmp_path):
    result = run_sanitized(cpp_sanitized.compile(HERE / "hpp_test.cpp"), DEMO_BUNDLE, tmp_path)
    assert result.stdout.endswith(" checks, 0 failed\n")
