"""Pre-flight against the emulator's demo org: what prepare predicts is what Merge does.

With parenting checks on and the marketing plugin installed, every merge is forced (no skipping):
each merge pre-flight marks ok succeeds, and each one it predicts to fail fails with the predicted
class. Then the marketing-list workaround makes the plugin's refusals succeed and keeps the lists.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataverse_emulator import EmulatorHandle, start_emulator
from main import main
from planning.preflight import would_fail
from runfolder.plan_file import read_plan
from runfolder.state import PlannedMerge

EXPECTED_CLASS = {
    "active_quote": "active_quote", "parenting_differs": "parenting", "parent_lost": "parenting",
    "marketing_list": "marketing_plugin", "hierarchy_loop": "hierarchy_loop", "inactive": "inactive",
    "same_record": "same_record", "unsupported_entity": "unsupported", "child_cases": "child_cases",
}
VIEWS = {"contact": "Active Contacts for Duplicate Checking", "account": "Active Accounts for Duplicate Checking"}


@pytest.fixture
def org() -> Iterator[EmulatorHandle]:
    handle = start_emulator("demo", seed=11, job_seconds=0.2, faults="marketing-plugin")
    yield handle
    handle.stop()


def cli(work: Path, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), stdin=io.StringIO(""), stdout=out, work_dir=work), out.getvalue()


def prepared(work: Path, entity: str) -> str:
    code, out = cli(work, "detect", "--entity", entity, "--view", VIEWS[entity], "--wait")
    assert code == 0, out
    job = re.search(r"detection job ([0-9a-f-]{36})", out).group(1)
    folder = f"{entity}_run"
    assert cli(work, "group", "--entity", entity, "--folder", folder, "--job-id", job)[0] == 0
    assert cli(work, "prepare", "--entity", entity, "--folder", folder)[0] == 0
    return folder


def outcomes(run: Path) -> dict[str, dict]:
    data = json.loads((run / "update" / "merge_actions_made.json").read_text(encoding="utf-8"))
    return {m["subordinate_id"]: m for m in data["merges"]}


def plan(run: Path) -> list[PlannedMerge]:
    return read_plan(run / "prepare" / "plan.jsonl").merges


@pytest.fixture
def work(tmp_path: Path, org: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACCESS_TOKEN", "t")
    (tmp_path / ".env").write_text(f"ENVIRONMENT_URI={org.url}\nAUTH_MODE=access_token\n", encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("entity", ["contact", "account"])
def test_predictions_match_what_merge_does(work: Path, entity: str) -> None:
    folder = prepared(work, entity)
    code, out = cli(work, "merge", "--entity", entity, "--folder", folder, "--parenting-check", "--no-skip", "--yes")
    assert code in (0, 1) and "Traceback" not in out, out
    results = outcomes(work / folder)
    seen_classes: set[str] = set()
    for row in plan(work / folder):
        failing = [f for f in row.preflight if would_fail(f, parenting_checks=True, marketing_plugin=True)]
        result = results[row.subordinate_id]
        if not failing:
            assert result["status"] == "merged", (row, result)
        else:
            expected = {EXPECTED_CLASS[f.code] for f in failing}
            assert result["status"] == "failed", (row, result)
            assert result["failure_class"] in expected, (row, result)
            seen_classes.add(result["failure_class"])
    assert seen_classes, "the demo org has merges predicted to fail"
    if entity == "contact":
        assert {"active_quote", "marketing_plugin"} <= seen_classes


def test_marketing_list_workaround_keeps_the_lists(work: Path, org: EmulatorHandle) -> None:
    folder = prepared(work, "contact")
    members = [r for r in plan(work / folder) if any(f.code == "marketing_list" for f in r.preflight)]
    assert members, "the demo org has subordinates in marketing lists"
    lists_before = {
        r.subordinate_id: {m["listid"].id for m in org.store.rows("listmember") if m["entityid"].id == r.subordinate_id}
        for r in members
    }
    code, out = cli(work, "merge", "--entity", "contact", "--folder", folder, "--no-parenting-check",
                    "--marketing-workaround", "--yes")
    assert "Traceback" not in out, out
    results = outcomes(work / folder)
    for row in members:
        assert results[row.subordinate_id]["status"] == "merged", results[row.subordinate_id]
        target_lists = {m["listid"].id for m in org.store.rows("listmember") if m["entityid"].id == row.target_id}
        assert lists_before[row.subordinate_id] <= target_lists
    assert not any(r["status"] == "failed" and r.get("failure_class") == "marketing_plugin" for r in results.values())
