"""Undo records: before a Merge is sent, what undo needs to take it back is on disk (a `snapshot` line in the
journal, fsync'd like every line): the target's values of every column the UpdateContent writes, the
subordinate's state, the ids of every row that points at the subordinate per merge-cascade relationship, and
the marketing lists of both records.

Read in bulk, a batch of the merges about to run at a time (not one round of requests per merge), just before
they run. A merge into a target that an earlier merge of this run already changed takes those columns from
what the earlier merge wrote (the chain runs in order, so that is what the target holds). One snapshot per
(subordinate, target): a Merge sent again after a lost answer keeps the first.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from dataverse import DataverseClient, EntityMetadata
from dataverse.odata import LOOKUP_TABLE, NAV_PROPERTY
from dataverse.related import MergeRelationships, list_memberships, related_rows
from merging.drift import expectations
from runfolder.journal import Journal, SubordinateHistory
from runfolder.state import PlannedMerge

BATCH = 100


class Snapshots:
    """Takes and journals the undo record of each merge just before it is sent (thread-safe)."""

    def __init__(self, client: DataverseClient, meta: EntityMetadata, relationships: MergeRelationships,
                 rows: Sequence[PlannedMerge], history: dict[str, SubordinateHistory], journal: Journal,
                 environment: str, batch: int = BATCH) -> None:
        self._client, self._meta, self._relationships = client, meta, relationships
        self._journal, self._environment, self._batch = journal, environment, batch
        self._lookups = sorted(meta.lookups())
        self._todo = [r for r in rows if r.subordinate_id not in history
                      or r.target_id not in history[r.subordinate_id].snapshots]
        self._position = {r.subordinate_id: n for n, r in enumerate(self._todo)}
        self._ready: dict[str, dict[str, Any]] = {}
        self._wrote: dict[str, dict[str, Any]] = {}   # target -> column -> value our merges wrote in this run
        self._lock = threading.Lock()
        self.taken = 0

    def take(self, row: PlannedMerge) -> None:
        """Journal the row's undo record (once); raises DataverseError when it cannot be read."""
        if row.subordinate_id not in self._position:
            return  # taken in an earlier run (before a Merge whose answer was lost)
        with self._lock:
            if row.subordinate_id not in self._ready:
                start = self._position[row.subordinate_id]
                self._read(self._todo[start:start + self._batch])
            snap = self._ready.pop(row.subordinate_id)
            written = self._wrote.get(row.target_id, {})
            snap["target"] = {c: written.get(c, v) for c, v in snap["target"].items()}
            del self._position[row.subordinate_id]
            self.taken += 1
        self._journal.append("snapshot", **snap)

    def merged(self, row: PlannedMerge) -> None:
        """The merge happened: later merges into the same target see what it wrote."""
        with self._lock:
            wrote = self._wrote.setdefault(row.target_id, {})
            for column, (_, value) in expectations(row.update_content, self._lookups).items():
                wrote[column] = value

    def _read(self, rows: Sequence[PlannedMerge]) -> None:
        rows = [r for r in rows if r.subordinate_id not in self._ready]
        meta, pk = self._meta, self._meta.primary_id
        subs = [r.subordinate_id for r in rows]
        targets = list(dict.fromkeys(r.target_id for r in rows))
        columns = sorted({c for r in rows for c in expectations(r.update_content, self._lookups)})
        target_rows = {str(t[pk]).lower(): t for t in self._client.get_many(
            meta.entity_set_name, pk, targets, [pk, *columns], annotations=True)} if columns else {}
        states = {str(s[pk]).lower(): s for s in self._client.get_many(
            meta.entity_set_name, pk, subs, [pk, "statecode", "statuscode"])}
        related = related_rows(self._client, self._relationships, subs)
        lists = list_memberships(self._client, [*subs, *targets]) if self._relationships.memberships else {}
        for r in rows:
            wanted = expectations(r.update_content, self._lookups)
            target = target_rows.get(r.target_id, {})
            before: dict[str, Any] = {}
            for column in wanted:
                before[column] = target.get(column)
                for note in (LOOKUP_TABLE, NAV_PROPERTY):
                    if column + note in target:
                        before[column + note] = target[column + note]
            state = states.get(r.subordinate_id, {})
            moved = related.get(r.subordinate_id, {})
            self._ready[r.subordinate_id] = {
                "subordinate_id": r.subordinate_id, "target_id": r.target_id, "group_id": r.group_id,
                "environment": self._environment, "target": before,
                "wrote": {c: [key, value] for c, (key, value) in wanted.items()},
                "subordinate": {"statecode": state.get("statecode"), "statuscode": state.get("statuscode")},
                "related": moved, "rows": sum(len(ids) for ids in moved.values()),
                "lists": {"subordinate": lists.get(r.subordinate_id, []), "target": lists.get(r.target_id, [])},
            }
