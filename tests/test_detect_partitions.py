"""Past the cap, over HTTP against the emulator: detection split into key ranges until no job is capped,
step 2 joining several jobs (a pair found twice counts once), RetrieveDuplicates in `$batch` requests giving
what one call per record gives, and the command line (`--job-id a,b`, `--jobs-file`, `wait`).

`synthetic-partitions:N` holds N records with duplicates in groups of known structure (`dataset_groups`);
the small org runs with a cap of 250 so that 2,000 records need two rounds of splitting.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import create_detection_job as detect
from auth import StaticTokenProvider
from dataverse import DataverseClient
from dataverse_emulator import EmulatorHandle, start_emulator
from dataverse_emulator.datasets import dataset_groups
from dataverse_emulator.errors import ServiceError
from dataverse_emulator.partitions_data import KnownGroup
from errors import RunStateError
from group_duplicates import (
    GroupSettings,
    base_only_records,
    read_job_rows,
    retrieve_all_duplicates,
    retrieve_duplicates,
    run,
)
from main import main
from planning.partitions import covers_exactly
from runfolder.detection_jobs import JobState, load_jobs, save_jobs
from runfolder.folder import RunFolder

VIEW = "Active Contacts for Duplicate Checking"
SMALL, CAP = "synthetic-partitions:2000", 250
PAIRS_PER_KIND = {"pair": 1, "triple": 3, "chain": 2, "long-chain": 3}   # matched pairs within each kind


def known(name: str) -> set[frozenset[str]]:
    return {frozenset(g.ids) for g in dataset_groups(name)}


def found(folder: RunFolder) -> set[frozenset[str]]:
    return {frozenset(g.record_ids) for g in folder.read_duplicate_groups().groups}


def distinct_pairs(groups: list[KnownGroup]) -> int:
    return sum(PAIRS_PER_KIND[g.kind] for g in groups)


def client_for(handle: EmulatorHandle) -> DataverseClient:
    return DataverseClient(handle.url, StaticTokenProvider("t"))


@pytest.fixture(scope="module")
def small() -> Iterator[EmulatorHandle]:
    handle = start_emulator(SMALL, job_seconds=0, max_job_duplicates=CAP)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def detected(small: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[str, ...]]:
    """One detection of the small org, run to the end: the jobs file and the job ids."""
    client = client_for(small)
    settings = detect.DetectSettings("contact", VIEW, job_cap=CAP)
    path = tmp_path_factory.mktemp("detect") / "detection_jobs_contact.json"
    jobs = detect.run(client, settings).jobs
    save_jobs(path, jobs)
    events: list[str] = []
    done = detect.wait_for_jobs(client, jobs, settings, save=lambda state: save_jobs(path, state),
                                on_progress=lambda state, new: events.extend(new), poll_s=0.01, timeout_s=60)
    assert done.finished and sum("reached the cap of 250" in e for e in events) == done.count(JobState.SPLIT)
    return path, done.job_ids


def test_capped_jobs_are_split_again_until_every_known_group_is_found(
        small: EmulatorHandle, detected: tuple[Path, tuple[str, ...]], tmp_path: Path) -> None:
    path, job_ids = detected
    jobs = load_jobs(path)                          # the file holds what the run ended with
    assert jobs.job_ids == job_ids and jobs.finished and jobs.cap == CAP and jobs.entity == "contact"
    split = [p for p in jobs.parts if p.state is JobState.SPLIT]
    done = [p for p in jobs.parts if p.state is JobState.DONE]
    assert split[0].part.lower is None and split[0].part.upper is None     # the first job covered the view
    assert len(split) >= 2 and len(job_ids) >= 3          # a capped part was split again
    assert all(p.found == CAP for p in split) and all(0 < (p.found or 0) < CAP for p in done)
    assert covers_exactly(sorted((p.part for p in done), key=lambda r: r.low_key))
    assert sum(p.found or 0 for p in done) == sum(len(g.ids) for g in dataset_groups(SMALL))
    folder = RunFolder(tmp_path / "run")
    result = run(client_for(small), folder, GroupSettings("contact", job_ids, job_cap=CAP))
    assert found(folder) == known(SMALL)
    groups = folder.read_duplicate_groups()
    assert groups.job_ids == job_ids and groups.capped_jobs == () and not groups.capped
    assert result.summary["pairs_read"] == distinct_pairs(dataset_groups(SMALL))     # each pair once


def test_batched_retrieve_duplicates_matches_one_call_per_record(
        small: EmulatorHandle, detected: tuple[Path, tuple[str, ...]]) -> None:
    client = client_for(small)
    meta = client.entity("contact")
    job_ids = detected[1]
    bases = base_only_records(row for job in job_ids for row in read_job_rows(client, job))[:700]
    one_by_one = {b: sorted(retrieve_duplicates(client, meta, b)) for b in bases}
    before = client.stats.requests
    settings = GroupSettings("contact", job_ids)
    batched = retrieve_all_duplicates(client, meta, bases, settings)
    assert client.stats.requests - before == math.ceil(len(bases) / settings.batch_size)
    assert {b: sorted(d) for b, d in batched.items()} == one_by_one
    # a page of one duplicate: a triple's records need three pages, asked in later batches
    paged = retrieve_all_duplicates(client, meta, bases, GroupSettings("contact", job_ids, page_size=1,
                                                                       batch_size=70, workers=3))
    assert {b: sorted(d) for b, d in paged.items()} == one_by_one


def test_a_pair_found_by_two_jobs_counts_once(tmp_path: Path) -> None:
    handle = start_emulator(SMALL, job_seconds=0, duplicate_records="pairs", max_job_duplicates=10**6)
    try:
        client = client_for(handle)
        settings = detect.DetectSettings("contact", VIEW)
        plan = detect.plan_job(client, settings)
        first, second = (detect.start(client, settings, plan).job_id for _ in range(2))   # the same view twice
        for job in (first, second):
            assert detect.wait_for_job(client, job, lambda s: None, poll_s=0.01, timeout_s=30).succeeded
        once, twice = RunFolder(tmp_path / "once"), RunFolder(tmp_path / "twice")
        one = run(client, once, GroupSettings("contact", (first,)))
        two = run(client, twice, GroupSettings("contact", (first, second, first)))
    finally:
        handle.stop()
    assert found(once) == found(twice) == known(SMALL)
    assert one.summary["pairs_read"] == two.summary["pairs_read"] == distinct_pairs(dataset_groups(SMALL))
    assert twice.read_duplicate_groups().job_ids == (first, second)


# -- the command line ---------------------------------------------------------------------------------------
def cli(work: Path, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), stdin=io.StringIO(""), stdout=out, work_dir=work)
    return code, out.getvalue()


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[EmulatorHandle, Path]]:
    """The small org under the real cap (one job covers it), signed in through a .env file."""
    handle = start_emulator(SMALL, job_seconds=0)
    monkeypatch.setenv("ACCESS_TOKEN", "t")
    (tmp_path / ".env").write_text(f"ENVIRONMENT_URI={handle.url}\nAUTH_MODE=access_token\n", encoding="utf-8")
    yield handle, tmp_path
    handle.stop()


GROUP = ("group", "--entity", "contact", "--folder")


def test_group_takes_several_job_ids_or_the_jobs_file(org: tuple[EmulatorHandle, Path]) -> None:
    handle, work = org
    code, out = cli(work, "detect", "--entity", "contact", "--view", VIEW, "--wait")
    assert code == 0 and "1 detection job(s) finished" in out, out
    jobs_file = work / "detection_jobs_contact.json"
    (job,) = json.loads(jobs_file.read_text(encoding="utf-8"))["job_ids"]
    other = detect.run(client_for(handle), detect.DetectSettings("contact", VIEW)).job_id
    assert cli(work, "wait", "--job-id", other)[0] == 0
    code, out = cli(work, *GROUP, "by_ids", "--job-id", f"{job}, {other.upper()}")
    assert code == 0 and "duplicates of 2 detection job(s)" in out, out
    code, out = cli(work, *GROUP, "by_file", "--jobs-file", jobs_file.name)
    assert code == 0 and "duplicates of 1 detection job(s)" in out, out
    assert found(RunFolder(work / "by_ids")) == found(RunFolder(work / "by_file")) == known(SMALL)
    groups = json.loads((work / "by_ids" / "group" / "duplicate_groups.json").read_text(encoding="utf-8"))
    assert groups["job_ids"] == [job, other] and groups["job_id"] == job
    for argv, words in [((*GROUP, "x", "--job-id", job, "--jobs-file", jobs_file.name), "not both"),
                        ((*GROUP, "x"), "--job-id or --jobs-file is required"),
                        ((*GROUP, "x", "--job-id", f"{job},nope"), "'nope' is not a record id"),
                        (("group", "--entity", "account", "--folder", "x", "--jobs-file", jobs_file.name),
                         "holds detection jobs of contact, not account")]:
        code, out = cli(work, *argv)
        assert code == 2 and words in out and "Traceback" not in out, out
    code, out = cli(work, *GROUP, "x", "--jobs-file", "nothing_here.json")
    assert code == 1 and "There is no jobs file nothing_here.json" in out
    moved = json.loads(jobs_file.read_text(encoding="utf-8")) | {"environment": "https://other.crm.dynamics.com/"}
    (work / "other.json").write_text(json.dumps(moved), encoding="utf-8")
    for command in (GROUP + ("x",), ("wait",)):
        code, out = cli(work, *command, "--jobs-file", "other.json")
        assert code == 2 and "holds jobs of https://other.crm.dynamics.com/" in out, out


def test_an_unfinished_detection_is_waited_for_with_its_jobs_file(org: tuple[EmulatorHandle, Path]) -> None:
    handle, work = org
    handle.app.options = dataclasses.replace(handle.app.options, job_seconds=1.0)
    code, out = cli(work, "detect", "--entity", "contact", "--view", VIEW)      # no --wait
    assert code == 0 and "option 7" in out
    code, out = cli(work, *GROUP, "early", "--jobs-file", "detection_jobs_contact.json")
    assert code == 1 and "is not finished: 1 jobs running" in out, out
    code, out = cli(work, "wait", "--jobs-file", "detection_jobs_contact.json")
    assert code == 0 and "1 detection job(s) finished" in out, out
    assert load_jobs(work / "detection_jobs_contact.json").finished


def test_a_failing_call_is_one_line_and_a_deleted_record_only_shrinks_its_group(
        org: tuple[EmulatorHandle, Path]) -> None:
    handle, work = org
    assert cli(work, "detect", "--entity", "contact", "--view", VIEW, "--wait")[0] == 0
    pair = next(g for g in dataset_groups(SMALL) if g.kind == "pair")
    real = handle.app.functions["RetrieveDuplicates"]

    def refuse_one(ctx: Any, params: dict[str, Any]) -> Any:
        if params.get("BusinessEntity", {}).get("contactid") == pair.ids[0]:
            raise ServiceError(400, "0x80040203", "PagingInfo is not valid\nfor this request.")
        return real(ctx, params)

    handle.app.functions["RetrieveDuplicates"] = refuse_one
    code, out = cli(work, *GROUP, "refused", "--jobs-file", "detection_jobs_contact.json")
    assert code == 1 and "Traceback" not in out
    (line,) = [x for x in out.splitlines() if x.startswith("! ")]
    assert line.startswith("! Dataverse refused GET RetrieveDuplicates (HTTP 400 0x80040203): PagingInfo is not "
                           "valid for this request.")
    handle.app.functions["RetrieveDuplicates"] = real
    handle.store.delete("contact", pair.ids[0])                # deleted since the job ran: 404 for its call
    code, out = cli(work, *GROUP, "shrunk", "--jobs-file", "detection_jobs_contact.json")
    assert code == 0, out
    assert found(RunFolder(work / "shrunk")) == known(SMALL) - {frozenset(pair.ids)}


@pytest.mark.slow
def test_one_detect_and_one_group_find_every_known_group_past_the_cap(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Done when (issue 16): three times the 5,000 cap in records with duplicates, the real cap, one
    `detect --wait` and one `group`, base-only job rows (RetrieveDuplicates in batches)."""
    name = "synthetic-partitions:15000"
    handle = start_emulator(name, job_seconds=0)
    try:
        monkeypatch.setenv("ACCESS_TOKEN", "t")
        (tmp_path / ".env").write_text(f"ENVIRONMENT_URI={handle.url}\nAUTH_MODE=access_token\n", encoding="utf-8")
        code, out = cli(tmp_path, "detect", "--entity", "contact", "--view", VIEW, "--wait")
        assert code == 0 and "reached the cap of 5000" in out, out
        jobs = load_jobs(tmp_path / "detection_jobs_contact.json")
        assert len(jobs.job_ids) >= 3 and all(jobs.job_ids[i] in out for i in range(len(jobs.job_ids)))
        code, out = cli(tmp_path, *GROUP, "all", "--jobs-file", "detection_jobs_contact.json")
        assert code == 0 and "cap" not in out, out
    finally:
        handle.stop()
    assert found(RunFolder(tmp_path / "all")) == known(name)
    records = sum(len(g.ids) for g in dataset_groups(name))
    requests = int(out.split(" requests to Dataverse")[0].rsplit("(", 1)[1])
    assert requests <= records / 50                       # issue 16's target: at most 1 request per 50 records


def test_the_menu_remembers_the_jobs_of_option_1(org: tuple[EmulatorHandle, Path]) -> None:
    handle, work = org
    menu = ["1", "contact", VIEW, "n",        # start detection, do not wait
            "7",                              # wait: the jobs of option 1, no question asked
            "2", "menu_run", "",              # group: folder, no max (entity and jobs remembered)
            "0"]
    out = io.StringIO()
    code = main([], stdin=io.StringIO("".join(f"{line}\n" for line in menu)), stdout=out, work_dir=work)
    text = out.getvalue()
    assert code == 0 and "Traceback" not in text and "Detection job ids" not in text, text
    assert "1 detection job(s) finished" in text and "duplicates of 1 detection job(s)" in text
    assert found(RunFolder(work / "menu_run")) == known(SMALL)


def test_a_failed_job_stops_the_waiting_with_its_message(tmp_path: Path) -> None:
    handle = start_emulator("synthetic-partitions:100", job_seconds=0.5)
    try:
        client = client_for(handle)
        settings = detect.DetectSettings("contact", VIEW)
        jobs = detect.run(client, settings).jobs
        for rule in client.get_all("duplicaterules", {"$select": "duplicateruleid",
                                                      "$filter": "baseentityname eq 'contact'"}):
            client.post(f"duplicaterules({rule['duplicateruleid']})/Microsoft.Dynamics.CRM.UnpublishDuplicateRule")
        path = tmp_path / "detection_jobs_contact.json"
        with pytest.raises(RunStateError, match="ended Failed: No published duplicate detection rules") as info:
            detect.wait_for_jobs(client, jobs, settings, save=lambda state: save_jobs(path, state),
                                 on_progress=lambda *_: None, poll_s=0.05, timeout_s=30)
    finally:
        handle.stop()
    assert "\n" not in str(info.value) and "start a new detection" in info.value.hint
    assert [p.state for p in load_jobs(path).parts] == [JobState.FAILED]
