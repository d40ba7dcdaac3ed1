"""The manifest of a batch's output folder: what made its files, so a resume can be trusted.

``mnm-batch.json`` records the bundle's sha256 (of its manifest.json, which pins every graph's
sha256 and is verified when the bundle opens), the plan's sha256, the mode, the seed, the precision
asked for, and the other options that change pixels (fit, stitch, the boxes file's sha256). A run
into a folder with a manifest skips the rows whose files exist only when every field matches; any
difference is refused with one line. A folder with files but no manifest is refused too: its files
may come from anything.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from mnm.errors import MnmError

NAME = "mnm-batch.json"
FORMAT = "mnm-batch"
VERSION = 1


@dataclass(frozen=True)
class Manifest:
    bundle_sha256: str
    plan_sha256: str
    mode: str
    seed: int
    precision: str
    fit: str
    stitch: str | None
    boxes_sha256: str | None

    def to_json(self) -> bytes:
        return (json.dumps({"format": FORMAT, "version": VERSION, **asdict(self)}, indent=2) + "\n").encode()


def claim(store, manifest: Manifest) -> None:
    """Write ``manifest`` into a new or empty folder, or check it against the one there (shards
    started at once: the first to create it wins, the others check theirs against it)."""
    found = store.read(NAME)
    if found is None:
        if store.has_entries(besides=NAME):
            raise MnmError(f"{store}: has files but no {NAME}, so nothing says what made them; "
                           "write the batch into a new or empty folder")
        if store.create(NAME, manifest.to_json()):
            return
        found = store.read(NAME)
    try:
        recorded = json.loads(found)
    except ValueError:
        raise MnmError(f"{store}/{NAME}: not JSON; remove it only if every file there is from this plan") from None
    if not isinstance(recorded, dict) or recorded.get("format") != FORMAT:
        raise MnmError(f"{store}/{NAME}: not an mnm batch manifest")
    if not isinstance(recorded.get("version"), int) or recorded["version"] > VERSION:
        raise MnmError(f"{store}/{NAME}: batch manifest version {recorded.get('version')!r} is newer than this "
                       f"mnm reads ({VERSION})")
    differs = [k for k, v in asdict(manifest).items() if recorded.get(k) != v]
    if differs:
        what = "; ".join(f"{k} {_short(recorded.get(k))} there, {_short(getattr(manifest, k))} now" for k in differs)
        raise MnmError(f"{store}: made by another run ({what}); resume with the same bundle, plan and options, "
                       "or write into a new folder")


def _short(value) -> str:
    text = str(value)
    return text[:12] if len(text) == 64 else text  # a sha256: its first 12 hex digits
