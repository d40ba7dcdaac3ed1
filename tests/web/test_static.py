"""The page's files without a browser: served with a same-origin-only policy, nothing from elsewhere,
the gallery is what the demo's generator renders, and a non-editable install ships every file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib

import httpx
import numpy as np

from mnm.imaging import load_image
from tests.web.conftest import STATIC

ROOT = STATIC.parents[2]
FILES = sorted(p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file())
TEXT = [name for name in FILES if name.endswith((".html", ".css", ".js", ".json"))]


def test_the_page_and_every_file_it_uses_are_served_from_this_origin(server):
    page = httpx.get(server.url + "/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self' blob:" in policy
    assert httpx.head(server.url + "/", timeout=30).status_code == 200
    for name in FILES:
        answer = httpx.get(f"{server.url}/static/{name}", timeout=30)
        assert answer.status_code == 200 and answer.content == (STATIC / name).read_bytes(), name
    referenced = set(re.findall(r'(?:src|href)="/static/([^"]+)"', page.text))
    for name in (n for n in TEXT if n.endswith(".js")):
        folder = os.path.dirname(name)
        text = (STATIC / name).read_text()
        referenced |= {os.path.normpath(os.path.join(folder, m)) for m in re.findall(r'from "(\./[^"]+)"', text)}
    assert referenced <= set(FILES), referenced - set(FILES)
    assert {"style.css", "js/main.js", "js/mix.js", "js/grid.js", "js/webcam.js"} <= referenced
    assert httpx.get(server.url + "/static/nothing.js", timeout=30).status_code == 404
    assert "/" not in httpx.get(server.url + "/openapi.json", timeout=30).json()["paths"]


def test_no_file_of_the_page_names_another_origin():
    for name in TEXT:
        found = re.findall(r"\w+://[^\s\"'`)]*", (STATIC / name).read_text())
        assert found == [], f"{name}: {found}"


def test_the_gallery_is_what_the_demo_generator_renders(tmp_path):
    from mnm.cli.demo_files import write_gallery

    entries = write_gallery(tmp_path / "gallery")
    shipped = json.loads((STATIC / "gallery" / "gallery.json").read_text())
    assert shipped == {"images": entries} and len(entries) == 8
    listed = sorted([e["file"] for e in entries] + ["gallery.json"])
    assert sorted(p.name for p in (STATIC / "gallery").iterdir()) == listed
    for entry in entries:
        made = load_image(tmp_path / "gallery" / entry["file"]).astype(int)
        ours = load_image(STATIC / "gallery" / entry["file"]).astype(int)
        assert made.shape == ours.shape == (64, 64, 3)
        # OpenCV's drawing may move an edge pixel between versions; the pictures stay the same
        assert np.abs(made - ours).mean() < 1.0, f"{entry['file']}: rerun scripts/make_web_gallery.py"


BUILD = """
import sys
from setuptools.config.pyprojecttoml import apply_configuration
from setuptools.dist import Distribution

dist = Distribution({"script_name": "setup.py"})
apply_configuration(dist, "pyproject.toml")
build = dist.get_command_obj("build_py")
build.build_lib = sys.argv[1]
build.ensure_finalized()
build.run()
"""

SERVE = """
import sys
from fastapi import FastAPI
from fastapi.testclient import TestClient
from mnm.runtime.server import web

assert str(web.STATIC).startswith(sys.argv[1]), web.STATIC
app = FastAPI()
web.install(app)
client = TestClient(app)
for path in sys.argv[2:]:
    answer = client.get(path)
    print(path, answer.status_code, len(answer.content))
"""


def test_a_non_editable_install_ships_the_page(tmp_path):
    """setuptools' build_py (what a wheel packs) copies every static file, and the page is served from the copy.
    It builds from a clean copy of the sources: an egg-info folder left by an earlier build lists files too."""
    source, build = tmp_path / "source", tmp_path / "build"
    junk = shutil.ignore_patterns("*.egg-info", "__pycache__", ".*")
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for folder in set(package_dirs.values()):
        shutil.copytree(ROOT / folder, source / folder, ignore=junk)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    result = subprocess.run([sys.executable, "-c", BUILD, str(build)], cwd=source, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    installed = build / "mnm" / "runtime" / "server" / "static"
    for name in FILES:
        assert (installed / name).read_bytes() == (STATIC / name).read_bytes(), name
    paths = ["/", *(f"/static/{name}" for name in FILES)]
    result = subprocess.run([sys.executable, "-c", SERVE, str(build), *paths], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(build)})
    assert result.returncode == 0, result.stderr[-2000:]
    served = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert served.keys() == set(paths)
    assert all(value.startswith("200 ") for value in served.values()), served
