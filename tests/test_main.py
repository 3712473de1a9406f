"""End to end: the menu and the command line drive all four steps against the emulator's demo org.

Afterwards the emulator must show what the preview promised: every merged subordinate inactive with
masterid = its target, targets holding their audit file's target_after_merge values, related records
moved, and the run folder holding every file the steps name. No token in any file; no traceback.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataverse_emulator import EmulatorHandle, start_emulator
from dataverse_emulator.store import Ref
from main import main

TOKEN = "e2e-secret-token-4242"
VIEW = "Active Contacts for Duplicate Checking"
SYSTEM_COLUMNS = {"modifiedon", "versionnumber", "createdon", "statecode", "statuscode"}


@pytest.fixture
def org() -> Iterator[EmulatorHandle]:
    handle = start_emulator("demo", seed=7, job_seconds=0.3)
    yield handle
    handle.stop()


@pytest.fixture
def work(tmp_path: Path, org: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The token comes from the environment (as a pipeline would give it), so no file may contain it.
    monkeypatch.setenv("ACCESS_TOKEN", TOKEN)
    (tmp_path / ".env").write_text(f"ENVIRONMENT_URI={org.url}\nAUTH_MODE=access_token\n", encoding="utf-8")
    return tmp_path


def drive(work: Path, lines: list[str], argv: list[str] | None = None) -> tuple[int, str]:
    out = io.StringIO()
    code = main(argv or [], stdin=io.StringIO("".join(f"{line}\n" for line in lines)), stdout=out, work_dir=work)
    return code, out.getvalue()


def unneutralise(value: str) -> str:
    return value[1:] if value[:1] == "'" and value[1:2] in ("=", "+", "-", "@", "\t", "\r") else value


def audit_after(path: Path) -> dict[str, str]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = {row[0]: row for row in csv.reader(fh)}
    header = rows.pop("row") if "row" in rows else next(iter(rows.values()))
    after = rows["target_after_merge"]
    return {h: unneutralise(v) for h, v in zip(header[1:], after[1:], strict=True)}


def check_emulator_matches_plan(org: EmulatorHandle, run: Path) -> dict[str, int]:
    actions = json.loads((run / "update" / "merge_actions_made.json").read_text(encoding="utf-8"))["merges"]
    subs = [a["subordinate_id"] for a in actions]
    assert len(subs) == len(set(subs)), "each merge is listed once"
    with (run / "prepare" / "merges.csv").open(encoding="utf-8-sig", newline="") as fh:
        plan = list(csv.DictReader(fh))
    assert {p["subordinate_id"] for p in plan} == set(subs)
    statuses: dict[str, int] = {}
    last_into: dict[str, str] = {}
    for a in actions:
        statuses[a["status"]] = statuses.get(a["status"], 0) + 1
        sub = org.store.get("contact", a["subordinate_id"])
        if a["status"] in ("merged", "already_merged"):
            assert sub["statecode"] == 1 and sub["merged"] is True
            assert sub["masterid"] == Ref("contact", a["target_id"])
            last_into[a["target_id"]] = a["subordinate_id"]
        else:
            assert a["status"] in ("skipped", "failed") and (a.get("reason") or a.get("error_message"))
    for target_id, sub_id in last_into.items():
        target = org.store.get("contact", target_id)
        assert target["statecode"] == 0
        expected = audit_after(run / "prepare" / "audit_records" / f"{sub_id}.csv")
        for col, value in expected.items():
            if col in SYSTEM_COLUMNS or col.startswith("_") or "@" in col or col == "contactid" or value == "":
                continue
            actual = target.get(col)
            shown = {True: "True", False: "False", None: ""}.get(actual, str(actual)) \
                if isinstance(actual, bool | type(None)) else str(actual)
            assert shown == value, f"{target_id}.{col}: {shown!r} != planned {value!r}"
    merged = {a["subordinate_id"] for a in actions if a["status"] in ("merged", "already_merged")}
    for task in org.store.rows("task"):
        ref = task.get("regardingobjectid")
        assert not (ref and ref.id in merged), "tasks of merged subordinates moved to their target"
    return statuses


def assert_no_secret_in(work: Path) -> None:
    for path in work.rglob("*"):
        if path.is_file() and ".demo" not in path.parts:
            assert TOKEN not in path.read_text(encoding="utf-8", errors="replace"), path


def test_menu_drives_the_whole_flow(work: Path, org: EmulatorHandle) -> None:
    code, out = drive(work, [
        "1", "contact", VIEW, "y",                 # detect, wait for the job
        "2", "run1", "",                           # group: folder, no max (entity and job id remembered)
        "3", "oldest_record",                      # prepare
        "4", "False", "", "n", "n", "y", "y",      # merge: no parenting checks, all, no workaround, no note, skip, go
        "0",
    ])
    assert code == 0, out
    assert "Traceback" not in out
    run = work / "run1"
    for rel in ("group/duplicate_groups.json", "prepare/merges.csv", "update/merge_actions_made.json",
                "update/journal.jsonl", "resolver.log"):
        assert (run / rel).is_file(), rel
    assert any((run / "group" / "record_data").iterdir()) and any((run / "prepare" / "audit_records").iterdir())
    statuses = check_emulator_matches_plan(org, run)
    assert statuses.get("merged", 0) > 100
    assert statuses.get("failed", 0) == 0
    assert_no_secret_in(work)


def test_command_line_drives_the_whole_flow(work: Path, org: EmulatorHandle) -> None:
    code, out = drive(work, [], ["detect", "--entity", "contact", "--view", VIEW, "--wait"])
    assert code == 0, out
    job = re.search(r"detection job ([0-9a-f-]{36})", out).group(1)
    base = ["--entity", "contact", "--folder", "cli_run"]
    assert drive(work, [], ["group", *base, "--job-id", job, "--workers", "2"])[0] == 0  # reads 2 at a time
    assert drive(work, [], ["prepare", *base, "--target", "newest_record"])[0] == 0
    code, out = drive(work, [], ["merge", *base, "--no-parenting-check"])
    assert code == 2 and "--yes" in out            # merging needs --yes
    before = len(org.store.counters.requests)
    code, out = drive(work, [], ["merge", *base, "--no-parenting-check", "--yes", "--batch-size", "1"])
    assert code == 0, out
    check_emulator_matches_plan(org, work / "cli_run")
    posts = [e.path.rsplit("/", 1)[-1] for e in org.store.counters.requests[before:] if e.method == "POST"]
    assert "$batch" not in posts and posts.count("Merge") > 100   # --batch-size 1: each Merge alone
    code, out = drive(work, [], ["merge", *base, "--no-parenting-check", "--yes"])
    assert code == 0 and re.search(r"already done|skipp", out, re.I), out
    code, out = drive(work, [], ["status", "--folder", "cli_run"])
    assert code == 0 and "step 4" in out
    assert drive(work, [], ["status", "--folder", "typo_run"])[0] == 0
    assert not (work / "typo_run").exists()            # a mistyped folder is not created
    assert_no_secret_in(work)


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_workers_must_be_a_positive_number(work: Path, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        drive(work, [], ["--workers", value, "status", "--folder", "x"])
    assert info.value.code == 2 and "1 or more" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["group", "--entity", "contact"], ["merge", "--folder", "x"],
                                  ["prepare", "--entity", "Contact!", "--folder", "x"],
                                  ["group", "--entity", "contact", "--folder", "../up", "--job-id", "x"]])
def test_missing_or_bad_flags_are_usage_errors(work: Path, argv: list[str]) -> None:
    code, out = drive(work, [], argv)
    assert code == 2 and out.count("\n") <= 3 and "Traceback" not in out, out


def test_bad_input_at_every_prompt_gets_a_message_and_the_prompt_again(work: Path, org: EmulatorHandle) -> None:
    code, out = drive(work, [
        "99", "abc", "", "   ", "-1",                                  # unknown menu choices
        "3", "Contact", "con tact", "x'; drop", "contact",             # entity: uppercase, space, injection
        "../outside", "/etc", "run1",                                  # folder outside the working folder
        "oldest",                                                      # bad target selection, then Ctrl-D
    ] + [])
    assert code == 0 and "Traceback" not in out
    assert out.count("is not an option") == 5
    assert out.count("is not a table logical name") == 3
    assert out.count("outside the working folder") == 2
    assert "is not a target selection" in out
    code, out = drive(work, [
        "3", "contact", "run1", "oldest_record",                        # step 3 before step 2
        "4",                                                            # step 4 before step 3
        "2", "not-a-guid", "00000000-0000-0000-0000-000000000000", "-5", "ten", "",   # job id, max
        "1", "View that does not exist ' \" % & # ü",                   # unknown view with odd characters
        "5", "1", "nosuchtable", "x",                                   # unknown entity
        "0",
    ])
    assert code == 0 and "Traceback" not in out, out
    assert "duplicate_groups.json does not exist" in out and "step 2" in out
    assert "plan.jsonl does not exist" in out
    assert "is not a positive number" in out and "is not a whole number" in out
    assert "is not a record id" in out and "There is no system job" in out
    assert "There is no view named" in out
    assert "There is no table named 'nosuchtable'" in out


def test_demo_starts_under_a_pseudo_terminal(tmp_path: Path) -> None:
    import os
    import pty
    import subprocess
    import sys
    import time

    master, slave = pty.openpty()
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, str(root / "main.py"), "--demo"], cwd=tmp_path, stdin=slave,
                            stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 30
    try:
        while b"Choose an option" not in seen and time.monotonic() < deadline:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            seen += chunk
        os.write(master, b"0\n")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = seen.decode("utf-8", "replace")
    assert "DEMO" in text and "local Dataverse emulator" in text
    assert "1: Create duplicate detection job" in text and "5: Clear all and start again" in text
    assert (tmp_path / ".demo" / "state.json").exists()      # the demo org is kept for the next run


@pytest.mark.parametrize("view", ["Contacts named O'Brien", "My Contacts (O'Brien's view)",
                                  "Kontakte für Dubletten — José"])
def test_views_with_apostrophes_and_unicode_start_a_job(work: Path, org: EmulatorHandle, view: str) -> None:
    code, out = drive(work, [], ["detect", "--entity", "contact", "--view", view, "--wait"])
    assert "Traceback" not in out
    job = re.search(r"detection job ([0-9a-f-]{36})", out)
    assert job, out
    assert org.store.get("asyncoperation", job.group(1))["statuscode"] in (30, 31)
    kind = "personal" if view.startswith(("My", "Kontakte")) else "system"
    assert f"({kind} view)" in out


def test_view_names_close_to_a_real_one_are_suggested(work: Path) -> None:
    code, out = drive(work, [], ["detect", "--entity", "contact", "--view", "Active Contact for Duplicate Check"])
    assert code == 2 and "Did you mean" in out and "'Active Contacts for Duplicate Checking'" in out
    code, out = drive(work, [], ["detect", "--entity", "contacts", "--view", "x"])
    assert code == 2 and "There is no table named 'contacts'" in out and "contact" in out


def test_a_wrong_answer_is_asked_again_not_repeated(work: Path) -> None:
    code, out = drive(work, ["1", "contcat", "1", "contact", "No such view", "1", "Active Contacts",
                             "n", "0"])
    assert code == 0 and "Traceback" not in out
    assert "There is no table named 'contcat'" in out and "There is no view named 'No such view'" in out
    assert out.count("Entity logical name") == 2 and out.count("View name") == 2
    assert "Started duplicate detection job" in out


def test_a_table_without_a_published_rule_starts_no_job(work: Path, org: EmulatorHandle) -> None:
    jobs_before = len(org.store.rows("asyncoperation"))
    code, out = drive(work, [], ["detect", "--entity", "lead", "--view", "Active Leads for Duplicate Checking"])
    assert code == 2 and "No published duplicate detection rule for lead" in out
    assert len(org.store.rows("asyncoperation")) == jobs_before
    code, out = drive(work, [], ["rules", "--entity", "contact"])
    assert code == 0 and "emailaddress1 vs emailaddress1: exact match" in out


def test_status_reads_the_run_folder_without_signing_in(tmp_path: Path) -> None:
    code, out = drive(tmp_path, [], ["status", "--folder", "nothing_yet"])     # no .env here at all
    assert code == 0 and "start with step 2" in out and "Signing in" not in out


def test_two_views_with_one_name_are_asked_about_or_chosen_by_id(work: Path, org: EmulatorHandle) -> None:
    fetch = org.store.find("savedquery", lambda r: r["name"] == VIEW)[0]["fetchxml"]
    twin = org.store.insert("savedquery", {"name": VIEW, "returnedtypecode": "contact", "fetchxml": fetch,
                                           "querytype": 0})
    code, out = drive(work, [], ["detect", "--entity", "contact", "--view", VIEW])
    assert code == 2 and "2 views are named" in out and twin in out and "--view-id" in out, out
    code, out = drive(work, [], ["detect", "--entity", "contact", "--view", VIEW, "--view-id", twin])
    assert code == 0 and "Started duplicate detection job" in out, out
    code, out = drive(work, ["1", "contact", VIEW, "9", "2", "n", "0"])       # the menu lists them and asks
    assert code == 0 and "Which one?" in out and "not one of the numbers" in out, out
    assert "Started duplicate detection job" in out


def test_demo_commands_run_one_after_another_meet_the_same_environment(tmp_path: Path) -> None:
    # each `--demo` command starts its own emulator: the jobs file and run folder of one must fit the next
    code, out = drive(tmp_path, [], ["--demo", "detect", "--entity", "contact", "--view", VIEW, "--wait"])
    assert code == 0, out
    code, out = drive(tmp_path, [], ["--demo", "group", "--entity", "contact", "--folder", "r1",
                                     "--jobs-file", "detection_jobs_contact.json"])
    assert code == 0, out
    code, out = drive(tmp_path, [], ["--demo", "prepare", "--entity", "contact", "--folder", "r1"])
    assert code == 0 and (tmp_path / "r1" / "prepare" / "plan.jsonl").is_file(), out
    # a port taken since: the demo moves to another and says so in .demo/port (its folders then name the old
    # address, and are refused with the way forward rather than run against the wrong environment)
    import socket

    port = int((tmp_path / ".demo" / "port").read_text())
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the last emulator's connections may linger
        taken.bind(("127.0.0.1", port))
        taken.listen()
        code, out = drive(tmp_path, [], ["--demo", "group", "--entity", "contact", "--folder", "r2",
                                         "--jobs-file", "detection_jobs_contact.json"])
        assert code == 2 and "holds jobs of" in out and "Traceback" not in out, out
    assert int((tmp_path / ".demo" / "port").read_text()) != port
