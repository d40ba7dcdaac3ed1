"""Debian packages a test needs, installed with apt-get when missing and we are root."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def apt_install_missing(packages: tuple[str, ...], needed: tuple[Path, ...]) -> str | None:
    """Why ``needed`` files are absent after trying ``apt-get install packages``; None once they exist."""
    if all(path.exists() for path in needed):
        return None
    names = " ".join(packages)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{names}: not installed and cannot be (needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    result = subprocess.run(install, capture_output=True, text=True, env=env, timeout=1200)
    if result.returncode != 0:  # a fresh container has no package lists yet
        subprocess.run(["apt-get", "update"], capture_output=True, env=env, timeout=600)
        result = subprocess.run(install, capture_output=True, text=True, env=env, timeout=1200)
    if result.returncode != 0 or not all(path.exists() for path in needed):
        lines = (result.stderr or result.stdout).strip().splitlines()
        return f"apt-get install {names} failed: {lines[-1] if lines else result.returncode}"
    return None
