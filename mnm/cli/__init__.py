"""Entry point of the ``mnm`` command: assembles the command modules and turns errors into one line."""

from __future__ import annotations

import sys
import traceback

from mnm.cli import (  # noqa: F401  (each module registers its commands on import)
    animate,
    bench,
    data,
    demo,
    eval,
    export,
    importer,
    info,
    mix,
    model,
    serve,
    train,
)
from mnm.cli.app import STATE, app
from mnm.errors import MnmError


def run(argv: list[str]) -> int:
    """Run the CLI and return its exit code.

    ``MnmError`` becomes ``error: <message>`` on stderr and exit code 2; any other exception is
    a bug and prints one line (the traceback with ``--debug``).
    """
    argv = list(argv)
    try:
        app(args=argv, prog_name="mnm", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except MnmError as exc:
        if STATE["debug"]:
            traceback.print_exc()
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        if STATE["debug"]:
            traceback.print_exc()
        else:
            print(f"error: unexpected {type(exc).__name__}: {one_line(str(exc))} (rerun with --debug for the "
                  "traceback)", file=sys.stderr)
        return 1
    return 0


def one_line(message: str) -> str:
    """The message on one line: line breaks from user text (a path with a newline) shown as \\n."""
    return "\\n".join(message.splitlines())


def main() -> None:
    sys.exit(run(sys.argv[1:]))
