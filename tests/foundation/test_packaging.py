"""pyproject.toml must list every package folder (or a non-editable install silently lacks it), and its GPU
extras and install recipes must resolve to one onnxruntime and one CUDA major (pip's resolver, dry run)."""

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    roots = {name: ROOT / folder for name, folder in config["package-dir"].items()}
    found = set()
    for name, folder in roots.items():
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder)
            if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                continue
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    # A sub-folder of mnm/ that is itself mapped (none today) would appear twice; mapped roots win.
    assert found == listed, f"missing: {sorted(found - listed)}, stale: {sorted(listed - found)}"


def _extras() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def test_gpu_extras_pair_tensorrt_and_cuda_python_by_cuda_major():
    from packaging.requirements import Requirement

    extras = _extras()
    assert "gpu" not in extras  # onnxruntime-gpu cannot be an extra beside the base onnxruntime (docs/gpu.md)
    assert extras["trt"] == ["mnm[trt-cu13]"]
    for major in (12, 13):
        reqs = {r.name: r.specifier for r in map(Requirement, extras[f"trt-cu{major}"])}
        assert set(reqs) == {f"tensorrt-cu{major}", "cuda-python"}
        # TensorRT 10: the major onnxruntime-gpu's TensorRT provider links (libnvinfer.so.10)
        assert "10.13.3.9" in reqs[f"tensorrt-cu{major}"] and "11.0.0" not in reqs[f"tensorrt-cu{major}"]
        assert f"{major}.9.0" in reqs["cuda-python"] or f"{major}.4.0" in reqs["cuda-python"]
        assert f"{major + 1}.0.0" not in reqs["cuda-python"] and f"{major - 1}.9.0" not in reqs["cuda-python"]
        recipe = (ROOT / "requirements" / f"onnxruntime-gpu-cu{major}.txt").read_text()
        assert "onnxruntime-gpu[cuda,cudnn]" in recipe


def _pypi_reachable() -> bool:
    import socket

    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError:
        return False
    return True


def _resolve(tmp_path, *requirements: str, no_deps: bool = False) -> dict:
    """pip's resolver on PyPI, downloading metadata only: {name: (version, requires_dist)}."""
    import json
    import subprocess
    import sys

    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report",
           str(report), "--index-url", "https://pypi.org/simple", *(["--no-deps"] if no_deps else []), *requirements]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return {item["metadata"]["name"].lower().replace("_", "-"):
            (item["metadata"]["version"], item["metadata"].get("requires_dist") or [])
            for item in json.loads(report.read_text())["install"]}


@pytest.mark.slow
@pytest.mark.parametrize("major", [12, 13])
def test_the_gpu_install_resolves_to_one_onnxruntime_and_one_cuda_major(tmp_path, major):
    if not _pypi_reachable():
        pytest.skip("PyPI is not reachable from here")
    extra = _extras()[f"trt-cu{major}"]
    cuda_python = next(r for r in extra if r.startswith("cuda-python"))
    found = _resolve(tmp_path, "-r", str(ROOT / "requirements" / f"onnxruntime-gpu-cu{major}.txt"), cuda_python)
    assert "onnxruntime" not in found and "onnxruntime-gpu" in found
    cuda_packages = {name for name in found if name.startswith("nvidia-")}
    assert f"nvidia-cudnn-cu{major}" in cuda_packages
    runtime = next(name for name in cuda_packages if name.startswith("nvidia-cuda-runtime"))
    assert found[runtime][0].startswith(f"{major}."), found[runtime]
    assert found["cuda-python"][0].startswith(f"{major}.") and found["cuda-bindings"][0].startswith(f"{major}.")
    # TensorRT's wheels proper are fetched from NVIDIA's index at build time (not reachable from every
    # machine): resolve the package and read what it pins instead of installing it.
    tensorrt = next(r for r in extra if r.startswith("tensorrt"))
    name, (version, requires) = next(iter(_resolve(tmp_path, tensorrt, no_deps=True).items()))
    assert name == f"tensorrt-cu{major}" and version.startswith("10.")
    assert any(r.replace("-", "_").startswith(f"tensorrt_cu{major}_libs==") and version in r for r in requires)
