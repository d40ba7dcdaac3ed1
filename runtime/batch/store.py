"""Where a batch writes: a local (or shared, mounted) folder, or any URL that ``pyarrow.fs`` opens.

Every write is whole or absent, so an existing file is a finished row: a local folder gets a
temporary file renamed into place (``mnm.atomic``); ``pyarrow.fs`` local paths (``file://``) the
same with ``move``; an object store (``s3://``, ``gs://``, ``abfs://``...) a single object upload,
which the store makes visible only once complete. pyarrow is imported only for URLs.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
import uuid
from pathlib import Path

from mnm.atomic import FILE_MODE, HOST_TAG, TMP_PREFIX, write_bytes
from mnm.errors import MnmError


def open_store(target: str) -> LocalStore | ArrowStore:
    """``target`` is a folder path or a URL (``scheme://...``) for ``pyarrow.fs``."""
    return ArrowStore(target) if "://" in target else LocalStore(target)


class LocalStore:
    """A folder on this machine (or a shared mount every worker sees)."""

    def __init__(self, root: str):
        self.root = Path(root).absolute()
        if self.root.exists() and not self.root.is_dir():
            raise MnmError(f"{root}: --out must be a folder with --batch")

    def __str__(self) -> str:
        return str(self.root)

    def exists(self, name: str) -> bool:
        return (self.root / name).exists()

    def read(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        write_bytes(self.root / name, data)

    def create(self, name: str, data: bytes) -> bool:
        """Write ``name`` unless it exists (then False): a hard link of a finished temporary file."""
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{os.getpid()}.{HOST_TAG}-", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.chmod(tmp, FILE_MODE)
                os.link(tmp, target)
            finally:
                os.unlink(tmp)
        except FileExistsError:
            return False
        except OSError as exc:
            raise MnmError(f"{target}: cannot write the file ({exc.strerror or exc})") from None
        return True

    def has_entries(self, besides: str) -> bool:
        """Whether the folder holds anything but ``besides`` and hidden entries (a killed writer's temporary file)."""
        if not self.root.is_dir():
            return False
        with os.scandir(self.root) as entries:
            return any(not e.name.startswith(".") and e.name != besides for e in entries)


class ArrowStore:
    """A ``pyarrow.fs`` location: ``file:///shared/out``, ``s3://bucket/prefix``, ``gs://...``, ``hdfs://...``."""

    def __init__(self, url: str):
        try:
            from pyarrow import fs
        except ImportError as exc:
            raise MnmError(f"{url}: writing to a URL needs pyarrow: pip install 'mnm[ray]' ({exc})") from None
        try:
            self.fs, self.base = fs.FileSystem.from_uri(url)
        except (ValueError, OSError) as exc:
            raise MnmError(f"{url}: pyarrow.fs cannot open it ({exc})") from None
        self.url = url
        self._local = isinstance(self.fs, fs.LocalFileSystem)
        self._fs_module = fs

    def __str__(self) -> str:
        return self.url

    def __reduce__(self):  # pickled (to Ray workers) as its URL: each process opens its own filesystem
        return (ArrowStore, (self.url,))

    def _path(self, name: str) -> str:
        return posixpath.join(self.base, name)

    def exists(self, name: str) -> bool:
        return self.fs.get_file_info(self._path(name)).type != self._fs_module.FileType.NotFound

    def read(self, name: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(self._path(name)) as stream:
                return stream.read()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        path = self._path(name)
        try:
            self.fs.create_dir(posixpath.dirname(path), recursive=True)
            if not self._local:  # an object appears whole once its upload completes
                with self.fs.open_output_stream(path) as stream:
                    stream.write(data)
                return
            tmp = posixpath.join(posixpath.dirname(path), f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}")
            with self.fs.open_output_stream(tmp) as stream:
                stream.write(data)
            self.fs.move(tmp, path)
        except OSError as exc:
            raise MnmError(f"{self.url}: cannot write {name} ({exc})") from None

    def create(self, name: str, data: bytes) -> bool:
        """Write ``name`` unless it exists (then False); object stores have no exclusive create, so
        two processes starting in the same instant may both write (the same manifest, if their runs agree)."""
        if self.exists(name):
            return False
        self.write(name, data)
        return True

    def has_entries(self, besides: str) -> bool:
        selector = self._fs_module.FileSelector(self.base, allow_not_found=True, recursive=False)
        names = (posixpath.basename(info.path) for info in self.fs.get_file_info(selector))
        return any(not n.startswith(".") and n != besides for n in names)
