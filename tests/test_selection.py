"""merging/selection.py and merging/drift.py, pure: which planned merges run, which wait and why; what the
records' current state says about a merge. No server: plans, selections and histories are built here."""

from __future__ import annotations

import pytest

from dataverse import Environment
from merging.drift import RecordState, drift_verdict, same_instant
from merging.selection import MergeSettings, select
from runfolder.journal import SubordinateHistory
from runfolder.merges_csv import Selection
from runfolder.plan_file import Plan, PlanHeader
from runfolder.state import Finding, MergeStatus, PlannedMerge, Severity, SkipReason

ENV = Environment("https://org.crm.dynamics.com/", "aaaaaaaa-0000-0000-0000-000000000001")
OTHER_ENV = "bbbbbbbb-0000-0000-0000-000000000002"
T, S1, S2, S3, U, V = (f"00000000-0000-0000-0000-0000000000{n:02d}" for n in range(1, 7))


def merge(sub: str, order: int, target: str = T, *findings: Finding) -> PlannedMerge:
    return PlannedMerge(target, order, target, sub, {"@odata.type": "Microsoft.Dynamics.CRM.contact"},
                        preflight=findings)


PLAN = Plan(PlanHeader.new("contact", ENV, "oldest_record"), [merge(S1, 1), merge(S2, 2), merge(S3, 3), merge(V, 1, U)])


def selected(*subs: str) -> Selection:
    return Selection(len(subs), frozenset(subs), tuple(m for m in PLAN.merges if m.subordinate_id not in subs))


def done(sub: str, target: str = T, env: str = ENV.organization_id) -> SubordinateHistory:
    return SubordinateHistory(sub, target, T, env, sends=1, last_result={"status": "merged"})


def run(selection: Selection, history: dict[str, SubordinateHistory] | None = None, plan: Plan = PLAN,
        **settings: object):
    return select(plan, selection, history or {}, ENV, MergeSettings(entity="contact", **settings))  # type: ignore[arg-type]


def test_everything_selected_runs_in_plan_order() -> None:
    result = run(selected(S1, S2, S3, V))
    assert [m.subordinate_id for m in result.to_run] == [S1, S2, S3, V] and result.skips == []


def test_a_deleted_row_holds_back_the_later_merges_of_its_target() -> None:
    result = run(selected(S2, S3, V))    # the row of S1 (order 1) was deleted
    assert [m.subordinate_id for m in result.to_run] == [V]
    assert [(s.merge.subordinate_id, s.reason) for s in result.skips] == [
        (S2, SkipReason.EARLIER_LEFT_OUT), (S3, SkipReason.EARLIER_LEFT_OUT)]


def test_a_deleted_row_after_the_others_holds_nothing_back() -> None:
    assert [m.subordinate_id for m in run(selected(S1, S2, V)).to_run] == [S1, S2, V]


def test_a_merge_planned_to_fail_does_not_hold_back_the_rest() -> None:
    fails = Finding("active_quote", Severity.FAIL, "has active quote")
    plan = Plan(PLAN.header, [merge(S1, 1, T, fails), merge(S2, 2), merge(S3, 3), merge(V, 1, U)])
    result = run(selected(S1, S2, S3, V), plan=plan)
    assert [m.subordinate_id for m in result.to_run] == [S2, S3, V]   # step 3 planned S2 and S3 without S1
    assert [(s.merge.subordinate_id, s.reason) for s in result.skips] == [(S1, SkipReason.PREDICTED_FAILURE)]


def test_a_skipped_prediction_that_depends_on_settings_holds_back_the_rest() -> None:
    parenting = Finding("parent_lost", Severity.FAIL_IF_PARENTING, "might lose parenting")
    plan = Plan(PLAN.header, [merge(S1, 1, T, parenting), merge(S2, 2), merge(S3, 3), merge(V, 1, U)])
    held = run(selected(S1, S2, S3, V), plan=plan)
    assert [s.reason for s in held.skips] == [SkipReason.PREDICTED_FAILURE, SkipReason.EARLIER_NOT_DONE,
                                              SkipReason.EARLIER_NOT_DONE]
    assert [m.subordinate_id for m in run(selected(S1, S2, S3, V), plan=plan, parenting_checks=False).to_run] == \
        [S1, S2, S3, V]


def test_done_counts_only_into_the_same_target_in_the_same_environment() -> None:
    history = {S1: done(S1), S2: done(S2, target=U), S3: done(S3, env=OTHER_ENV)}
    result = run(selected(S1, S2, S3, V), history)
    assert result.already_done == 1
    assert [m.subordinate_id for m in result.to_run] == [S2, S3, V]


def test_max_merges_keeps_the_plan_order_and_counts_the_rest() -> None:
    result = run(selected(S1, S2, S3, V), max_merges=2)
    assert [m.subordinate_id for m in result.to_run] == [S1, S2] and result.held_back == 2


@pytest.mark.parametrize(("sub", "target", "expected"), [
    (RecordState(S1), RecordState(T), None),
    (RecordState(S1, statecode=1, masterid=T), RecordState(T), (MergeStatus.ALREADY_MERGED, None)),
    (RecordState(S1, statecode=1, masterid=U), RecordState(T),
     (MergeStatus.SKIPPED, SkipReason.SUBORDINATE_MERGED_ELSEWHERE)),
    (RecordState(S1, exists=False), RecordState(T), (MergeStatus.SKIPPED, SkipReason.SUBORDINATE_GONE)),
    (RecordState(S1, statecode=1), RecordState(T), (MergeStatus.SKIPPED, SkipReason.SUBORDINATE_INACTIVE)),
    (RecordState(S1), RecordState(T, exists=False), (MergeStatus.SKIPPED, SkipReason.TARGET_GONE)),
    (RecordState(S1), RecordState(T, statecode=1), (MergeStatus.SKIPPED, SkipReason.TARGET_INACTIVE)),
])
def test_drift_verdicts(sub: RecordState, target: RecordState, expected: tuple | None) -> None:
    verdict = drift_verdict(merge(S1, 1), sub, target)
    assert (verdict[:2] if verdict else None) == expected


def test_changed_since_prepare_only_when_asked_and_by_instant() -> None:
    planned = PlannedMerge(T, 1, T, S1, {}, subordinate_modifiedon="2024-01-01T10:00:00Z",
                           target_modifiedon="2024-01-01T10:00:00Z")
    moved = RecordState(S1, modifiedon="2024-02-01T00:00:00Z")
    assert drift_verdict(planned, moved, RecordState(T)) is None
    verdict = drift_verdict(planned, moved, RecordState(T), check_modified=True)
    assert verdict is not None and verdict[1] is SkipReason.SUBORDINATE_CHANGED
    assert same_instant("2024-01-01T11:00:00+01:00", "2024-01-01T10:00:00Z")
