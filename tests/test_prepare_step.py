"""planning/step.py (step 3 as prepare_duplicates.run drives it) against the emulator over HTTP: the preview
files, pre-flight from bulk reads, reruns, bad run folders, errors in the merge logic, and planning that
asks Dataverse nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from builders import S1, S2, T, X

import prepare_duplicates as prep
from auth import StaticTokenProvider
from dataverse import ClientSettings, DataverseClient
from dataverse_emulator import EmulatorHandle
from dataverse_emulator.store import Ref
from errors import RunStateError
from group_duplicates import download_records
from planning import step
from planning.planner import MergeLogicError, Planner
from runfolder.folder import RunFolder
from runfolder.merges_csv import COLUMNS
from runfolder.state import DuplicateGroups, Group

G2T, G2S = "00000000-0000-0000-0000-0000000000d1", "00000000-0000-0000-0000-0000000000d2"
ACCOUNT = "00000000-0000-0000-0000-0000000000e1"


class CountingClient(DataverseClient):
    """The real client, counting requests; `forbid` makes any request fail the test."""

    forbid = False

    def request(self, method: str, path: str, **kw: Any) -> Any:
        assert not self.forbid, f"HTTP during planning: {method} {path}"
        return super().request(method, path, **kw)


@pytest.fixture
def dv(make_emulator: Callable[..., EmulatorHandle]) -> EmulatorHandle:
    return make_emulator("empty")


def client_for(dv: EmulatorHandle) -> CountingClient:
    return CountingClient(dv.url, StaticTokenProvider("t"), ClientSettings(backoff_base=0.01))


def contact(dv: EmulatorHandle, rid: str, created: str = "2020-01-01T00:00:00Z", **cols: Any) -> str:
    return dv.store.insert("contact", {"createdon": created, "lastname": rid[-2:], **cols}, record_id=rid)


def make_run(dv: EmulatorHandle, tmp_path: Path, groups: list[list[str]], entity: str = "contact") -> RunFolder:
    """A run folder as step 2 leaves it: the records downloaded over HTTP, the groups written."""
    run = RunFolder(tmp_path / "run")
    client = client_for(dv)
    download_records(client, client.entity(entity), [i for g in groups for i in g], run.write_record)
    run.write_duplicate_groups(DuplicateGroups(job_id="job", entity=entity, pairs_read=3,
                                               groups=[Group(min(g), tuple(g)) for g in groups]))
    return run


def scenario(dv: EmulatorHandle, tmp_path: Path) -> RunFolder:
    dv.store.insert("account", {"name": "Contoso"}, record_id=ACCOUNT)
    contact(dv, T, emailaddress1="a@x.com", parentcustomerid=Ref("contact", X))
    contact(dv, S1, "2021-01-01T00:00:00Z", emailaddress1="b@x.com", telephone1="=1+1")
    contact(dv, S2, "2022-01-01T00:00:00Z", jobtitle="CEO")
    # the target's parent X has S1 as its parent: merging S1 into the target would make a loop
    contact(dv, X, parentcustomerid=Ref("contact", S1))
    contact(dv, G2T, jobtitle="Chair")
    contact(dv, G2S, "2021-01-01T00:00:00Z", jobtitle="CEO", parentcustomerid=Ref("account", ACCOUNT))
    dv.store.insert("quote", {"name": "Q1", "customerid": Ref("contact", S2), "statecode": 1, "statuscode": 2})
    dv.store.insert("quote", {"name": "Q2", "customerid": Ref("contact", G2S), "statecode": 0, "statuscode": 1})
    listid = dv.store.insert("list", {"listname": "Newsletter", "createdfromcode": 2, "type": False})
    dv.store.insert("listmember", {"listid": Ref("list", listid), "entityid": Ref("contact", G2S)})
    return make_run(dv, tmp_path, [[T, S1, S2], [G2T, G2S]])


def test_run_writes_the_preview(dv: EmulatorHandle, tmp_path: Path) -> None:
    run = scenario(dv, tmp_path)
    result = prep.run(client_for(dv), run, step.PrepareSettings("contact"))
    assert (result.groups, result.merges, result.audit_files) == (2, 3, 3)
    rows = run.read_csv(run.merges_csv, COLUMNS, "step 3")
    assert [(r["group_id"], r["order"], r["subordinate_id"]) for r in rows] == [(T, "1", S1), (T, "2", S2),
                                                                                (G2T, "1", G2S)]
    assert rows[0]["preflight"].startswith("hierarchy_loop: Loop exists in the contacts hierarchy.")
    # S1's merge will be refused, so S2's is planned without it: S1 stays a record of its own, no loop
    assert rows[1]["preflight"].startswith("active_quote: Merge cannot be performed on sub-entity that has active")
    assert "marketing_list: The subordinate is in 1 marketing list" in rows[2]["preflight"]
    assert '"telephone1":"=1+1"' in rows[0]["update_content"]          # exact in merges.csv
    assert '"parentcustomerid_account@odata.bind":"/accounts(' + ACCOUNT + ')"' in rows[2]["update_content"]
    assert result.preflight_counts["active_quote"] == 1 and result.preflight_counts["hierarchy_loop"] == 1
    assert ("jobtitle", 2) in result.top_changed_fields
    audit = (run.audit_dir / f"{S1}.csv").read_bytes()
    assert audit.startswith("\ufeff".encode()) and b"'=1+1" in audit               # neutralised in the audit
    assert sorted(p.name for p in run.audit_dir.iterdir()) == sorted(f"{i}.csv" for i in (S1, S2, G2S))
    lines = step.summary_lines(result)
    assert lines[0].startswith(f"3 merges planned in 2 groups of contact records in {dv.url}")
    assert any("jobtitle (2)" in x for x in lines)


def test_planning_itself_asks_dataverse_nothing(dv: EmulatorHandle, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    run = scenario(dv, tmp_path)
    client = client_for(dv)
    planned: list[str] = []
    plan = Planner.plan

    def plan_offline(self: Planner, *args: Any, **kw: Any) -> Any:
        client.forbid = True   # any request from here on fails the test
        try:
            planned.append(args[0])
            return plan(self, *args, **kw)
        finally:
            client.forbid = False

    monkeypatch.setattr(Planner, "plan", plan_offline)
    result = prep.run(client, run, step.PrepareSettings("contact"))
    assert planned == [T, G2T] and result.merges == 3  # the lookup to accounts was bound without asking


def test_rerun_replaces_the_prepare_folder(dv: EmulatorHandle, tmp_path: Path) -> None:
    run = scenario(dv, tmp_path)
    stale = run.audit_dir / "00000000-0000-0000-0000-000000000999.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("old", encoding="utf-8")
    prep.run(client_for(dv), run, step.PrepareSettings("contact"))
    assert not stale.exists() and run.merges_csv.exists()


def test_entity_mismatch_names_the_file_and_both_entities(dv: EmulatorHandle, tmp_path: Path) -> None:
    run = scenario(dv, tmp_path)
    with pytest.raises(RunStateError) as err:
        prep.run(client_for(dv), run, step.PrepareSettings("account"))
    text = str(err.value)
    assert "duplicate_groups.json" in text and "contact" in text and "account" in text


def test_a_missing_record_file_says_to_rerun_step_2(dv: EmulatorHandle, tmp_path: Path) -> None:
    run = scenario(dv, tmp_path)
    run.record_path(S2).unlink()
    with pytest.raises(RunStateError) as err:
        prep.run(client_for(dv), run, step.PrepareSettings("contact"))
    assert f"{S2}.json" in str(err.value) and "step 2" in str(err.value)
    assert not run.prepare_dir.exists()  # nothing half-written


def test_an_unknown_strategy_is_refused_before_any_work(dv: EmulatorHandle, tmp_path: Path) -> None:
    run = scenario(dv, tmp_path)
    client = client_for(dv)
    before = client.stats.requests
    with pytest.raises(Exception, match="eldest"):
        prep.run(client, run, step.PrepareSettings("contact", target_strategy="eldest"))
    assert client.stats.requests == before


def test_columns_a_rule_returns_that_cannot_be_written_are_reported(dv: EmulatorHandle, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    run = scenario(dv, tmp_path)

    def rule(target_row: dict, subordinate_row: dict, columns: list[str]) -> dict:
        return {"parentcustomerid": "x", "createdon": "2020-01-01T00:00:00Z", "jobtitle": "CTO"}

    monkeypatch.setattr(prep, "_create_merge_result", rule)
    result = prep.run(client_for(dv), run, step.PrepareSettings("contact"))
    assert dict(result.not_written) == {"parentcustomerid": 3, "createdon": 3}
    assert any(line.startswith("Not written") and "parentcustomerid (3)" in line for line in step.summary_lines(result))


def test_an_error_in_the_merge_logic_names_the_record(dv: EmulatorHandle, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    run = scenario(dv, tmp_path)

    def broken(target_row: dict, subordinate_row: dict, columns: list[str]) -> dict:
        return {"x": subordinate_row.get("no_such_column")}

    monkeypatch.setattr(prep, "_create_merge_result", broken)
    with pytest.raises(MergeLogicError, match=r"failed for subordinate .*KeyError: .*no_such_column"):
        prep.run(client_for(dv), run, step.PrepareSettings("contact"))
    assert not run.prepare_dir.exists()        # nothing half-written


def test_a_syntax_error_in_prepare_duplicates_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from errors import UsageError
    from ui import workflow

    def reload(module: object) -> object:
        raise SyntaxError("invalid syntax", ("prepare_duplicates.py", 42, 1, "if x"))

    monkeypatch.setattr(importlib, "reload", reload)
    with pytest.raises(UsageError, match="syntax error at line 42"):
        workflow.load_merge_logic()


def test_empty_columns_read_as_none_and_do_not_change_the_plan(dv: EmulatorHandle, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Record files list every column, most of them null; step 3 keeps only the filled ones. The merge
    logic still reads an empty column as None (row[col] too)."""
    seen: list[tuple[Any, Any, bool]] = []
    default = prep._create_merge_result

    def logic(target_row: dict, subordinate_row: dict, columns: list[str]) -> dict:
        seen.append((target_row["emailaddress2"], subordinate_row.get("telephone3"), "emailaddress2" in columns))
        return default(target_row, subordinate_row, columns)

    monkeypatch.setattr(prep, "_create_merge_result", logic)
    contact(dv, T, emailaddress1="a@x.com")
    contact(dv, S1, "2021-01-01T00:00:00Z", emailaddress1="b@x.com")
    run = make_run(dv, tmp_path, [[T, S1]])
    assert run.read_record(S1)["emailaddress2"] is None   # step 2 writes every column
    prep.run(client_for(dv), run, step.PrepareSettings("contact"))
    rows = run.read_csv(run.merges_csv, COLUMNS, "step 3")
    assert seen == [(None, None, False)]
    assert '"emailaddress2":"b@x.com"' in rows[0]["update_content"]


def test_a_table_the_org_lacks_reads_as_empty_for_pre_flight(dv: EmulatorHandle) -> None:
    fetch = step._fetcher(client_for(dv))
    assert fetch("nosuchtables", "nosuchtableid", [T], ["nosuchtableid"]) == []   # an org without Sales: no quotes
