"""The README's quick start, run as a new user would: each marked block, in order, in a fresh copy.

README.md marks every block of the walk with ``<!-- walk: NAME -->`` right before its ```bash fence;
this file runs those blocks in README order, one test per block, in a copy of the repository's
files as git sees them (tracked and not ignored: what a clone of this commit plus the working
changes holds, no ``.venv``, no build outputs). Each command (a line; a trailing backslash joins
the next) runs with ``bash -c`` in the copy and must exit 0. What cannot be pasted literally:

- ``mnm serve`` runs until stopped: it is started on a free port in place of the README's, the URL
  named in its comment must answer with the web page, then Ctrl-C (SIGINT) must stop it cleanly;
- the published models are files the user downloads: stand-ins in the published format (the
  authors' tensor names and order, reduced widths, ``torch.save`` pickles) are put where the
  README says to put them.

Slow by nature (a fresh virtual environment, the base install, the serve and train extras from
pip's cache, an export): a few minutes.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- walk: (\w[\w-]*) -->\n```bash\n(.*?)```", re.S)
TIMEOUT_S = 900  # per command: a pip install of the train extra on a busy 2-core machine


def walk_blocks(readme: str) -> dict[str, list[str]]:
    """The walk's blocks in README order: name → commands (continuation lines joined)."""
    blocks = {}
    for name, body in BLOCK.findall(readme):
        commands = [line.strip() for line in body.replace("\\\n", " ").splitlines()]
        assert name not in blocks, f"README.md: two walk blocks named {name}"
        blocks[name] = [re.sub(r"\s+", " ", c) for c in commands if c and not c.startswith("#")]
    return blocks


BLOCKS = walk_blocks((ROOT / "README.md").read_text())
failed: list[str] = []  # blocks that failed: later blocks build on them


def test_the_readme_marks_the_walk():
    assert list(BLOCKS) == ["demo", "mix", "serve", "cpp", "published"]
    assert BLOCKS["demo"] == ["make demo"]


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """The repository's files as git sees them, copied with their modes into a fresh folder."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    copy = tmp_path_factory.mktemp("walk") / "mnm"
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not in a clone either
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    return copy


def user_env() -> dict[str, str]:
    """A shell as a new user has it: no virtual environment active (this test's own is dropped from PATH)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    venv = os.environ.get("VIRTUAL_ENV")
    here = {str(ROOT / ".venv" / "bin"), *([str(Path(venv) / "bin")] if venv else [])}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p not in here)
    env["MNM_NO_PROGRESS"] = "1"  # the log stays readable; bars are on stderr either way
    env["PIP_NO_COMPILE"] = "1"  # pip skips byte-compiling torch's files: the same install, a minute sooner
    return env


def run(command: str, cwd: Path) -> None:
    result = subprocess.run(["bash", "-c", command], cwd=cwd, env=user_env(), capture_output=True, text=True,
                            timeout=TIMEOUT_S)
    assert result.returncode == 0, (f"README walk: `{command}` exited {result.returncode}\n"
                                    f"stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}")


def serve(command: str, cwd: Path) -> None:
    """Start the server on a free port, fetch the page the README names, stop it with Ctrl-C."""
    url = re.search(r"open (http://\S+)", command)
    assert url and re.search(r"--port \d+", command), f"README walk: {command!r} names no --port and URL to open"
    port = free_port()
    command = re.sub(r"--port \d+", f"--port {port}", command.split("#")[0])
    page = re.sub(r":\d+/", f":{port}/", url.group(1))
    server = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd, env=user_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        body = wait_for(page, server)
        assert "<html" in body.lower() and "mnm" in body.lower(), body[:500]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            output = server.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            server.kill()
            output = server.communicate()[0]
    # Ctrl-C: a clean stop exits 130 (128 + SIGINT, the shell's convention) and says so, no traceback.
    assert server.returncode in (0, 128 + signal.SIGINT) and "Traceback" not in output, (
        f"README walk: `{command}` ended with {server.returncode} on Ctrl-C\n{output[-3000:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, server: subprocess.Popen, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"README walk: the server exited {server.returncode} before {url} answered:\n"
                        f"{server.stdout.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"README walk: {url} did not answer within {timeout:.0f} s")


def published_stand_ins(folder: Path) -> None:
    """G.pth, E.pth, EX.pth as the README tells the user to download them: the published layout
    (CUB code widths, S 128) with reduced channel widths, so the export takes seconds, not minutes."""
    from tests.importers.conftest import CUB, reference_states, small_config, write_files

    write_files(reference_states(small_config(CUB), seed=3), folder)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BLOCKS))
def test_readme_walk(name, clone):
    if failed:
        pytest.skip(f"an earlier block of the walk failed ({', '.join(failed)}); this one builds on it")
    if name == "published":
        published_stand_ins(clone)
    failed.append(name)
    for command in BLOCKS[name]:
        (serve if re.search(r"\bmnm serve\b", command) else run)(command, clone)
    failed.remove(name)
