"""Undo, end to end against the emulator: the demo org detected, grouped, prepared, merged with notes, then
undone; afterwards every record is as it was before the merges (every column but modifiedon, versionnumber,
merged, masterid and modifiedby), every related row points where it pointed, list memberships are as they
were. Then: undo of chosen subordinates only, a target edited after its merge (conflict kept), a row created
on the target after the merge (stays), SIGKILL during undo and rerun, a subordinate merged again since."""

from __future__ import annotations

import copy
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dataverse_emulator import EmulatorHandle, start_emulator
from dataverse_emulator.store import Ref
from main import main
from runfolder.journal import read_journal, replay

ROOT = Path(__file__).resolve().parent.parent
VIEW = "Active Contacts for Duplicate Checking"
IGNORED = {"modifiedon", "versionnumber", "merged", "masterid", "modifiedby"}
TABLES = ("contact", "account", "lead", "incident", "quote", "opportunity", "task", "phonecall", "email",
          "appointment", "annotation", "list")


def cli(work: Path, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), stdin=io.StringIO(""), stdout=out, work_dir=work), out.getvalue()


def state(dv: EmulatorHandle) -> dict[str, Any]:
    with dv.store.lock:
        rows = {t: {pk: {k: v for k, v in r.items() if k not in IGNORED and v is not None}   # null = no value
                    for pk, r in dv.store.tables[t].items()} for t in TABLES}
        members = Counter((m["listid"].id, m["entityid"].id) for m in dv.store.tables["listmember"].values())
    return copy.deepcopy({"rows": rows, "members": members})


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    found = []
    for table, rows in before["rows"].items():
        now = after["rows"][table]
        for pk, row in rows.items():
            if pk not in now:
                found.append(f"{table} {pk} is gone")
            elif now[pk] != row:
                changed = sorted(k for k in row.keys() | now[pk].keys() if row.get(k) != now[pk].get(k))
                found.append(f"{table} {pk}: {[(k, row.get(k), now[pk].get(k)) for k in changed]}")
        found += [f"{table} {pk} is new" for pk in now.keys() - rows.keys()]
    if before["members"] != after["members"]:
        found.append(f"list memberships differ: {before['members'] ^ after['members']}")
    return found


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[EmulatorHandle, Path]]:
    handle = start_emulator("demo", seed=7, job_seconds=0.2)
    monkeypatch.setenv("ACCESS_TOKEN", "t")
    (tmp_path / ".env").write_text(f"ENVIRONMENT_URI={handle.url}\nAUTH_MODE=access_token\n", encoding="utf-8")
    code, out = cli(tmp_path, "detect", "--entity", "contact", "--view", VIEW, "--wait")
    assert code == 0, out
    job = out.split("detection job ")[1].split()[0]
    base = ("--entity", "contact", "--folder", "run")
    assert cli(tmp_path, "group", *base, "--job-id", job)[0] == 0
    code, out = cli(tmp_path, "prepare", *base)
    assert code == 0 and "Related rows that will move" in out, out
    yield handle, tmp_path
    handle.stop()


def merge(work: Path, *extra: str) -> tuple[int, str]:
    return cli(work, "merge", "--entity", "contact", "--folder", "run", "--no-parenting-check", "--no-skip", "--yes",
               *extra)


def undo(work: Path, *extra: str) -> tuple[int, str]:
    return cli(work, "undo", "--entity", "contact", "--folder", "run", "--yes", *extra)


def actions(work: Path) -> dict[str, dict[str, Any]]:
    doc = json.loads((work / "run" / "update" / "merge_actions_made.json").read_text(encoding="utf-8"))
    return {a["subordinate_id"]: a for a in doc["merges"]}


@pytest.mark.slow
def test_undo_everything_restores_the_org(demo: tuple[EmulatorHandle, Path]) -> None:
    dv, work = demo
    before = state(dv)
    plan = [json.loads(line) for line in (work / "run" / "prepare" / "plan.jsonl").read_text().splitlines()[1:]]
    code, out = merge(work, "--note")
    assert code in (0, 1), out
    merged = {s for s, a in actions(work).items() if a["status"] == "merged"}
    assert len(merged) > 100
    moved = {m["subordinate_id"]: m["related"] for m in plan if m["subordinate_id"] in merged}
    assert sum(sum(r.values()) for r in moved.values()) > 50        # the related counts the preview promised
    notes = [r for r in dv.store.rows("annotation") if str(r.get("subject", "")).startswith("Merged with")]
    assert len(notes) == len(merged)                                  # one note per merged target merge
    code, out = undo(work)
    assert code == 0 and "Not restored by undo" in out, out
    assert differences(before, state(dv)) == []
    for sub in merged:                                                # what undo cannot restore, and says so
        row = dv.store.get("contact", sub)
        assert row["statecode"] == 0 and row["merged"] is True and row["masterid"].entity == "contact"
    code, out = undo(work)
    assert code == 0 and "Nothing to undo" in out                     # a rerun does nothing twice
    code, out = cli(work, "status", "--folder", "run")
    assert code == 0 and f"undo: undone: {len(merged)}" in out, out


def test_preview_counts_equal_the_rows_the_merges_move(demo: tuple[EmulatorHandle, Path]) -> None:
    dv, work = demo
    plan = [json.loads(line) for line in (work / "run" / "prepare" / "plan.jsonl").read_text().splitlines()[1:]]
    pointing: dict[str, Counter[str]] = {}
    for table in ("task", "phonecall", "email", "appointment", "annotation", "opportunity", "incident", "quote",
                  "lead", "account", "contact"):
        for row in dv.store.rows(table):
            for value in row.values():
                if isinstance(value, Ref) and value.entity == "contact":
                    pointing.setdefault(value.id, Counter())[table] += 1
    for m in dv.store.rows("listmember"):
        pointing.setdefault(m["entityid"].id, Counter())["listmember"] += 1
    for m in plan:
        sub = m["subordinate_id"]
        assert m["related"] == dict(sorted(pointing.get(sub, Counter()).items())), sub
    header = (work / "run" / "prepare" / "merges.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    assert "related" in header.split(",")


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _one_merged_group(demo: tuple[EmulatorHandle, Path]) -> tuple[EmulatorHandle, Path, dict[str, Any]]:
    dv, work = demo
    code, out = merge(work)
    assert code in (0, 1), out
    acts = actions(work)
    history = replay(read_journal(work / "run" / "update" / "journal.jsonl"))
    sub = next(s for s, h in history.items() if h.done and h.snapshots.get(h.target_id, {}).get("wrote")
               and h.snapshots[h.target_id]["related"])
    return dv, work, acts[sub]


def test_undo_of_chosen_subordinates_only_and_a_conflict_and_a_new_row(demo: tuple[EmulatorHandle, Path]) -> None:
    dv, work, chosen = _one_merged_group(demo)
    sub, target = chosen["subordinate_id"], chosen["target_id"]
    history = replay(read_journal(work / "run" / "update" / "journal.jsonl"))
    snap = history[sub].snapshots[target]
    column, (_, written) = next((c, w) for c, w in snap["wrote"].items() if not c.startswith("_"))
    dv.store.update("contact", target, {column: "edited after the merge"})          # someone edits the target
    new_task = dv.store.insert("task", {"subject": "after the merge", "regardingobjectid": Ref("contact", target)})
    others = [s for s, a in actions(work).items() if a["status"] == "merged" and s != sub]
    code, out = undo(work, "--subordinate", sub)
    assert code == 0 and "kept today's" in out and column in out, out
    assert dv.store.get("contact", sub)["statecode"] == 0
    assert dv.store.get("contact", target)[column] == "edited after the merge"      # the edit is kept
    assert dv.store.get("task", new_task)["regardingobjectid"] == Ref("contact", target)  # created after: stays
    for schema, rows in snap["related"].items():
        for row_id in rows:
            owners = [v for v in _find_row(dv, row_id).values() if isinstance(v, Ref)]
            assert Ref("contact", sub) in owners, (schema, row_id)
    assert all(dv.store.get("contact", o)["statecode"] == 1 for o in others[:20])    # the others stay merged
    assert written is not None


def _find_row(dv: EmulatorHandle, row_id: str) -> dict[str, Any]:
    for table in dv.store.tables:
        row = dv.store.tables[table].get(row_id)
        if row is not None:
            return row
    raise AssertionError(row_id)


def test_a_subordinate_merged_again_since_is_left_alone(demo: tuple[EmulatorHandle, Path]) -> None:
    dv, work, chosen = _one_merged_group(demo)
    sub = chosen["subordinate_id"]
    other = dv.store.insert("contact", {"lastname": "Elsewhere"})
    dv.store.update("contact", sub, {"statecode": 1, "statuscode": 2, "masterid": Ref("contact", other)})
    code, out = undo(work, "--subordinate", sub)
    assert code == 0 and "merged into another record since" in out, out
    assert dv.store.get("contact", sub)["masterid"] == Ref("contact", other)


@pytest.mark.slow
def test_sigkill_during_undo_then_rerun_finishes_without_doing_anything_twice(
        demo: tuple[EmulatorHandle, Path], tmp_path: Path) -> None:
    dv, work = demo
    before = state(dv)
    assert merge(work)[0] in (0, 1)
    env = {**os.environ, "ACCESS_TOKEN": "t"}
    journal = work / "run" / "update" / "undo_journal.jsonl"
    rng = random.Random(7)
    kills = 0
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "undo", "--entity", "contact", "--folder",
                                 "run", "--yes", "--workers", "4"], cwd=work, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        stop_at = _lines(journal) + rng.randint(40, 120)     # mid-step: between an intent and its done
        while proc.poll() is None and _lines(journal) < stop_at:
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    assert kills >= 2                                                     # the kills really cut undos short
    code, out = undo(work)
    assert code == 0, out
    assert differences(before, state(dv)) == []
    results = [e for e in read_journal(work / "run" / "update" / "undo_journal.jsonl") if e["event"] == "undo_result"]
    final = Counter(e["subordinate_id"] for e in results if e["status"] != "failed")
    assert max(final.values()) == 1                                       # each merge undone once
