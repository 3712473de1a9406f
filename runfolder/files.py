"""Writing run files so that a crash never leaves half a file, and a file is as readable as any other the
user creates: temp file in the same folder, fsync, rename into place, permissions from the umask.

(`tempfile` creates files 0600 and folders 0700; a run folder shared with a colleague, or read by a backup
job running as another user of the group, must get the usual 0644/0755 under the usual umask 022.)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path


@cache
def _umask() -> int:
    """The process's umask, read once (os.umask can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    return 0o666 & ~_umask()


def folder_mode() -> int:
    return 0o777 & ~_umask()


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write `data` to `path` via a temp file in the same folder (fsync'd when durable), then rename it in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, *, durable: bool = True) -> None:
    """`atomic_write_bytes` for UTF-8 text (line ends as given)."""
    atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


@contextmanager
def replaced_dir(path: Path) -> Iterator[Path]:
    """Yield a fresh temp folder; on success it replaces `path` (old content removed), else it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, folder_mode())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def display(path: Path, base: Path | None = None) -> str:
    """A path as the user should see it: relative to `base` (the working folder) when inside it."""
    if base is not None:
        try:
            return str(path.relative_to(base))
        except ValueError:
            pass
    return str(path)


def short(exc: BaseException) -> str:
    """An exception's first line, for a one-line message."""
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
