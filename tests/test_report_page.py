"""report/outcome_page.py and outcome_data.py: update/report.html from merge_actions_made.json's document (pure),
and step 4 rebuilding it with merge_actions_made.json, at the end and after Ctrl-C."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape
from merge_fixtures import make_run, seed_groups

import merge_duplicates as md
from auth import StaticTokenProvider
from dataverse import ClientSettings, DataverseClient
from dataverse_emulator import EmulatorHandle
from merging.failure_classes import HINTS, FailureClass
from merging.outcomes import SKIP_TEXT
from report.outcome_page import render_report_page, write_report_page
from runfolder.folder import RunFolder
from runfolder.state import PlannedMerge, SkipReason

SCRIPT = "<script>alert(1)</script>"


def entry(n: int, status: str, **fields: Any) -> dict[str, Any]:
    return {"group_id": f"g{n}", "target_id": f"t{n}", "subordinate_id": f"s{n}", "status": status,
            "update_content": {}, "attempts": 1, "verification": None, **fields}


def document() -> dict[str, Any]:
    denied = "Principal user is missing prvWriteContact privilege"
    return {"entity": "contact", "generated": "2026-01-01T00:00:00Z", "merges": [
        entry(1, "merged", verification={"checked": True, "mismatches": []}),
        entry(2, "merged", verification={"checked": True, "mismatches": [
            {"field": "emailaddress2", "expected": "a@x.example", "actual": SCRIPT}]}),
        entry(3, "already_merged"),
        entry(4, "failed", failure_class="privilege", error_message=denied, hint="(old wording)"),
        entry(5, "failed", failure_class="privilege", error_message=denied),
        entry(6, "failed", failure_class="active_quote", error_message=f"quote {SCRIPT}"),
        entry(7, "skipped", reason_code="predicted_failure", error_message="predicted to fail (inactive)"),
        entry(8, "skipped", reason_code="target_changed", error_message=SKIP_TEXT[SkipReason.TARGET_CHANGED]),
        entry(9, "unknown", error_message="A Merge was sent and no answer was recorded."),
        entry(10, "merged", verification={"checked": False, "mismatches": [], "error": "read failed"}),
    ]}


def page_data(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    assert found
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def test_outcomes_failures_by_class_skips_by_reason_and_verification() -> None:
    names = {"s4": PlannedMerge("g4", 1, "t4", "s4", {}, target_name="Contoso Ltd", subordinate_name=SCRIPT)}
    page = render_report_page(document(), names)
    for status, count in (("merged", 3), ("already_merged", 1), ("failed", 3), ("skipped", 2), ("unknown", 1),
                          ("verified", 2)):
        assert re.search(rf'id="count-{status}">{count}<', page), status
    failures = page[page.index('<table id="failures">'):page.index("</table>", page.index('<table id="failures">'))]
    assert failures.index("privilege") < failures.index("active_quote")          # the largest class first
    assert str(escape(HINTS[FailureClass.PRIVILEGE])) in failures and "(old wording)" not in failures
    assert "missing prvWriteContact privilege (2&times;)" in failures
    skips = page[page.index('<table id="skips">'):]
    assert escape(SKIP_TEXT[SkipReason.PREDICTED_FAILURE]) in skips and escape(SKIP_TEXT[SkipReason.TARGET_CHANGED]) \
        in skips
    verification = " ".join(page[page.index('<p id="verification">'):].split("</p>")[0].split())
    assert "2 targets were read back" in verification and "1 value differs" in verification
    assert "1 could not be read back" in verification
    assert SCRIPT not in page and str(escape(SCRIPT)) in page                   # in a message and a mismatch
    rows = {r["s"]: r for r in page_data(page)["merges"]}
    assert (rows["s4"]["sn"], rows["s4"]["tn"], rows["s4"]["fc"]) == (SCRIPT, "Contoso Ltd", "privilege")
    assert rows["s7"]["why"] == SKIP_TEXT[SkipReason.PREDICTED_FAILURE] and rows["s7"]["fc"] == ""
    assert [rows[s]["vf"] for s in ("s1", "s2", "s3", "s10")] == ["verified", "mismatch", "", "not_verified"]
    assert rows["s2"]["mm"] == [["emailaddress2", "a@x.example", SCRIPT]]
    assert rows["s9"]["st"] == "unknown"
    assert page.count("<script") == 2


def test_an_empty_run_still_makes_a_page() -> None:
    page = render_report_page({"entity": "contact", "merges": []})
    assert "No merge failed." in page and "No merge was skipped." in page and page_data(page)["merges"] == []


def test_the_page_is_written_without_names_when_the_plan_is_unreadable(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    run = RunFolder(tmp_path / "run")
    with caplog.at_level(logging.WARNING):
        write_report_page(run, document())
    assert run.report_page.parent == run.merge_actions_path.parent
    assert {r["sn"] for r in page_data(run.report_page.read_text(encoding="utf-8"))["merges"]} == {""}
    assert "without names" in caplog.text


def test_step_4_rebuilds_the_page_with_its_results_also_after_ctrl_c(
        make_emulator: Callable[..., EmulatorHandle], tmp_path: Path) -> None:
    dv = make_emulator("empty", merge_ms=30)
    planned = seed_groups(dv.store, 30, 1)
    run = make_run(tmp_path / "run", dv.url, planned)
    client = DataverseClient(dv.url, StaticTokenProvider("t"), ClientSettings(backoff_base=0.01))
    settings = md.MergeSettings(entity="contact", workers=2)

    def interrupt(progress: md.Progress) -> None:
        if progress.done >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        md.run(client, run, md.load(client, run, settings), settings, on_progress=interrupt)
    actions = json.loads(run.merge_actions_path.read_text(encoding="utf-8"))["merges"]
    rows = page_data(run.report_page.read_text(encoding="utf-8"))["merges"]
    assert [(r["s"], r["st"]) for r in rows] == [(a["subordinate_id"], a["status"]) for a in actions]
    assert 3 <= len(rows) < 30
    md.run(client, run, md.load(client, run, settings), settings)
    page = run.report_page.read_text(encoding="utf-8")
    assert re.search(r'id="count-merged">30<', page)
    first = planned[0].subordinate_id
    assert {r["s"]: r["sn"] for r in page_data(page)["merges"]}[first] == f"subordinate {first[:8]}"
