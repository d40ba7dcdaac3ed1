"""mnm.hpp, the C++ wrapper (hpp_test.cpp): exceptions, borrowed and owning images, RAII handles, and
each method against the C API's meaning."""

from __future__ import annotations

from tests.capi.conftest import DEMO_BUNDLE, HERE, run


def test_the_cpp_wrapper(cpp, tmp_path):
    result = run(cpp.compile(HERE / "hpp_test.cpp"), DEMO_BUNDLE, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.endswith(" checks, 0 failed\n") and result.stderr == ""
