"""The bundled demo model: where it is, its record, and whether an input is from its world.

It needs nothing beyond the core package, so every layer may ask (the CLI's note on foreign
images, tests, benchmarks). What ``mnm demo`` renders with it (it needs the runtime and the
synthetic scenes) is ``mnm.cli.demo_files``. The demo model only knows the world of its synthetic
birds; the eight references shipped as files (``examples/inputs``, the web page's gallery) are
from it, and ``foreign_images`` says which inputs are not.
"""

from __future__ import annotations

from pathlib import Path

DEMO_DIR = Path(__file__).parent / "assets" / "demo"
KNOWN_INPUTS = DEMO_DIR / "inputs.sha256"
"""sha256 of every image shipped as the demo model's own (``examples/inputs``, the gallery), ``sha256sum`` format."""
IMPORT_COMMAND = "mnm import mixnmatch --generator G.pth --encoders E.pth --extractor EX.pth --out models/cub"


def demo_info() -> dict:
    """The demo model's record: training commands, data parameters, steps, evaluation numbers."""
    from mnm.jsonfile import read_json_object

    return read_json_object(DEMO_DIR / "demo.json", "demo model record",
                            missing="the demo model is missing from this installation")


def model_note() -> str:
    """One line on what the demo model is, for wherever a user meets it."""
    from mnm.config import PRESETS

    info = demo_info()
    size = PRESETS[info["preset"]].image_size
    return (f"the demo model is a {size}-pixel MixNMatch trained on {info['images']} synthetic cartoon birds; "
            f"for photos import the published models: {IMPORT_COMMAND}")


def is_demo_bundle(bundle: Path) -> bool:
    """Whether ``bundle`` is the demo bundle or a copy of it (the same manifest, which pins every graph's sha256)."""
    try:
        return (Path(bundle) / "manifest.json").read_bytes() == (DEMO_DIR / "bundle" / "manifest.json").read_bytes()
    except OSError:
        return False


def foreign_images(paths) -> list[Path]:
    """The image files among ``paths`` that are not shipped demo inputs (by sha256: ``KNOWN_INPUTS``)."""
    import hashlib

    known = {line.split()[0] for line in KNOWN_INPUTS.read_text().splitlines() if line.strip()}
    return [Path(p) for p in paths if hashlib.sha256(Path(p).read_bytes()).hexdigest() not in known]
