"""Step 4's engine: one run over the merges `selection.select` chose, journaled before and after each Merge.

Before the pool starts: marketing-list moves left by a failed merge are put back, merges whose answer was
lost are settled by asking Dataverse, the planned skips are recorded, and every record is read in bulk so
that merges whose records drifted (gone, inactive, merged, changed) are skipped with a reason. Then merges
into one target run in plan order, different targets in parallel (merging/pool.py). No path sends a second
Merge for a subordinate that Dataverse shows as merged; a refused sign-in stops the run (nothing is sent
again with a dead token).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import asdict, replace
from typing import Any

from dataverse import DataverseClient
from dataverse.related import merge_relationships
from errors import DataverseError, OutcomeUnknownError, TokenRefusedError
from merging import drift as checks
from merging.batches import MergeSender
from merging.failure_classes import (
    INACTIVE,
    MERGED_ELSEWHERE,
    OUTCOME_UNKNOWN,
    WORKAROUND_FAILED,
    FailureClass,
    classify,
)
from merging.list_workaround import ListWorkaround, is_plugin_failure
from merging.notes import Notes
from merging.outcomes import MergeResult, failure_hint, skip_text
from merging.pool import DEFAULT_MAX_WORKERS, DEFAULT_START, AdaptiveLimit, ChainPool, Progress
from merging.selection import MergePlan, MergeSettings
from merging.snapshots import Snapshots
from planning.preflight import would_fail
from runfolder.folder import RunFolder
from runfolder.journal import Journal, SubordinateHistory, now_iso
from runfolder.state import MergeOutcome, MergeStatus, PlannedMerge, SkipReason

log = logging.getLogger(__name__)

MAX_SENDS = 5  # Merges sent for one subordinate in one run (each after Dataverse showed it still unmerged)
_UNKNOWN_WAIT_S = 0.5
_SETTLE_MAX_S = 60.0   # after a timeout: how long a Merge may still be running server-side
_SETTLE_POLL_S = 2.0
_READ_TRIES = 3  # reads of a subordinate whose Merge got no answer, before giving up (and never re-sending)

# (status, error, failure class, detail): how one merge ended
Verdict = tuple[MergeStatus, DataverseError | None, FailureClass | None, str]


class TokenStop(Exception):
    """Raised out of a worker to stop the pool: Dataverse refused the sign-in."""

    def __init__(self, error: TokenRefusedError) -> None:
        super().__init__(error.message)
        self.error = error


class MergeRun:
    """One run of step 4: the shared state its worker threads use, and what each of them does per merge."""

    def __init__(self, client: DataverseClient, run: RunFolder, plan: MergePlan, settings: MergeSettings,
                 journal: Journal, seed: int = 0) -> None:
        self.client, self.run, self.plan, self.settings = client, run, plan, settings
        self.journal, self.seed = journal, seed
        self.org = plan.environment.organization_id
        self.meta = client.entity(plan.entity)
        self.lookups = sorted(self.meta.lookups())
        self.history = plan.history
        self.lists = ListWorkaround(client, journal, self.history, self.org)
        self.notes = Notes(client, journal, plan.entity, self.meta.entity_set_name, str(run.root), self.org) \
            if settings.note else None
        self.relationships = merge_relationships(client, plan.entity) if settings.snapshots else None
        self.snapshots: Snapshots | None = None
        self.sender = MergeSender(client, settings.batch_size)
        self.result = MergeResult(journal_path=run.journal_path, actions_path=run.merge_actions_path)
        self._lock = threading.Lock()
        self._broken: dict[str, str] = {}  # target id -> the subordinate whose merge did not happen
        self._done_now: set[str] = set()   # merged (or found merged) in this run
        self._merged_this_run = 0
        self._started = time.monotonic()
        self._throttled_at_start = client.stats.throttled

    # -- before the pool: settle, restore, skip, drift ------------------------------------------------------
    def prepare(self) -> list[PlannedMerge]:
        """Settle unknown outcomes, put back lists, record planned skips and drift; the merges to send now."""
        rows = self.plan.to_run
        self.result.done_before = self.plan.already_done
        pending = [h for h in self.history.values() if h.pending]
        ids = [i for r in rows for i in (r.subordinate_id, r.target_id)]
        ids += [i for h in pending for i in (h.subordinate_id, h.target_id) if i]
        states = checks.read_states(self.client, self.meta.entity_set_name, self.meta.primary_id, ids) if ids else {}
        running = {r.subordinate_id for r in rows}
        handled = self._resolve_pending(pending, running, states)
        self._restore_lists(running)
        for skip in self.plan.skips:
            if skip.merge.subordinate_id not in handled and not self._done(skip.merge.subordinate_id):
                self._record(skip.merge, MergeStatus.SKIPPED, reason=skip.reason, detail=skip.detail)
        ready = self._drift(rows, states, handled)
        if self.relationships is not None:
            self.snapshots = Snapshots(self.client, self.meta, self.relationships, ready, self.history, self.journal,
                                       self.org)
        return ready

    def _resolve_pending(self, pending: list[SubordinateHistory], running: set[str],
                         states: dict[str, checks.RecordState]) -> set[str]:
        """Subordinates sent before with no answer recorded: ask Dataverse what happened (never re-send blind)."""
        handled: set[str] = set()
        planned = self.plan.plan.by_subordinate()
        for h in pending:
            row = planned.get(h.subordinate_id) or _row_from_history(h)
            master = checks.merged_into(states.get(h.subordinate_id, checks.RecordState(h.subordinate_id, False)))
            if master and master in (h.target_id, row.target_id):
                if not h.notes:
                    self._after_merge(row)
                self._record(row, MergeStatus.ALREADY_MERGED, detail="an earlier Merge whose answer was lost "
                                                                     "took effect")
            elif master:
                self._record(row, MergeStatus.FAILED, failure=MERGED_ELSEWHERE,
                             detail=f"merged into another record ({master})")
            elif h.subordinate_id not in running:
                self._record(row, MergeStatus.SKIPPED, reason=SkipReason.NOT_SELECTED)
            else:
                continue  # still unmerged and selected: it is sent again below
            handled.add(h.subordinate_id)
        return handled

    def _restore_lists(self, running: set[str]) -> None:
        """Lists the workaround moved for a merge that then did not happen go back (also after a crash); a
        merge about to be sent again keeps them (its workaround goes on where it stopped)."""
        planned = self.plan.plan.by_subordinate()
        for h in list(self.history.values()):
            moves = h.unrestored_list_moves
            if moves and h.subordinate_id not in running and not self._done(h.subordinate_id) and not h.pending:
                self.lists.restore(planned.get(h.subordinate_id) or _row_from_history(h), moves)
                self.result.lists_restored += 1

    def _drift(self, rows: list[PlannedMerge], states: dict[str, checks.RecordState],
               handled: set[str]) -> list[PlannedMerge]:
        """Skip (with the reason) merges whose records are no longer as prepared; return the others."""
        ready: list[PlannedMerge] = []
        touched = {h.target_id for h in self.history.values() if h.done}  # our merges change modifiedon
        first_of_target: dict[str, PlannedMerge] = {}
        for row in rows:
            first = first_of_target.setdefault(row.target_id, row)
            if row.subordinate_id in handled:
                continue
            verdict = checks.drift_verdict(
                replace(row, target_modifiedon=first.target_modifiedon), states[row.subordinate_id],
                states[row.target_id],
                check_modified=self.settings.check_modified,
                check_target_modified=self.settings.check_modified and row.target_id not in touched)
            if verdict is None:
                ready.append(row)
                continue
            status, reason, detail = verdict
            self._record(row, status, reason=reason, detail=detail)
        return ready

    # -- the pool ------------------------------------------------------------------------------------------
    def execute(self, rows: list[PlannedMerge], on_progress: Any) -> None:
        chains: dict[str, list[PlannedMerge]] = {}
        for row in rows:
            chains.setdefault(row.target_id, []).append(row)
        maximum = self.settings.workers or DEFAULT_MAX_WORKERS
        limit = AdaptiveLimit(self.client.stats.dop_hint or DEFAULT_START, maximum)
        log.info("merging %d records into %d targets, up to %d at once (starting at %d)",
                 len(rows), len(chains), maximum, limit.current)
        pool: ChainPool[PlannedMerge] = ChainPool(
            list(chains.values()), self.merge_row, limit=limit,
            throttled=lambda: self.client.stats.throttled, overloaded=lambda: self.client.stats.throttled_concurrency,
            on_progress=on_progress)
        pool.run()

    def merge_row(self, row: PlannedMerge) -> str:
        """One planned merge, start to finish (runs on a worker thread). Returns its final status."""
        t0, started = time.monotonic(), now_iso()
        blocker = self._broken.get(row.target_id)
        if blocker is not None:  # an earlier merge into this target did not happen in this run
            return self._record(row, MergeStatus.SKIPPED, reason=SkipReason.EARLIER_NOT_DONE,
                                detail=f"{blocker} into {row.target_id}", t0=t0, started=started)
        moved: list[dict[str, Any]] = []
        try:
            status, exc, failure, detail = self._snapshot(row)
            if status is MergeStatus.MERGED:  # (the snapshot is on disk: go ahead)
                if self._workaround_first(row):
                    moved = self.lists.apply(row)
                status, exc, failure, detail = self._send(row, moved)
        except TokenStop as stop:
            self._broken.setdefault(row.target_id, row.subordinate_id)
            self._record(row, MergeStatus.SKIPPED, reason=SkipReason.TOKEN_REFUSED, t0=t0, started=started)
            raise stop
        except DataverseError as wexc:  # the workaround was refused before any Merge was sent
            status, exc, failure, detail = MergeStatus.FAILED, wexc, WORKAROUND_FAILED, ""
        verification = None
        if status.done:
            self._after_merge(row)
        if status is MergeStatus.MERGED and self._should_verify(row):
            verification = checks.verify_target(self.client, self.meta.entity_set_name, self.lookups, row)
        if status is MergeStatus.FAILED:
            self._broken.setdefault(row.target_id, row.subordinate_id)
            if moved:
                self.lists.restore(row, moved)
                self.result.lists_restored += 1
        return self._record(row, status, exc=exc, failure=failure, detail=detail, t0=t0, started=started,
                            verification=verification)

    def _snapshot(self, row: PlannedMerge) -> Verdict:
        """The undo record on disk before anything is sent; (MERGED, ...) means go ahead."""
        if self.snapshots is None:
            return MergeStatus.MERGED, None, None, ""
        try:
            self.snapshots.take(row)
        except TokenRefusedError as exc:
            raise TokenStop(exc) from exc
        except DataverseError as exc:
            return MergeStatus.FAILED, exc, OUTCOME_UNKNOWN if exc.is_transient else None, \
                "its undo snapshot could not be read, so it was not sent"
        return MergeStatus.MERGED, None, None, ""

    def _after_merge(self, row: PlannedMerge) -> None:
        """What follows a merge that happened: later merges of the chain learn what it wrote; the note."""
        if self.snapshots is not None:
            self.snapshots.merged(row)
        if self.notes is not None:
            try:
                self.notes.ensure(row)
            except TokenRefusedError as exc:
                raise TokenStop(exc) from exc
            except DataverseError as exc:  # the merge stands; the note is reported, not retried blindly
                log.warning("note on %s not created: %s", row.target_id, exc.message)
                self.result.notes_failed += 1

    def _workaround_first(self, row: PlannedMerge) -> bool:
        """Move lists before the Merge: only where pre-flight saw memberships and no other refusal coming."""
        return self.settings.marketing_workaround and any(f.code == "marketing_list" for f in row.preflight) \
            and not any(would_fail(f, parenting_checks=self.settings.parenting_checks) for f in row.preflight)

    def _send(self, row: PlannedMerge, moved: list[dict[str, Any]]) -> Verdict:
        """POST Merge until it is answered. Never re-sent unless Dataverse shows the subordinate still active
        and unmerged; `moved` gains the list moves of a workaround applied after a plugin refusal."""
        workaround_tried = bool(moved)
        for n in range(1, MAX_SENDS + 1):
            self._journal_sending(row)
            try:
                self.sender.merge(self._body(row))  # alone or in a $batch with other workers' merges
                return MergeStatus.MERGED, None, None, ""
            except TokenRefusedError as exc:
                raise TokenStop(exc) from exc
            except OutcomeUnknownError as exc:
                log.warning("merge %s -> %s: %s", row.subordinate_id, row.target_id, exc.message)
                verdict = self._settle(row, exc, n)
            except DataverseError as exc:
                failure = classify(exc.status, exc.code, exc.message)[0]
                if failure is INACTIVE:  # maybe our own earlier Merge, whose answer was lost, deactivated it
                    verdict = self._check_after(row, exc)
                elif self.settings.marketing_workaround and not workaround_tried and is_plugin_failure(exc):
                    workaround_tried = True
                    moved += self.lists.apply(row)
                    continue
                else:
                    return MergeStatus.FAILED, exc, failure, ""
            if verdict is not None:
                return verdict
        return MergeStatus.FAILED, None, OUTCOME_UNKNOWN, f"no answer after {MAX_SENDS} attempts; still unmerged"

    def _settle(self, row: PlannedMerge, exc: OutcomeUnknownError, n: int) -> Verdict | None:
        """After a lost answer: ask Dataverse what happened. After a timeout the Merge may still be running on
        the server, so keep asking for a while before concluding it never ran (and sending it again)."""
        time.sleep(_UNKNOWN_WAIT_S * n)
        deadline = time.monotonic() + (min(self.client.settings.read_timeout, _SETTLE_MAX_S) if exc.timed_out else 0)
        while True:
            verdict = self._check_after(row, exc)
            if verdict is not None or time.monotonic() >= deadline:
                return verdict
            time.sleep(_SETTLE_POLL_S)

    def _check_after(self, row: PlannedMerge, exc: DataverseError) -> Verdict | None:
        """What did the Merge do? None = still active and unmerged (send again); else the final verdict."""
        unknown = isinstance(exc, OutcomeUnknownError)
        for tries in range(1, _READ_TRIES + 1):
            try:
                state = checks.read_state(self.client, self.meta.entity_set_name, row.subordinate_id)
                break
            except TokenRefusedError as read_exc:
                raise TokenStop(read_exc) from read_exc
            except DataverseError as read_exc:
                if tries == _READ_TRIES:
                    why = f"Dataverse could not be asked ({read_exc.message})"
                    return MergeStatus.FAILED, exc, OUTCOME_UNKNOWN, why
                time.sleep(_UNKNOWN_WAIT_S * tries)
        master = checks.merged_into(state)
        if master == row.target_id:
            return MergeStatus.ALREADY_MERGED, None, None, "the Merge took effect although its answer was lost"
        if master:
            return MergeStatus.FAILED, exc, MERGED_ELSEWHERE, f"merged into another record ({master})"
        failure = OUTCOME_UNKNOWN if unknown else classify(exc.status, exc.code, exc.message)[0]
        if not state.exists:
            return MergeStatus.FAILED, exc, failure, "the subordinate no longer exists"
        if not state.active:
            return MergeStatus.FAILED, exc, failure, "the subordinate is inactive" if unknown else ""
        return None if unknown else (MergeStatus.FAILED, exc, failure, "")

    def _body(self, row: PlannedMerge) -> dict[str, Any]:
        ref = f"Microsoft.Dynamics.CRM.{self.plan.entity}"
        pid = self.meta.primary_id
        return {
            "Target": {"@odata.type": ref, pid: row.target_id},
            "Subordinate": {"@odata.type": ref, pid: row.subordinate_id},
            "UpdateContent": row.update_content,
            "PerformParentingChecks": self.settings.parenting_checks,
        }

    def _journal_sending(self, row: PlannedMerge) -> None:
        h = self.history.get(row.subordinate_id)
        attempt = (h.sends if h else 0) + 1
        if h:
            h.sends = attempt
        else:
            self.history[row.subordinate_id] = SubordinateHistory(row.subordinate_id, row.target_id, row.group_id,
                                                                  self.org, sends=attempt)
        self.journal.append("sending", subordinate_id=row.subordinate_id, target_id=row.target_id,
                            group_id=row.group_id, attempt=attempt, environment=self.org)

    def _should_verify(self, row: PlannedMerge) -> bool:
        with self._lock:
            self._merged_this_run += 1
            if self._merged_this_run <= self.settings.verify_first:
                return True
        # seeded per subordinate: the same sample whatever order the threads finish in
        return random.Random(f"{self.seed}:{row.subordinate_id}").random() < self.settings.verify_sample

    # -- recording -----------------------------------------------------------------------------------------
    def _record(self, row: PlannedMerge, status: MergeStatus, *, exc: DataverseError | None = None,
                failure: FailureClass | None = None, reason: SkipReason | None = None, detail: str = "",
                t0: float | None = None, started: str = "", verification: dict[str, Any] | None = None) -> str:
        finished = now_iso()
        ms = (time.monotonic() - t0) * 1000 if t0 is not None else 0.0
        h = self.history.get(row.subordinate_id)
        outcome = MergeOutcome(
            subordinate_id=row.subordinate_id, target_id=row.target_id, group_id=row.group_id, status=status,
            started=started or finished, finished=finished, duration_ms=round(ms, 1),
            update_content=row.update_content, attempt=h.sends if h else 0, environment=self.org,
        )
        if exc is not None:
            outcome.http_status, outcome.error_code = exc.status, exc.code
        text = skip_text(reason, detail) if reason is not None else detail
        outcome.error_message = "; ".join(p for p in (text, exc.message if exc else "") if p)
        if status is MergeStatus.FAILED:
            failure = failure or (classify(exc.status, exc.code, exc.message)[0] if exc else OUTCOME_UNKNOWN)
            outcome.failure_class, outcome.hint = str(failure), failure_hint(failure)
            outcome.reason_code = str(failure)
        elif reason is not None:
            outcome.reason_code = str(reason)
        self.journal.append("result", **asdict(outcome), reason=text, verification=verification)
        if status.done:
            self._done_now.add(row.subordinate_id)
        self.result.add(outcome, verification)
        log.info("merge %s -> %s: %s%s in %.0f ms", row.subordinate_id, row.target_id, status,
                 f" ({outcome.error_message})" if outcome.error_message else "", ms)
        return str(status)

    def _done(self, sub: str) -> bool:
        """Merged in an earlier run, or recorded as merged in this one."""
        h = self.history.get(sub)
        return bool(h and h.done) or sub in self._done_now

    def finish(self) -> None:
        self.result.finish(time.monotonic() - self._started, self.client.stats, self._throttled_at_start)
        self.result.batches, self.result.batched = self.sender.batches, self.sender.batched


def _row_from_history(h: SubordinateHistory) -> PlannedMerge:
    return PlannedMerge(group_id=h.group_id, order=0, target_id=h.target_id, subordinate_id=h.subordinate_id,
                        update_content={})


__all__ = ["MergeRun", "Progress", "TokenStop"]
