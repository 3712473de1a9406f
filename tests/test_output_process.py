"""report/output_process.py: step 3's audit files and review page written by a fresh helper process. It writes
what the in-process writer and collector write, byte for byte; a write error reaches the step as a message
naming the file; a step that fails takes its helper down with it, and nothing waits on a helper gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from builders import CONTACT, ENTITY_SETS, S1, S2, T
from test_review_page import HEADER, SCRIPT, rid

import prepare_duplicates as prep
from errors import RunStateError
from planning.audit_files import AuditRows, AuditWriter
from planning.planner import Planner, plan_all
from planning.preflight import PreflightData
from planning.targets import get_strategy
from report.output_process import OutputProcess
from report.review_collect import ReviewCollector
from report.review_page import write_review_page
from runfolder.state import Group, PlannedMerge

FIRST = ["contactid", "fullname"]
ROOT = Path(__file__).resolve().parents[1]


def groups(n: int) -> list[list[dict[str, str]]]:
    """n groups of a target and a subordinate, with text a page or a spreadsheet must escape."""
    return [[{"contactid": rid(2 * i + 1), "fullname": f"Ann {i}", "createdon": "2020-01-01T00:00:00Z",
              "telephone1": "+44 20 7946 0000"},
             {"contactid": rid(2 * i + 2), "fullname": f"Ann {i} {SCRIPT}", "createdon": "2021-01-01T00:00:00Z",
              "emailaddress1": f"ann{i}@example.com", "description": 'quote " comma , line\nbreak'}]
            for i in range(n)]


class Keep:
    """An audit sink that keeps the rows the planning loop hands on."""

    def __init__(self) -> None:
        self.rows: list[AuditRows] = []

    def add(self, rows: AuditRows) -> None:
        self.rows.append(rows)


def planned(n: int) -> tuple[list[PlannedMerge], list[AuditRows]]:
    """Step 3's planning loop over `groups(n)`: the merges and the audit rows it hands on."""
    planner = Planner(CONTACT, prep._create_merge_result, prep.fields_to_ignore, ENTITY_SETS, PreflightData())
    records = {r["contactid"]: r for g in groups(n) for r in g}
    keep = Keep()
    merges = plan_all(planner, [Group(min(r["contactid"] for r in g), tuple(r["contactid"] for r in g))
                                for g in groups(n)], records, get_strategy("oldest_record"), keep)
    return merges, keep.rows


def test_the_helper_writes_what_the_step_wrote_in_process(tmp_path: Path) -> None:
    merges, rows = planned(600)           # more than one batch of rows
    here, there = tmp_path / "here", tmp_path / "there"
    with AuditWriter(here / "audit_records", FIRST) as writer:
        review = ReviewCollector(writer, FIRST)
        for r in rows:
            review.add(r)
    write_review_page(here / "review.html", HEADER, merges, review)
    there.mkdir()
    with OutputProcess(there / "audit_records", FIRST) as output:
        for r in rows:
            output.add(r)
        output.finish(there / "review.html", HEADER, merges, {})
        assert output.close() == 600
    files = sorted(p.name for p in (here / "audit_records").iterdir())
    assert len(files) == 600 and files == sorted(p.name for p in (there / "audit_records").iterdir())
    for name in files:
        assert (here / "audit_records" / name).read_bytes() == (there / "audit_records" / name).read_bytes()
    assert (here / "review.html").read_bytes() == (there / "review.html").read_bytes()
    assert SCRIPT not in (there / "review.html").read_text("utf-8")   # escaped, as in process


def test_a_write_error_names_the_file_and_the_way_forward(tmp_path: Path) -> None:
    (tmp_path / "audit" / f"{S2}.csv").mkdir(parents=True)   # a folder where the file should go
    output = OutputProcess(tmp_path / "audit", FIRST)
    with pytest.raises(RunStateError) as info, output:
        for sub in (S1, S2):
            output.add(AuditRows(sub, {"contactid": sub}, {"contactid": T}, {}, {"contactid": T}))
        output.finish(tmp_path / "review.html", HEADER, [], {})
        output.close()
    assert f"{S2}.csv" in info.value.message and "rerun step 3" in info.value.hint


def test_a_failing_step_stops_its_helper(tmp_path: Path) -> None:
    output = OutputProcess(tmp_path / "audit", FIRST)
    with pytest.raises(KeyboardInterrupt), output:
        process = output._require()
        output.add(AuditRows(S1, {"contactid": S1}, {"contactid": T}, {}, {"contactid": T}))
        raise KeyboardInterrupt
    deadline = time.monotonic() + 10
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is not None


def test_a_helper_that_dies_is_reported_not_waited_for(tmp_path: Path) -> None:
    output = OutputProcess(tmp_path / "audit", FIRST)
    with pytest.raises(RunStateError) as info, output:
        output._require().kill()
        output._require().wait()
        for n in range(2000):  # fills the pipe: the write fails rather than blocking
            output.add(AuditRows(rid(n), {"contactid": rid(n), "description": "x" * 500}, {"contactid": T}, {},
                                 {"contactid": T}))
        output.finish(tmp_path / "review.html", HEADER, [], {})
        output.close()
    assert "exit code" in info.value.message or "ended early" in info.value.message


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and /proc")
def test_the_helper_exits_when_the_step_is_killed(tmp_path: Path) -> None:
    """kill -9 of step 3 leaves no helper behind: it reads the end of its input and exits."""
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(ROOT)!r})
from planning.audit_files import AuditRows
from report.output_process import OutputProcess
T = {T!r}
with OutputProcess(__import__("pathlib").Path({str(tmp_path / "audit")!r}), ["contactid"]) as output:
    for n in range(300):
        sub = f"00000000-0000-0000-0000-{{n:012d}}"
        output.add(AuditRows(sub, {{"contactid": sub}}, {{"contactid": T}}, {{}}, {{"contactid": T}}))
    print(output._require().pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""
    step = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert step.returncode == -signal.SIGKILL
    helper = int(step.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(helper)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init in a container) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))
