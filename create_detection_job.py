"""Step 1: detect a view's duplicates with Dataverse bulk duplicate detection jobs.

Finds the view by name (system views, then personal views) for the table, turns its FetchXML into the
job's Query with FetchXmlToQueryExpression, and calls BulkDetectDuplicates. A job reports at most 5,000
records with duplicates (Microsoft's documented cap), so a view with more is covered by several jobs:
when a finished job turns out capped, its key range is split (planning/partitions.py) and one job runs
per part, a few at a time, until no part is capped. Writes the jobs file (runfolder/detection_jobs.py).

Why not count first: a view's size does not say how many of its records have duplicates (a million
contacts may hold 300 duplicates), counting is itself capped (an aggregate count refuses more than
50,000 rows, `$count` stops at 5,000), so only a capped job is evidence that one job is not enough; and
that job's results show where to cut.
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dataverse import DataverseClient, odata_string, validate_guid
from dataverse.duplicate_rules import Rule, published_rules
from dataverse.jobs import (  # noqa: F401 - re-exported: step 2, the menu and the benchmarks use them here
    STATUS_LABELS,
    JobStatus,
    job_base_records,
    job_status,
    job_statuses,
    job_url,
    wait_for_job,
)
from errors import DataverseError, NotFoundError, RunStateError, UsageError, about
from planning.partitions import WHOLE, restrict, split
from runfolder.detection_jobs import DetectionJobs, JobState, PartJob

log = logging.getLogger(__name__)

JOB_DUPLICATE_CAP = 5000    # records with duplicates one job reports at most (Microsoft's documented cap)
# Jobs running at once. They run on the environment's shared asynchronous service, beside its workflows,
# plug-ins and system jobs; Microsoft documents no limit for detection jobs, so the tool keeps a few in
# flight: enough to overlap their queueing and run time, few enough not to crowd out the org's own work.
MAX_RUNNING_JOBS = 4
# Pieces a capped range is cut into: a capped job says only "at least 5,000"; four pieces cover up to
# four times the cap per round (40,000 duplicates: 1 + 4 + 16 jobs in three rounds) without starting
# dozens of near-empty jobs when a view is only just over the cap.
SPLIT_PARTS = 4
MAX_PARTS = 1000            # a guard: a view never needs this many jobs unless something is wrong


@dataclass(frozen=True)
class DetectSettings:
    entity: str
    view: str
    job_name: str = ""
    view_id: str = ""           # which view, when two have the same name
    job_cap: int = JOB_DUPLICATE_CAP
    max_running: int = MAX_RUNNING_JOBS
    split_parts: int = SPLIT_PARTS


@dataclass(frozen=True)
class View:
    view_id: str
    name: str
    kind: str        # "system" | "personal"
    fetchxml: str


@dataclass(frozen=True)
class DetectResult:
    job_id: str                 # the first job: the whole view
    url: str
    view: View
    rules: list[Rule]
    jobs: DetectionJobs = field(repr=False)   # what to save and carry on with (advance, wait_for_jobs)


def find_view(client: DataverseClient, entity: str, name: str, view_id: str = "") -> View:
    """The view named `name` for `entity` (system views and the caller's personal views). Two views of that
    name are ambiguous (AmbiguousViewError lists them) unless `view_id` says which."""
    name = name.strip()
    if not name:
        raise UsageError("The view name is empty.", "Type the name of a system or personal view.")
    found: list[View] = []
    for set_name, key, kind in (("savedqueries", "savedqueryid", "system"), ("userqueries", "userqueryid", "personal")):
        rows = client.get_all(set_name, {
            "$select": f"{key},name,fetchxml",
            "$filter": f"name eq {odata_string(name)} and returnedtypecode eq {odata_string(entity)}",
        })
        found += sorted((View(str(r[key]).lower(), r["name"], kind, r.get("fetchxml") or "") for r in rows),
                        key=lambda v: v.view_id)
    if view_id:
        chosen = [v for v in found if v.view_id == validate_guid(view_id)]
        if not chosen:
            raise about("view", UsageError(f"No view named '{name}' for {entity} has the id {view_id}.",
                                           "Check --view-id (or leave it out when the name is unique)."))
        return chosen[0]
    if len(found) > 1:
        raise AmbiguousViewError(found)
    if found:
        return found[0]
    hint = _close_views(client, entity, name)
    raise about("view", UsageError(f"There is no view named '{name}' for {entity}.", hint))


class AmbiguousViewError(UsageError):
    """Several views have the name asked for; `views` lists them (the menu asks which, a command needs --view-id)."""

    def __init__(self, views: list[View]) -> None:
        listed = "; ".join(f"{v.view_id} ({v.kind})" for v in views)
        super().__init__(f"{len(views)} views are named '{views[0].name}': {listed}.",
                         "Choose one with --view-id ID.")
        self.views = views


def _close_views(client: DataverseClient, entity: str, name: str) -> str:
    names: list[str] = []
    for set_name in ("savedqueries", "userqueries"):
        names += [r["name"] for r in client.get_all(set_name, {
            "$select": "name", "$filter": f"returnedtypecode eq {odata_string(entity)}"}) if r.get("name")]
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.4)
    if close:
        return "Did you mean: " + "; ".join(f"'{c}'" for c in close) + "?"
    return f"{entity} has {len(names)} views." if names else f"{entity} has no views you can read."


def check_entity(client: DataverseClient, entity: str) -> None:
    """Raise a UsageError listing close matches when `entity` is not a table of this environment."""
    try:
        client.entity(entity)
    except NotFoundError as exc:
        names = [r["LogicalName"] for r in client.get_all("EntityDefinitions", {"$select": "LogicalName"})]
        close = difflib.get_close_matches(entity, names, n=5, cutoff=0.6)
        hint = ("Did you mean: " + ", ".join(close) + "?") if close else "Check the table's logical name."
        raise about("entity", UsageError(f"There is no table named '{entity}' in this environment.", hint)) from exc


def to_query_expression(client: DataverseClient, fetchxml: str) -> dict:
    """The view's FetchXML as a QueryExpression (the job's Query), via FetchXmlToQueryExpression."""
    answer = client.get("FetchXmlToQueryExpression(FetchXml=@p1)", {"@p1": odata_string(fetchxml)})
    query = dict(answer.get("Query") or {})
    if not query:
        raise DataverseError("FetchXmlToQueryExpression returned no Query for the view.")
    # With minimal metadata the Query may come back without its type; BulkDetectDuplicates needs it.
    query.setdefault("@odata.type", "Microsoft.Dynamics.CRM.QueryExpression")
    return query


def start_job(client: DataverseClient, entity: str, query: dict, job_name: str) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    answer = client.post("BulkDetectDuplicates", {
        "Query": query, "JobName": job_name, "SendEmailNotification": False,
        "TemplateId": "00000000-0000-0000-0000-000000000000", "ToRecipients": [], "CCRecipients": [],
        "RecurrencePattern": "", "RecurrenceStartTime": now,
    }, safe_to_retry=True)  # a lost answer may be resent: a second job changes no records
    job_id = (answer or {}).get("JobId")
    if not job_id:
        raise DataverseError("BulkDetectDuplicates answered without a JobId.")
    return str(job_id)


@dataclass(frozen=True)
class DetectPlan:
    """What a job will run over, read before anything starts: the view, the published rules, the Query."""

    view: View
    rules: list[Rule]
    query: dict


def plan_job(client: DataverseClient, settings: DetectSettings) -> DetectPlan:
    """Check the table, find the view, read the published rules and build the Query (reads only)."""
    check_entity(client, settings.entity)
    view = find_view(client, settings.entity, settings.view, settings.view_id)
    rules = published_rules(client, settings.entity)
    return DetectPlan(view, rules, to_query_expression(client, view.fetchxml) if rules else {})


def start(client: DataverseClient, settings: DetectSettings, plan: DetectPlan) -> DetectResult:
    """Start one job over the whole view; a table without a published rule is refused (the job would only
    fail). The result's `jobs` is the state to save and to carry on with (`advance`, `wait_for_jobs`)."""
    if not plan.rules:
        raise UsageError(f"No published duplicate detection rule for {settings.entity}: a job would find nothing.",
                         "Publish a rule first (Settings > Data Management > Duplicate Detection Rules).")
    jobs = DetectionJobs(settings.entity, plan.view.name, client.environment_uri, plan.query,
                         client.entity(settings.entity).primary_id, settings.job_cap,
                         datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), [PartJob(WHOLE)])
    _start_waiting(client, jobs, settings, lambda _: None)
    job_id = jobs.parts[0].job_id
    log.info("started detection job %s for %s view %s (%s)", job_id, settings.entity, plan.view.view_id,
             plan.view.kind)
    return DetectResult(job_id, job_url(client.environment_uri, job_id), plan.view, plan.rules, jobs)


def run(client: DataverseClient, settings: DetectSettings) -> DetectResult:
    return start(client, settings, plan_job(client, settings))


def _job_name(settings: DetectSettings, jobs: DetectionJobs, index: int) -> str:
    name = settings.job_name or f"Dedupe {jobs.entity}: {jobs.view}"
    return (name if jobs.parts[index].part == WHOLE else f"{name} (part {index})")[:100]


def _start_waiting(client: DataverseClient, jobs: DetectionJobs, settings: DetectSettings,
                   save: Callable[[DetectionJobs], None]) -> None:
    """Start waiting parts while fewer than `max_running` jobs run; saved after each start."""
    for index, part in enumerate(jobs.parts):
        if jobs.count(JobState.RUNNING) >= max(1, settings.max_running):
            return
        if part.state is JobState.WAITING:
            query = restrict(jobs.query, part.part, jobs.primary_id)
            part.job_id = start_job(client, jobs.entity, query, _job_name(settings, jobs, index))
            part.state = JobState.RUNNING
            log.info("started detection job %s for %s ids %s", part.job_id, jobs.entity, part.part.label())
            save(jobs)


def advance(client: DataverseClient, jobs: DetectionJobs, settings: DetectSettings,
            save: Callable[[DetectionJobs], None]) -> list[str]:
    """One round: read the running jobs' status (one request), settle the finished ones (a capped one is
    replaced by its parts), start waiting parts. Returns what happened, for people."""
    events: list[str] = []
    running = [p for p in jobs.parts if p.state is JobState.RUNNING]
    statuses = job_statuses(client, [p.job_id for p in running]) if running else {}
    for part in running:
        status = statuses[part.job_id]
        if not status.done:
            continue
        if not status.succeeded:
            part.state = JobState.FAILED
            part.message = " ".join(f"{status.label}: {status.message}".split()).strip(": ")   # one line
            events.append(f"Job {part.job_id} ended {part.message}")
            continue
        found = job_base_records(client, part.job_id)
        part.found = len(found)
        if part.found < jobs.cap:
            part.state = JobState.DONE
            continue
        pieces = split(part.part, found, settings.split_parts)
        if len(jobs.parts) + len(pieces) > MAX_PARTS:
            raise RunStateError(f"Covering {jobs.view} would take more than {MAX_PARTS} detection jobs.",
                                "Use a narrower view, or merge the duplicates found so far and run again.")
        part.state = JobState.SPLIT
        at = jobs.parts.index(part) + 1
        jobs.parts[at:at] = [PartJob(piece) for piece in pieces]
        events.append(f"Job {part.job_id} reached the cap of {jobs.cap} records with duplicates: "
                      f"its range is split into {len(pieces)} parts, one job each")
    save(jobs)
    _start_waiting(client, jobs, settings, save)
    return events


def wait_for_jobs(client: DataverseClient, jobs: DetectionJobs, settings: DetectSettings, *,
                  save: Callable[[DetectionJobs], None], on_progress: Callable[[DetectionJobs, list[str]], None],
                  poll_s: float = 2.0, timeout_s: float = 6 * 3600.0,
                  sleep: Callable[[float], None] = time.sleep) -> DetectionJobs:
    """`advance` until every part is done (or the timeout passes); a failed job stops it (RunStateError)."""
    deadline = time.monotonic() + timeout_s
    while True:
        events = advance(client, jobs, settings, save)
        on_progress(jobs, events)
        failed = [p for p in jobs.parts if p.state is JobState.FAILED]
        if failed:
            raise RunStateError(f"Detection job {failed[0].job_id} ended {failed[0].message}",
                                "Check the duplicate detection rules, then start a new detection (step 1).")
        if jobs.finished or time.monotonic() >= deadline:
            return jobs
        sleep(poll_s)
