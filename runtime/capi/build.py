"""Build libmnm.so, its headers and the C++ examples: ``python -m mnm.runtime.capi.build --out build/cpp``.

``make cpp`` runs this with the project's ``.venv``. The library embeds the Python environment of the
interpreter that builds it: that interpreter's executable (its site-packages, found the way Python
finds them) and its installation's home (the stdlib of the libpython the library links) are written
into the library (docs/capi.md). Steps, each skipped when up to date:

1. system packages: a C and C++ compiler, CMake, pkg-config and OpenCV (``libopencv-dev``), installed
   with apt-get when missing (as root, or with ``sudo -n``);
2. ``libmnm.so`` with cffi's embedding mode (C half ``libmnm.c``, Python half ``bridge.py``) and
   ``include/mnm.h`` + ``mnm.hpp``;
3. the examples (``examples/cpp``, CMake): ``mnm-mix`` and ``mnm-animate`` beside the library.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import mnm
from mnm.atomic import write_bytes, write_text
from mnm.errors import MnmError

HERE = Path(__file__).resolve().parent
INCLUDE = HERE / "include"
EXAMPLES = HERE.parents[1] / "examples" / "cpp"  # in a source checkout
MODULE = "_mnm_capi"
TOOLS = {"cc": "gcc", "c++": "g++", "cmake": "cmake", "pkg-config": "pkg-config"}  # command -> Debian package
OPENCV = "libopencv-dev"

INIT_CODE = """
from _mnm_capi import ffi, lib
try:
    from mnm.runtime.capi.bridge import attach
    attach(ffi, lib)
except BaseException as exc:  # every call then fails with MNM_ERR_PYTHON and this line
    import sys
    message = f"the embedded Python ({sys.executable}) cannot load mnm's C API: {type(exc).__name__}: {exc}"
    lib.mnm_capi_start_failed(message.encode("utf-8", "replace"))
"""

HELPERS = """
void mnm_capi_set_error(const char *message);
void mnm_capi_start_failed(const char *message);
void mnm_image_free(mnm_image *image);
void *malloc(size_t size);
"""


def say(message: str) -> None:
    print(f"[make cpp] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- system packages


def missing_packages(examples: bool) -> list[str]:
    """Debian packages the build needs and this machine lacks."""
    needed = TOOLS if examples else {"cc": TOOLS["cc"]}
    missing = [package for command, package in needed.items() if shutil.which(command) is None]
    if examples and (shutil.which("pkg-config") is None or subprocess.run(
            ["pkg-config", "--exists", "opencv4"], capture_output=True).returncode != 0):
        missing.append(OPENCV)
    return missing


def ensure_packages(examples: bool, install: bool) -> None:
    missing = missing_packages(examples)
    if not missing:
        return
    command = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if not install:
        raise MnmError(f"missing system packages: {' '.join(missing)}; install them: {' '.join(command)}")
    if os.geteuid() != 0:
        if shutil.which("sudo") is None or subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode:
            raise MnmError(f"missing system packages: {' '.join(missing)}; run as root or: sudo {' '.join(command)}")
        command = ["sudo", "-n", *command]
    say(f"installing {' '.join(missing)} with apt-get (a few minutes the first time)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:  # stale or empty package lists: refresh once
        update = [*command[: command.index("apt-get")], "apt-get", "update"]
        subprocess.run(update, capture_output=True, text=True, env=env)
        done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise MnmError(f"{' '.join(command)} failed: {' / '.join(tail)}")
    still = missing_packages(examples)
    if still:
        raise MnmError(f"still missing after apt-get: {' '.join(still)}")


# ---------------------------------------------------------------------- the library


def header_types() -> str:
    """mnm.h's types: the plain C between its MNM_DECLARATIONS markers, for cffi."""
    header = (INCLUDE / "mnm.h").read_text()
    begin, end = header.index("MNM_DECLARATIONS_BEGIN"), header.index("/* MNM_DECLARATIONS_END")
    return header[header.index("\n", begin) + 1 : end]


def declarations() -> str:
    """What cffi must know to build the library: the types and bridge.h's extern "Python" functions."""
    bridge = (HERE / "bridge.h").read_text().replace("MNM_BRIDGE ", "")
    return f'{header_types()}\nextern "Python" {{\n{bridge}\n}}\n{HELPERS}'


def build_config() -> dict[str, str]:
    """What the library bakes in: its version and the Python environment it embeds."""
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        raise MnmError(
            f"{sys.executable}: this Python has no shared libpython, which libmnm links; use a Python built "
            "with --enable-shared (Debian's python3, or pyenv with PYTHON_CONFIGURE_OPTS=--enable-shared)"
        )
    return {"MNM_BUILD_VERSION": mnm.__version__, "MNM_BUILD_PYTHON": sys.executable, "MNM_BUILD_HOME": sys.base_prefix}


def c_string(text: str) -> str:
    """A C string literal of ``text`` (UTF-8; every byte outside printable ASCII escaped)."""
    out = []
    for byte in text.encode():
        char = chr(byte)
        out.append(f"\\{byte:03o}" if byte < 32 or byte > 126 or char in '"\\?' else char)
    return '"' + "".join(out) + '"'


def build_library(out: Path) -> Path:
    """``out/libmnm.so`` (rebuilt only when its sources, cffi or the embedded environment change)."""
    import cffi

    config = build_config()
    sources = [INCLUDE / "mnm.h", HERE / "bridge.h", HERE / "libmnm.c", Path(__file__)]
    stamp = hashlib.sha256(json.dumps([config, cffi.__version__, sys.version]).encode())
    for source in sources:
        stamp.update(source.read_bytes())
    library, stamp_file = out / "libmnm.so", out / "libmnm.stamp"
    if library.exists() and stamp_file.exists() and stamp_file.read_text() == stamp.hexdigest():
        return library
    work = out / "libmnm-build"
    work.mkdir(parents=True, exist_ok=True)
    write_text(work / "mnm_build_config.h",
               "".join(f"#define {name} {c_string(value)}\n" for name, value in config.items()))
    ffi = cffi.FFI()
    ffi.cdef(declarations())
    ffi.set_source(MODULE, '#include "libmnm.c"\n', include_dirs=[str(HERE), str(INCLUDE), str(work)],
                   extra_compile_args=["-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
                   extra_link_args=["-Wl,-soname,libmnm.so"])
    ffi.embedding_init_code(INIT_CODE)
    started = time.perf_counter()
    say(f"compiling libmnm.so (embeds {config['MNM_BUILD_PYTHON']})")
    try:
        built = Path(ffi.compile(tmpdir=str(work), target="libmnm.*", verbose=False))
    except (cffi.VerificationError, cffi.CDefError) as exc:
        raise MnmError(f"building libmnm.so failed: {exc}") from None
    write_bytes(library, built.read_bytes())
    write_text(stamp_file, stamp.hexdigest())
    say(f"built {library} in {time.perf_counter() - started:.1f} s")
    return library


def install_headers(out: Path) -> None:
    for header in ("mnm.h", "mnm.hpp"):
        target = out / "include" / header
        data = (INCLUDE / header).read_bytes()
        if not target.exists() or target.read_bytes() != data:
            write_bytes(target, data)


# ---------------------------------------------------------------------- the examples


def build_examples(out: Path, source: Path) -> None:
    """CMake-build ``source`` (examples/cpp) against ``out``; its programs land in ``out``."""
    if not (source / "CMakeLists.txt").exists():
        raise MnmError(f"{source}: no CMakeLists.txt (the examples are in a source checkout: --examples DIR)")
    work = out / "examples-build"
    configure = ["cmake", "-S", str(source), "-B", str(work), "-DCMAKE_BUILD_TYPE=Release",
                 f"-DMNM_ROOT={out}", f"-DCMAKE_RUNTIME_OUTPUT_DIRECTORY={out}", "-DMNM_WERROR=ON"]
    for step in (configure, ["cmake", "--build", str(work), "--parallel", str(os.cpu_count() or 1)]):
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            raise MnmError(f"{' '.join(step[:2])} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    say(f"built {out / 'mnm-mix'} and {out / 'mnm-animate'}")


def build(out: Path, examples: Path | None = EXAMPLES, install: bool = True) -> Path:
    """Everything ``make cpp`` builds into ``out``; returns the library."""
    out = out.resolve()  # cffi compiles from inside its work folder
    ensure_packages(examples is not None, install)
    library = build_library(out)
    install_headers(out)
    if examples is not None:
        build_examples(out, examples)
    return library


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnm.runtime.capi.build", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/cpp"), help="output folder [build/cpp]")
    parser.add_argument("--examples", type=Path, default=EXAMPLES, help="the examples' CMake project [examples/cpp]")
    parser.add_argument("--no-examples", action="store_true", help="only the library and the headers")
    parser.add_argument("--no-install", action="store_true", help="never run apt-get; say what is missing")
    args = parser.parse_args(argv)
    try:
        build(args.out, None if args.no_examples else args.examples, install=not args.no_install)
    except MnmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
