"""Undo: take back merges step 4 made in a run folder, from the undo record it wrote before each one.

Writes update/undo_journal.jsonl (each step before and after it is done) and update/undo_actions_made.json.
Merges of one target are undone in reverse order, different targets in parallel; a killed undo is rerun and
finishes what is left without doing anything twice (every step checks Dataverse first). `load` (reads only)
feeds the confirmation screen; `run` does the work (merging/undo.py). What cannot be restored is said in the
summary (merging.undo.CANNOT_RESTORE).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataverse import DataverseClient, Environment
from dataverse.related import merge_relationships
from errors import DataverseError, EnvironmentMismatchError, RunStateError, TokenRefusedError
from merge_duplicates import check_plan_is_for
from merging.pool import DEFAULT_MAX_WORKERS, DEFAULT_START, AdaptiveLimit, ChainPool, ProgressCallback
from merging.undo import CANNOT_RESTORE, LEFT_ALONE_TEXT, LeftAlone, Undoer, UndoOutcome, UndoStatus
from runfolder.files import atomic_write_text
from runfolder.folder import RunFolder
from runfolder.journal import Journal, SubordinateHistory, now_iso, read_journal, replay
from runfolder.lock import RunLock
from runfolder.plan_file import read_plan


@dataclass(frozen=True)
class UndoSettings:
    entity: str
    subordinates: tuple[str, ...] = ()      # only these (default: every merge done in the folder)
    max_undo: int | None = None
    workers: int | None = None
    wait_s: float = 600.0                   # how long to wait for a large cascade to finish moving


@dataclass(frozen=True)
class UndoItem:
    subordinate_id: str
    target_id: str
    snapshot: dict[str, Any] | None
    notes: tuple[str, ...] = ()


@dataclass
class UndoPlan:
    environment: Environment
    items: list[UndoItem]
    undone_before: int

    def summary_lines(self) -> list[str]:
        lines = [f"{len(self.items)} merges to undo in {self.environment.describe()}."]
        if self.undone_before:
            lines.append(f"{self.undone_before} were undone by an earlier run: left as they are.")
        without = sum(1 for i in self.items if i.snapshot is None)
        if without:
            lines.append(f"{without} have no undo record (merged before undo existed): they will be reported.")
        return lines


@dataclass
class UndoResult:
    journal_path: Path
    actions_path: Path
    counts: Counter[str] = field(default_factory=Counter)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    left_alone: Counter[str] = field(default_factory=Counter)
    rows_moved_back: int = 0
    rows_not_back: int = 0
    failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, item: UndoItem, outcome: UndoOutcome) -> None:
        with self._lock:
            self.counts[str(outcome.status)] += 1
            self.rows_moved_back += outcome.rows_moved_back
            self.rows_not_back += outcome.rows_not_back
            self.conflicts += [{"target_id": item.target_id, **c} for c in outcome.conflicts]
            if outcome.status is UndoStatus.LEFT_ALONE:
                self.left_alone[outcome.message] += 1
            elif outcome.status is UndoStatus.FAILED:
                self.failures.append(f"{item.subordinate_id}: {outcome.message}")

    @property
    def failed(self) -> int:
        return self.counts[str(UndoStatus.FAILED)]

    def summary_lines(self) -> list[str]:
        c = self.counts
        lines = [f"Undone {c['undone'] + c['undone_with_conflicts']} merges ({c['undone_with_conflicts']} with "
                 f"conflicts), {c['left_alone']} left alone, {c['failed']} failed; {self.rows_moved_back} related "
                 "rows moved back to their subordinates."]
        if self.rows_not_back:
            lines.append(f"{self.rows_not_back} related rows were deleted or moved elsewhere since: left as they are.")
        for conflict in self.conflicts[:10]:
            lines.append(f"  kept today's {conflict['field']} on {conflict['target_id']}: {conflict['now']!r} "
                         f"(the merge wrote {conflict['written']!r}; before it: {conflict['before']!r})")
        lines += [f"  left alone: {n} x {why}" for why, n in self.left_alone.most_common()]
        lines += [f"  failed: {f}" for f in self.failures[:10]]
        lines += [f"Not restored by undo: {CANNOT_RESTORE}", f"Journal: {self.journal_path}; results: "
                  f"{self.actions_path}"]
        return lines


def load(client: DataverseClient, run: RunFolder, settings: UndoSettings) -> UndoPlan:
    """The merges to undo (reads only): done in this folder, in this environment, not undone yet."""
    if run.plan_path.exists():
        check_plan_is_for(read_plan(run.plan_path), run, settings.entity, client)
    here = client.environment()
    history = replay(read_journal(run.journal_path))
    undone = undo_history(run)
    other = {h.environment for h in history.values() if h.done and h.environment} - {here.organization_id, ""}
    if other:
        raise EnvironmentMismatchError(f"The merges of {run.root.name} were made in another environment "
                                       f"(organization {sorted(other)[0]}), not in {here.describe()}.",
                                       "Use the .env file of that environment (--env-file).")
    wanted = {s.lower() for s in settings.subordinates}
    unknown = wanted - {s for s, h in history.items() if h.done}
    if unknown:
        raise RunStateError(f"{len(unknown)} of the subordinates asked for were not merged in this folder (e.g. "
                            f"{sorted(unknown)[0]}).", "Check the ids (merge_actions_made.json lists the merges).")
    done = [h for h in history.values() if h.done and (not wanted or h.subordinate_id in wanted)]
    final = {s for s, st in undone.items() if st.final}
    items = [_item(h) for h in done if h.subordinate_id not in final]
    if settings.max_undo is not None:
        items = items[-settings.max_undo:] if settings.max_undo > 0 else []   # the latest merges first
    return UndoPlan(here, items, sum(1 for h in done if h.subordinate_id in final))


def _item(h: SubordinateHistory) -> UndoItem:
    snap = h.snapshots.get(h.target_id)
    return UndoItem(h.subordinate_id, h.target_id, snap, tuple(dict.fromkeys(h.notes)))


def undo_history(run: RunFolder) -> dict[str, UndoStatus]:
    """subordinate -> the last undo outcome recorded."""
    found: dict[str, UndoStatus] = {}
    for ev in read_journal(run.undo_journal_path):
        if ev.get("event") == "undo_result" and ev.get("subordinate_id"):
            found[str(ev["subordinate_id"]).lower()] = UndoStatus(str(ev["status"]))
    return found


def run(client: DataverseClient, run: RunFolder, plan: UndoPlan, settings: UndoSettings, *,
        on_progress: ProgressCallback | None = None, on_wait: Any = None) -> UndoResult:
    with RunLock(run.lock_path, "undo"):
        journal = Journal(run.undo_journal_path)
        result = UndoResult(run.undo_journal_path, run.undo_actions_path)
        try:
            journal.append("undo_start", entity=settings.entity, planned=len(plan.items))
            meta = client.entity(settings.entity)
            undoer = Undoer(client, meta, merge_relationships(client, settings.entity, skip_empty=False), journal,
                            plan.environment.organization_id, wait_s=settings.wait_s, on_wait=on_wait)
            chains: dict[str, list[UndoItem]] = {}
            for item in reversed(plan.items):   # the last merge into a target is undone first
                chains.setdefault(item.target_id, []).append(item)

            def work(item: UndoItem) -> str:
                outcome = _undo_one(undoer, item)
                journal.append("undo_result", subordinate_id=item.subordinate_id, target_id=item.target_id,
                               status=str(outcome.status), reason_code=outcome.reason_code, message=outcome.message,
                               conflicts=outcome.conflicts, rows_moved_back=outcome.rows_moved_back,
                               rows_not_back=outcome.rows_not_back, environment=plan.environment.organization_id)
                result.add(item, outcome)
                return str(outcome.status)

            limit = AdaptiveLimit(client.stats.dop_hint or DEFAULT_START, settings.workers or DEFAULT_MAX_WORKERS)
            ChainPool(list(chains.values()), work, limit=limit, throttled=lambda: client.stats.throttled,
                      on_progress=on_progress).run()
        finally:
            try:
                journal.append("undo_end", counts=dict(result.counts))
            finally:
                journal.close()
            write_undo_actions(run)
        return result


def _undo_one(undoer: Undoer, item: UndoItem) -> UndoOutcome:
    if item.snapshot is None:
        return UndoOutcome(UndoStatus.LEFT_ALONE, str(LeftAlone.NO_SNAPSHOT), LEFT_ALONE_TEXT[LeftAlone.NO_SNAPSHOT])
    try:
        return undoer.undo(item.snapshot, list(item.notes))
    except TokenRefusedError:
        raise
    except DataverseError as exc:
        logging.getLogger(__name__).warning("undo of %s failed: %s", item.subordinate_id, exc.message)
        return UndoOutcome(UndoStatus.FAILED, "dataverse_error", f"{exc.message} {exc.hint}".strip())


def write_undo_actions(run: RunFolder) -> None:
    """undo_actions_made.json: the last undo outcome of each merge, from the undo journal."""
    last: dict[str, dict[str, Any]] = {}
    for ev in read_journal(run.undo_journal_path):
        if ev.get("event") == "undo_result":
            last[str(ev["subordinate_id"])] = {k: v for k, v in ev.items() if k != "event"}
    counts = Counter(str(v["status"]) for v in last.values())
    doc = {"generated": now_iso(), "journal": "undo_journal.jsonl", "counts": dict(counts),
           "not_restored": CANNOT_RESTORE, "undone": list(last.values())}
    atomic_write_text(run.undo_actions_path, json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")
