"""The C API from plain C: c_api_test.c calls every function of mnm.h, success and error paths (each
status and message checked there); here its images are compared with the Python runtime's, and the
embedded interpreter's environment is checked to be the one the library names."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from mnm.imaging import load_image
from mnm.runtime import Bundle, Factor, Pipeline
from tests.capi.conftest import DEMO_BUNDLE, HERE, run


@pytest.fixture(scope="module")
def c_program(cpp, tmp_path_factory):
    """c_api_test run once on the demo bundle, a code-only copy and a damaged copy: (result, work folder)."""
    tmp_path = tmp_path_factory.mktemp("c_api")
    code_only = shutil.copytree(DEMO_BUNDLE, tmp_path / "code_only")
    manifest = json.loads((code_only / "manifest.json").read_text())
    manifest["modes"] = ["code"]
    (code_only / "manifest.json").write_text(json.dumps(manifest))
    damaged = shutil.copytree(DEMO_BUNDLE, tmp_path / "damaged")
    graph = bytearray((damaged / "g_child.onnx").read_bytes())
    graph[len(graph) // 2] ^= 0xFF
    (damaged / "g_child.onnx").write_bytes(bytes(graph))
    work = tmp_path / "work"
    work.mkdir()
    return run(cpp.compile(HERE / "c_api_test.c"), DEMO_BUNDLE, code_only, damaged, work), work


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
    assert "backend ort-cpu (onnxruntime, fp32, 1 thread)" in lines


def test_the_images_of_the_c_program_are_the_python_runtimes(c_program):
    result, work = c_program
    assert result.returncode == 0, result.stdout + result.stderr
    bg, pose, texture, frame = (load_image(work / f"{n}.png") for n in ("ref_background", "ref_pose", "ref_texture",
                                                                            "frame"))
    pipe = Pipeline(DEMO_BUNDLE)
    boxed = Factor(image=bg, box=(10, 8, 30, 40))
    expected = {
        "mix_specs": pipe.mix("seed:1", "seed:2", "code:1", "code:3", seed=0),
        "mix_images_code": pipe.mix(bg, pose, pose, texture, seed=0),
        "mix_images_feature": pipe.mix(bg, pose, pose, texture, mode="feature", seed=0),
        "mix_box_stitch": pipe.mix(boxed, pose, pose, texture, seed=0, stitch="background"),
        "grid": pipe.grid(
            background=[Factor(image=bg, label="background 1"), Factor(image=pose, label="background 2")],
            pose=["seed:2"], shape=["code:2"], texture=["code:0", "code:7", Factor(image=texture, label="texture 3")],
            seed=0,
        ).image(),
        "animated_code": pipe.animator(bg, mode="code").frame(frame),
        "animated_feature": pipe.animator(bg, mode="feature").frame(frame),
    }
    for name, image in expected.items():
        np.testing.assert_array_equal(load_image(work / f"{name}.png"), image, err_msg=name)


def _mix_with_python(cpp, references, tmp_path, python: str):
    return run(cpp.program("mnm-mix"), DEMO_BUNDLE, *references, tmp_path / "out.png", env={"MNM_PYTHON": python})


def test_an_environment_without_mnm_is_an_error_code_not_a_traceback(cpp, references, tmp_path):
    env = tmp_path / "bare-env"  # same Python installation, nothing installed
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    result = _mix_with_python(cpp, references, tmp_path, str(env / "bin" / "python"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: the embedded Python cannot import cffi (ModuleNotFoundError")
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "out.png").exists()

    result = _mix_with_python(cpp, references, tmp_path, str(tmp_path / "no" / "python"))
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path / 'no' / 'python'}: no Python executable there (from MNM_PYTHON); " \
                            "give the python of an environment with mnm installed (mnm_set_python or MNM_PYTHON)\n"


def test_mnm_python_selects_the_environment(cpp, references, tmp_path):
    result = _mix_with_python(cpp, references, tmp_path, sys.executable)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.png").exists()


def test_the_embedded_runtime_never_imports_torch(cpp, references, tmp_path):
    """An environment that sees this one's packages but where `import torch` fails: the C API still works."""
    env = tmp_path / "no-torch"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site_packages = env / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    (site_packages / "torch").mkdir()
    (site_packages / "torch" / "__init__.py").write_text("raise ImportError('torch is blocked here')\n")
    ours = [p for p in sys.path if p.endswith("site-packages")]
    (site_packages / "zz_the_tested_environment.pth").write_text(
        f"import site; list(map(site.addsitedir, {ours!r}))\n")
    result = _mix_with_python(cpp, references, tmp_path, str(env / "bin" / "python"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.png").exists()
