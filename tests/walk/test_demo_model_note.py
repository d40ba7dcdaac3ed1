"""`mnm mix` says what the demo model is when it is given an image from outside the demo's world.

"Outside" is decided by content: an image file whose sha256 is not among the shipped demo inputs
(``mnm/assets/demo/inputs.sha256``: ``examples/inputs`` and the web page's gallery, the same eight
renders). The bundle counts as the demo model when its manifest is the demo bundle's, copies included.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from mnm.cli.demo_files import write_examples
from mnm.demo import DEMO_DIR, KNOWN_INPUTS
from tests.runtime.conftest import photo
from tests.util import run_cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "inputs"
DEMO = DEMO_DIR / "bundle"


def mix(bundle: Path, out: Path, background: str, *, texture: str | None = None) -> tuple[str, list[str]]:
    """Run `mnm mix`; its stdout and the stderr lines that are notes."""
    pose = str(EXAMPLES / "two-tone-reeds.png")
    result = run_cli("mix", str(bundle), "--background", background, "--pose", pose, "--shape", pose,
                     "--texture", texture or str(EXAMPLES / "striped-sand.png"), "--out", str(out), block_torch=True)
    assert result.returncode == 0, result.stderr
    return result.stdout, [line for line in result.stderr.splitlines() if line.startswith("note:")]


def test_a_photo_on_the_demo_bundle_gets_one_line_on_the_model_and_the_import_command(tmp_path):
    picture = photo(tmp_path / "holiday.jpg", seed=7, size=(120, 90))
    stdout, notes = mix(DEMO, tmp_path / "mix.png", str(picture))
    assert stdout.strip() == f"wrote {tmp_path / 'mix.png'}"
    assert len(notes) == 1
    assert "32-pixel" in notes[0] and "synthetic cartoon birds" in notes[0]
    assert "mnm import mixnmatch --generator G.pth --encoders E.pth --extractor EX.pth" in notes[0]


def test_the_demo_inputs_and_codes_get_no_note_and_a_copied_demo_bundle_still_does(tmp_path):
    _, notes = mix(DEMO, tmp_path / "grid.png", f"{EXAMPLES / 'spotted-water.png'},code:3",
                   texture=f"{EXAMPLES / 'striped-sand.png'},random")
    assert notes == []
    copy = shutil.copytree(DEMO, tmp_path / "somewhere" / "bundle")
    picture = photo(tmp_path / "photo.png", seed=8)
    _, notes = mix(copy, tmp_path / "grid2.png", f"{EXAMPLES / 'spotted-water.png'},{picture}")
    assert len(notes) == 1


@pytest.fixture(scope="module")
def other_bundle(tmp_path_factory) -> Path:
    from mnm.config import PRESETS
    from mnm.export import export_random

    out = tmp_path_factory.mktemp("other") / "tiny"
    export_random(PRESETS["tiny"], out, seed=5, preset="tiny", parity_batches=(2,))
    return out


def test_another_bundle_gets_no_note(other_bundle, tmp_path):
    picture = photo(tmp_path / "photo.png", seed=9)
    _, notes = mix(other_bundle, tmp_path / "mix.png", str(picture))
    assert notes == []


def test_the_shipped_examples_are_what_the_generator_writes_and_are_listed_by_sha256(tmp_path):
    from mnm.imaging import load_image
    from mnm.runtime.video import open_source

    made = write_examples(tmp_path / "inputs")
    assert sorted(p.name for p in EXAMPLES.iterdir()) == sorted([p.name for p in made] + ["README.md"])
    assert "Licence" in (EXAMPLES / "README.md").read_text()
    listed = dict(line.split()[::-1] for line in KNOWN_INPUTS.read_text().splitlines())
    images = sorted(p for p in EXAMPLES.glob("*.png"))
    assert sorted(listed) == [str(p.relative_to(ROOT)) for p in images] and len(images) == 8
    for path in images:
        assert listed[str(path.relative_to(ROOT))] == hashlib.sha256(path.read_bytes()).hexdigest()
        ours, fresh = load_image(path).astype(int), load_image(tmp_path / "inputs" / path.name).astype(int)
        # OpenCV's drawing may move an edge pixel between versions; the pictures stay the same
        assert ours.shape == fresh.shape and np.abs(ours - fresh).mean() < 1.0, "rerun scripts/make_example_inputs.py"
    source = open_source(str(EXAMPLES / "clip.mp4"))
    try:
        frames = list(source.frames())
    finally:
        source.close()
    assert len(frames) == 36 and frames[0].shape == (64, 64, 3)
