"""Step 4: send the planned Merge actions (prepare/merges.csv). Writes update/journal.jsonl and
update/merge_actions_made.json.

Merges cannot be undone, so this step is built to be interrupted and rerun: every Merge is journaled before
it is sent and after it answers (journal.py); a rerun skips what is done and asks Dataverse about any merge
whose answer was lost before doing anything else with that subordinate; no path sends a second Merge for a
subordinate that Dataverse shows as merged. Before merging, all records are read in bulk and merges whose
records drifted (inactive, gone, already merged, changed since prepare) are skipped with a reason.
Merges into one target run in plan order; different targets run in parallel at the pace the server allows
(merge_pool.py). `load_plan` (no HTTP) feeds the confirmation screen; `run` does the work.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import asdict, replace
from typing import Any

from errors import DataverseError, OutcomeUnknownError, RunStateError
from merging import drift as checks
from merging.list_workaround import ListWorkaround, is_plugin_failure
from merging.outcomes import MergeResult, classify
from merging.pool import DEFAULT_MAX_WORKERS, DEFAULT_START, AdaptiveLimit, ChainPool, Progress
from merging.selection import MergePlan, MergeSettings, load_plan
from planning.preflight import would_fail
from runfolder.folder import RunFolder
from runfolder.journal import Journal, SubordinateHistory, now_iso, read_journal, replay, write_actions
from runfolder.state import MergeOutcome, PlannedMerge

__all__ = ["MergePlan", "MergeResult", "MergeSettings", "Progress", "load_plan", "run"]

log = logging.getLogger(__name__)

MAX_SENDS = 5  # Merges sent for one subordinate in one run (each after Dataverse showed it still unmerged)
_UNKNOWN_WAIT_S = 0.5
_SETTLE_MAX_S = 60.0   # after a timeout: how long a Merge may still be running server-side
_SETTLE_POLL_S = 2.0
_READ_TRIES = 3  # reads of a subordinate whose Merge got no answer, before giving up (and never re-sending)


def run(client: Any, run: RunFolder, plan: MergePlan, settings: MergeSettings, *,
        on_progress: Any = None, seed: int = 0) -> MergeResult:
    """Execute the plan. merge_actions_made.json is rewritten at the end, on Ctrl-C and on any error."""
    journal = Journal(run.journal_path)  # RunStateError when another run holds this folder
    step: _Step | None = None
    ending = "error"
    try:
        step = _Step(client, run, plan, settings, journal, seed)
        journal.append("run_start", entity=settings.entity, planned=len(plan.to_run), settings=asdict(settings))
        step.execute(step.prepare(), on_progress)
        ending = "finished"
    except KeyboardInterrupt:
        ending = "interrupted"
        raise
    finally:
        if step is None:
            journal.close()
        else:
            step.wrap_up(ending)
    return step.result


class _Step:
    """One run of step 4: the shared state its worker threads use, and what each of them does per merge."""

    def __init__(self, client: Any, run: RunFolder, plan: MergePlan, settings: MergeSettings,
                 journal: Journal, seed: int) -> None:
        self.client, self.run, self.plan, self.settings = client, run, plan, settings
        self.journal, self.seed = journal, seed
        self.meta = client.entity(settings.entity)
        self.lookups = sorted(self.meta.lookups())
        self.history = replay(read_journal(run.journal_path))  # fresh: the plan may be minutes old
        self.workaround = ListWorkaround(client, journal, self.history) if settings.marketing_workaround else None
        self.result = MergeResult(journal_path=run.journal_path, actions_path=run.merge_actions_path)
        self._lock = threading.Lock()
        self._broken: dict[str, str] = {}  # target id -> the subordinate whose merge did not happen
        self._done_now: set[str] = set()   # merged (or found merged) in this run
        self._merged_this_run = 0
        self._started = time.monotonic()
        self._throttled_at_start = client.stats.throttled

    # -- before the pool: resolve, skip, drift --------------------------------------------------------------
    def prepare(self) -> list[PlannedMerge]:
        """Resolve unknown outcomes, record skips and drift; return the rows to merge now, in plan order."""
        rows = [r for r in self.plan.to_run if not self._done(r.subordinate_id)]
        self.result.done_before = self.plan.already_done + len(self.plan.to_run) - len(rows)
        pending = [h for h in self.history.values() if h.pending]
        ids = [i for r in rows for i in (r.subordinate_id, r.target_id)]
        ids += [i for h in pending for i in (h.subordinate_id, h.target_id) if i]
        states = checks.read_states(self.client, self.meta.entity_set_name, self.meta.primary_id, ids) if ids else {}
        by_sub = {r.subordinate_id: r for r in rows}
        handled = self._resolve_pending(pending, by_sub, states)
        for row, why in self.plan.to_skip:
            if row.subordinate_id not in handled and not self._done(row.subordinate_id):
                self._record(row, "skipped", reason=why)
        return self._drift(rows, states, handled)

    def _resolve_pending(self, pending: list[SubordinateHistory], by_sub: dict[str, PlannedMerge],
                         states: dict[str, checks.RecordState]) -> set[str]:
        """Subordinates sent before with no answer recorded: ask Dataverse what happened (never re-send blind)."""
        handled: set[str] = set()
        skip_why = {r.subordinate_id: why for r, why in self.plan.to_skip}
        planned = {r.subordinate_id: r for r in self.plan.rows}
        for h in pending:
            row = by_sub.get(h.subordinate_id) or planned.get(h.subordinate_id) or _row_from_history(h)
            master = checks.merged_into(states.get(h.subordinate_id, checks.RecordState(h.subordinate_id, False)))
            if master and master in (h.target_id, row.target_id):
                self._record(row, "already_merged", reason="an earlier Merge whose answer was lost took effect")
            elif master:
                self._record(row, "failed", reason=f"merged into another record ({master})")
            elif h.subordinate_id not in by_sub:
                why = skip_why.get(h.subordinate_id) or (
                    "left for a later run (maximum reached)" if h.subordinate_id in planned
                    else "no longer in merges.csv")
                self._record(row, "skipped", reason=f"an earlier Merge got no answer; checked: not merged; {why}")
            else:
                continue
            handled.add(h.subordinate_id)
        return handled

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
                states[row.target_id], check_modified=self.settings.check_modified,
                check_target_modified=self.settings.check_modified and row.target_id not in touched)
            if verdict is None:
                ready.append(row)
                continue
            status, reason = verdict
            if "changed since prepare" in reason:
                self.result.reprepare.append(row.target_id if "target" in reason else row.subordinate_id)
            self._record(row, status, reason=reason)
        return ready

    # -- the pool ------------------------------------------------------------------------------------------
    def execute(self, rows: list[PlannedMerge], on_progress: Any) -> None:
        chains: dict[str, list[PlannedMerge]] = {}
        for row in self._unblocked(rows):
            chains.setdefault(row.target_id, []).append(row)
        maximum = self.settings.workers or DEFAULT_MAX_WORKERS
        limit = AdaptiveLimit(self.client.stats.dop_hint or DEFAULT_START, maximum)
        log.info("merging %d records into %d targets, up to %d at once (starting at %d)",
                 len(rows), len(chains), maximum, limit.current)
        pool: ChainPool[PlannedMerge] = ChainPool(
            list(chains.values()), self.merge_row, limit=limit,
            throttled=lambda: self.client.stats.throttled, on_progress=on_progress)
        pool.run()

    def _unblocked(self, rows: list[PlannedMerge]) -> list[PlannedMerge]:
        """Rows whose earlier merges into the same target are done or run now; the others are skipped.

        Step 3 plans each merge on the target as the earlier ones leave it, so a merge whose predecessor
        did not happen would write values meant for another state of the target. Only a predecessor that
        step 3 already knew would be refused (a `fail` finding) was left out of the later merges' plans.
        """
        running = {r.subordinate_id for r in rows}
        earlier: dict[str, list[PlannedMerge]] = {}
        for r in sorted(self.plan.rows, key=lambda r: r.order):
            earlier.setdefault(r.target_id, []).append(r)
        ready = []
        for row in rows:
            missing = [e for e in earlier.get(row.target_id, []) if e.order < row.order
                       and e.subordinate_id not in running and not self._done(e.subordinate_id)
                       and not any(f.severity == "fail" for f in e.preflight)]
            if missing:
                self._broken[row.target_id] = missing[0].subordinate_id
                self._record(row, "skipped", reason=_blocked_reason(missing[0].subordinate_id))
            else:
                ready.append(row)
        return ready

    def merge_row(self, row: PlannedMerge) -> str:
        """One planned merge, start to finish (runs on a worker thread). Returns its final status."""
        t0, started = time.monotonic(), now_iso()
        blocker = self._broken.get(row.target_id)
        if blocker is not None:  # an earlier merge into this target failed in this run
            return self._record(row, "skipped", reason=_blocked_reason(blocker), t0=t0, started=started)
        if self.workaround is not None and any(f.code == "marketing_list" for f in row.preflight) and not any(
                would_fail(f, parenting_checks=self.settings.parenting_checks) for f in row.preflight):
            # (a merge predicted to fail for another reason keeps its lists: it would fail after moving them)
            try:
                self.workaround.apply(row)
            except DataverseError as wexc:
                return self._record(row, "failed", exc=wexc, t0=t0, started=started,
                                    reason="the marketing-list workaround failed")
        status, exc, reason = self._send(row)
        verification = None
        if status == "merged" and self._should_verify(row):
            verification = checks.verify_target(self.client, self.meta.entity_set_name, self.lookups, row)
        if status == "failed":
            self._broken.setdefault(row.target_id, row.subordinate_id)
        return self._record(row, status, exc=exc, reason=reason, t0=t0, started=started, verification=verification)

    def _send(self, row: PlannedMerge) -> tuple[str, DataverseError | None, str]:
        """POST Merge until it is answered; (status, error, reason). Never re-sent unless Dataverse shows the
        subordinate still active and unmerged."""
        workaround_tried = False
        for n in range(1, MAX_SENDS + 1):
            self._journal_sending(row)
            try:
                self.client.post("Merge", self._body(row))
                return "merged", None, ""
            except OutcomeUnknownError as exc:
                log.warning("merge %s -> %s: %s", row.subordinate_id, row.target_id, exc.message)
                verdict = self._settle(row, exc, n)
            except DataverseError as exc:
                if exc.status == 401 and n < MAX_SENDS:  # refused unprocessed: the token expired again in a wait
                    log.warning("merge %s -> %s: %s; sending again", row.subordinate_id, row.target_id, exc.message)
                    continue
                if "is deactive" in exc.message and "sub-entity" in exc.message:
                    verdict = self._check_after(row, exc)
                elif (self.workaround is not None and not workaround_tried and is_plugin_failure(exc)):
                    workaround_tried = True
                    try:
                        self.workaround.apply(row)
                    except DataverseError as wexc:
                        return "failed", wexc, "the marketing-list workaround failed"
                    continue
                else:
                    return "failed", exc, ""
            if verdict is not None:
                return verdict
        return "failed", None, f"no answer from Dataverse after {MAX_SENDS} attempts; the subordinate is unmerged"

    def _settle(self, row: PlannedMerge, exc: OutcomeUnknownError, n: int) -> tuple[str, DataverseError | None,
                                                                                 str] | None:
        """After a lost answer: ask Dataverse what happened. After a timeout the Merge may still be running on
        the server, so keep asking for a while before concluding it never ran (and sending it again)."""
        time.sleep(_UNKNOWN_WAIT_S * n)
        deadline = time.monotonic() + (min(self.client.settings.read_timeout, _SETTLE_MAX_S) if exc.timed_out else 0)
        while True:
            verdict = self._check_after(row, exc)
            if verdict is not None or time.monotonic() >= deadline:
                return verdict
            time.sleep(_SETTLE_POLL_S)

    def _check_after(self, row: PlannedMerge, exc: DataverseError) -> tuple[str, DataverseError | None, str] | None:
        """What did the Merge do? None = still active and unmerged (send again); else the final verdict."""
        for tries in range(1, _READ_TRIES + 1):
            try:
                state = checks.read_state(self.client, self.meta.entity_set_name, row.subordinate_id)
                break
            except DataverseError as read_exc:  # e.g. a token that expired again during a long wait
                if tries == _READ_TRIES:
                    return "failed", exc, f"outcome unknown, and Dataverse could not be asked ({read_exc.message})"
                time.sleep(_UNKNOWN_WAIT_S * tries)
        master = checks.merged_into(state)
        if master == row.target_id:
            return "already_merged", None, "the Merge took effect although its answer was lost"
        if master:
            return "failed", exc, f"merged into another record ({master})"
        if not state.exists:
            return "failed", exc, "the subordinate no longer exists"
        if not state.active:
            return "failed", exc, "the subordinate is inactive" if isinstance(exc, OutcomeUnknownError) else ""
        return None if isinstance(exc, OutcomeUnknownError) else ("failed", exc, "")

    def _body(self, row: PlannedMerge) -> dict[str, Any]:
        ref = f"Microsoft.Dynamics.CRM.{self.settings.entity}"
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
            self.history[row.subordinate_id] = _history(row, sends=attempt)
        self.journal.append("sending", subordinate_id=row.subordinate_id, target_id=row.target_id,
                            group_id=row.group_id, attempt=attempt)

    def _should_verify(self, row: PlannedMerge) -> bool:
        with self._lock:
            self._merged_this_run += 1
            if self._merged_this_run <= self.settings.verify_first:
                return True
        # seeded per subordinate: the same sample whatever order the threads finish in
        return random.Random(f"{self.seed}:{row.subordinate_id}").random() < self.settings.verify_sample

    # -- recording -----------------------------------------------------------------------------------------
    def _record(self, row: PlannedMerge, status: str, *, exc: DataverseError | None = None, reason: str = "",
                t0: float | None = None, started: str = "", verification: dict[str, Any] | None = None) -> str:
        finished = now_iso()
        ms = (time.monotonic() - t0) * 1000 if t0 is not None else 0.0
        outcome = MergeOutcome(
            subordinate_id=row.subordinate_id, target_id=row.target_id, group_id=row.group_id, status=status,
            started=started or finished, finished=finished, duration_ms=round(ms, 1),
            update_content=row.update_content, attempt=self._sends(row),
        )
        if exc is not None:
            outcome.http_status, outcome.error_code = exc.status, exc.code
        outcome.error_message = "; ".join(p for p in (reason, exc.message if exc else "") if p)
        if status == "failed":
            outcome.failure_class, outcome.hint = classify(exc, outcome.error_message)
        self.journal.append("result", **asdict(outcome), reason=reason, verification=verification)
        if status in ("merged", "already_merged"):
            self._done_now.add(row.subordinate_id)
        self.result.add(outcome, verification)
        log.info("merge %s -> %s: %s%s in %.0f ms", row.subordinate_id, row.target_id, status,
                 f" ({outcome.error_message})" if outcome.error_message else "", ms)
        return status

    def _sends(self, row: PlannedMerge) -> int:
        h = self.history.get(row.subordinate_id)
        return h.sends if h else 0

    def _done(self, sub: str) -> bool:
        """Merged in an earlier run, or recorded as merged in this one."""
        h = self.history.get(sub)
        return bool(h and h.done) or sub in self._done_now

    def wrap_up(self, ending: str) -> None:
        """Close the journal and rebuild merge_actions_made.json from it (also after Ctrl-C and errors)."""
        self.result.finish(time.monotonic() - self._started, self.client.stats, self._throttled_at_start)
        try:
            try:
                self.journal.append("run_end", ending=ending, counts=self.result.counts())
            finally:
                self.journal.close()
            write_actions(self.run.merge_actions_path, read_journal(self.run.journal_path),
                          entity=self.settings.entity)
        except (OSError, RunStateError) as exc:
            if ending == "finished":
                raise
            log.error("could not write %s after the run stopped: %s", self.run.merge_actions_path, exc)
        log.info("step 4 %s: %s", ending, self.result.counts())


def _history(row: PlannedMerge, sends: int) -> SubordinateHistory:
    return SubordinateHistory(row.subordinate_id, row.target_id, row.group_id, sends=sends)


def _row_from_history(h: SubordinateHistory) -> PlannedMerge:
    return PlannedMerge(group_id=h.group_id, order=0, target_id=h.target_id, subordinate_id=h.subordinate_id,
                        update_content={})


def _blocked_reason(blocker: str) -> str:
    return (f"an earlier merge into the same target ({blocker}) did not happen, and this one was planned on "
            "top of it: rerun step 3 (Prepare duplicates), then step 4")
