"""The merge step's append-only journal (update/journal.jsonl) and what is derived from it.

One `Journal` object writes the file; every line is one JSON object, flushed and fsync'd before the caller
moves on, so after any crash the file tells what was sent and what came back. Events:

- ``run_start`` / ``run_end``: one run of step 4 (plan id, environment, settings, counts).
- ``sending``: written *before* a Merge is posted (subordinate_id, target_id, group_id, attempt, environment).
- ``result``: written after it (the MergeOutcome fields: status and reason_code as enum values, plus
  ``verification`` and ``reason``, the sentence for people); skips are results with status ``skipped``.
- ``list_add`` / ``list_remove``: marketing-list workaround steps, phase ``intent`` then ``done``;
  ``list_restore`` (action ``add``/``remove``): the same lists put back after the merge failed.

A ``sending`` with no ``result`` after it is a merge whose outcome is unknown; the merge step asks
Dataverse before doing anything else with that subordinate. A merge counts as done for one target in one
environment (an organization id): the same subordinate planned into another target, or in another
environment, is not "done". `merge_actions_made.json` is rebuilt from the journal (`build_actions`), one
entry per subordinate with its final outcome. The caller holds the run folder's lock (runfolder/lock.py)
while it writes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from errors import RunStateError
from runfolder.files import atomic_write_text
from runfolder.state import MergeStatus

log = logging.getLogger(__name__)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Journal:
    """The one writer of update/journal.jsonl. Thread-safe; each line is durable when append() returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[bytes] = open(path, "a+b")  # noqa: SIM115 - closed in close()
        self._repair_tail()

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Write one line and fsync it; returns the record written."""
        record = {"event": event, "ts": now_iso(), **fields}
        data = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        with self._lock:
            self._fh.write(data)
            self._fh.flush()
            os.fsync(self._fh.fileno())
        return record

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _repair_tail(self) -> None:
        """A process killed mid-write can leave half a line: drop it so the next line starts clean."""
        size = self._fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        self._fh.seek(size - 1)
        if self._fh.read(1) == b"\n":
            return
        keep = _after_last_newline(self._fh, size)
        self._fh.seek(keep)
        fragment = self._fh.read()
        try:
            json.loads(fragment.decode("utf-8"))
            self._fh.write(b"\n")  # a whole record that only lacks its newline: keep it
        except ValueError:
            log.warning("%s: dropping a half-written last line (%d bytes) left by an interrupted run",
                        self.path, len(fragment))
            self._fh.truncate(keep)
        self._fh.flush()
        os.fsync(self._fh.fileno())


def _after_last_newline(fh: IO[bytes], size: int) -> int:
    """The offset just after the file's last newline (0 when there is none), reading backwards in blocks."""
    end = size
    while end > 0:
        start = max(0, end - 65536)
        fh.seek(start)
        cut = fh.read(end - start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every event in the journal; [] when there is none. A half-written last line is ignored (with a
    warning); a broken line elsewhere is a RunStateError naming the file and line."""
    if not path.exists():
        return []
    try:
        raw_lines = path.read_bytes().split(b"\n")
    except OSError as exc:
        raise RunStateError(f"Cannot read {path}: {exc.strerror}.", "", str(path)) from exc
    while raw_lines and not raw_lines[-1].strip():
        raw_lines.pop()
    events: list[dict[str, Any]] = []
    if raw_lines and raw_lines[0].startswith(b"\xef\xbb\xbf"):  # saved back by an editor: a BOM, CRLF
        raw_lines[0] = raw_lines[0][3:]
    for number, raw in enumerate(raw_lines, start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        try:
            event = json.loads(raw.decode("utf-8"))
            if not isinstance(event, dict) or "event" not in event:
                raise ValueError("not a journal record")
        except (ValueError, UnicodeDecodeError) as exc:
            if number == len(raw_lines):
                log.warning("%s line %d is half-written (an interrupted run); ignoring it", path, number)
                break
            raise RunStateError(
                f"{path} is damaged at line {number} ({str(exc)[:80]}).",
                "Restore the file from a backup, or remove that line if you know what it recorded; "
                "do not delete the journal, it is what stops merges from being sent twice.", str(path)) from exc
        events.append(event)
    return events


@dataclass
class SubordinateHistory:
    """What the journal says about one subordinate."""

    subordinate_id: str
    target_id: str = ""
    group_id: str = ""
    environment: str = ""          # the organization id it was last sent to ('' in journals before it was kept)
    sends: int = 0
    last_result: dict[str, Any] | None = None
    pending: bool = False          # a "sending" with no result after it: outcome unknown
    first_ts: str = ""
    list_steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> MergeStatus | None:
        """The last recorded outcome (None: never finished, or an unknown outcome pending)."""
        if self.pending or self.last_result is None:
            return None
        try:
            return MergeStatus(str(self.last_result.get("status")))
        except ValueError:
            return None

    @property
    def done(self) -> bool:
        status = self.status
        return status is not None and status.done

    def done_into(self, target_id: str, environment: str) -> bool:
        """Done, into that target, in that environment (an unrecorded environment matches: older journals)."""
        same_env = not environment or not self.environment or self.environment == environment
        return self.done and self.target_id == target_id and same_env

    @property
    def unrestored_list_moves(self) -> list[dict[str, Any]]:
        """Marketing-list workaround moves done and not put back (they must be, unless the merge is done)."""
        restored = {(s.get("list_id"), s.get("action")) for s in self.list_steps
                    if s.get("event") == "list_restore" and s.get("phase") == "done"}
        moves = [s for s in self.list_steps
                 if s.get("event") in ("list_add", "list_remove") and s.get("phase") == "done"]
        return [s for s in moves if (s.get("list_id"), _UNDO[str(s.get("event"))]) not in restored]

    @property
    def list_ids(self) -> list[str]:
        """Marketing lists the workaround touched for this subordinate (to finish a half-done one)."""
        return list(dict.fromkeys(str(s["list_id"]) for s in self.list_steps if s.get("list_id")))


def replay(events: Iterable[dict[str, Any]]) -> dict[str, SubordinateHistory]:
    """Fold the journal into one history per subordinate id (lower-case)."""
    history: dict[str, SubordinateHistory] = {}
    for ev in events:
        sub = str(ev.get("subordinate_id") or "").lower()
        if not sub:
            continue
        h = history.get(sub) or history.setdefault(sub, SubordinateHistory(sub, first_ts=str(ev.get("ts", ""))))
        h.target_id = str(ev.get("target_id") or h.target_id).lower()
        h.group_id = str(ev.get("group_id") or h.group_id)
        h.environment = str(ev.get("environment") or h.environment).lower()
        kind = ev.get("event")
        if kind == "sending":
            h.sends += 1
            h.pending = True
        elif kind == "result":
            h.last_result = ev
            h.pending = False
        elif kind in ("list_add", "list_remove", "list_restore"):
            h.list_steps.append(ev)
    return history


_UNDO = {"list_add": "remove", "list_remove": "add"}  # restoring a list step: the opposite membership change


_ACTION_FIELDS = ("reason_code", "http_status", "error_code", "error_message", "failure_class", "hint", "started",
                  "finished", "duration_ms", "environment")


def build_actions(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """merge_actions_made.json's entries: one per subordinate, its final outcome, in first-seen order."""
    actions = []
    for h in replay(events).values():
        result = h.last_result or {}
        status = "unknown" if h.pending else str(result.get("status", "unknown"))
        entry: dict[str, Any] = {
            "group_id": h.group_id, "target_id": h.target_id, "subordinate_id": h.subordinate_id,
            "status": status, "update_content": result.get("update_content", {}),
        }
        entry.update({k: result.get(k) for k in _ACTION_FIELDS})
        if h.pending:
            entry["error_message"] = "A Merge was sent and no answer was recorded; the next run checks Dataverse."
        entry["attempts"] = h.sends
        entry["verification"] = result.get("verification")
        if h.list_steps:
            entry["list_workaround"] = [
                {k: s.get(k) for k in ("event", "action", "phase", "list_id", "entity_id", "ts") if s.get(k)}
                for s in h.list_steps
            ]
        actions.append(entry)
    return actions


def write_actions(path: Path, events: list[dict[str, Any]], *, entity: str) -> dict[str, Any]:
    """Rewrite merge_actions_made.json atomically from the journal's events; returns the document."""
    actions = build_actions(events)
    counts: dict[str, int] = {}
    for a in actions:
        counts[a["status"]] = counts.get(a["status"], 0) + 1
    doc = {"entity": entity, "generated": now_iso(), "journal": "journal.jsonl", "counts": counts, "merges": actions}
    atomic_write_text(path, json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")
    return doc
