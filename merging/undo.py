"""Taking a merge back, from the undo record step 4 wrote before it (merging/snapshots.py).

For one merge, in this order, each step checking first so that a rerun repeats nothing and finishes what a
killed run left: wait while Dataverse is still moving a large cascade; reactivate the subordinate (statecode
and statuscode, as the Web API changes state); on the target, restore each column the merge wrote, but only
where the target still holds the value the merge wrote (otherwise today's value stays: a conflict, reported);
move every snapshotted row that now points at the target back to the subordinate; put the list memberships
back; delete the note step 4 left on the target. A subordinate merged again since, or a target that is gone,
is reported and left alone. Every step is journaled (update/undo_journal.jsonl) before and after.

What cannot be restored: the subordinate keeps `merged` = true and `masterid` (Dataverse does not let them be
written); rows created on the target after the merge stay there; the audit history; anything deleted since.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from dataverse import DataverseClient, EntityMetadata
from dataverse.odata import LOOKUP_TABLE, NAV_PROPERTY, is_lookup_column, logical_name
from dataverse.related import Cascade, MergeRelationships
from errors import DataverseError, NotFoundError
from merging.drift import same_value
from runfolder.journal import Journal

log = logging.getLogger(__name__)

CANNOT_RESTORE = ("merged and masterid stay set on the subordinate (Dataverse does not let them be written); "
                  "rows created on the target after the merge stay on the target; the audit history keeps the "
                  "merge; anything deleted since the merge stays deleted.")
WAIT_POLL_S = 2.0


class UndoStatus(StrEnum):
    UNDONE = "undone"
    UNDONE_WITH_CONFLICTS = "undone_with_conflicts"   # some target columns were changed since: today's kept
    LEFT_ALONE = "left_alone"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self is not UndoStatus.FAILED


class LeftAlone(StrEnum):
    SUBORDINATE_GONE = "subordinate_gone"
    TARGET_GONE = "target_gone"
    MERGED_AGAIN = "merged_again"          # merged into another record since
    NOT_MERGED = "not_merged"              # Dataverse shows no merge into this target
    NO_SNAPSHOT = "no_snapshot"            # merged by a run that took no undo record


LEFT_ALONE_TEXT = {
    LeftAlone.SUBORDINATE_GONE: "the subordinate no longer exists",
    LeftAlone.TARGET_GONE: "the target no longer exists",
    LeftAlone.MERGED_AGAIN: "the subordinate has been merged into another record since",
    LeftAlone.NOT_MERGED: "Dataverse shows the subordinate is not merged into this target",
    LeftAlone.NO_SNAPSHOT: "merged by a run that took no undo record (before undo existed, or with snapshots off)",
}


@dataclass
class UndoOutcome:
    status: UndoStatus
    reason_code: str = ""
    message: str = ""
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    rows_moved_back: int = 0
    rows_not_back: int = 0           # snapshotted rows that are gone or point elsewhere now
    lists_restored: int = 0


class Undoer:
    """Undoes merges of one table from their undo records (thread-safe: one worker per target chain)."""

    def __init__(self, client: DataverseClient, meta: EntityMetadata, relationships: MergeRelationships,
                 journal: Journal, environment: str, *, wait_s: float = 600.0,
                 on_wait: Callable[[str], None] | None = None) -> None:
        self.client, self.meta, self.journal, self.environment = client, meta, journal, environment
        self.cascades: dict[str, Cascade] = {c.schema_name: c for c in relationships.cascades}
        self.tables = client.table_names()
        self.wait_s, self.on_wait = wait_s, on_wait or (lambda text: None)

    def undo(self, snap: dict[str, Any], notes: list[str]) -> UndoOutcome:
        sub, target = str(snap["subordinate_id"]), str(snap["target_id"])
        state = self._read(sub, ["statecode", "statuscode", "_masterid_value"])
        if state is None:
            return _left(LeftAlone.SUBORDINATE_GONE)
        if self._read(target, [self.meta.primary_id]) is None:
            return _left(LeftAlone.TARGET_GONE)
        master = str(state.get("_masterid_value") or "").lower()
        if master and master != target:
            return _left(LeftAlone.MERGED_AGAIN, f"into {master}")
        if not master:
            return _left(LeftAlone.NOT_MERGED)
        ids = {"subordinate_id": sub, "target_id": target, "environment": self.environment}
        if state.get("statecode") != (snap.get("subordinate") or {}).get("statecode", 0):
            self._wait_for_cascade(snap, sub)   # (once reactivated, rows on the subordinate are ones undo moved)
        outcome = UndoOutcome(UndoStatus.UNDONE)
        self._reactivate(snap, state, ids)
        outcome.conflicts = self._restore_target(snap, ids)
        outcome.rows_moved_back, outcome.rows_not_back = self._move_rows_back(snap, sub, target, ids)
        outcome.lists_restored = self._restore_lists(snap, sub, target, ids)
        self._delete_notes(notes, ids)
        if outcome.conflicts:
            outcome.status = UndoStatus.UNDONE_WITH_CONFLICTS
        return outcome

    # -- the steps -------------------------------------------------------------------------------------------
    def _reactivate(self, snap: dict[str, Any], state: dict[str, Any], ids: dict[str, str]) -> None:
        before = snap.get("subordinate") or {}
        wanted = {"statecode": before.get("statecode", 0), "statuscode": before.get("statuscode", 1)}
        if state.get("statecode") == wanted["statecode"] and state.get("statuscode") == wanted["statuscode"]:
            return
        self._step(ids, "reactivate", lambda: self.client.patch(self._path(ids["subordinate_id"]), wanted))

    def _restore_target(self, snap: dict[str, Any], ids: dict[str, str]) -> list[dict[str, Any]]:
        """Restore each column the merge wrote where the target still holds what it wrote; the conflicts."""
        wrote: dict[str, list[Any]] = snap.get("wrote") or {}
        if not wrote:
            return []
        before: dict[str, Any] = snap.get("target") or {}
        now = self._read(ids["target_id"], list(wrote), annotations=True) or {}
        body: dict[str, Any] = {}
        conflicts = []
        for column, (key, written) in wrote.items():
            current = now.get(column)
            if is_lookup_column(column):
                holds = str(current or "").lower() == str(written or "").lower()
            else:
                holds = same_value(written, current)
            if not holds:
                conflicts.append({"field": logical_name(column), "written": written, "now": current,
                                  "before": before.get(column)})
                continue
            if not same_value(before.get(column), current):
                body.update(self._value(column, str(key), before))
        if body:
            self._step(ids, "target", lambda: self.client.patch(self._path(ids["target_id"]), body), columns=list(body))
        return conflicts

    def _value(self, column: str, written_key: str, before: dict[str, Any]) -> dict[str, Any]:
        """The PATCH body part that puts `column` back to its value before the merge."""
        if not is_lookup_column(column):
            return {column: before.get(column)}
        old = before.get(column)
        if not old:  # clear the lookup the merge set: the navigation property it was written through
            return {written_key: None}
        table = str(before.get(column + LOOKUP_TABLE) or "")
        nav = str(before.get(column + NAV_PROPERTY) or logical_name(column))
        entity_set = self.tables.get(table, (f"{table}s", ""))[0]
        return {f"{nav}@odata.bind": f"/{entity_set}({old})"}

    def _wait_for_cascade(self, snap: dict[str, Any], sub: str) -> None:
        """A merge that moved more than 1,000 rows finishes moving them after it answered: wait until no
        snapshotted row still points at the (still merged) subordinate before touching anything."""
        deadline = time.monotonic() + self.wait_s
        while True:
            pending = sum(1 for owner in self._owners(snap).values() if owner == sub)
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise DataverseError(f"Dataverse is still moving {pending} related rows of the merge of {sub}.",
                                     hint="Run undo again later: its cascade is still running.")
            self.on_wait(f"Waiting for Dataverse to finish moving {pending} related rows of {sub} (a large merge "
                         "cascades in the background)...")
            time.sleep(WAIT_POLL_S)

    def _move_rows_back(self, snap: dict[str, Any], sub: str, target: str, ids: dict[str, str]) -> tuple[int, int]:
        owners = self._owners(snap)
        back = [(schema, row) for (schema, row), owner in owners.items() if owner == target]
        not_back = sum(1 for owner in owners.values() if owner not in (target, sub))
        for schema, row in back:
            c = self.cascades[schema]
            bind = {f"{c.nav}@odata.bind": f"/{self.meta.entity_set_name}({sub})"}
            self._step(ids, "related", functools.partial(self.client.patch, f"{c.entity_set}({row})", bind),
                       table=c.table, row=row)
        return len(back), not_back

    def _owners(self, snap: dict[str, Any]) -> dict[tuple[str, str], str]:
        """(relationship, row id) -> the record the row's lookup points at now ('' when the row is gone)."""
        owners: dict[tuple[str, str], str] = {}
        for schema, rows in (snap.get("related") or {}).items():
            c = self.cascades.get(schema)
            if c is None:
                owners.update({(schema, r): "" for r in rows})
                continue
            found = {str(r[c.primary_id]).lower(): str(r.get(c.lookup) or "").lower()
                     for r in self.client.get_many(c.entity_set, c.primary_id, rows, [c.primary_id, c.lookup])}
            owners.update({(schema, r): found.get(r, "") for r in rows})
        return owners

    def _restore_lists(self, snap: dict[str, Any], sub: str, target: str, ids: dict[str, str]) -> int:
        lists = snap.get("lists") or {}
        sub_lists, target_lists = set(lists.get("subordinate") or ()), set(lists.get("target") or ())
        if not sub_lists:
            return 0
        now = self._memberships([sub, target])
        done = 0
        for list_id in sorted(sub_lists):
            if list_id not in now.get(sub, set()):
                self._member(ids, list_id, sub, "AddMemberList")
                done += 1
            if list_id not in target_lists and list_id in now.get(target, set()):
                self._member(ids, list_id, target, "RemoveMemberList")
        return done

    def _memberships(self, record_ids: list[str]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for row in self.client.get_many("listmembers", "_entityid_value", record_ids,
                                        ["listmemberid", "_listid_value", "_entityid_value"]):
            found.setdefault(str(row["_entityid_value"]).lower(), set()).add(str(row["_listid_value"]).lower())
        return found

    def _member(self, ids: dict[str, str], list_id: str, member: str, action: str) -> None:
        self._step(ids, "lists", lambda: self.client.post(f"lists({list_id})/Microsoft.Dynamics.CRM.{action}",
                                                          {"EntityId": member}, safe_to_retry=True),
                   list_id=list_id, member=member, list_action=action)

    def _delete_notes(self, notes: list[str], ids: dict[str, str]) -> None:
        for annotation in notes:
            def delete(annotation: str = annotation) -> None:
                try:
                    self.client.delete(f"annotations({annotation})")
                except NotFoundError:
                    pass  # deleted already (by a run that was killed after deleting it, or by a user)
            self._step(ids, "note", delete, annotation_id=annotation)

    # -- helpers ---------------------------------------------------------------------------------------------
    def _path(self, record_id: str) -> str:
        return f"{self.meta.entity_set_name}({record_id})"

    def _read(self, record_id: str, columns: list[str], *, annotations: bool = False) -> dict[str, Any] | None:
        try:
            return self.client.get(self._path(record_id), {"$select": ",".join(columns)}, annotations=annotations)
        except NotFoundError:
            return None

    def _step(self, ids: dict[str, str], step: str, action: Callable[[], Any], **detail: Any) -> None:
        self.journal.append("undo_step", step=step, phase="intent", **ids, **detail)
        action()
        self.journal.append("undo_step", step=step, phase="done", **ids, **detail)


def _left(reason: LeftAlone, detail: str = "") -> UndoOutcome:
    text = LEFT_ALONE_TEXT[reason] + (f" ({detail})" if detail else "")
    return UndoOutcome(UndoStatus.LEFT_ALONE, str(reason), text)
