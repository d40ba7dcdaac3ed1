"""`mnm serve` on the command line: the lean install stays lean, bad options get one line."""

from __future__ import annotations

import socket

from tests.util import run_cli, run_python


def test_help_imports_no_server_libraries():
    """`mnm --help` (and importing the runtime) loads neither FastAPI, uvicorn, Ray nor torch."""
    code = ("import sys; from mnm.cli import run; import mnm.runtime; code = run(['--help']); "
            "heavy = [m for m in ('fastapi', 'uvicorn', 'ray', 'starlette', 'prometheus_client', 'torch') "
            "if sys.modules.get(m) is not None]; print('loaded:', heavy); sys.exit(code)")
    result = run_python(code, block_torch=True)
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout and "loaded: []" in result.stdout


def test_serve_help_lists_the_knobs():
    result = run_cli("serve", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--max-batch", "--max-wait-ms", "--max-queue", "--precision", "--ray", "--replicas", "--address"):
        assert option in result.stdout


def test_missing_bundle_is_one_line(tmp_path):
    result = run_cli("serve", str(tmp_path / "nowhere"), "--port", "0")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1


def test_int8_on_a_bundle_without_int8_graphs_is_one_line(demo):
    result = run_cli("serve", str(demo), "--port", "0", "--precision", "int8")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "no INT8 graphs" in result.stderr


def test_replicas_need_ray(demo):
    result = run_cli("serve", str(demo), "--replicas", "2")
    assert result.returncode == 2 and "--ray" in result.stderr


def test_port_in_use_is_one_line(demo):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_cli("serve", str(demo), "--port", str(taken.getsockname()[1]))
    assert result.returncode == 2 and "cannot listen on" in result.stderr
