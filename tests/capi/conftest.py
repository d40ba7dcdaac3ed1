"""Fixtures for the C API suites: the library and the examples built once per session (as `make cpp`
builds them, with this interpreter's environment embedded), test programs compiled against them with
the system's real C and C++ compilers, and reference photos.

The build lives in build/cpp and is reused while its sources are unchanged, so repeated runs are quick;
the first run on a fresh machine installs the compiler, CMake and OpenCV with apt-get.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from mnm.demo import DEMO_DIR
from mnm.errors import MnmError
from tests.runtime.conftest import photo

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build" / "cpp"
HERE = Path(__file__).resolve().parent
DEMO_BUNDLE = DEMO_DIR / "bundle"


@dataclass(frozen=True)
class Cpp:
    """What `make cpp` builds, and a compiler for programs that use it."""

    root: Path

    @property
    def include(self) -> Path:
        return self.root / "include"

    @property
    def library(self) -> Path:
        return self.root / "libmnm.so"

    def program(self, name: str) -> Path:
        return self.root / name

    def compile(self, source: Path) -> Path:
        """``source`` (C99 or C++17 by its suffix) compiled and linked against libmnm, warnings as errors.

        No Python headers on the command line: a consumer needs only mnm.h and the library."""
        target = self.root / "tests" / source.stem
        inputs = [source, self.library, self.include / "mnm.h", self.include / "mnm.hpp"]
        if target.exists() and target.stat().st_mtime >= max(p.stat().st_mtime for p in inputs):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        cxx = source.suffix == ".cpp"
        command = [
            "c++" if cxx else "cc", "-std=c++17" if cxx else "-std=c99", "-O1", "-g",
            "-Wall", "-Wextra", "-Werror", "-pedantic",
            f"-I{self.include}", str(source), f"-L{self.root}", "-lmnm", f"-Wl,-rpath,{self.root}", "-pthread",
            "-lm", "-o", f"{target}.tmp",
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(command)}\n{done.stdout}{done.stderr}")
        os.replace(f"{target}.tmp", target)
        return target


@pytest.fixture(scope="session")
def cpp() -> Cpp:
    from mnm.runtime.capi.build import build

    try:
        build(BUILD)
    except MnmError as exc:
        pytest.fail(f"building the C API failed: {exc}")
    return Cpp(BUILD)


@pytest.fixture(scope="session")
def references(tmp_path_factory) -> list[Path]:
    """Four reference photos (PNG, 80 x 60)."""
    folder = tmp_path_factory.mktemp("references")
    return [photo(folder / f"ref{i}.png", seed=40 + i, size=(80, 60)) for i in range(4)]


def run(program: Path, *args, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "MNM_NO_PROGRESS": "1", **kwargs.pop("env", {})}
    return subprocess.run([str(program), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=env, **kwargs)
