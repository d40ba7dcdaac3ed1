"""libmnm installed like a C library: `make cpp-install PREFIX=...` puts the versioned library, the headers,
mnm.pc and the CMake package under a prefix; a consumer builds with pkg-config and with CMake's
find_package(mnm) (the examples' own CMake project); the soname is libmnm.so.1 and only mnm_* is exported."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.capi.conftest import DEMO_BUNDLE, REPO, run

CONSUMER = r"""
#include <stdio.h>
#include <mnm.h>

/* Opens the bundle, mixes one image from specs and saves it: the library found through the install. */
int main(int argc, char **argv)
{
    mnm_pipeline *pipeline = NULL;
    mnm_mix_request request = MNM_MIX_REQUEST_INIT;
    mnm_image image = {0};
    if (argc != 4)
        return 2;
    request.background.spec = "code:0";
    request.pose.spec = argv[2];
    request.texture.spec = "code:1";
    if (mnm_pipeline_open(argv[1], NULL, &pipeline) != MNM_OK || mnm_mix(pipeline, &request, &image) != MNM_OK
        || mnm_image_save(argv[3], &image) != MNM_OK) {
        fprintf(stderr, "error: %s\n", mnm_last_error());
        return 1;
    }
    printf("mnm %s (header %s): %dx%d\n", mnm_version(), MNM_VERSION_STRING, image.width, image.height);
    mnm_image_free(&image);
    return mnm_pipeline_close(pipeline);
}
"""

CMAKE_CONSUMER = """
cmake_minimum_required(VERSION 3.16)
project(consumer LANGUAGES C)
find_package(mnm {version} REQUIRED)
add_executable(consumer consumer.c)
target_link_libraries(consumer PRIVATE mnm::mnm)
"""


def check(command: list, **kwargs) -> str:
    done = subprocess.run(list(map(str, command)), capture_output=True, text=True, timeout=900, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, command))}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def prefix(cpp, tmp_path_factory):
    """`make cpp-install` into a fresh prefix."""
    prefix = tmp_path_factory.mktemp("prefix")
    check(["make", "--no-print-directory", "cpp-install", f"PREFIX={prefix}", f"VENV={sys.prefix}"], cwd=REPO)
    return prefix


def test_the_soname_is_versioned_and_only_mnm_symbols_are_exported(cpp):
    dynamic = check(["readelf", "-d", cpp.library])
    assert re.search(r"\(SONAME\)\s+Library soname: \[libmnm\.so\.1\]", dynamic)
    symbols = [line.split()[-1] for line in check(["nm", "-D", "--defined-only", cpp.library]).splitlines()]
    names = {symbol.split("@")[0] for symbol in symbols}
    assert names - {"MNM_1"} and all(name.startswith("mnm_") for name in names - {"MNM_1"}), sorted(names)
    assert all(symbol.endswith("@@MNM_1") for symbol in symbols if symbol != "MNM_1"), symbols
    declared = set(re.findall(r"MNM_API [^;]*?\b(mnm_\w+)\(", (cpp.include / "mnm.h").read_text()))
    assert names - {"MNM_1"} == declared


def test_the_install_holds_the_library_headers_pkg_config_and_cmake_package(prefix):
    lib = prefix / "lib"
    assert (lib / "libmnm.so.1.0.0").is_file() and not (lib / "libmnm.so.1.0.0").is_symlink()
    assert os.readlink(lib / "libmnm.so.1") == "libmnm.so.1.0.0"
    assert os.readlink(lib / "libmnm.so") == "libmnm.so.1"
    for path in ("include/mnm.h", "include/mnm.hpp", "lib/pkgconfig/mnm.pc", "lib/cmake/mnm/mnmConfig.cmake",
                 "lib/cmake/mnm/mnmConfigVersion.cmake", "lib/cmake/mnm/mnmTargets.cmake",
                 "share/doc/mnm/onnxruntime-LICENSE"):
        assert (prefix / path).is_file(), path
    assert (prefix / "include" / "mnm.h").read_bytes() == (REPO / "libmnm" / "include" / "mnm.h").read_bytes()


def test_a_consumer_builds_with_pkg_config_and_runs(prefix, references, tmp_path):
    (tmp_path / "consumer.c").write_text(CONSUMER)
    env = {**os.environ, "PKG_CONFIG_PATH": str(prefix / "lib" / "pkgconfig")}
    assert check(["pkg-config", "--modversion", "mnm"], env=env).strip() == "1.0.0"
    flags = check(["pkg-config", "--cflags", "--libs", "mnm"], env=env).split()
    check(["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", tmp_path / "consumer.c", *flags,
           f"-Wl,-rpath,{prefix / 'lib'}", "-o", tmp_path / "consumer"])
    result = run(tmp_path / "consumer", DEMO_BUNDLE, references[1], tmp_path / "mix.png")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "mnm 1.0.0 (header 1.0.0): 32x32\n"
    assert (tmp_path / "mix.png").stat().st_size > 0
    needed = check(["readelf", "-d", tmp_path / "consumer"])
    assert "[libmnm.so.1]" in needed  # linked by soname: a newer 1.x library replaces it


def test_a_moved_install_still_builds_consumers_with_cmake_and_pkg_config(prefix, references, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(prefix, moved, symlinks=True)  # the .pc file and the CMake package are relocatable
    (tmp_path / "consumer.c").write_text(CONSUMER)
    (tmp_path / "CMakeLists.txt").write_text(CMAKE_CONSUMER.format(version=1))
    check(["cmake", "-S", tmp_path, "-B", tmp_path / "build", f"-DCMAKE_PREFIX_PATH={moved}"])
    check(["cmake", "--build", tmp_path / "build"])
    result = run(tmp_path / "build" / "consumer", DEMO_BUNDLE, references[1], tmp_path / "mix.png")
    assert result.returncode == 0, result.stderr
    assert f"{moved}/lib" in check(["readelf", "-d", tmp_path / "build" / "consumer"])
    env = {**os.environ, "PKG_CONFIG_PATH": str(moved / "lib" / "pkgconfig")}
    assert check(["pkg-config", "--variable=includedir", "mnm"], env=env).startswith(str(moved))


def test_find_package_refuses_another_major_version(prefix, tmp_path):
    (tmp_path / "consumer.c").write_text(CONSUMER)
    (tmp_path / "CMakeLists.txt").write_text(CMAKE_CONSUMER.format(version=2))
    done = subprocess.run(["cmake", "-S", tmp_path, "-B", tmp_path / "build", f"-DCMAKE_PREFIX_PATH={prefix}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "mnmConfig.cmake, version: 1.0.0" in done.stderr, done.stderr


def test_the_examples_build_with_find_package_against_the_install(prefix, references, tmp_path):
    build = tmp_path / "examples"
    check(["cmake", "-S", REPO / "examples" / "cpp", "-B", build, f"-DCMAKE_PREFIX_PATH={prefix}",
           "-DMNM_WERROR=ON", "-DCMAKE_BUILD_TYPE=Release"])
    check(["cmake", "--build", build, "--parallel", "2"])
    assert f"{prefix}/lib" in check(["readelf", "-d", build / "mnm-mix"])
    result = run(build / "mnm-mix", DEMO_BUNDLE, *references, tmp_path / "mix.png")
    assert result.returncode == 0, result.stderr


def test_a_release_archive_gives_the_headers_and_the_library_to_bake_in(cpp, tmp_path):
    """ONNXRUNTIME_ROOT (an unpacked ONNX Runtime release: include/, lib/libonnxruntime.so.1) is taken by the
    header script and by CMake, which bakes its library in as the build-time default."""
    from tests.capi.conftest import cached

    root = tmp_path / "onnxruntime-linux-x64"
    (root / "lib").mkdir(parents=True)
    (root / "include").symlink_to(cached("ONNXRUNTIME_INCLUDE_DIR"))
    (root / "lib" / "libonnxruntime.so.1").symlink_to(cached("MNM_ONNXRUNTIME_LIBRARY"))
    script = REPO / "scripts" / "onnxruntime_headers.sh"
    env = {**os.environ, "ONNXRUNTIME_ROOT": str(root)}
    assert check(["sh", script, tmp_path / "unused"], env=env).strip() == f"{root}/include"
    assert not (tmp_path / "unused").exists()
    configured = check(["cmake", "-S", REPO / "libmnm", "-B", tmp_path / "build", f"-DONNXRUNTIME_ROOT={root}"])
    assert f"ONNX Runtime headers: {root}/include (#define ORT_API_VERSION" in configured
    assert f"ONNX Runtime library found at build time: {root}/lib/libonnxruntime.so.1\n" in configured

    env["ONNXRUNTIME_ROOT"] = str(tmp_path / "empty")
    done = subprocess.run(["sh", script], capture_output=True, text=True, env=env)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (f"[onnxruntime headers] error: ONNXRUNTIME_ROOT={tmp_path / 'empty'} has no "
                           "include/onnxruntime_c_api.h (expected an unpacked ONNX Runtime release)\n")
