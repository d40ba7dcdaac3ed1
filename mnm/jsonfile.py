"""Reading a JSON object a user or an earlier run left on disk: any failure is one error line."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mnm.errors import MnmError


def read_json_object(path: str | os.PathLike, what: str, missing: str | None = None) -> dict:
    """The JSON object in ``path``; ``what`` names the file in errors, ``missing`` replaces the
    not-found message (e.g. with a hint about what the folder should have been)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MnmError(f"{path}: {missing or what + ' not found'}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MnmError(f"{path}: unreadable {what}, not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise MnmError(f"{path}: the {what} must hold a JSON object")
    return data
