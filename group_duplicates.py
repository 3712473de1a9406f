"""Step 2: read detection jobs' duplicates, join them into groups, and download every record.

One or several jobs (a view split into key ranges by step 1): their pairs are joined into one set, so a
pair found by several jobs counts once and groups join across jobs. Writes group/record_data/{id}.json
(each record with every readable column and its annotations) and group/duplicate_groups.json (the job
ids, which of them hit the cap, entity, groups). Grouping itself is the pure `grouping` module.

Where the job rows carry only base records, each base record's duplicates come from the
RetrieveDuplicates function, 100 calls per `$batch` request (see `BATCH_SIZE`), several batches at once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from create_detection_job import JOB_DUPLICATE_CAP, JobStatus, job_statuses
from dataverse import DataverseClient, EntityMetadata, validate_guid
from dataverse.duplicate_rules import published_rules
from dataverse.environment import Environment
from dataverse.odata import LOOKUP_TABLE
from errors import DataverseError, NotFoundError, RunStateError, UsageError, about
from planning.group_guard import DEFAULT_MAX_GROUP_SIZE, Evidence, flag_groups, gather_evidence
from planning.grouping import cap_groups, group_id, group_pairs, summary
from runfolder.folder import RunFolder
from runfolder.state import DuplicateGroups, Group

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
Pair = tuple[str, str]
_LOOKUP_TYPE = LOOKUP_TABLE
_RETRIEVE = "RetrieveDuplicates(BusinessEntity=@b,MatchingEntityName=@m,PagingInfo=@p)"
# RetrieveDuplicates calls per $batch. A batch is one request against the 6,000-per-5-minutes limit, so 100
# calls cost a fiftieth of the requests single calls would, with room for the job rows and record reads
# (target: 1 request per 50 records). Each call answers whole records, so 100 calls of 1-3 duplicates keep
# one answer around a megabyte, their server time (which still counts) a few seconds, and a failed batch
# repeats 100 calls, not 1,000. Microsoft's advice to start small (10) is about throughput, which here comes
# from several batches in flight (`workers`).
BATCH_SIZE = 100
# Duplicates per RetrieveDuplicates page: a record with more is asked again for the next page (in a later
# batch); 50, as in Microsoft's example, keeps one unusual record from swelling a batch's answer.
PAGE_SIZE = 50


@dataclass(frozen=True)
class GroupSettings:
    entity: str
    job_ids: tuple[str, ...]
    max_duplicates: int | None = None
    workers: int = 8              # $batch requests of RetrieveDuplicates calls in flight (base-only job rows)
    job_cap: int = JOB_DUPLICATE_CAP
    batch_size: int = BATCH_SIZE
    page_size: int = PAGE_SIZE
    max_group_size: int = DEFAULT_MAX_GROUP_SIZE   # larger groups are flagged (and left out by step 3)

    def __post_init__(self) -> None:
        if isinstance(self.job_ids, str):   # one id is ("id",): a string would read as 36 one-letter ids
            raise TypeError("job_ids must be a tuple of job ids, not a string")


@dataclass
class GroupResult:
    groups: DuplicateGroups
    summary: dict
    records_written: int
    base_only: bool
    requests: int
    written: list[str] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)   # groups of 3+: their pairs and rules (flags)


def read_job_rows(client: DataverseClient, job_id: str) -> list[dict]:
    return list(client.get_all("duplicaterecords", {
        "$select": "_baserecordid_value,_duplicaterecordid_value,_duplicateruleid_value",
        "$filter": f"_asyncoperationid_value eq {job_id}",
    }, annotations=True))


def check_job_entity(rows: Iterable[dict], entity: str, job_id: str) -> None:
    for row in rows:
        other = row.get(f"_baserecordid_value{_LOOKUP_TYPE}")
        if other and other != entity:
            raise about("jobs", UsageError(f"Job {job_id} found duplicates of {other}, not {entity}.",
                                           f"Use the entity '{other}', or the job id of a {entity} job."))


def check_finished(statuses: Iterable[JobStatus]) -> None:
    """Refuse jobs that are still running or did not succeed (the first one found is named)."""
    for status in statuses:
        if not status.done:
            raise RunStateError(f"Detection job {status.job_id} is not finished yet ({status.label}).",
                                "Wait for it (menu option 7, or the wait command), then run step 2 again.")
        if not status.succeeded:
            raise RunStateError(f"Detection job {status.job_id} ended {status.label}: {status.message}".strip(),
                                "Check the duplicate detection rules, then start a new job (step 1).")


def unique_pairs(pairs: Iterable[Pair]) -> list[Pair]:
    """Each unordered pair once, lower-case, smaller id first; self-pairs dropped (pure). A pair reported
    by several jobs, or from both of its records, counts once."""
    seen: set[Pair] = set()
    for a, b in pairs:
        a, b = a.lower(), b.lower()
        if a != b:
            seen.add((a, b) if a < b else (b, a))
    return sorted(seen)


def _retrieve_params(meta: EntityMetadata, record_id: str, page: int, count: int) -> dict[str, str]:
    business = json.dumps({"@odata.type": f"Microsoft.Dynamics.CRM.{meta.logical_name}",
                           meta.primary_id: record_id}, separators=(",", ":"))
    paging = json.dumps({"PageNumber": page, "Count": count}, separators=(",", ":"))
    return {"@b": business, "@m": f"'{meta.logical_name}'", "@p": paging}


def retrieve_duplicates(client: DataverseClient, meta: EntityMetadata, record_id: str,
                        page_size: int = PAGE_SIZE) -> list[str]:
    """The current duplicates of one record under the published rules: one RetrieveDuplicates call per page."""
    found: list[str] = []
    page = 1
    while True:
        rows = client.get(_RETRIEVE, _retrieve_params(meta, record_id, page, page_size)).get("value") or []
        found += [str(r[meta.primary_id]).lower() for r in rows if r.get(meta.primary_id)]
        if len(rows) < page_size:
            return found
        page += 1


def retrieve_all_duplicates(client: DataverseClient, meta: EntityMetadata, record_ids: list[str],
                            settings: GroupSettings, on_progress: Progress | None = None) -> dict[str, list[str]]:
    """Every record's duplicates, RetrieveDuplicates in `$batch` requests (`settings.batch_size` calls each,
    `settings.workers` at once). A record with a full page is asked for its next page in a later round. A
    record deleted since the job has none (404 is logged, not raised); any other failed call raises."""
    found: dict[str, list[str]] = {rid: [] for rid in record_ids}
    todo = [(rid, 1) for rid in record_ids]
    done = 0
    while todo:
        batches = [todo[i:i + max(1, settings.batch_size)] for i in range(0, len(todo), max(1, settings.batch_size))]
        later: list[tuple[str, int]] = []
        for batch, answers in _each_batch(client, meta, batches, settings):
            for (rid, page), answer in zip(batch, answers, strict=True):
                if isinstance(answer, NotFoundError):
                    log.warning("record %s no longer exists: no duplicates asked for it", rid)
                    done += 1
                    continue
                if isinstance(answer, DataverseError):
                    raise answer
                rows = answer.get("value") or []
                found[rid] += [str(r[meta.primary_id]).lower() for r in rows if r.get(meta.primary_id)]
                if len(rows) >= settings.page_size:
                    later.append((rid, page + 1))
                else:
                    done += 1
            if on_progress is not None:
                on_progress(done, len(record_ids))
        todo = later
    return found


def _each_batch(client: DataverseClient, meta: EntityMetadata, batches: list[list[tuple[str, int]]],
                settings: GroupSettings) -> Iterable[tuple[list[tuple[str, int]], list]]:
    """(batch, answers) as each batch finishes, `settings.workers` batches in flight; on a failure the
    batches not yet sent are cancelled."""
    def send(batch: list[tuple[str, int]]) -> list:
        calls = [(_RETRIEVE, _retrieve_params(meta, rid, page, settings.page_size)) for rid, page in batch]
        return client.batch_get(calls, return_errors=True)

    pool = ThreadPoolExecutor(max_workers=max(1, min(settings.workers, len(batches))),
                              thread_name_prefix="retrieve-duplicates")
    try:
        futures: list[Future[list]] = [pool.submit(send, batch) for batch in batches]
        for batch, future in zip(batches, futures, strict=True):
            yield batch, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def collect_pairs(client: DataverseClient, meta: EntityMetadata, rows: list[dict], settings: GroupSettings,
                  on_progress: Progress | None = None) -> tuple[list[Pair], bool]:
    """Pairs from the job rows; base-only rows are completed with RetrieveDuplicates (batched). A record
    reported by several jobs is asked once."""
    pairs = [(r["_baserecordid_value"], r["_duplicaterecordid_value"])
             for r in rows if r.get("_baserecordid_value") and r.get("_duplicaterecordid_value")]
    bases = base_only_records(rows)
    if bases:
        for base, duplicates in retrieve_all_duplicates(client, meta, bases, settings, on_progress).items():
            pairs += [(base, d) for d in duplicates]
    return pairs, bool(bases)


def base_only_records(rows: Iterable[dict]) -> list[str]:
    """The base records of rows that name no duplicate (their duplicates must be asked for), each once."""
    return sorted({str(r["_baserecordid_value"]).lower() for r in rows
                   if r.get("_baserecordid_value") and not r.get("_duplicaterecordid_value")})


class _Stopped(Exception):
    """Ends an early download when the step fails."""


@contextmanager
def _early_download(client: DataverseClient, meta: EntityMetadata, ids: list[str],
                    keep: Callable[[str, dict], None]) -> Iterator[Callable[[], set[str]]]:
    """Download `ids` on a background thread while the caller works; yields a function that waits for it
    and returns the ids found. Used for base-only job rows: every base record has duplicates, so it will
    be in a group, and reading and writing it can overlap the RetrieveDuplicates calls (whose cost is the
    service's, not ours). If the caller fails, the download stops at its next record."""
    stop = threading.Event()

    def keep_unless_stopped(record_id: str, record: dict) -> None:
        if stop.is_set():
            raise _Stopped
        keep(record_id, record)

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="early-download")
    future = pool.submit(download_records, client, meta, ids, keep_unless_stopped)
    try:
        yield future.result
    finally:
        stop.set()
        pool.shutdown(wait=True)


def download_records(client: DataverseClient, meta: EntityMetadata, ids: list[str],
                     keep: Callable[[str, dict], None]) -> set[str]:
    """Every record of every group, every readable column, with annotations, in a few bulk requests;
    each is handed to `keep(id, record)` as it arrives (not held: 100,000s of records are gigabytes).
    The ids found."""
    found: set[str] = set()
    for row in client.get_many(meta.entity_set_name, meta.primary_id, ids, meta.readable(), annotations=True):
        record_id = str(row[meta.primary_id]).lower()
        keep(record_id, row)
        found.add(record_id)
    return found


@dataclass(frozen=True)
class _JobsRead:
    job_ids: tuple[str, ...]          # each once, in the order given
    meta: EntityMetadata
    rows: list[dict]                  # every job's duplicaterecord rows
    capped: list[str]                 # the jobs that hit the cap
    environment: Environment


def _read_jobs(client: DataverseClient, settings: GroupSettings) -> _JobsRead:
    """The jobs' rows, the table's metadata and the environment, read at once; refuses unknown, unfinished
    or failed jobs and jobs of another table."""
    if not settings.job_ids:
        raise about("jobs", UsageError("No detection job given.", "Give one or more job ids, or the jobs file."))
    job_ids = tuple(dict.fromkeys(validate_guid(j) for j in settings.job_ids))
    # metadata (three requests), WhoAmI and the jobs' rows are read while the jobs' status is checked
    with ThreadPoolExecutor(max_workers=max(3, min(settings.workers, len(job_ids) + 2))) as pool:
        table, where = pool.submit(client.entity, settings.entity), pool.submit(client.environment)
        reading = {job: pool.submit(read_job_rows, client, job) for job in job_ids}
        check_finished(job_statuses(client, job_ids).values())
        rows_of = {job: reading[job].result() for job in job_ids}
        meta, environment = table.result(), where.result()
    rows: list[dict] = []
    capped: list[str] = []
    for job_id, job_rows in rows_of.items():
        check_job_entity(job_rows, settings.entity, job_id)
        # a job stops at the cap: as many records with duplicates as the cap means there may be more
        if len({r["_baserecordid_value"] for r in job_rows if r.get("_baserecordid_value")}) >= settings.job_cap:
            capped.append(job_id)
        rows += job_rows
    return _JobsRead(job_ids, meta, rows, capped, environment)


def run(client: DataverseClient, run: RunFolder, settings: GroupSettings,
        on_progress: Progress | None = None) -> GroupResult:
    """`on_progress(done, total)` follows the records whose duplicates are asked (base-only job rows)."""
    requests_before = client.stats.requests
    jobs = _read_jobs(client, settings)
    meta, rows = jobs.meta, jobs.rows
    early = base_only_records(rows) if settings.max_duplicates is None else []   # with --max: groups first
    with _early_download(client, meta, early, run.write_record) as downloaded:
        found_pairs, base_only = collect_pairs(client, meta, rows, settings, on_progress)
        found = downloaded()
    pairs = unique_pairs(found_pairs)
    members = cap_groups(group_pairs(pairs), settings.max_duplicates)
    ids = [i for g in members for i in g]
    asked = set(early)
    found |= download_records(client, meta, [i for i in ids if i not in asked], run.write_record)
    missing = [i for i in ids if i not in found]
    if missing:
        log.warning("%d records of the job no longer exist; their groups shrink", len(missing))
    groups = _groups_of_existing(members, found)
    for alone in found.difference(i for g in groups for i in g.record_ids):  # its duplicates are gone
        run.record_path(alone).unlink(missing_ok=True)
    evidence = gather_evidence([g.record_ids for g in groups], pairs, run.read_record,
                               published_rules(client, settings.entity))
    result = DuplicateGroups(jobs.job_ids[0], settings.entity, groups, len(pairs), bool(jobs.capped),
                             datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), jobs.environment,
                             job_ids=jobs.job_ids, capped_jobs=tuple(jobs.capped),
                             max_group_size=settings.max_group_size,
                             flagged=tuple(flag_groups(evidence, settings.max_group_size)))
    run.write_duplicate_groups(result)
    written = [run.display(run.record_data_dir), run.display(run.duplicate_groups_path)]
    return GroupResult(result, summary([list(g.record_ids) for g in groups], len(pairs)),
                       sum(len(g.record_ids) for g in groups), base_only,
                       client.stats.requests - requests_before, written, evidence)


def reflag(run: RunFolder, result: GroupResult, max_group_size: int) -> None:
    """Flag the groups again under another size threshold (the menu asks when large groups exist)."""
    groups = replace(result.groups, max_group_size=max_group_size,
                     flagged=tuple(flag_groups(result.evidence, max_group_size)))
    run.write_duplicate_groups(groups)
    result.groups = groups


def _groups_of_existing(members: list[list[str]], records: set[str]) -> list[Group]:
    groups = []
    for g in members:
        alive = [i for i in g if i in records]
        if len(alive) > 1:
            groups.append(Group(group_id(alive), tuple(alive)))
    return groups
