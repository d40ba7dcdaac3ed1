"""The lean install must work where importing torch fails (DESIGN §2)."""

from tests.util import run_cli, run_python


def test_torch_really_is_blocked():
    result = run_python("import torch", block_torch=True)
    assert result.returncode != 0
    assert "ImportError" in result.stderr or "ModuleNotFoundError" in result.stderr


def test_import_mnm_and_runtime_without_torch():
    result = run_python(
        "import mnm, mnm.runtime, mnm.config, mnm.codes, mnm.imaging; "
        "import sys; assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]; print('ok')",
        block_torch=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_every_name_the_runtime_exports_resolves_without_torch():
    result = run_python(
        "import mnm.runtime as r; [getattr(r, name) for name in r.__all__]; "
        "import sys; assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]; print('ok')",
        block_torch=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_cli_help_without_torch():
    result = run_cli("--help", block_torch=True)
    assert result.returncode == 0, result.stderr
    for group in ("train", "data", "model", "eval"):
        assert group in result.stdout
