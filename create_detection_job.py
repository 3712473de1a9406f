"""Step 1: start a Dataverse bulk duplicate detection job over a view's records.

Finds the view by name (system views, then personal views) for the table, turns its FetchXML into the
job's Query with FetchXmlToQueryExpression, and calls BulkDetectDuplicates. Writes nothing locally.
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from dataverse import DataverseClient, odata_string, validate_guid
from dataverse.duplicate_rules import Rule, published_rules
from errors import DataverseError, NotFoundError, UsageError, about

log = logging.getLogger(__name__)

STATUS_LABELS = {
    0: "Waiting for resources", 10: "Waiting", 20: "In progress", 21: "Pausing", 22: "Canceling",
    30: "Succeeded", 31: "Failed", 32: "Canceled",
}
DETECTION_OPERATION = 8


@dataclass(frozen=True)
class DetectSettings:
    entity: str
    view: str
    job_name: str = ""
    view_id: str = ""           # which view, when two have the same name


@dataclass(frozen=True)
class View:
    view_id: str
    name: str
    kind: str        # "system" | "personal"
    fetchxml: str


@dataclass(frozen=True)
class DetectResult:
    job_id: str
    url: str
    view: View
    rules: list[Rule]


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    name: str
    statecode: int
    statuscode: int
    message: str

    @property
    def label(self) -> str:
        return STATUS_LABELS.get(self.statuscode, f"status {self.statuscode}")

    @property
    def done(self) -> bool:
        return self.statecode == 3

    @property
    def succeeded(self) -> bool:
        return self.done and self.statuscode == 30


def job_url(environment_uri: str, job_id: str) -> str:
    return f"{environment_uri}main.aspx?pagetype=entityrecord&etn=asyncoperation&id={job_id}"


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
    """Start the job planned; a table without a published rule is refused (the job would only fail)."""
    if not plan.rules:
        raise UsageError(f"No published duplicate detection rule for {settings.entity}: a job would find nothing.",
                         "Publish a rule first (Settings > Data Management > Duplicate Detection Rules).")
    name = settings.job_name or f"Dedupe {settings.entity}: {plan.view.name}"
    job_id = start_job(client, settings.entity, plan.query, name[:100])
    log.info("started detection job %s for %s view %s (%s)", job_id, settings.entity, plan.view.view_id,
             plan.view.kind)
    return DetectResult(job_id, job_url(client.environment_uri, job_id), plan.view, plan.rules)


def run(client: DataverseClient, settings: DetectSettings) -> DetectResult:
    return start(client, settings, plan_job(client, settings))


def job_status(client: DataverseClient, job_id: str) -> JobStatus:
    job_id = validate_guid(job_id)
    try:
        row = client.get(f"asyncoperations({job_id})",
                         {"$select": "name,operationtype,statecode,statuscode,message,friendlymessage"})
    except NotFoundError as exc:
        raise about("job_id", UsageError(f"There is no system job with id {job_id}.",
                    "Check the job id (step 1 prints it; it is the id= part of the job's URL).")) from exc
    if row.get("operationtype") not in (None, DETECTION_OPERATION):
        raise about("job_id", UsageError(f"System job {job_id} is not a duplicate detection job.", "Check the job id."))
    message = row.get("friendlymessage") or row.get("message") or ""
    return JobStatus(job_id, row.get("name") or "", int(row.get("statecode") or 0),
                     int(row.get("statuscode") or 0), message)


def wait_for_job(client: DataverseClient, job_id: str, on_status: Callable[[JobStatus], None], *,
                 poll_s: float = 2.0, timeout_s: float = 3600.0,
                 sleep: Callable[[float], None] = time.sleep) -> JobStatus:
    """Poll until the job is done (or the timeout passes), reporting each status."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = job_status(client, job_id)
        on_status(status)
        if status.done or time.monotonic() >= deadline:
            return status
        sleep(poll_s)
