"""One exception type for everything a user can get wrong.

The CLI prints an ``MnmError`` as one line and exits non-zero; anything else is a bug and
shows a traceback only with ``--debug``.
"""


class MnmError(Exception):
    """A user-facing error: the message is one line that names the file and the problem."""

    exit_code = 2
