"""The C API from plain C: c_api_test.c calls every function of mnm.h, success and error paths (each
status and message checked there, the growable structs, ONNX Runtime missing or too old, a forked
child); here its images are compared with the Python runtime's."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from mnm.imaging import load_image
from mnm.runtime import Bundle, Factor, Pipeline
from tests.capi.conftest import DEMO_BUNDLE, HERE, run
from tests.capi.test_parity import assert_same_grid


@pytest.fixture(scope="module")
def c_program(cpp, tmp_path_factory):
    """c_api_test run once on the demo bundle, a code-only copy and a damaged copy: (result, work folder)."""
    tmp_path = tmp_path_factory.mktemp("c_api")
    code_only, damaged = code_only_and_damaged(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    program = cpp.compile(HERE / "c_api_test.c")
    return run(program, DEMO_BUNDLE, code_only, damaged, work, *fake_libraries(tmp_path)), work


def code_only_and_damaged(folder):
    """Copies of the demo bundle: one that lists only code mode, one with a changed graph."""
    code_only = shutil.copytree(DEMO_BUNDLE, folder / "code_only")
    manifest = json.loads((code_only / "manifest.json").read_text())
    manifest["modes"] = ["code"]
    (code_only / "manifest.json").write_text(json.dumps(manifest))
    damaged = shutil.copytree(DEMO_BUNDLE, folder / "damaged")
    graph = bytearray((damaged / "g_child.onnx").read_bytes())
    graph[len(graph) // 2] ^= 0xFF
    (damaged / "g_child.onnx").write_bytes(bytes(graph))
    return code_only, damaged


def fake_libraries(folder):
    """Two libraries built from fake_onnxruntime.c: one that is not ONNX Runtime, one too old."""
    made = []
    for name, flags in (("libnot_ort.so", []), ("libold_ort.so", ["-DWITH_API_BASE"])):
        command = ["cc", "-shared", "-fPIC", *flags, str(HERE / "fake_onnxruntime.c"), "-o", str(folder / name)]
        subprocess.run(command, check=True)
        made.append(folder / name)
    return made


def test_every_function_of_mnm_h_from_c_with_its_error_paths(c_program):
    result, _ = c_program
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""  # no traceback, no warning: errors reach the app as codes and messages
    assert "0 failed" in result.stdout and "MNM_ERR_CLOSED" in result.stdout

    bundle = Bundle.open(DEMO_BUNDLE)
    cfg, dims = bundle.config, bundle.config.code_dims()
    lines = result.stdout.splitlines()
    assert f"info {cfg.image_size} {dims['z']} {dims['b']} {dims['p']} {dims['c']} 1 1 {len(bundle.graphs)}" in lines
    assert sorted(line.removeprefix("graph ") for line in lines if line.startswith("graph ")) == sorted(bundle.graphs)
    assert f"bundle {DEMO_BUNDLE.resolve()}" in lines
    backend = next(line for line in lines if line.startswith("backend "))
    assert backend.startswith("backend ort-cpu (onnxruntime 1.") and backend.endswith(", fp32, 1 thread)")
    assert any(line.startswith("onnxruntime /") and "libonnxruntime.so" in line for line in lines)
    assert "forked child ok (0)" in lines  # refused handles, no models, image files work, no hang
    for words in ("(options.onnxruntime_library): ", "has no OrtGetApiBase", "ONNX Runtime 1.10.0 is too old",
                  "the app was built against a newer mnm.h"):
        assert words in result.stdout, words


def test_the_images_of_the_c_program_are_the_python_runtimes(c_program):
    result, work = c_program
    assert result.returncode == 0, result.stdout + result.stderr
    bg, pose, texture, frame = (load_image(work / f"{n}.png") for n in ("ref_background", "ref_pose", "ref_texture",
                                                                            "frame"))
    pipe = Pipeline(DEMO_BUNDLE, threads=1)  # as the C program: the same sessions, the same sums
    boxed = Factor(image=bg, box=(10, 8, 30, 40))
    expected = {  # specs that sample (random, seed:N) are left out: the library has its own generator
        "mix_images_code": pipe.mix(bg, pose, pose, texture, seed=0),
        "mix_images_feature": pipe.mix(bg, pose, pose, texture, mode="feature", seed=0),
        "mix_box_stitch": pipe.mix(boxed, pose, pose, texture, seed=0, stitch="background"),
        "animated_code": pipe.animator(bg, mode="code").frame(frame),
        "animated_feature": pipe.animator(bg, mode="feature").frame(frame),
    }
    for name, image in expected.items():
        np.testing.assert_array_equal(load_image(work / f"{name}.png"), image, err_msg=name)
    grid = pipe.grid(
        background=[Factor(image=bg, label="background 1"), Factor(image=pose, label="background 2")],
        pose=[Factor(image=pose, label="pose 1")], shape=["code:2"],
        texture=["code:0", "code:7", Factor(image=texture, label="texture 3")], seed=0,
    )
    assert_same_grid(load_image(work / "grid.png"), grid)
