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
import os
import queue
import threading
from collections.abc import Iterable, Mapping, Sequence
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


def audit_table(rows: AuditRows, first: Sequence[str] = (),
                columns: Sequence[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and the four labelled rows of one audit CSV (`columns`: `audit_columns(rows, first)` when the
    caller has it already)."""
    if columns is None:
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


def _write(path: str, data: bytes) -> None:
    # os-level calls: half the cost of open()/Path.write_bytes, which matters at 100,000 files
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o666)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


class AuditWriter:
    """Writes a folder of audit CSVs as merges are planned. Use as a context manager.

    The caller builds each file's bytes (Python work); a writer thread creates the files (system calls, which
    release the interpreter lock: on a slow disk they cost more than the planning, 100,000 small files).
    One thread by default: on the disks measured, more threads spent more system time contending for the
    folder's lock and were no faster. A write error is raised here, at the latest on exit.
    """

    def __init__(self, folder: Path, first: Sequence[str] = (), *, threads: int = 1, batch_size: int = 64) -> None:
        self.folder, self.first, self.written = folder, list(first), 0
        self._threads, self._batch_size = threads, batch_size
        self._batch: list[tuple[str, bytes]] = []
        # up to ~30,000 files may wait (about 100 MB): planning runs on while a slow disk catches up
        self._queue: queue.Queue[list[tuple[str, bytes]] | None] = queue.Queue(maxsize=max(1, 30_000 // batch_size))
        self._workers: list[threading.Thread] = []
        self._error: BaseException | None = None

    def __enter__(self) -> AuditWriter:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._workers = [threading.Thread(target=self._write_batches, name=f"audit-writer-{n}", daemon=True)
                         for n in range(self._threads)]
        for worker in self._workers:
            worker.start()
        return self

    def add(self, rows: AuditRows, columns: Sequence[str] | None = None) -> None:
        """Queue one subordinate's audit file (`columns`: its `audit_columns`, when the caller has them)."""
        self.add_bytes(rows.subordinate_id, audit_csv_bytes(*audit_table(rows, self.first, columns)))

    def add_bytes(self, subordinate_id: str, data: bytes) -> None:
        """Queue one subordinate's audit file, built already (`audit_csv_bytes`)."""
        path = os.path.join(self.folder, audit_file_name(subordinate_id))  # refuses a bad id here
        self._batch.append((path, data))
        self.written += 1
        if len(self._batch) >= self._batch_size:
            self._hand_over()

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if exc_type is None:
            self._hand_over()
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join()
        if exc_type is None and self._error is not None:
            raise self._error

    def _hand_over(self) -> None:
        if self._error is not None:
            raise self._error
        if self._batch:
            self._queue.put(self._batch)
            self._batch = []

    def _write_batches(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain: the error is raised in the planning thread
            try:
                for path, data in batch:
                    _write(path, data)
            except OSError as exc:
                self._error = exc


def audit_file_name(subordinate_id: str) -> str:
    """`{subordinate id}.csv`; refuses an id that is not a plain file name."""
    name = f"{subordinate_id}.csv"
    if not subordinate_id or Path(name).name != name or subordinate_id.startswith("."):
        raise ValueError(f"not a usable record id for a file name: {subordinate_id!r}")
    return name
