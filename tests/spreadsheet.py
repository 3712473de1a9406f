"""What spreadsheets do to a CSV file they open and save: the edits users make (sort one column, delete or
paste rows, swap cells) and the forms the file comes back in (encodings, BOM or not, `;` separators, CRLF,
trailing empty rows, dates reformatted). Written from how Excel and LibreOffice behave, not from our reader."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

Table = list[list[str]]


def open_table(path: Path, encoding: str = "utf-8-sig") -> Table:
    """The file as a spreadsheet shows it (Excel reads a BOM-marked file as UTF-8, one without as ANSI)."""
    with path.open(encoding=encoding, newline="") as fh:
        return [row for row in csv.reader(fh)]


def save_table(path: Path, table: Table, *, encoding: str = "utf-8", bom: bool = True, sep: str = ",",
               line_end: str = "\r\n", quote_all: bool = False, errors: str = "replace",
               trailing_empty_rows: int = 0) -> None:
    """Save as a spreadsheet would: Excel's "CSV UTF-8" is utf-8 + BOM + CRLF; its "CSV (Comma delimited)"
    is the ANSI code page (cp1252 in the West, '?' for what it cannot hold); European locales use ';'."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=sep, lineterminator=line_end,
                        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    writer.writerows(table)
    for _ in range(trailing_empty_rows):
        buf.write(sep * (len(table[0]) - 1) + line_end)
    data = buf.getvalue().encode(encoding, errors=errors)
    if bom and encoding.replace("-", "").lower() == "utf8":
        data = b"\xef\xbb\xbf" + data
    path.write_bytes(data)


def edit(path: Path, change: Callable[[Table], Table], **save: object) -> None:
    """Open the file as a spreadsheet does, change it, save it (UTF-8 CSV unless told otherwise)."""
    save_table(path, change(open_table(path)), **save)  # type: ignore[arg-type]


def column(table: Table, name: str) -> int:
    return table[0].index(name)


def sort_one_column(name: str, descending: bool = False) -> Callable[[Table], Table]:
    """The classic slip: sort a selected column only ("Continue with the current selection")."""
    def change(table: Table) -> Table:
        i = column(table, name)
        values = sorted((r[i] for r in table[1:]), reverse=descending)
        return [table[0]] + [[*r[:i], v, *r[i + 1:]] for r, v in zip(table[1:], values, strict=True)]
    return change


def delete_rows(*rows: int) -> Callable[[Table], Table]:
    """Delete data rows (1 = the first row under the header)."""
    return lambda table: [r for n, r in enumerate(table) if n not in rows]


def swap_cells(row: int, a: str, b: str) -> Callable[[Table], Table]:
    def change(table: Table) -> Table:
        out = [list(r) for r in table]
        i, j = column(table, a), column(table, b)
        out[row][i], out[row][j] = out[row][j], out[row][i]
        return out
    return change


def set_cell(row: int, name: str, value: str) -> Callable[[Table], Table]:
    def change(table: Table) -> Table:
        out = [list(r) for r in table]
        out[row][column(table, name)] = value
        return out
    return change


def reformat_dates(*names: str) -> Callable[[Table], Table]:
    """Excel shows 2024-03-05T10:00:00Z as a date and saves it in the locale's format (05/03/2024 10:00)."""
    def change(table: Table) -> Table:
        out = [list(r) for r in table]
        for name in names:
            i = column(table, name)
            for r in out[1:]:
                v = r[i]
                if len(v) >= 16 and v[4] == "-":
                    r[i] = f"{v[8:10]}/{v[5:7]}/{v[0:4]} {v[11:16]}"
        return out
    return change


def as_ansi_then_utf8(path: Path) -> None:
    """A BOM-less UTF-8 file opened as ANSI (cp1252) and saved as "CSV UTF-8": 'München' becomes 'MÃ¼nchen'."""
    raw = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    text = raw.decode("cp1252", errors="replace")
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8"))
