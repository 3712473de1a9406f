"""One step at a time per run folder: step 3 (which replaces the plan), step 4 and undo (which send what the
plan says) each hold the folder's lock while they run. The lock is an OS file lock on `.lock` in the run
folder: it dies with the process, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import IO

from errors import RunStateError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
try:  # Windows
    import msvcrt
except ImportError:
    msvcrt = None  # type: ignore[assignment]


class RunLock:
    """`with RunLock(run.lock_path, "step 4"):` -- RunStateError at once when another step holds it."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path = path
        self.holder = holder
        self._fh: IO[bytes] | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+b")  # noqa: SIM115 - closed in __exit__
        try:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            elif msvcrt is not None:  # pragma: no cover - Windows: lock the first byte
                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            fh.seek(0)
            other = fh.read(200).decode("utf-8", "replace").strip() or "another step"
            fh.close()
            raise RunStateError(f"{other} is using the run folder {self.path.parent.name} right now.",
                                f"Wait for it to finish (or stop it), then run {self.holder} again.",
                                str(self.path)) from exc
        fh.seek(0)
        fh.truncate()
        fh.write(f"{self.holder} (process {os.getpid()})".encode())
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fh is not None:
            self._fh.close()  # closing releases the lock
            self._fh = None
