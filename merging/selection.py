"""Which of the plan's merges step 4 runs now, and why the others wait. Pure: the plan, what merges.csv
selects, the journal's history and the settings in; the run's to-do list out. No I/O.

A merge runs when its row is in merges.csv as planned, it is not done already (into that target, in this
environment), pre-flight does not predict its refusal (unless the user asks to try), and every earlier merge
into its target is done, runs now, or was planned out of the way (a `fail` finding: step 3 planned the later
merges without it). Otherwise a later merge would write values planned for another state of its target, so
it waits, with the reason: an earlier merge left out of merges.csv, or one that did not happen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dataverse.environment import Environment
from planning.preflight import would_fail
from runfolder.journal import SubordinateHistory
from runfolder.merges_csv import Selection
from runfolder.plan_file import Plan
from runfolder.state import PlannedMerge, SkipReason


@dataclass(frozen=True)
class MergeSettings:
    """The choices of one merge run (menu answers or command-line flags)."""

    entity: str
    parenting_checks: bool = True
    max_merges: int | None = None
    skip_predicted_failures: bool = True
    assume_marketing_plugin: bool = False
    marketing_workaround: bool = False
    check_modified: bool = False
    verify_first: int = 20
    verify_sample: float = 0.05
    workers: int | None = None
    note: bool = False                 # a note on each merged target (merging/notes.py)
    snapshots: bool = True             # an undo record before each merge (merging/snapshots.py)
    batch_size: int | None = None      # merges per $batch: None decides (merging/batches.py), 1 never batches


@dataclass(frozen=True)
class Skip:
    merge: PlannedMerge
    reason: SkipReason
    detail: str = ""


@dataclass
class MergePlan:
    """What step 4 will do, before it does anything: for the confirmation screen and for the run."""

    plan: Plan
    selection: Selection
    environment: Environment
    to_run: list[PlannedMerge]
    skips: list[Skip]                                  # recorded as skipped when the run starts
    predicted_failures: list[tuple[PlannedMerge, str]]  # (merge, why) among the selected, not done
    already_done: int
    unknown_outcomes: list[str]                        # subordinates sent before with no answer recorded
    history: dict[str, SubordinateHistory] = field(default_factory=dict)
    held_back: int = 0                                 # not run this time because of max_merges

    @property
    def entity(self) -> str:
        return self.plan.header.entity

    @property
    def total_rows(self) -> int:
        return len(self.plan.merges)

    def summary_lines(self) -> list[str]:
        header = self.plan.header
        lines = [f"Plan of {header.prepared_at or 'step 3'} for {header.environment.describe()}: "
                 f"{len(self.plan.merges)} merges; merges.csv selects {len(self.selection.selected)}."]
        if self.selection.left_out:
            lines.append(f"{len(self.selection.left_out)} left out of merges.csv: not merged.")
        if self.already_done:
            lines.append(f"{self.already_done} already done in an earlier run: skipped.")
        if self.unknown_outcomes:
            lines.append(f"{len(self.unknown_outcomes)} were sent before with no answer recorded: "
                         "Dataverse is asked first, none is sent twice.")
        reasons: dict[str, int] = {}
        for skip in self.skips:
            why = skip.detail if skip.reason is SkipReason.PREDICTED_FAILURE else str(skip.reason)
            reasons[why] = reasons.get(why, 0) + 1
        if self.skips:
            lines.append(f"{len(self.skips)} will be skipped:")
            lines += [f"  {n} x {why.replace('_', ' ')}" for why, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
        elif self.predicted_failures:
            lines.append(f"{len(self.predicted_failures)} predicted to fail: tried anyway.")
        if self.held_back:
            lines.append(f"{self.held_back} left for a later run (maximum {len(self.to_run)} this time).")
        lines.append(f"{len(self.to_run)} merges to run now.")
        return lines


def predicted_failure(merge: PlannedMerge, settings: MergeSettings) -> str:
    """The reason this merge will fail under these settings, or '' when it should not."""
    plugin = settings.assume_marketing_plugin and not settings.marketing_workaround
    for f in merge.preflight:
        if would_fail(f, parenting_checks=settings.parenting_checks, marketing_plugin=plugin):
            return f.message or f.code
    return ""


def select(plan: Plan, selection: Selection, history: dict[str, SubordinateHistory], environment: Environment,
           settings: MergeSettings) -> MergePlan:
    """The run's to-do list (see the module docstring)."""
    org = environment.organization_id
    done = {m.subordinate_id for m in plan.merges
            if (h := history.get(m.subordinate_id)) is not None and h.done_into(m.target_id, org)}
    chosen = [m for m in plan.merges if m.subordinate_id in selection.selected and m.subordinate_id not in done]
    predicted = [(m, why) for m in chosen if (why := predicted_failure(m, settings))]
    skipped = {m.subordinate_id for m, _ in predicted} if settings.skip_predicted_failures else set()
    skips = [Skip(m, SkipReason.PREDICTED_FAILURE, why) for m, why in predicted if m.subordinate_id in skipped]
    runnable = [m for m in chosen if m.subordinate_id not in skipped]
    cut = settings.max_merges if settings.max_merges is not None else len(runnable)
    now, later = _held_by_earlier(plan.merges, runnable[:max(0, cut)], done, selection.selected)
    skips += later
    held_back = max(0, len(runnable) - max(0, cut))
    return MergePlan(
        plan=plan, selection=selection, environment=environment, to_run=now, skips=skips,
        predicted_failures=predicted, already_done=len(done & selection.selected),
        unknown_outcomes=[sub for sub, h in history.items() if h.pending], history=history, held_back=held_back,
    )


def _held_by_earlier(merges: Iterable[PlannedMerge], candidates: list[PlannedMerge], done: set[str],
                     selected: frozenset[str]) -> tuple[list[PlannedMerge], list[Skip]]:
    """Candidates whose earlier merges into the same target are done, run now, or were planned out of the
    way; the others as skips. Merges are in plan order, so an earlier merge is decided before a later one."""
    running = {m.subordinate_id for m in candidates}
    earlier: dict[str, list[PlannedMerge]] = {}
    for m in sorted(merges, key=lambda m: m.order):
        earlier.setdefault(m.target_id, []).append(m)
    ready: list[PlannedMerge] = []
    skips: list[Skip] = []
    for m in candidates:
        blocking = [e for e in earlier.get(m.target_id, []) if e.order < m.order and e.subordinate_id not in done
                    and e.subordinate_id not in running and not e.predicted_to_fail]
        if not blocking:
            ready.append(m)
            continue
        running.discard(m.subordinate_id)  # a merge held back holds back the ones after it too
        first = blocking[0]
        reason = SkipReason.EARLIER_NOT_DONE if first.subordinate_id in selected else SkipReason.EARLIER_LEFT_OUT
        skips.append(Skip(m, reason, f"{first.subordinate_id} into {m.target_id}"))
    return ready, skips
