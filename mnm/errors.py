"""One exception type for everything a user can get wrong.

The CLI prints an ``MnmError`` as one line and exits non-zero; anything else is a bug and
shows a traceback only with ``--debug``.
"""


class MnmError(Exception):
    """A user-facing error: the message is one line that names the file and the problem."""

    exit_code = 2


def check_format_version(version, supported: int, source: str, what: str, remedy: str) -> int:
    """Refuse a missing, invalid or newer format version of a file this mnm reads, in one line."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise MnmError(f"{source}: missing or invalid {what} format version {version!r}")
    if version > supported:
        raise MnmError(f"{source}: {what} format {version} is newer than this mnm reads ({supported}); {remedy}")
    return version
