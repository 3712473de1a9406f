"""Undo records: before a Merge is sent, what undo needs to take it back is on disk (a `snapshot` line in the
journal, fsync'd like every line): the target's values of every column the UpdateContent writes, the
subordinate's state, the ids of every row that points at the subordinate per merge-cascade relationship, and
the marketing lists of both records.

Read in bulk, a batch of the merges about to run at a time (not one round of requests per merge), just before
they run: the rows to merge are cut into batches of `BATCH` in the order the pool takes them, and the worker
that takes the middle row of one batch reads the next one, so the others find their snapshots ready. No lock
is held while reading: a worker only waits for the batch holding its own row (issue 16: with the lock held
over the reads, every worker stopped each 100 merges for the few round trips of a read; at 4 web servers and
100 ms latency that cost a quarter of the throughput). A merge into a target that an earlier merge of this
run already changed takes those columns from what the earlier merge wrote (the chain runs in order, so that is
what the target holds). One snapshot per (subordinate, target): a Merge sent again after a lost answer keeps
the first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from dataverse import DataverseClient, EntityMetadata
from dataverse.odata import LOOKUP_TABLE, NAV_PROPERTY
from dataverse.related import MergeRelationships, list_memberships, related_rows
from errors import DataverseError
from merging.drift import expectations
from runfolder.journal import Journal, SubordinateHistory
from runfolder.state import PlannedMerge

log = logging.getLogger(__name__)

BATCH = 100
_UNREAD, _READING, _READ = 0, 1, 2


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
        self._state = [_UNREAD] * -(-len(self._todo) // max(1, batch))  # per batch of rows
        self._lock = threading.Condition()
        self.taken = 0

    def take(self, row: PlannedMerge) -> None:
        """Journal the row's undo record (once); raises DataverseError when it cannot be read."""
        with self._lock:
            index = self._position.get(row.subordinate_id)
        if index is None:
            return  # taken in an earlier run (before a Merge whose answer was lost)
        chunk = index // self._batch
        with self._lock:
            self._lock.wait_for(lambda: self._state[chunk] != _READING)
            mine = self._state[chunk] == _UNREAD
            if mine:
                self._state[chunk] = _READING
        if mine:
            self._read_chunk(chunk)
        with self._lock:
            snap = self._ready.pop(row.subordinate_id)
            written = self._wrote.get(row.target_id, {})
            snap["target"] = {c: written.get(c, v) for c, v in snap["target"].items()}
            del self._position[row.subordinate_id]
            self.taken += 1
            ahead = chunk + 1 < len(self._state) and self._state[chunk + 1] == _UNREAD \
                and index % self._batch >= self._batch // 2
            if ahead:
                self._state[chunk + 1] = _READING
        self._journal.append("snapshot", **snap)
        if ahead:
            try:
                self._read_chunk(chunk + 1)
            except DataverseError as exc:  # (TokenRefusedError too: the next take meets it and stops the run)
                log.info("reading the undo records of the next %d merges failed: %s", self._batch, exc.message)

    def _read_chunk(self, chunk: int) -> None:
        """Read batch `chunk`, which this worker claimed (_READING). A failed read leaves it unread: the next take
        of one of its rows reads it again (and meets the error itself)."""
        done = False
        try:
            self._read(self._todo[chunk * self._batch:(chunk + 1) * self._batch])
            done = True
        finally:
            with self._lock:
                self._state[chunk] = _READ if done else _UNREAD
                self._lock.notify_all()

    def merged(self, row: PlannedMerge) -> None:
        """The merge happened: later merges into the same target see what it wrote."""
        with self._lock:
            wrote = self._wrote.setdefault(row.target_id, {})
            for column, (_, value) in expectations(row.update_content, self._lookups).items():
                wrote[column] = value

    def _read(self, rows: Sequence[PlannedMerge]) -> None:
        """Read the undo records of `rows` into `_ready` (called without the lock; takes it to store them)."""
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
        ready: dict[str, dict[str, Any]] = {}
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
            ready[r.subordinate_id] = {
                "subordinate_id": r.subordinate_id, "target_id": r.target_id, "group_id": r.group_id,
                "environment": self._environment, "target": before,
                "wrote": {c: [key, value] for c, (key, value) in wanted.items()},
                "subordinate": {"statecode": state.get("statecode"), "statuscode": state.get("statuscode")},
                "related": moved, "rows": sum(len(ids) for ids in moved.values()),
                "lists": {"subordinate": lists.get(r.subordinate_id, []), "target": lists.get(r.target_id, [])},
            }
        with self._lock:
            self._ready.update(ready)
