"""Step 4 against the emulator over real HTTP: plans, resume, unknown outcomes, drift, pre-flight skips,
failure classes, per-target order, verification, Ctrl-C and the marketing-list workaround."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from merge_fixtures import CONTACT, Planned, make_run, seed_groups

import merge_duplicates as md
from auth import StaticTokenProvider
from dataverse import ClientSettings, DataverseClient
from dataverse_emulator import EmulatorHandle
from dataverse_emulator.store import Ref
from runfolder.folder import RunFolder
from runfolder.journal import Journal, read_journal

FAST = ClientSettings(backoff_base=0.01, read_timeout=20)


@pytest.fixture
def dv(make_emulator: Callable[..., EmulatorHandle]) -> EmulatorHandle:
    return make_emulator("empty")


def client_for(handle: EmulatorHandle, cls: type[DataverseClient] = DataverseClient) -> DataverseClient:
    return cls(handle.url, StaticTokenProvider("t"), FAST)


def merge(handle: EmulatorHandle, run: RunFolder, client: DataverseClient | None = None,
          **kw: Any) -> md.MergeResult:
    settings = md.MergeSettings(entity="contact", **kw)
    client = client or client_for(handle)
    return md.run(client, run, md.load(client, run, settings), settings)


def actions(run: RunFolder) -> dict[str, dict[str, Any]]:
    doc = json.loads(run.merge_actions_path.read_text(encoding="utf-8"))
    subs = [a["subordinate_id"] for a in doc["merges"]]
    assert len(subs) == len(set(subs)), "each subordinate appears once"
    return {a["subordinate_id"]: a for a in doc["merges"]}


def assert_merged(handle: EmulatorHandle, p: Planned) -> None:
    sub = handle.store.get("contact", p.subordinate_id)
    assert sub["statecode"] == 1 and sub["merged"] is True and sub["masterid"] == Ref("contact", p.target_id)
    assert handle.store.counters.merge_success[p.subordinate_id] == 1


def test_normal_run_merges_everything_once(dv: EmulatorHandle, tmp_path: Path) -> None:
    planned = seed_groups(dv.store, 10, 3)
    run = make_run(tmp_path / "run", dv.url, planned)
    result = merge(dv, run)
    assert (result.merged, result.failed, result.skipped) == (30, 0, 0)
    for p in planned:
        assert_merged(dv, p)
        assert dv.store.counters.merge_attempts[p.subordinate_id] == 1
    target = dv.store.get("contact", planned[-1].target_id)
    assert target["emailaddress2"] == planned[-1].update_content["emailaddress2"]
    assert target["description"] == "merged 3 of 3"  # the last of its chain wrote last
    acts = actions(run)
    assert set(acts) == {p.subordinate_id for p in planned} and {a["status"] for a in acts.values()} == {"merged"}
    first = acts[planned[0].subordinate_id]
    assert first["update_content"]["@odata.type"] == CONTACT and first["attempts"] == 1
    assert first["verification"] == {"checked": True, "mismatches": []} and result.verified >= 20
    assert first["started"] and first["finished"] and first["duration_ms"] >= 0


def test_rerun_skips_what_is_done_and_says_how_many(dv: EmulatorHandle, tmp_path: Path) -> None:
    planned = seed_groups(dv.store, 12, 1)
    run = make_run(tmp_path / "run", dv.url, planned)
    assert merge(dv, run, max_merges=5).merged == 5
    settings = md.MergeSettings(entity="contact")
    plan = md.load(client_for(dv), run, settings)
    assert plan.already_done == 5 and len(plan.to_run) == 7
    assert any("5 already done" in line for line in plan.summary_lines())
    result = md.run(client_for(dv), run, plan, settings)
    assert (result.merged, result.done_before) == (7, 5)
    assert all(n == 1 for n in dv.store.counters.merge_attempts.values())
    assert len(actions(run)) == 12


def _sending(run: RunFolder, p: Planned) -> None:
    with Journal(run.journal_path) as j:
        j.append("sending", subordinate_id=p.subordinate_id, target_id=p.target_id, group_id=p.group_id, attempt=1)


def _merge_directly(client: DataverseClient, target: str, sub: str) -> None:
    client.post("Merge", {"Target": {"@odata.type": CONTACT, "contactid": target},
                          "Subordinate": {"@odata.type": CONTACT, "contactid": sub},
                          "UpdateContent": {"@odata.type": CONTACT}, "PerformParentingChecks": False})


def test_unknown_outcomes_are_resolved_by_asking_dataverse(dv: EmulatorHandle, tmp_path: Path) -> None:
    took, lost, elsewhere = seed_groups(dv.store, 3, 1)
    other = dv.store.insert("contact", {"lastname": "Other"})
    run = make_run(tmp_path / "run", dv.url, [took, lost, elsewhere])
    client = client_for(dv)
    _merge_directly(client, took.target_id, took.subordinate_id)  # the earlier Merge took effect
    _merge_directly(client, other, elsewhere.subordinate_id)      # someone merged it elsewhere
    for p in (took, lost, elsewhere):
        _sending(run, p)  # killed after sending: no result recorded
    plan = md.load(client_for(dv), run, md.MergeSettings(entity="contact"))
    assert len(plan.unknown_outcomes) == 3 and any("no answer recorded" in s for s in plan.summary_lines())
    result = merge(dv, run)
    acts = actions(run)
    assert acts[took.subordinate_id]["status"] == "already_merged"
    assert dv.store.counters.merge_attempts[took.subordinate_id] == 1  # not sent again
    assert acts[lost.subordinate_id]["status"] == "merged" and acts[lost.subordinate_id]["attempts"] == 2
    assert_merged(dv, lost)
    assert acts[elsewhere.subordinate_id]["status"] == "failed"
    assert "another record" in acts[elsewhere.subordinate_id]["error_message"]
    assert acts[elsewhere.subordinate_id]["failure_class"] == "merged_elsewhere"
    assert dv.store.counters.merge_attempts[elsewhere.subordinate_id] == 1
    assert (result.merged, result.already_merged, result.failed) == (1, 1, 1)


def test_drift_is_skipped_with_reasons(dv: EmulatorHandle, tmp_path: Path) -> None:
    inactive_sub, gone_target, inactive_target, done_before, fine = seed_groups(dv.store, 5, 1)
    run = make_run(tmp_path / "run", dv.url, [inactive_sub, gone_target, inactive_target, done_before, fine])
    dv.store.update("contact", inactive_sub.subordinate_id, {"statecode": 1, "statuscode": 2})
    dv.store.delete("contact", gone_target.target_id)
    dv.store.update("contact", inactive_target.target_id, {"statecode": 1, "statuscode": 2})
    _merge_directly(client_for(dv), done_before.target_id, done_before.subordinate_id)
    result = merge(dv, run)
    acts = actions(run)
    assert acts[inactive_sub.subordinate_id]["error_message"] == "the subordinate is inactive"
    assert acts[gone_target.subordinate_id]["error_message"] == "the target no longer exists"
    assert acts[inactive_target.subordinate_id]["error_message"] == "the target is inactive"
    assert acts[done_before.subordinate_id]["status"] == "already_merged"
    assert dv.store.counters.merge_attempts[done_before.subordinate_id] == 1
    assert (result.merged, result.skipped, result.already_merged) == (1, 3, 1)
    assert sum(result.skip_reasons.values()) == 3


def test_changed_since_prepare_is_skipped_and_listed(dv: EmulatorHandle, tmp_path: Path) -> None:
    changed_sub, changed_target_a, fine = seed_groups(dv.store, 3, 1)
    second = Planned(changed_target_a.group_id, changed_target_a.target_id,
                     seed_groups(dv.store, 1, 1, prefix="x")[0].subordinate_id, 2, changed_target_a.update_content)
    plan = [changed_sub, changed_target_a, second, fine]
    stamps = {i: dv.store.get("contact", i)["modifiedon"] for p in plan for i in (p.target_id, p.subordinate_id)}
    run = make_run(tmp_path / "run", dv.url, plan, modifiedon=stamps)
    dv.store.update("contact", changed_sub.subordinate_id, {"jobtitle": "edited", "modifiedon": "2025-02-02T00:00:00Z"})
    dv.store.update("contact", changed_target_a.target_id, {"jobtitle": "edited", "modifiedon": "2025-02-02T00:00:00Z"})
    result = merge(dv, run, check_modified=True)
    assert (result.merged, result.skipped) == (1, 3)
    assert set(result.reprepare) == {changed_sub.subordinate_id, changed_target_a.target_id}
    assert dv.store.counters.merge_success[fine.subordinate_id] == 1


def test_predicted_failures_are_skipped_with_the_reason(dv: EmulatorHandle, tmp_path: Path) -> None:
    quote, parent, listed, fine = seed_groups(dv.store, 4, 1)
    verdicts = {quote.subordinate_id: "active_quote: the subordinate has an active quote",
                parent.subordinate_id: "parenting_differs: different parent accounts",
                listed.subordinate_id: "marketing_list: member of 1 static marketing list"}
    run = make_run(tmp_path / "run", dv.url, [quote, parent, listed, fine], preflight=verdicts)
    plan = md.load(client_for(dv), run, md.MergeSettings(entity="contact"))
    assert [s.merge.subordinate_id for s in plan.skips] == [quote.subordinate_id, parent.subordinate_id]
    result = merge(dv, run)
    acts = actions(run)
    assert acts[quote.subordinate_id]["status"] == "skipped"
    assert "active quote" in acts[quote.subordinate_id]["error_message"]
    assert dv.store.counters.merge_attempts[quote.subordinate_id] == 0
    assert (result.merged, result.skipped) == (2, 2)  # marketing_list is tried: no plugin assumed
    no_checks = md.load(client_for(dv), run, md.MergeSettings(entity="contact", parenting_checks=False))
    assert [r.subordinate_id for r in no_checks.to_run] == [parent.subordinate_id]  # quote still skipped
    plugin = md.load(client_for(dv), run, md.MergeSettings(entity="contact", assume_marketing_plugin=True))
    assert listed.subordinate_id not in {r.subordinate_id for r in plugin.to_run}


def test_failures_are_classified(make_emulator: Callable[..., EmulatorHandle], tmp_path: Path) -> None:
    no_privilege = "0000dead-0000-4000-8000-000000000001"
    dv = make_emulator("empty", faults=f"deny-merge={no_privilege}")
    quoted, fine = seed_groups(dv.store, 2, 1)
    target = dv.store.insert("contact", {"lastname": "Target"})
    dv.store.insert("contact", {"lastname": "Sub"}, record_id=no_privilege)
    denied = Planned(target, target, no_privilege, 1, {"@odata.type": CONTACT})
    dv.store.insert("quote", {"name": "Q", "customerid": Ref("contact", quoted.subordinate_id),
                              "statecode": 1, "statuscode": 2})
    run = make_run(tmp_path / "run", dv.url, [denied, quoted, fine])
    result = merge(dv, run)
    acts = actions(run)
    assert (result.merged, result.failed) == (1, 2)
    assert acts[denied.subordinate_id]["http_status"] == 403
    assert "privilege" in acts[denied.subordinate_id]["error_message"]
    assert acts[quoted.subordinate_id]["error_code"] == "0x80045302"
    assert acts[denied.subordinate_id]["failure_class"] == "privilege"
    assert acts[quoted.subordinate_id]["failure_class"] == "active_quote" and acts[quoted.subordinate_id]["hint"]
    assert result.failures_by_class["privilege"][0] == 1
    assert sum(n for n, _ in result.failures_by_class.values()) == 2
    assert any(line.startswith("  failed,") for line in result.summary_lines())


def test_merges_into_one_target_keep_plan_order(dv: EmulatorHandle, tmp_path: Path) -> None:
    planned = seed_groups(dv.store, 8, 6)
    run = make_run(tmp_path / "run", dv.url, list(reversed(planned)))  # file order must not matter, `order` does
    merge(dv, run, workers=8)
    sent: dict[str, list[str]] = {}
    for ev in read_journal(run.journal_path):
        if ev["event"] == "sending":
            sent.setdefault(ev["target_id"], []).append(ev["subordinate_id"])
    for target, subs in sent.items():
        assert subs == [p.subordinate_id for p in planned if p.target_id == target]
    assert all(dv.store.get("contact", p.target_id)["description"] == "merged 6 of 6" for p in planned)


class _TamperingClient(DataverseClient):
    """Changes the target in the emulator's store right after Dataverse merged it (a plugin would)."""

    store: Any = None

    def post(self, path: str, json: Any = None, *, safe_to_retry: bool = False) -> dict | None:
        answer = super().post(path, json, safe_to_retry=safe_to_retry)
        if path == "Merge":
            self.store.update("contact", json["Target"]["contactid"], {"emailaddress2": "changed@plugin.example"})
        return answer


def test_verification_reports_mismatches(dv: EmulatorHandle, tmp_path: Path) -> None:
    planned = seed_groups(dv.store, 3, 1)
    run = make_run(tmp_path / "run", dv.url, planned)
    client = client_for(dv, _TamperingClient)
    client.store = dv.store
    result = merge(dv, run, client=client, batch_size=1)  # the tampering hook sees single Merge requests
    assert result.merged == 3 and result.verified == 3 and len(result.mismatches) == 3
    assert result.mismatches[0]["field"] == "emailaddress2"
    mismatch = actions(run)[planned[0].subordinate_id]["verification"]["mismatches"][0]
    assert mismatch == {"field": "emailaddress2", "expected": planned[0].update_content["emailaddress2"],
                        "actual": "changed@plugin.example"}


def test_lookup_binds_are_verified_through_their_value_column(dv: EmulatorHandle, tmp_path: Path) -> None:
    account = dv.store.insert("account", {"name": "Contoso"})
    (p,) = seed_groups(dv.store, 1, 1)
    content = {**p.update_content, "parentcustomerid_account@odata.bind": f"/accounts({account})"}
    run = make_run(tmp_path / "run", dv.url, [Planned(p.group_id, p.target_id, p.subordinate_id, 1, content)])
    result = merge(dv, run, parenting_checks=False)
    assert result.merged == 1 and result.verified == 1 and result.mismatches == []


def test_ctrl_c_writes_results_and_a_rerun_finishes(make_emulator: Callable[..., EmulatorHandle],
                                                   tmp_path: Path) -> None:
    dv = make_emulator("empty", merge_ms=30)  # slow enough that progress is reported mid-run
    planned = seed_groups(dv.store, 60, 1)
    run = make_run(tmp_path / "run", dv.url, planned)
    settings = md.MergeSettings(entity="contact", workers=2)

    def interrupt(progress: md.Progress) -> None:
        if progress.done >= 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        md.run(client_for(dv), run, md.load(client_for(dv), run, settings), settings, on_progress=interrupt)
    done = [a for a in actions(run).values() if a["status"] == "merged"]
    assert 5 <= len(done) < 60 and read_journal(run.journal_path)[-1]["ending"] == "interrupted"
    result = merge(dv, run)
    assert result.merged + len(done) == 60 and result.done_before == len(done)
    assert max(dv.store.counters.merge_success.values()) == 1 and len(actions(run)) == 60


@pytest.mark.parametrize("flagged", [True, False])
def test_marketing_workaround_moves_memberships(make_emulator: Callable[..., EmulatorHandle], tmp_path: Path,
                                                flagged: bool) -> None:
    dv = make_emulator("empty", faults="marketing-plugin")
    (p,) = seed_groups(dv.store, 1, 1)
    lists = [dv.store.insert("list", {"listname": f"L{i}", "type": False, "createdfromcode": 2, "membercount": 1})
             for i in range(2)]
    for lid in lists:
        dv.store.insert("listmember", {"listid": Ref("list", lid), "entityid": Ref("contact", p.subordinate_id)})
    dv.store.insert("listmember", {"listid": Ref("list", lists[0]), "entityid": Ref("contact", p.target_id)})
    verdict = {p.subordinate_id: "marketing_list: member of 2 static marketing lists"} if flagged else {}
    run = make_run(tmp_path / "run", dv.url, [p], preflight=verdict)
    assert merge(dv, run).failed == 1  # the plugin blocks it without the workaround
    result = merge(dv, run, marketing_workaround=True, assume_marketing_plugin=True)
    assert result.merged == 1
    assert_merged(dv, p)
    members = {(m["listid"].id, m["entityid"].id) for m in dv.store.rows("listmember")}
    assert members == {(lid, p.target_id) for lid in lists}
    steps = [(e["event"], e["phase"]) for e in read_journal(run.journal_path) if e["event"].startswith("list_")]
    # the target was already in the first list: one add, then two removes
    assert steps == [("list_add", "intent"), ("list_add", "done")] + [("list_remove", "intent"),
                                                                       ("list_remove", "done")] * 2


def test_a_half_done_workaround_is_finished_by_a_rerun(make_emulator: Callable[..., EmulatorHandle],
                                                       tmp_path: Path) -> None:
    dv = make_emulator("empty", faults="marketing-plugin")
    (p,) = seed_groups(dv.store, 1, 1)
    first, second = (dv.store.insert("list", {"listname": n, "type": False, "createdfromcode": 2}) for n in "AB")
    # killed after both adds and the first remove: the target is in both lists, the subordinate only in B
    for lid in (first, second):
        dv.store.insert("listmember", {"listid": Ref("list", lid), "entityid": Ref("contact", p.target_id)})
    dv.store.insert("listmember", {"listid": Ref("list", second), "entityid": Ref("contact", p.subordinate_id)})
    run = make_run(tmp_path / "run", dv.url, [p], preflight={p.subordinate_id: "marketing_list: in 2 lists"})
    ids = {"subordinate_id": p.subordinate_id, "target_id": p.target_id, "group_id": p.group_id}
    with Journal(run.journal_path) as j:
        for lid in (first, second):
            j.append("list_add", phase="intent", list_id=lid, entity_id=p.target_id, **ids)
            j.append("list_add", phase="done", list_id=lid, entity_id=p.target_id, **ids)
        j.append("list_remove", phase="intent", list_id=first, entity_id=p.subordinate_id, **ids)
    result = merge(dv, run, marketing_workaround=True)
    assert result.merged == 1
    assert_merged(dv, p)
    members = sorted((m["listid"].id, m["entityid"].id) for m in dv.store.rows("listmember"))
    assert members == sorted([(first, p.target_id), (second, p.target_id)])
    assert len(actions(run)[p.subordinate_id]["list_workaround"]) == 7


def test_a_failed_merge_stops_the_rest_of_its_targets_chain(make_emulator: Callable[..., EmulatorHandle],
                                                            tmp_path: Path) -> None:
    """Later merges into a target were planned on top of the earlier ones: when one does not happen the rest
    of that target's merges wait for a new step 3; other targets go on; a rerun after the fix finishes."""
    dv = make_emulator("empty")
    planned = seed_groups(dv.store, 3, 3)           # three targets, chains of three
    blocker = planned[1]                             # the second merge into the first target
    dv.store.insert("quote", {"name": "Q", "customerid": Ref("contact", blocker.subordinate_id),
                              "statecode": 1, "statuscode": 2})
    run = make_run(tmp_path / "run", dv.url, planned)
    result = merge(dv, run, workers=4)
    acts = actions(run)
    assert acts[planned[0].subordinate_id]["status"] == "merged"
    assert acts[blocker.subordinate_id]["failure_class"] == "active_quote"
    later = acts[planned[2].subordinate_id]
    assert later["status"] == "skipped" and "rerun step 3" in later["error_message"]
    assert dv.store.get("contact", planned[2].subordinate_id)["statecode"] == 0     # not merged out of order
    assert all(acts[p.subordinate_id]["status"] == "merged" for p in planned[3:])
    assert (result.merged, result.failed, result.skipped) == (7, 1, 1)
    for quote in dv.store.rows("quote"):                                            # the cause is fixed
        dv.store.update("quote", quote["quoteid"], {"statecode": 3})
    merge(dv, run)
    for p in planned:
        assert_merged(dv, p)


def test_a_timed_out_merge_still_running_on_the_server_is_not_sent_again(
        make_emulator: Callable[..., EmulatorHandle], tmp_path: Path) -> None:
    dv = make_emulator("empty", merge_ms=1500)          # the server takes longer than the client waits
    planned = seed_groups(dv.store, 1, 1)
    run = make_run(tmp_path / "run", dv.url, planned)
    client = DataverseClient(dv.url, StaticTokenProvider("t"), ClientSettings(read_timeout=0.5, backoff_base=0.01))
    result = merge(dv, run, client)
    assert result.already_merged == 1 and result.failed == 0
    assert dv.store.counters.merge_attempts[planned[0].subordinate_id] == 1
    assert_merged(dv, planned[0])
