"""Step 2 against the emulator: both shapes of job results give the same groups, the 5000 cap is
reported, --max keeps whole groups, and a job that is unfinished, failed or of another table is refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import create_detection_job as detect
from auth import StaticTokenProvider
from dataverse import DataverseClient
from dataverse_emulator import EmulatorHandle
from errors import RunStateError, UsageError
from group_duplicates import GroupResult, GroupSettings, run, unique_pairs
from runfolder.folder import RunFolder
from runfolder.state import DuplicateGroups

VIEW = "Active Contacts for Duplicate Checking"


def finished_job(client: DataverseClient, entity: str = "contact",
                 view: str = VIEW) -> str:
    plan = detect.plan_job(client, detect.DetectSettings(entity, view))
    job = detect.start(client, detect.DetectSettings(entity, view), plan).job_id
    assert detect.wait_for_job(client, job, lambda s: None, poll_s=0.05, timeout_s=30).succeeded
    return job


def grouped(handle: EmulatorHandle, tmp_path: Path, name: str, **kw: Any) -> tuple[RunFolder, GroupResult]:
    client = DataverseClient(handle.url, StaticTokenProvider("t"))
    folder = RunFolder(tmp_path / name)
    return folder, run(client, folder, GroupSettings("contact", (finished_job(client),), **kw))


@pytest.mark.parametrize("shape", ["base", "pairs"])
def test_both_shapes_of_job_results_give_the_same_groups(make_emulator: Callable[..., EmulatorHandle],
                                                         tmp_path: Path, shape: str) -> None:
    handle = make_emulator("demo", seed=5, job_seconds=0.1, duplicate_records=shape)
    folder, result = grouped(handle, tmp_path, shape)
    groups = folder.read_duplicate_groups()
    assert result.base_only == (shape == "base")
    assert groups.entity == "contact" and len(groups.groups) > 100 and not groups.capped
    for group in groups.groups:
        assert group.group_id == min(group.record_ids) and len(group.record_ids) >= 2
        for rid in group.record_ids:
            record = folder.read_record(rid)
            assert record["contactid"] == rid and "_parentcustomerid_value" in record   # every readable column
    # the chain A=B (e-mail), B=C (phone) is one group of three
    by_email = {folder.read_record(r)["emailaddress1"]: g for g in groups.groups for r in g.record_ids}
    assert len(by_email["chain01@dup.example"].record_ids) == 3
    # the other shape, from a fresh org with the same seed, groups the same records
    other = make_emulator("demo", seed=5, job_seconds=0.1, duplicate_records="pairs" if shape == "base" else "base")
    other_folder, _ = grouped(other, tmp_path, "other")
    assert [g.record_ids for g in other_folder.read_duplicate_groups().groups] == [g.record_ids for g in groups.groups]


def test_the_5000_cap_is_reported_and_max_keeps_whole_groups(make_emulator: Callable[..., EmulatorHandle],
                                                             tmp_path: Path) -> None:
    handle = make_emulator("demo", seed=5, job_seconds=0.1, max_job_duplicates=20)
    folder, result = grouped(handle, tmp_path, "capped", max_duplicates=7, job_cap=20)
    groups = folder.read_duplicate_groups()
    assert groups.capped
    duplicates = sum(len(g.record_ids) - 1 for g in groups.groups)
    assert 0 < duplicates <= 7
    assert sorted(p.stem for p in folder.record_data_dir.iterdir()) == sorted(
        r for g in groups.groups for r in g.record_ids)


def test_jobs_that_cannot_be_grouped_are_refused(make_emulator: Callable[..., EmulatorHandle],
                                                 tmp_path: Path) -> None:
    handle = make_emulator("demo", seed=5, job_seconds=30)
    client = DataverseClient(handle.url, StaticTokenProvider("t"))
    plan = detect.plan_job(client, detect.DetectSettings("contact", VIEW))
    running = detect.start(client, detect.DetectSettings("contact", VIEW), plan).job_id
    with pytest.raises(RunStateError, match="not finished yet"):
        run(client, RunFolder(tmp_path / "r"), GroupSettings("contact", (running,)))
    with pytest.raises(UsageError, match="no system job"):
        run(client, RunFolder(tmp_path / "r"), GroupSettings("contact", ("00000000-0000-0000-0000-000000000000",)))
    fast = make_emulator("demo", seed=5, job_seconds=0.1)
    fast_client = DataverseClient(fast.url, StaticTokenProvider("t"))
    accounts_job = finished_job(fast_client, "account", "Active Accounts for Duplicate Checking")
    with pytest.raises(UsageError, match="found duplicates of account, not contact") as info:
        run(fast_client, RunFolder(tmp_path / "r"), GroupSettings("contact", (accounts_job,)))
    assert info.value.answer == "jobs"


def test_records_deleted_since_the_job_shrink_their_groups(make_emulator: Callable[..., EmulatorHandle],
                                                           tmp_path: Path) -> None:
    handle = make_emulator("demo", seed=5, job_seconds=0.1, duplicate_records="pairs")
    client = DataverseClient(handle.url, StaticTokenProvider("t"))
    job = finished_job(client)
    before = RunFolder(tmp_path / "before")
    run(client, before, GroupSettings("contact", (job,)))
    groups = before.read_duplicate_groups().groups
    pair = next(g for g in groups if len(g.record_ids) == 2)
    trio = next(g for g in groups if len(g.record_ids) == 3)
    for gone in (pair.record_ids[0], trio.record_ids[0]):
        client.delete(f"contacts({gone})")
    after = RunFolder(tmp_path / "after")
    run(client, after, GroupSettings("contact", (job,)))
    now = {g.record_ids for g in after.read_duplicate_groups().groups}
    assert pair.record_ids not in now and trio.record_ids[1:] in now
    assert len(now) == len(groups) - 1
    files = {p.stem for p in after.record_data_dir.iterdir()}
    assert files == {i for ids in now for i in ids}       # no file for the pair's survivor


def test_pairs_count_once_whoever_found_them() -> None:
    a, b, c = "0000000a-0000-0000-0000-000000000000", "0000000b-0000-0000-0000-000000000000", \
        "0000000c-0000-0000-0000-000000000000"
    found = [(a, b), (b, a), (a.upper(), b), (b, c), (c, c), (b, c)]      # two jobs, both directions, a self-pair
    assert unique_pairs(found) == [(a, b), (b, c)]
    with pytest.raises(TypeError, match="tuple of job ids"):
        GroupSettings("contact", a)  # type: ignore[arg-type]


def test_duplicate_groups_files_with_one_job_id_still_read() -> None:
    old = DuplicateGroups.from_json({"job_id": "j1", "entity": "contact", "groups": [], "capped": True})
    assert old.all_job_ids == ("j1",) and old.capped and old.capped_jobs == ()
    new = DuplicateGroups("j1", "contact", [], job_ids=("j1", "j2"), capped_jobs=("j2",))
    back = DuplicateGroups.from_json(new.to_json())
    assert back.all_job_ids == ("j1", "j2") and back.capped_jobs == ("j2",) and back.to_json()["job_id"] == "j1"


def test_a_detection_job_whose_answer_was_lost_is_started_again() -> None:
    """BulkDetectDuplicates changes no records: when its answer is lost, sending it again is safe."""
    from script_server import DROP, ScriptServer

    import create_detection_job as detect
    from auth import StaticTokenProvider
    from dataverse import ClientSettings
    server = ScriptServer()
    try:
        server.script(DROP, (200, {}, {"JobId": "00000000-0000-0000-0000-0000000000aa"}))
        with DataverseClient(server.url, StaticTokenProvider("t"), ClientSettings(backoff_base=0.01)) as client:
            assert detect.start_job(client, "contact", {"EntityName": "contact"}, "job") == \
                "00000000-0000-0000-0000-0000000000aa"
        assert [r.path for r in server.received] == ["/api/data/v9.2/BulkDetectDuplicates"] * 2
    finally:
        server.close()
