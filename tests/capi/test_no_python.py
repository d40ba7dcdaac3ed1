"""No Python at run time: the library and the examples link no libpython, and the examples run in a clean
environment (`env -i`, no Python on PATH) with no libpython mapped, ONNX Runtime loaded with dlopen."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.capi.conftest import DEMO_BUNDLE
from tests.capi.test_examples import write_clip


def loaded_libraries(command: list, tmp_path, path: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run ``command`` under `env -i PATH=path`, and every shared object the dynamic loader mapped into
    it (LD_DEBUG=files: linked ones and dlopen'ed ones alike)."""
    trace = tmp_path / "ld-debug"
    done = subprocess.run(["env", "-i", f"PATH={path}", "LD_DEBUG=files", f"LD_DEBUG_OUTPUT={trace}",
                           *map(str, command)], capture_output=True, text=True, timeout=300)
    names = []
    for log in tmp_path.glob("ld-debug.*"):  # one file per process: LD_DEBUG_OUTPUT.PID
        names += re.findall(r"file=(\S+) \[0\];\s+(?:needed|dynamically loaded) by", log.read_text())
        log.unlink()
    return done, names


def test_the_library_and_the_examples_link_no_python(cpp):
    for binary in (cpp.library, cpp.program("mnm-mix"), cpp.program("mnm-animate")):
        ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
        assert "libpython" not in ldd, f"{binary}:\n{ldd}"
        assert "onnxruntime" not in ldd, f"{binary} links ONNX Runtime instead of loading it:\n{ldd}"


def test_mnm_mix_runs_in_a_clean_environment_without_python(cpp, references, tmp_path):
    out = tmp_path / "mix.png"
    done, loaded = loaded_libraries([cpp.program("mnm-mix"), DEMO_BUNDLE, *references, out], tmp_path,
                                    path="/usr/bin:/bin")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"wrote {out}\n" and out.stat().st_size > 0
    assert any("libonnxruntime.so" in name for name in loaded), loaded
    assert any("libmnm.so.1" in name for name in loaded), loaded
    assert not [name for name in loaded if "libpython" in Path(name).name], loaded


@pytest.mark.parametrize("mode", ["code", "feature"])
def test_mnm_animate_runs_in_a_clean_environment_without_python(cpp, references, tmp_path, mode):
    write_clip(tmp_path / "clip.mkv", 4)
    command = [cpp.program("mnm-animate"), DEMO_BUNDLE, references[0], tmp_path / "clip.mkv", tmp_path / "out",
               "--mode", mode]
    empty = tmp_path / "empty-path"  # not even a python3 to find
    empty.mkdir()
    done, loaded = loaded_libraries(command, tmp_path, path=str(empty))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("frames in 4, out 4, dropped 0")
    assert len(list((tmp_path / "out").iterdir())) == 4
    assert any("libonnxruntime.so" in name for name in loaded), loaded
    assert not [name for name in loaded if "libpython" in Path(name).name], loaded
