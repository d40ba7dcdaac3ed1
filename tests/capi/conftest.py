"""Fixtures for the C API suites: the native library and the examples built once per session exactly as
`make cpp` builds them (CMake, the system's real compilers), a sanitized variant of the library
(AddressSanitizer + UndefinedBehaviorSanitizer), test programs compiled against either, and reference
photos.

The builds live in build/cpp and build/cpp-sanitize and are incremental, so repeated runs are quick;
the first run on a fresh machine installs the compiler, CMake, OpenCV and nlohmann-json with apt-get
and fetches ONNX Runtime's headers (docs/capi.md "Build and install").
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mnm.demo import DEMO_DIR
from tests.runtime.conftest import photo

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build" / "cpp"
SANITIZED = REPO / "build" / "cpp-sanitize"
HERE = Path(__file__).resolve().parent
DEMO_BUNDLE = DEMO_DIR / "bundle"
SANITIZERS = "address,undefined"


@dataclass(frozen=True)
class Cpp:
    """A built libmnm (``root``: libmnm.so, include/, the examples), and a compiler for programs that use it."""

    root: Path
    sanitize: str = ""  # the -fsanitize= list the library was built with; programs get it too

    @property
    def include(self) -> Path:
        return self.root / "include"

    @property
    def library(self) -> Path:
        return self.root / "libmnm.so"

    def program(self, name: str) -> Path:
        return self.root / name

    def compile(self, source: Path, *extra: str) -> Path:
        """``source`` (C99 or C++17 by its suffix) compiled and linked against libmnm, warnings as errors.

        Only mnm.h (and mnm.hpp) and the library are on the command line: what any consumer needs."""
        target = self.root / "tests" / source.stem
        inputs = [source, self.library.resolve(), self.include / "mnm.h", self.include / "mnm.hpp"]
        if target.exists() and target.stat().st_mtime >= max(p.stat().st_mtime for p in inputs):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        cxx = source.suffix == ".cpp"
        sanitize = [f"-fsanitize={self.sanitize}", "-fno-omit-frame-pointer"] if self.sanitize else []
        command = [
            "c++" if cxx else "cc", "-std=c++17" if cxx else "-std=c99", "-O1", "-g",
            "-Wall", "-Wextra", "-Werror", "-pedantic", *sanitize, *extra,
            f"-I{self.include}", str(source), f"-L{self.root}", "-lmnm", f"-Wl,-rpath,{self.root}", "-pthread",
            "-lm", "-o", f"{target}.tmp",
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(command)}\n{done.stdout}{done.stderr}")
        os.replace(f"{target}.tmp", target)
        return target


def make_cpp() -> subprocess.CompletedProcess:
    """`make cpp` with this interpreter's environment as the one it may take libonnxruntime from."""
    return subprocess.run(["make", "--no-print-directory", "cpp", f"VENV={sys.prefix}"], cwd=REPO,
                          capture_output=True, text=True, timeout=1800)


def cached(variable: str) -> str:
    """A value `make cpp` configured libmnm with (its CMake cache), for other builds of the same sources."""
    for line in (BUILD / "libmnm-build" / "CMakeCache.txt").read_text().splitlines():
        if line.startswith(f"{variable}:"):
            return line.split("=", 1)[1]
    raise KeyError(variable)


def cmake(*args: str | Path) -> None:
    done = subprocess.run(["cmake", *map(str, args)], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        pytest.fail(f"cmake {' '.join(map(str, args))}\n{done.stdout[-4000:]}{done.stderr[-4000:]}")


@pytest.fixture(scope="session")
def cpp() -> Cpp:
    done = make_cpp()
    if done.returncode != 0:
        pytest.fail(f"make cpp failed:\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
    return Cpp(BUILD)


@pytest.fixture(scope="session")
def cpp_sanitized(cpp) -> Cpp:
    """libmnm built with MNM_SANITIZE=address;undefined into build/cpp-sanitize (programs compiled
    against it are sanitized too, so the sanitizer runtime loads first)."""
    work = SANITIZED / "libmnm-build"
    cmake("-S", REPO / "libmnm", "-B", work, "-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DMNM_WERROR=ON",
          f"-DMNM_SANITIZE={SANITIZERS.replace(',', ';')}", f"-DMNM_OUTPUT_DIR={SANITIZED}",
          f"-DONNXRUNTIME_INCLUDE_DIR={cached('ONNXRUNTIME_INCLUDE_DIR')}",
          f"-DMNM_ONNXRUNTIME_LIBRARY={cached('MNM_ONNXRUNTIME_LIBRARY')}")
    cmake("--build", work, "--parallel", "2")
    return Cpp(SANITIZED, sanitize=SANITIZERS)


@pytest.fixture(scope="session")
def references(tmp_path_factory) -> list[Path]:
    """Four reference photos (PNG, 80 x 60)."""
    folder = tmp_path_factory.mktemp("references")
    return [photo(folder / f"ref{i}.png", seed=40 + i, size=(80, 60)) for i in range(4)]


def run(program: Path, *args, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "MNM_NO_PROGRESS": "1", **kwargs.pop("env", {})}
    return subprocess.run([str(program), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=env, **kwargs)
