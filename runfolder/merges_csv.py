"""prepare/merges.csv: the plan's view for people, and what a spreadsheet brings back of it.

Written as spreadsheets read best: UTF-8 with BOM (so accents survive Excel), CRLF, one row per planned
merge, names for reading, cells a spreadsheet would run as a formula neutralised. The file only *selects*:
a row kept is a merge to run, a row deleted a merge left out. Reading it back accepts what spreadsheets
save (BOM or not, `,` `;` or tab separators, CRLF, blank trailing rows, reformatted date cells) and compares
every row with the plan; anything else that differs (a pasted row, a sorted column, swapped ids, a changed
order or value, text that went through another encoding) is listed row by row, and nothing is selected.
Values always come from the plan, never from this file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd

from errors import PlanMismatchError, RunStateError
from runfolder.files import atomic_write_text, display
from runfolder.plan_file import Plan, json_bytes
from runfolder.state import PlannedMerge

KEY_COLUMNS = ["group_id", "order", "target_id", "subordinate_id"]
COLUMNS = [*KEY_COLUMNS, "target_name", "subordinate_name", "preflight", "changed_fields", "related",
           "update_content", "target_modifiedon", "subordinate_modifiedon"]
CELL_MAX = 32_000          # Excel keeps at most 32,767 characters in a cell: longer ones are shown abridged
_SEPARATORS = (",", ";", "\t")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_SHOW = 12                 # differences listed in the message (the rest are counted)
_REDO = "Undo that edit (deleting rows is the one edit step 4 accepts), or rerun step 3 (Prepare duplicates)."
_SAVE_UTF8 = ("Open merges.csv as UTF-8 and save it as 'CSV UTF-8 (Comma delimited)', or rerun step 3 "
              "(Prepare duplicates).")


def update_cell(merge: PlannedMerge) -> str:
    """The update_content cell: the exact JSON sent, or a stand-in when a spreadsheet could not hold it."""
    text = json_bytes(merge.update_content).decode("utf-8")
    if len(text) > CELL_MAX:
        return f"(UpdateContent of {len(text)} characters: too long for a spreadsheet cell; see plan.jsonl)"
    return text


def preflight_text(merge: PlannedMerge) -> str:
    """'ok', or the findings as 'code: message | code: message'."""
    return " | ".join(f"{f.code}: {f.message}" for f in merge.preflight) or "ok"


def related_text(merge: PlannedMerge) -> str:
    """The rows the merge will move: `task:3;incident:1;listmember:2` ('' when none)."""
    return ";".join(f"{table}:{n}" for table, n in merge.related)


def _shown(text: str) -> str:
    """Text a spreadsheet would run as a formula gets a leading ' (OWASP's CSV injection advice)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def write_view(path: Path, merges: Iterable[PlannedMerge]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for m in merges:
        writer.writerow([m.group_id, m.order, m.target_id, m.subordinate_id, _shown(m.target_name),
                         _shown(m.subordinate_name), _shown(preflight_text(m)), ";".join(m.changed_fields),
                         related_text(m), update_cell(m), m.target_modifiedon or "", m.subordinate_modifiedon or ""])
    atomic_write_text(path, "\ufeff" + buf.getvalue())


class RowProblem(StrEnum):
    """How a row of merges.csv differs from the plan."""

    REPEATED = "repeated"
    NOT_IN_PLAN = "not_in_plan"
    SWAPPED = "swapped"
    OTHER_TARGET = "other_target"
    ORDER = "order"
    VALUES = "values"
    ENCODING = "encoding"       # a value mangled by a save in another encoding


@dataclass(frozen=True)
class Difference:
    row: int
    problem: RowProblem
    text: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.text}"


@dataclass(frozen=True)
class Selection:
    """What merges.csv selects of the plan."""

    rows: int                               # data rows read
    selected: frozenset[str]                # subordinate ids whose rows are there, as planned
    left_out: tuple[PlannedMerge, ...]      # planned merges whose rows were deleted


def read_selection(path: Path, plan: Plan, base: Path | None = None) -> Selection:
    """merges.csv compared with the plan: the merges it selects, or PlanMismatchError listing every row that
    differs (RunStateError when the file cannot be read at all)."""
    shown = display(path, base)
    frame = _read_frame(path, shown)
    planned = plan.by_subordinate()
    problems: list[Difference] = []
    first_row: dict[str, int] = {}
    selected: set[str] = set()
    for number, cells in zip(range(2, len(frame) + 2), frame.itertuples(index=False), strict=True):
        row = dict(zip(frame.columns, cells, strict=True))
        if not any(str(v).strip() for v in row.values()):
            continue  # an empty row, as spreadsheets leave at the end
        found = _compare(row, planned, first_row)
        if found is not None:
            problems.append(Difference(number, *found))
        else:
            sub = _id(row["subordinate_id"])
            first_row[sub] = number
            selected.add(sub)
    if problems:
        raise _mismatch(shown, problems)
    left_out = tuple(m for m in plan.merges if m.subordinate_id not in selected)
    return Selection(len(frame), frozenset(selected), left_out)


def _read_frame(path: Path, shown: str) -> pd.DataFrame:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RunStateError(f"{shown} does not exist.", "Rerun step 3 (Prepare duplicates) to write it.",
                            str(path)) from None
    except OSError as exc:
        raise RunStateError(f"Cannot read {shown}: {exc.strerror}.", "", str(path)) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row = raw[:exc.start].count(b"\n") + 1
        raise PlanMismatchError(f"{shown} row {row} is not UTF-8 text: it was saved in another encoding.",
                                _SAVE_UTF8) from None
    sep = _separator(text.split("\n", 1)[0])
    if sep is None:
        raise PlanMismatchError(f"{shown} has no header row with the columns {', '.join(KEY_COLUMNS)}.",
                                "Restore the header row, or rerun step 3 (Prepare duplicates).")
    try:
        return pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, skip_blank_lines=False,
                           quotechar='"', doublequote=True)
    except (pd.errors.ParserError, ValueError) as exc:
        raise PlanMismatchError(f"{shown} cannot be read as a table ({str(exc).strip()[:120]}).", _REDO) from None


def _separator(header: str) -> str | None:
    """The separator a spreadsheet saved with: the one that splits the header into our column names."""
    for sep in _SEPARATORS:
        names = {c.strip().lower() for c in next(csv.reader([header.strip("\r")], delimiter=sep), [])}
        if set(KEY_COLUMNS) <= names and "update_content" in names:
            return sep
    return None


def _id(value: Any) -> str:
    return str(value or "").strip().strip("{}").strip().lower()


def _compare(row: dict[str, Any], planned: dict[str, PlannedMerge],
             first_row: dict[str, int]) -> tuple[RowProblem, str] | None:
    """None when the row is a planned merge as planned; otherwise how it differs, in a few words."""
    sub, target, group = _id(row["subordinate_id"]), _id(row["target_id"]), _id(row["group_id"])
    order = str(row["order"]).strip()
    if sub in first_row:
        return RowProblem.REPEATED, f"repeats row {first_row[sub]} (subordinate {sub})"
    plan = planned.get(sub)
    if plan is None:
        reverse = planned.get(target)
        if reverse is not None and reverse.target_id == sub:
            return RowProblem.SWAPPED, f"target and subordinate are swapped (the plan merges {target} into {sub})"
        return RowProblem.NOT_IN_PLAN, (f"subordinate {sub or '(empty)'} is not in the plan (a row pasted in, or a "
                                        "column sorted on its own?)")
    if target != plan.target_id:
        if target == plan.subordinate_id:
            return RowProblem.SWAPPED, (f"target and subordinate are swapped (the plan merges {sub} into "
                                        f"{plan.target_id})")
        return RowProblem.OTHER_TARGET, (f"merges {sub} into {target or '(empty)'}, but the plan merges it into "
                                         f"{plan.target_id} (a column sorted or edited on its own?)")
    if group != plan.group_id or _order(order) != plan.order:
        return RowProblem.ORDER, (f"group/order is {group or '(empty)'} / {order or '(empty)'}, the plan's is "
                                  f"{plan.group_id} / {plan.order}")
    cell = str(row["update_content"])
    expected = update_cell(plan)
    if cell.replace("\r\n", "\n") != expected and cell.strip() != expected and not _same_json(cell, plan):
        return _value_difference(cell, expected)
    return None


def _same_json(cell: str, plan: PlannedMerge) -> bool:
    """The cell holds the plan's values written another way (a file from a version that spaced its JSON
    differently): values always come from the plan, so that is no difference."""
    try:
        return bool(json.loads(cell) == plan.update_content)
    except ValueError:
        return False


def _order(text: str) -> int | None:
    try:
        return int(float(text))  # a spreadsheet may save 1 as 1.0
    except (ValueError, OverflowError):
        return None


def _value_difference(cell: str, expected: str) -> tuple[RowProblem, str]:
    """Which value of update_content differs, and whether an encoding did it."""
    decided = " (values are decided by the merge logic: rerun step 3 to change them)"
    try:
        found, wanted = json.loads(cell), json.loads(expected)
    except ValueError:
        return RowProblem.VALUES, "update_content is not the plan's" + decided
    if not isinstance(found, dict) or not isinstance(wanted, dict):
        return RowProblem.VALUES, "update_content is not the plan's" + decided
    for key in sorted(set(found) | set(wanted)):
        a, b = found.get(key), wanted.get(key)
        if a != b:
            if _mangled(a, b):
                return RowProblem.ENCODING, (f"update_content {key} is {_short(a)}, the plan's is {_short(b)} (the "
                                             "file went through another encoding)")
            return RowProblem.VALUES, f"update_content {key} is {_short(a)}, the plan's is {_short(b)}{decided}"
    return RowProblem.VALUES, "update_content is not the plan's" + decided


def _mangled(found: Any, wanted: Any) -> bool:
    """`MÃ¼nchen` for `München` (UTF-8 read as ANSI) or `Gda?sk` for `Gdańsk` (saved as ANSI)."""
    if not isinstance(found, str) or not isinstance(wanted, str) or wanted.isascii():
        return False
    lossy = wanted.encode("cp1252", "replace").decode("cp1252")
    try:
        misread = wanted.encode("utf-8").decode("cp1252")
    except UnicodeDecodeError:
        misread = wanted.encode("utf-8").decode("latin-1")
    return found in (lossy, misread) or found.replace("?", "") == "".join(c for c in wanted if c.isascii())


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _mismatch(shown: str, problems: list[Difference]) -> PlanMismatchError:
    listed = [str(p) for p in problems[:_SHOW]]
    if len(problems) > _SHOW:
        listed.append(f"... and {len(problems) - _SHOW} more rows")
    encoding = any(p.problem is RowProblem.ENCODING for p in problems)
    lines = "\n".join(f"  {p}" for p in listed)
    error = PlanMismatchError(
        f"{shown} does not match the plan step 3 wrote: {len(problems)} rows differ, so nothing is merged.\n"
        f"{lines}\n", _SAVE_UTF8 if encoding else _REDO)
    error.rows = [str(p) for p in problems]
    error.problems = [p.problem for p in problems]
    return error
