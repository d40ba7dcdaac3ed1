"""Atomic writes leave the previous good file or folder whenever a write is interrupted."""

import os
import signal
import stat
import subprocess
import sys

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


def _killed_mid_write(target, folder: bool) -> None:
    """A real process that dies by SIGKILL inside an atomic write of ``target``."""
    opener = "atomic_dir" if folder else "atomic_path"
    code = (
        "import os, sys\n"
        f"from mnm.atomic import {opener}\n"
        f"with {opener}(sys.argv[1]) as tmp:\n"
        "    (tmp / 'part' if tmp.is_dir() else tmp).write_text('half')\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def test_temporaries_of_killed_writers_are_removed_by_the_next_write_into_the_folder(tmp_path):
    def names():
        return sorted(p.name for p in tmp_path.iterdir())

    _killed_mid_write(tmp_path / "image.png", folder=False)
    [stale_file] = names()
    assert stale_file.startswith(f"{atomic.TMP_PREFIX}") and stale_file.endswith(".png")
    _killed_mid_write(tmp_path / "bundle", folder=True)  # its first write sweeps the dead file writer's
    [stale_dir] = names()
    assert stale_dir != stale_file and (tmp_path / stale_dir / "part").is_file()
    # Entries this sweep must keep: a writer that is still running (this process), another
    # machine's writer (a shared folder), and a name without a process id.
    alive = tmp_path / f"{atomic.TMP_PREFIX}{os.getpid()}.{atomic.HOST_TAG}-other-x1.png"
    elsewhere = tmp_path / f"{atomic.TMP_PREFIX}999999.{'0' * 8}-other-x2.png"
    unowned = tmp_path / f"{atomic.TMP_PREFIX}bundle-old"
    for path in (alive, elsewhere):
        path.write_text("in progress")
    unowned.mkdir()
    atomic.write_text(tmp_path / "notes.txt", "new")
    assert names() == sorted(["notes.txt", alive.name, elsewhere.name, unowned.name])


def test_a_file_rename_is_followed_by_an_fsync_of_its_folder(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):  # records, then syncs for real
        events.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    atomic.write_text(tmp_path / "a.txt", "x")
    assert events == ["fsync-file", "rename", "fsync-dir"]
    assert (tmp_path / "a.txt").read_text() == "x"
