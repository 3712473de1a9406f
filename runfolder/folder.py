"""The run folder: its file names (the original tool's, DESIGN.md section 1) and atomic JSON/CSV I/O.

Nothing else builds these paths. Every write goes to a temp file in the same folder and is renamed into
place, so a crash never leaves half a file. Reads of missing or broken files raise RunStateError naming
the file, the problem and the step that writes it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson

from errors import RunStateError, UsageError
from runfolder.files import atomic_write_bytes, atomic_write_text, display, replaced_dir, short
from runfolder.state import DuplicateGroups

_SAFE_NAME = re.compile(r"^[\w\-. ]+$", re.UNICODE)
# The longest path the tool makes inside a run folder: a temp copy of an audit file while prepare/ is replaced.
_LONGEST_INSIDE = len("/.prepare.abcdefgh/audit_records/.00000000-0000-0000-0000-000000000000.csv.abcdefgh.tmp")


def resolve_run_folder(name: str, work_dir: Path) -> Path:
    """The run folder for a user-typed name, confined to the working folder."""
    name = name.strip().strip('"').strip("'")
    if not name:
        raise UsageError("The folder name is empty.", "Type a name such as contact_merge_2026.")
    base = work_dir.resolve()
    path = (base / name).resolve()
    if path != base and base not in path.parents:
        raise UsageError(f"The folder '{name}' is outside the working folder {base}.",
                         "Use a folder name inside it, such as contact_merge_2026.")
    if path == base:
        raise UsageError("The run folder cannot be the working folder itself.", "Type a sub-folder name.")
    if any(not _SAFE_NAME.match(part) for part in path.relative_to(base).parts):
        raise UsageError(f"The folder name '{name}' has characters that are not allowed.",
                         "Use letters, digits, spaces, '-', '_' and '.'.")
    _check_length(name, path)
    return path


def _check_length(name: str, path: Path) -> None:
    """Refuse a name the file system cannot hold, before anything is created in it."""
    longest_part = max(len(part.encode("utf-8")) for part in path.parts)
    try:
        name_max = os.pathconf(path.anchor or "/", "PC_NAME_MAX")
        path_max = os.pathconf(path.anchor or "/", "PC_PATH_MAX")
    except (AttributeError, OSError, ValueError):  # Windows: no pathconf; its classic limit applies
        name_max, path_max = 255, 260
    if longest_part > name_max or len(str(path).encode("utf-8")) + _LONGEST_INSIDE > path_max:
        raise UsageError(f"The folder name '{name[:60]}...' is too long for this file system "
                         f"(a name may have {name_max} bytes, a whole path {path_max}).",
                         "Type a shorter name, such as contact_merge_2026.")


class RunFolder:
    """One dedupe run's folder and the files in it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- paths -----------------------------------------------------------------------------------
    @property
    def group_dir(self) -> Path:
        return self.root / "group"

    @property
    def record_data_dir(self) -> Path:
        return self.group_dir / "record_data"

    @property
    def duplicate_groups_path(self) -> Path:
        return self.group_dir / "duplicate_groups.json"

    @property
    def prepare_dir(self) -> Path:
        return self.root / "prepare"

    @property
    def audit_dir(self) -> Path:
        return self.prepare_dir / "audit_records"

    @property
    def merges_csv(self) -> Path:
        return self.prepare_dir / "merges.csv"

    @property
    def plan_path(self) -> Path:
        return self.prepare_dir / "plan.jsonl"

    @property
    def review_page(self) -> Path:
        return self.prepare_dir / "review.html"

    @property
    def lock_path(self) -> Path:
        return self.root / ".lock"

    @property
    def update_dir(self) -> Path:
        return self.root / "update"

    @property
    def merge_actions_path(self) -> Path:
        return self.update_dir / "merge_actions_made.json"

    @property
    def journal_path(self) -> Path:
        return self.update_dir / "journal.jsonl"

    @property
    def undo_journal_path(self) -> Path:
        return self.update_dir / "undo_journal.jsonl"

    @property
    def undo_actions_path(self) -> Path:
        return self.update_dir / "undo_actions_made.json"

    @property
    def report_page(self) -> Path:
        return self.update_dir / "report.html"

    @property
    def log_path(self) -> Path:
        return self.root / "resolver.log"

    def record_path(self, record_id: str) -> Path:
        return Path(f"{self.root}/group/record_data/{record_id}.json")  # (a string join: step 3 makes 100,000s)

    def display(self, path: Path | str) -> str:
        """A path as the user should see it: relative to the working folder (the run folder's parent)."""
        return display(Path(path), self.root.parent)

    # -- JSON ------------------------------------------------------------------------------------
    def write_json(self, path: Path, data: Any, *, durable: bool = True) -> None:
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        atomic_write_text(path, text, durable=durable)

    def read_json(self, path: Path | str, made_by: str) -> Any:
        try:
            with open(path, "rb") as file:  # bytes, and orjson: step 3 reads 100,000s of these
                return orjson.loads(file.read())
        except FileNotFoundError:
            raise RunStateError(f"{self.display(path)} does not exist.", f"Run {made_by} first.", str(path)) from None
        except (ValueError, UnicodeDecodeError) as exc:   # (orjson.JSONDecodeError is a ValueError)
            raise RunStateError(f"{self.display(path)} is not valid JSON ({short(exc)}).",
                                f"Rerun {made_by} to write it again.", str(path)) from exc
        except OSError as exc:
            raise RunStateError(f"Cannot read {self.display(path)}: {exc.strerror}.", "", str(path)) from exc

    def write_record(self, record_id: str, record: dict[str, Any]) -> None:
        # Many small files: renamed into place (never half-written) but not fsync'd one by one.
        atomic_write_bytes(self.record_path(record_id), orjson.dumps(record, option=orjson.OPT_INDENT_2) + b"\n",
                           durable=False)

    def read_record(self, record_id: str, key: str = "") -> dict[str, Any]:
        """One record file; it must hold that record (in its primary key `key` when given, else in any column)."""
        data = self.read_json(f"{self.root}/group/record_data/{record_id}.json", "step 2 (Group duplicates)")
        holds = isinstance(data, dict) and (
            str(data.get(key) or "").lower() == record_id if key
            else any(type(v) is str and v.lower() == record_id for v in data.values()))
        if not holds:
            raise RunStateError(f"{self.display(self.record_path(record_id))} does not hold record {record_id}.",
                                "Rerun step 2 (Group duplicates).", str(self.record_path(record_id)))
        return data

    def write_duplicate_groups(self, groups: DuplicateGroups) -> None:
        self.write_json(self.duplicate_groups_path, groups.to_json())

    def read_duplicate_groups(self) -> DuplicateGroups:
        data = self.read_json(self.duplicate_groups_path, "step 2 (Group duplicates)")
        try:
            return DuplicateGroups.from_json(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            what = f"missing {short(exc)}" if isinstance(exc, KeyError) else short(exc)
            raise RunStateError(f"{self.display(self.duplicate_groups_path)} is damaged ({what}).",
                                "Rerun step 2 (Group duplicates).", str(self.duplicate_groups_path)) from exc

    # -- CSV -------------------------------------------------------------------------------------
    def write_csv(self, path: Path, header: list[str], rows: Iterable[list[Any]], *, bom: bool = False) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)
        atomic_write_text(path, ("\ufeff" if bom else "") + buf.getvalue())

    def read_csv(self, path: Path, required: list[str], made_by: str) -> list[dict[str, str]]:
        if not path.exists():
            raise RunStateError(f"{self.display(path)} does not exist.", f"Run {made_by} first.", str(path))
        # a long memo or image column in update_content can pass the csv module's 128 KB cell limit
        csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
        try:
            with path.open(encoding="utf-8-sig", newline="") as fh:
                reader = csv.DictReader(fh)
                missing = [c for c in required if c not in (reader.fieldnames or [])]
                if missing:
                    raise RunStateError(f"{self.display(path)} has no column {', '.join(missing)}.",
                                        f"Rerun {made_by}, or restore the column.", str(path))
                return list(reader)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise RunStateError(f"{self.display(path)} cannot be read as CSV ({short(exc)}).",
                                f"Rerun {made_by}.", str(path)) from exc

    # -- folders ---------------------------------------------------------------------------------
    def replace_dir(self, path: Path) -> AbstractContextManager[Path]:
        """A fresh temp folder that replaces `path` when the block succeeds (see files.replaced_dir)."""
        return replaced_dir(path)
