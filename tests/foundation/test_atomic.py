"""Atomic writes leave the previous good file or folder whenever a write is interrupted."""

import os
import stat

import pytest

from mnm import atomic


def test_atomic_path_replaces_on_success_and_keeps_old_on_error(tmp_path):
    target = tmp_path / "out.txt"
    atomic.write_text(target, "first")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    atomic.write_text(target, "second")
    assert target.read_text() == "second"


def test_atomic_path_keeps_the_suffix_for_format_sniffing_writers(tmp_path):
    with atomic.atomic_path(tmp_path / "clip.mp4") as tmp:
        assert tmp.suffix == ".mp4" and tmp.parent == tmp_path
        tmp.write_bytes(b"x")


def test_atomic_dir_replaces_a_folder_and_keeps_old_on_error(tmp_path):
    target = tmp_path / "bundle"
    with atomic.atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic.atomic_dir(target) as tmp:
        (tmp / "a").write_text("2")
        raise RuntimeError("interrupted")
    assert (target / "a").read_text() == "1"
    with atomic.atomic_dir(target) as tmp:
        (tmp / "b").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_a_folder_left_aside_by_a_kill_between_renames_is_restored(tmp_path):
    target = tmp_path / "bundle"
    with atomic.atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    # What a kill between the two renames leaves: the old folder aside, nothing at the name.
    aside = tmp_path / f"{atomic.TMP_PREFIX}bundle-old"
    target.rename(aside)
    atomic.recover_dir(target)
    assert (target / "a").read_text() == "1" and not aside.exists()


def test_finished_files_and_folders_get_the_umask_mode_not_owner_only(tmp_path):
    atomic.write_text(tmp_path / "a.txt", "x")
    with atomic.atomic_dir(tmp_path / "d") as tmp:
        (tmp / "f").write_text("y")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o777 & ~umask
