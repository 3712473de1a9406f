"""Step 3's preview files: one audit CSV per subordinate, and the rows of merges.csv.

Audit CSVs (`prepare/audit_records/{subordinate id}.csv`) are for people and their spreadsheets:
four rows labelled in the first column `row` (subordinate, target, merge_function,
target_after_merge), one column per field that any of the four has a value in (primary id, primary
name, then alphabetical; a lookup also gets `x@name`, its display name, when Dataverse gave one).
UTF-8 with BOM so Excel reads accents. Cells a spreadsheet would run as a formula (text starting with
`=`, `+`, `-`, `@`, tab or carriage return) get a leading `'` (OWASP CSV injection advice): so a phone
number `+44 20 ...` shows as `'+44 20 ...` in the audit view only. Numbers are written as they are.

(merges.csv, the plan's view, is runfolder/merges_csv.py.)
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AUDIT_LABELS = ("subordinate", "target", "merge_function", "target_after_merge")
NAME_SUFFIX = "@name"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_FIRST = frozenset(_FORMULA_START)


@dataclass(frozen=True)
class AuditRows:
    """The four views of one merge (plain column -> value dicts; lookups as `_x_value` plus `_x_value@name`)."""

    subordinate_id: str
    subordinate: Mapping[str, Any]
    target: Mapping[str, Any]
    merge_function: Mapping[str, Any]
    target_after_merge: Mapping[str, Any]

    def views(self) -> tuple[Mapping[str, Any], ...]:
        return (self.subordinate, self.target, self.merge_function, self.target_after_merge)


def neutralise(text: str) -> str:
    """Prefix `'` to text a spreadsheet would treat as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def cell(value: Any) -> str:
    """One audit cell: '' for None, True/False, numbers as they are, text neutralised, anything else as JSON."""
    kind = type(value)
    if kind is str:  # the common case first: this runs for every cell of every audit file
        return "'" + value if value[:1] in _FORMULA_FIRST else value
    if value is None:
        return ""
    if kind is bool:
        return "True" if value else "False"
    if kind is int or kind is float:
        return str(value)
    return neutralise(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def audit_columns(rows: AuditRows, first: Sequence[str] = ()) -> list[str]:
    """Fields with a value in any of the four views: `first` (primary id, primary name) then alphabetical."""
    present: set[str] = set()
    for view in rows.views():
        present.update([k for k, v in view.items() if v is not None and v != ""])
    leading = [c for c in first if c in present]
    return leading + sorted(present.difference(leading))


def audit_table(rows: AuditRows, first: Sequence[str] = ()) -> tuple[list[str], list[list[str]]]:
    """Header and the four labelled rows of one audit CSV."""
    columns = audit_columns(rows, first)
    body = []
    plain, formula = str, _FORMULA_FIRST
    for label, view in zip(AUDIT_LABELS, rows.views(), strict=True):
        # cell() inlined for the two common cases (empty, ordinary text): this is the hot loop of step 3
        body.append([label, *["" if v is None else v if type(v) is plain and v[:1] not in formula else cell(v)
                              for v in map(view.get, columns)]])
    return ["row", *columns], body


def audit_csv_bytes(header: list[str], rows: Iterable[list[str]]) -> bytes:
    """One audit CSV as bytes: UTF-8 with BOM, CRLF line ends, quoted exactly as the csv module quotes
    (QUOTE_MINIMAL). Lines with nothing to quote, nearly all of them, are joined directly: nine times
    faster than csv.writer, which matters at 100,000 files."""
    lines = []
    for cells in (header, *rows):
        line = ",".join(cells)
        if '"' in line or "\n" in line or "\r" in line or line.count(",") != len(cells) - 1:
            line = ",".join(map(_quoted, cells))
        lines.append(line)
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8")


def _quoted(cell: str) -> str:
    if '"' in cell or "," in cell or "\n" in cell or "\r" in cell:
        return '"' + cell.replace('"', '""') + '"'
    return cell


def write_audit_file(path: Path, header: list[str], rows: Iterable[list[str]]) -> None:
    """Write one audit CSV. Plain and fast, not atomic on its own: step 3 writes these inside
    `RunFolder.replace_dir`, whose temp folder replaces prepare/ in one rename."""
    _write(path, audit_csv_bytes(header, rows))


def _write(path: Path, data: bytes) -> None:
    # os-level calls: half the cost of open()/Path.write_bytes, which matters at 100,000 files
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o666)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


class AuditWriter:
    """Writes a folder of audit CSVs, a batch at a time. Use as a context manager.

    Building the CSV text and creating 100,000 small files is half of step 3's time, so from
    `parallel_from` files on, the batches go to one helper process that does both alongside the planning
    (a thread would not help: it needs the same interpreter lock). When the helper falls behind (`ahead`
    batches waiting), this process writes the next batch itself instead of waiting for it, so both
    processes keep busy whichever of planning and writing is the slower here (on some disks creating a
    file costs more than planning its merge). Smaller runs, and machines where a helper process cannot
    start, write in this process. A write error is raised here, at the latest on exit.
    """

    def __init__(self, folder: Path, first: Sequence[str] = (), *, parallel_from: int = 2000,
                 batch_size: int = 256, ahead: int = 4) -> None:
        self.folder, self.first, self.written = folder, list(first), 0
        self._parallel_from, self._batch_size, self._ahead = parallel_from, batch_size, ahead
        self.written_here = 0  # files this process wrote itself (the rest went to the helper)
        self._batch: list[AuditRows] = []
        self._pool: ProcessPoolExecutor | None = None
        self._pending: deque[tuple[Future[int], list[AuditRows]]] = deque()

    def __enter__(self) -> AuditWriter:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self

    def add(self, rows: AuditRows) -> None:
        """Queue one subordinate's audit file."""
        audit_file_name(rows.subordinate_id)  # refuse a bad id here, not in the helper process
        self._batch.append(rows)
        self.written += 1
        if len(self._batch) >= self._batch_size:
            self._flush()

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        try:
            if exc_type is None:
                self._flush()
                while self._pending:
                    self._settle()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=exc_type is not None)

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        if self._pool is None and self.written >= self._parallel_from:
            self._pool = _helper_process()
            self._parallel_from = 1 << 62  # one try: without a helper process, write here
        while self._pending and self._pending[0][0].done():
            self._settle()  # collect finished batches (and their errors) as we go
        if self._pool is None or len(self._pending) >= self._ahead:
            self.written_here += write_audit_batch(str(self.folder), self.first, batch)
            return
        try:
            future = self._pool.submit(write_audit_batch, str(self.folder), self.first, batch)
        except BrokenProcessPool:  # the helper died before this batch was handed over: write it here
            self._drop_pool()
            self.written_here += write_audit_batch(str(self.folder), self.first, batch)
            return
        self._pending.append((future, batch))

    def _settle(self) -> None:
        """Wait for the oldest batch; if the helper process died, write that batch here (and stop using it)."""
        future, batch = self._pending.popleft()
        try:
            future.result()
        except (BrokenProcessPool, CancelledError):  # cancelled: dropped along with a broken helper
            self._drop_pool()
            self.written_here += write_audit_batch(str(self.folder), self.first, batch)

    def _drop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _helper_process() -> ProcessPoolExecutor | None:
    """A helper process started fresh (spawn, never fork): it shares no connection, lock or thread state with
    this process, whatever this process has open, and only ever writes files."""
    try:
        return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    except (OSError, NotImplementedError, ImportError, ValueError):
        return None


def write_audit_batch(folder: str, first: Sequence[str], batch: Iterable[AuditRows]) -> int:
    """Build and write the audit CSVs of a batch into `folder`; how many were written."""
    count = 0
    for rows in batch:
        _write(Path(folder, audit_file_name(rows.subordinate_id)), audit_csv_bytes(*audit_table(rows, first)))
        count += 1
    return count


def audit_file_name(subordinate_id: str) -> str:
    """`{subordinate id}.csv`; refuses an id that is not a plain file name."""
    name = f"{subordinate_id}.csv"
    if not subordinate_id or Path(name).name != name or subordinate_id.startswith("."):
        raise ValueError(f"not a usable record id for a file name: {subordinate_id!r}")
    return name
