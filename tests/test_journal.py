"""The merge journal: durable lines, torn-tail repair, corruption messages, replay, and merge_actions_made.json."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from errors import RunStateError
from runfolder.journal import Journal, build_actions, read_journal, replay, write_actions
from runfolder.lock import RunLock

SUB, SUB2, TGT = "00000000-0000-0000-0000-000000000002", "00000000-0000-0000-0000-000000000003", \
    "00000000-0000-0000-0000-000000000001"


def _result(sub: str, status: str, **kw: object) -> dict[str, object]:
    return {"subordinate_id": sub, "target_id": TGT, "group_id": TGT, "status": status,
            "update_content": {"@odata.type": "Microsoft.Dynamics.CRM.contact", "firstname": "Ann"}, **kw}


def test_lines_are_appended_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "update" / "journal.jsonl"
    with Journal(path) as j:
        j.append("sending", subordinate_id=SUB, target_id=TGT, group_id=TGT, attempt=1)
        j.append("result", **_result(SUB, "merged", http_status=204))
    events = read_journal(path)
    assert [e["event"] for e in events] == ["sending", "result"]
    assert all(e["ts"].endswith("Z") for e in events)
    assert path.read_text(encoding="utf-8").count("\n") == 2


def test_missing_journal_reads_as_empty(tmp_path: Path) -> None:
    assert read_journal(tmp_path / "nope.jsonl") == []


def test_half_written_last_line_is_ignored_and_repaired(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal(path) as j:
        j.append("sending", subordinate_id=SUB, target_id=TGT, attempt=1)
    with path.open("ab") as fh:
        fh.write(b'{"event": "result", "subordinate_id": "00000')  # killed mid-write
    assert [e["event"] for e in read_journal(path)] == ["sending"]
    assert "half-written" in caplog.text
    with Journal(path) as j:  # reopening drops the fragment, so the next line starts clean
        j.append("result", **_result(SUB, "merged"))
    assert [e["event"] for e in read_journal(path)] == ["sending", "result"]


def test_whole_last_line_without_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text(json.dumps({"event": "sending", "subordinate_id": SUB, "target_id": TGT}), encoding="utf-8")
    with Journal(path) as j:
        j.append("result", **_result(SUB, "merged"))
    assert [e["event"] for e in read_journal(path)] == ["sending", "result"]


def test_corrupted_middle_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    lines = [json.dumps({"event": "sending", "subordinate_id": SUB}), "garbage{", json.dumps({"event": "run_end"})]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(RunStateError) as info:
        read_journal(path)
    assert "line 2" in str(info.value) and "journal.jsonl" in str(info.value)


def test_a_second_step_on_the_same_folder_is_refused_and_named(tmp_path: Path) -> None:
    lock = tmp_path / "run" / ".lock"
    with RunLock(lock, "step 4 (Merge duplicates)"):
        with pytest.raises(RunStateError, match=r"step 4 \(Merge duplicates\) \(process \d+\) is using"):
            with RunLock(lock, "step 3 (Prepare duplicates)"):
                pass
    with RunLock(lock, "step 3 (Prepare duplicates)"):  # free again once the first step ended
        pass


def test_a_journal_saved_back_with_bom_and_crlf_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal(path) as j:
        j.append("sending", subordinate_id="s1", target_id="t1", attempt=1)
        j.append("result", subordinate_id="s1", target_id="t1", status="merged")
    events = read_journal(path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))  # as an editor saves it
    assert read_journal(path) == events
    assert replay(read_journal(path))["s1"].done


def test_appends_from_many_threads_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal(path) as j:
        def write(n: int) -> None:
            for i in range(50):
                j.append("sending", subordinate_id=f"s{n}-{i}", payload="x" * 500)
        threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(read_journal(path)) == 400


def test_replay_done_pending_and_failed() -> None:
    events = [
        {"event": "sending", "subordinate_id": SUB, "target_id": TGT, "attempt": 1},
        {"event": "result", **_result(SUB, "failed")},
        {"event": "sending", "subordinate_id": SUB, "target_id": TGT, "attempt": 2},
        {"event": "result", **_result(SUB, "merged")},
        {"event": "sending", "subordinate_id": SUB2, "target_id": TGT, "attempt": 1},
    ]
    h = replay(events)
    assert h[SUB].done and h[SUB].sends == 2 and not h[SUB].pending
    assert h[SUB2].pending and not h[SUB2].done


def test_actions_list_each_subordinate_once_with_final_outcome(tmp_path: Path) -> None:
    events = [
        {"event": "run_start", "entity": "contact"},
        {"event": "sending", "subordinate_id": SUB, "target_id": TGT, "group_id": TGT, "attempt": 1},
        {"event": "result", **_result(SUB, "failed", http_status=503, failure_class="other")},
        {"event": "list_add", "phase": "intent", "subordinate_id": SUB, "target_id": TGT, "list_id": "L1"},
        {"event": "sending", "subordinate_id": SUB, "target_id": TGT, "group_id": TGT, "attempt": 2},
        {"event": "result", **_result(SUB, "merged", http_status=None, verification={"checked": True})},
        {"event": "sending", "subordinate_id": SUB2, "target_id": TGT, "group_id": TGT, "attempt": 1},
    ]
    actions = build_actions(events)
    assert [(a["subordinate_id"], a["status"], a["attempts"]) for a in actions] == [(SUB, "merged", 2),
                                                                                  (SUB2, "unknown", 1)]
    assert actions[0]["update_content"]["firstname"] == "Ann"
    assert actions[0]["list_workaround"][0]["list_id"] == "L1"
    doc = write_actions(tmp_path / "merge_actions_made.json", events, entity="contact")
    on_disk = json.loads((tmp_path / "merge_actions_made.json").read_text(encoding="utf-8"))
    assert on_disk == json.loads(json.dumps(doc)) and on_disk["counts"] == {"merged": 1, "unknown": 1}
