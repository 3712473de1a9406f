"""System jobs (asyncoperation) as the duplicate detection steps see them: status, waiting, and results.

A detection job is an asyncoperation with operationtype 8; statecode 3 means completed, and then
statuscode says how (30 succeeded, 31 failed, 32 canceled). Its results are `duplicaterecord` rows
linked by `_asyncoperationid_value`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dataverse.client import DataverseClient
from dataverse.odata import validate_guid
from errors import NotFoundError, UsageError, about

STATUS_LABELS = {
    0: "Waiting for resources", 10: "Waiting", 20: "In progress", 21: "Pausing", 22: "Canceling",
    30: "Succeeded", 31: "Failed", 32: "Canceled",
}
DETECTION_OPERATION = 8
_COLUMNS = ["name", "operationtype", "statecode", "statuscode", "message", "friendlymessage"]
_NO_JOB_HINT = "Check the job id (step 1 prints it; it is the id= part of the job's URL)."


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


def _status(job_id: str, row: dict) -> JobStatus:
    if row.get("operationtype") not in (None, DETECTION_OPERATION):
        raise about("jobs", UsageError(f"System job {job_id} is not a duplicate detection job.", "Check the job id."))
    message = row.get("friendlymessage") or row.get("message") or ""
    return JobStatus(job_id, row.get("name") or "", int(row.get("statecode") or 0), int(row.get("statuscode") or 0),
                     message)


def job_status(client: DataverseClient, job_id: str) -> JobStatus:
    job_id = validate_guid(job_id)
    try:
        row = client.get(f"asyncoperations({job_id})", {"$select": ",".join(_COLUMNS)})
    except NotFoundError as exc:
        raise about("jobs", UsageError(f"There is no system job with id {job_id}.", _NO_JOB_HINT)) from exc
    return _status(job_id, row)


def job_statuses(client: DataverseClient, job_ids: Iterable[str]) -> dict[str, JobStatus]:
    """The status of every job, read in one request per 250 jobs; UsageError naming the first unknown id."""
    ids = list(dict.fromkeys(validate_guid(j) for j in job_ids))
    rows = {str(r["asyncoperationid"]).lower(): r
            for r in client.get_many("asyncoperations", "asyncoperationid", ids, _COLUMNS)}
    missing = [j for j in ids if j not in rows]
    if missing:
        raise about("jobs", UsageError(f"There is no system job with id {missing[0]}.", _NO_JOB_HINT))
    return {j: _status(j, rows[j]) for j in ids}


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


def job_base_records(client: DataverseClient, job_id: str) -> set[str]:
    """The distinct records a finished detection job reported as having duplicates (its base records).

    A job reports at most the service's cap of them (5000): as many as the cap means it stopped there."""
    rows = client.get_all("duplicaterecords", {"$select": "_baserecordid_value",
                                               "$filter": f"_asyncoperationid_value eq {validate_guid(job_id)}"})
    return {str(r["_baserecordid_value"]).lower() for r in rows if r.get("_baserecordid_value")}
