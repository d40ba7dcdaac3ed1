"""The name table against the published tensor table, and files at the published sizes.

The table test needs no files: our modules on the meta device, renamed by the importer's table,
must give exactly the names, shapes, dtypes and order of the authors' CUB files (and of Dogs files,
whose code-width layers differ). Equal order means the k-th tensor of their file lands on the k-th
of ours, so no row of the table can swap two modules of the same shape unnoticed.
"""

from __future__ import annotations

import json

import pytest

from mnm.config import PRESETS, ModelConfig
from mnm.importers.mixnmatch import reference_layout
from mnm.importers.mixnmatch_table import SLOTS, module_pairs
from mnm.training.export_source import load_for_export
from tests.importers.conftest import check_graphs_against, import_args, torch_twin, write_files
from tests.importers.reference_files import DOGS, FILES, published_layout, random_state, with_code_widths
from tests.util import run_cli

PAPER = PRESETS["paper"]
DOGS_FULL = ModelConfig(**{**PAPER.to_dict(), **DOGS})


def ours_as_published(cfg: ModelConfig, slot: str) -> list[tuple[str, tuple[int, ...], str]]:
    return [(name, want.shape, "float32" if want.floating else "int64")
            for name, want in reference_layout(cfg, slot).items()]


@pytest.mark.parametrize("slot", list(FILES))
def test_the_table_gives_the_published_cub_layout_in_order(slot):
    assert ours_as_published(PAPER, slot) == published_layout(FILES[slot])


@pytest.mark.parametrize("slot", list(FILES))
def test_the_table_gives_the_dogs_layout_in_order(slot):
    assert ours_as_published(DOGS_FULL, slot) == with_code_widths(FILES[slot], **DOGS)


@pytest.mark.parametrize("slot", list(FILES))
def test_every_row_of_the_table_names_published_modules(slot):
    published = [name for name, _, _ in published_layout(FILES[slot])]
    pairs = module_pairs(slot)
    for theirs, _ in pairs:
        assert any(name.startswith(theirs + ".") for name in published), theirs
    ours = [o for _, o in pairs]
    assert len(set(ours)) == len(ours) and not any(a.startswith(b + ".") for a in ours for b in ours)
    assert len({t for t, _ in pairs}) == len(pairs)
    assert {o.split(".")[0] for o in ours} == {SLOTS[slot].prefix}
    assert SLOTS[slot].usual_name == FILES[slot]


@pytest.mark.slow
def test_dogs_files_import_without_flags_and_code_mode_only_without_extractor(tmp_path):
    """Published-size Dogs files (shapes from the published table, not from our modules)."""
    states = {slot: random_state(with_code_widths(FILES[slot], **DOGS), seed=31 + i)
              for i, slot in enumerate(("generator", "encoders"))}
    files = write_files(states, tmp_path / "dogs")
    out = tmp_path / "dogs-checkpoint"
    result = run_cli(*import_args(files, out, extractor=False))
    assert result.returncode == 0, result.stderr
    assert "N_p 12, N_c = N_b 120" in result.stdout and "code mode only" in result.stdout
    meta = json.loads((out / "meta.json").read_text())
    assert meta["config"] == DOGS_FULL.to_dict()
    assert meta["imported"]["code_mode_only"] and meta["modes"] == ["code"] and not meta["has_extractor"]
    assert set(meta["imported"]["files"]) == {"generator", "encoders"}
    cfg, generator, encoders, extractor, _ = load_for_export(out)
    assert cfg == DOGS_FULL and extractor is None


@pytest.mark.slow
def test_published_cub_files_import_export_and_match_torch(tmp_path):
    """The paper size end to end: files from the published table (random values), `mnm import`,
    `mnm export` (every graph checked by the exporter), then every graph against the torch twin."""
    states = {slot: random_state(published_layout(file), seed=41 + i) for i, (slot, file) in enumerate(FILES.items())}
    files = write_files(states, tmp_path / "cub", legacy=True)
    checkpoint, bundle = tmp_path / "cub-checkpoint", tmp_path / "cub-bundle"
    imported = run_cli(*import_args(files, checkpoint))
    assert imported.returncode == 0, imported.stderr
    assert "S 128, Z 100, N_p 20, N_c = N_b 200, ngf 64, ndf 64" in imported.stdout
    exported = run_cli("export", str(checkpoint), "--out", str(bundle))
    assert exported.returncode == 0, exported.stderr
    check_graphs_against(bundle, torch_twin(PAPER, states), PAPER)
