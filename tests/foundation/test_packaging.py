"""pyproject.toml must list every package folder, or a non-editable install silently lacks it; the
Makefile's two commands install what each needs."""

import shutil
import subprocess
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


def _make_dry_run(target: str, venv: Path) -> list[str]:
    """The commands ``make TARGET`` would run for a fresh clone (``make -n``: printed, not run)."""
    proc = subprocess.run(["make", "-n", target, f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_installs_the_base_only_and_says_so_while_make_test_installs_dev(tmp_path):
    demo = _make_dry_run("demo", tmp_path / "venv")
    installs = [line for line in demo if "pip install" in line]
    assert installs == [f"{tmp_path / 'venv'}/bin/pip install -q -e ."]  # no extras: no torch
    assert demo[-1] == f"{tmp_path / 'venv'}/bin/mnm demo --out mnm-demo"
    said = [line for line in demo if line.startswith("echo ")]
    assert any("base install" in line and "no torch" in line for line in said)
    assert any("mnm demo" in line for line in said)
    test = _make_dry_run("test", tmp_path / "venv")
    assert [line for line in test if "pip install" in line] == [f"{tmp_path / 'venv'}/bin/pip install -q -e '.[dev]'"]
    assert test[-1] == f"MNM_NO_PROGRESS=1 {tmp_path / 'venv'}/bin/python -m pytest -q"
    # a venv the demo made is not mistaken for the development install
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    for name in ("bin/python", "bin/mnm", ".mnm-base"):
        (tmp_path / "venv" / name).touch()
    assert any("install -q -e '.[dev]'" in line for line in _make_dry_run("test", tmp_path / "venv"))
    assert not any("pip install" in line for line in _make_dry_run("demo", tmp_path / "venv"))
