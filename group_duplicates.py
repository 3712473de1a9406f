"""Step 2: read a detection job's duplicates, join them into groups, and download every record.

Writes group/record_data/{id}.json (each record with every readable column and its annotations) and
group/duplicate_groups.json (job id, entity, groups). Grouping itself is the pure `grouping` module.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from create_detection_job import job_status
from dataverse import DataverseClient, EntityMetadata
from errors import RunStateError, UsageError, about
from planning.grouping import cap_groups, group_id, group_pairs, summary
from runfolder.folder import RunFolder
from runfolder.state import DuplicateGroups, Group

log = logging.getLogger(__name__)

JOB_DUPLICATE_CAP = 5000
Progress = Callable[[int, int], None]   # the service reports at most 5000 duplicates per job
_LOOKUP_TYPE = "@Microsoft.Dynamics.CRM.lookuplogicalname"


@dataclass(frozen=True)
class GroupSettings:
    entity: str
    job_id: str
    max_duplicates: int | None = None
    workers: int = 8              # parallel RetrieveDuplicates calls for base-only job results
    job_cap: int = JOB_DUPLICATE_CAP


@dataclass
class GroupResult:
    groups: DuplicateGroups
    summary: dict
    records_written: int
    base_only: bool
    requests: int
    written: list[str] = field(default_factory=list)


def read_job_rows(client: DataverseClient, job_id: str) -> list[dict]:
    return list(client.get_all("duplicaterecords", {
        "$select": "_baserecordid_value,_duplicaterecordid_value,_duplicateruleid_value",
        "$filter": f"_asyncoperationid_value eq {job_id}",
    }, annotations=True))


def check_job_entity(rows: Iterable[dict], entity: str, job_id: str) -> None:
    for row in rows:
        other = row.get(f"_baserecordid_value{_LOOKUP_TYPE}")
        if other and other != entity:
            raise about("job_id", UsageError(f"Job {job_id} found duplicates of {other}, not {entity}.",
                                             f"Use the entity '{other}', or the job id of a {entity} job."))


def retrieve_duplicates(client: DataverseClient, meta: EntityMetadata, record_id: str) -> list[str]:
    """The current duplicates of one record under the published rules (RetrieveDuplicates function)."""
    found: list[str] = []
    page = 1
    while True:
        business = json.dumps({"@odata.type": f"Microsoft.Dynamics.CRM.{meta.logical_name}",
                               meta.primary_id: record_id}, separators=(",", ":"))
        paging = json.dumps({"PageNumber": page, "Count": 5000}, separators=(",", ":"))
        answer = client.get("RetrieveDuplicates(BusinessEntity=@b,MatchingEntityName=@m,PagingInfo=@p)",
                            {"@b": business, "@m": f"'{meta.logical_name}'", "@p": paging})
        rows = answer.get("value") or []
        found += [str(r[meta.primary_id]) for r in rows if r.get(meta.primary_id)]
        if len(rows) < 5000:
            return found
        page += 1


def collect_pairs(client: DataverseClient, meta: EntityMetadata, rows: list[dict], workers: int,
                  on_progress: Progress | None = None) -> tuple[list[tuple[str, str]], bool]:
    """Pairs from the job rows; base-only rows are completed with RetrieveDuplicates (in parallel)."""
    pairs = [(r["_baserecordid_value"], r["_duplicaterecordid_value"])
             for r in rows if r.get("_baserecordid_value") and r.get("_duplicaterecordid_value")]
    bases = sorted({r["_baserecordid_value"] for r in rows
                    if r.get("_baserecordid_value") and not r.get("_duplicaterecordid_value")})
    if bases:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            found = pool.map(lambda b: retrieve_duplicates(client, meta, b), bases)
            for done, (base, dups) in enumerate(zip(bases, found, strict=True), start=1):
                pairs += [(base, d) for d in dups]
                if on_progress is not None:
                    on_progress(done, len(bases))
    return pairs, bool(bases)


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


def run(client: DataverseClient, run: RunFolder, settings: GroupSettings,
        on_progress: Progress | None = None) -> GroupResult:
    """`on_progress(done, total)` follows the RetrieveDuplicates calls of a base-only job (one per record)."""
    requests_before = client.stats.requests
    status = job_status(client, settings.job_id)
    if not status.done:
        raise RunStateError(f"Detection job {status.job_id} is not finished yet ({status.label}).",
                            "Wait for it (menu option 1 can wait), then run step 2 again.")
    if not status.succeeded:
        raise RunStateError(f"Detection job {status.job_id} ended {status.label}: {status.message}".strip(),
                            "Check the duplicate detection rules, then start a new job (step 1).")
    meta = client.entity(settings.entity)
    rows = read_job_rows(client, status.job_id)
    check_job_entity(rows, settings.entity, status.job_id)
    pairs, base_only = collect_pairs(client, meta, rows, settings.workers, on_progress)
    pairs = [(a.lower(), b.lower()) for a, b in pairs]
    members = group_pairs(pairs)
    # a job stops at the cap: as many records with duplicates as the cap means there may be more
    capped = len({r["_baserecordid_value"] for r in rows if r.get("_baserecordid_value")}) >= settings.job_cap
    members = cap_groups(members, settings.max_duplicates)
    ids = [i for g in members for i in g]
    found = download_records(client, meta, ids, run.write_record)
    missing = [i for i in ids if i not in found]
    if missing:
        log.warning("%d records of the job no longer exist; their groups shrink", len(missing))
    groups = _groups_of_existing(members, found)
    for alone in found.difference(i for g in groups for i in g.record_ids):  # its duplicates are gone
        run.record_path(alone).unlink(missing_ok=True)
    result = DuplicateGroups(status.job_id, settings.entity, groups, len(pairs), capped,
                             datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), client.environment())
    run.write_duplicate_groups(result)
    written = [run.display(run.record_data_dir), run.display(run.duplicate_groups_path)]
    return GroupResult(result, summary([list(g.record_ids) for g in groups], len(pairs)),
                       sum(len(g.record_ids) for g in groups), base_only,
                       client.stats.requests - requests_before, written)


def _groups_of_existing(members: list[list[str]], records: set[str]) -> list[Group]:
    groups = []
    for g in members:
        alive = [i for i in g if i in records]
        if len(alive) > 1:
            groups.append(Group(group_id(alive), tuple(alive)))
    return groups
