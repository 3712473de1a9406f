"""Helpers for the scale tests (partitions, web servers, batches): HTTP calls the tool makes, spelled once."""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import quote

T = "Microsoft.Dynamics.CRM."
QE = T + "QueryExpression"


def fetch_to_query(api: Any, fetch: str) -> dict[str, Any]:
    """FetchXmlToQueryExpression over HTTP, with the @odata.type the job needs."""
    literal = "'" + fetch.replace("'", "''") + "'"
    resp = api.get(f"FetchXmlToQueryExpression(FetchXml=@p1)?@p1={quote(literal)}")
    assert resp.status_code == 200, resp.text
    return {"@odata.type": QE, **resp.json()["Query"]}


def run_job(api: Any, query: dict[str, Any], name: str = "partition", timeout: float = 30.0) -> list[str]:
    """Start BulkDetectDuplicates, poll the job to Succeeded, answer the base record ids it reported."""
    resp = api.post("BulkDetectDuplicates", json={"Query": query, "JobName": name, "SendEmailNotification": False,
                                                  "ToRecipients": [], "CCRecipients": [], "RecurrencePattern": "",
                                                  "RecurrenceStartTime": "2026-01-01T00:00:00Z"})
    assert resp.status_code == 200, resp.text
    job = resp.json()["JobId"]
    deadline = time.monotonic() + timeout
    while True:
        state = api.get(f"asyncoperations({job})?$select=statecode,statuscode").json()
        if state["statecode"] == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert (state["statecode"], state["statuscode"]) == (3, 30), state
    return read_all(api, f"duplicaterecords?$select=_baserecordid_value&$filter=_asyncoperationid_value eq {job}",
                    "_baserecordid_value")


def read_all(api: Any, path: str, column: str, page_size: int = 5000) -> list[str]:
    """Follow @odata.nextLink to the end; the `column` of every row, in the order served."""
    out: list[str] = []
    url: str | None = path
    while url:
        resp = api.get(url, headers={"Prefer": f"odata.maxpagesize={page_size}"})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        out += [row[column] for row in body["value"]]
        url = body.get("@odata.nextLink")
    return out


def guid_condition(attribute: str, operator: str, value: str) -> dict[str, Any]:
    return {"AttributeName": attribute, "Operator": operator, "Values": [{"Value": value, "Type": "System.Guid"}]}


def with_partition(query: dict[str, Any], conditions: list[dict[str, Any]]) -> dict[str, Any]:
    """The view's query with partition conditions ANDed on, nested in Criteria as the tool adds them."""
    view = query.get("Criteria") or {"FilterOperator": "And", "Conditions": [], "Filters": []}
    partition = {"FilterOperator": "And", "Conditions": conditions, "Filters": []}
    return {**query, "Criteria": {"FilterOperator": "And", "Conditions": [], "Filters": [view, partition]}}


# -- $batch ------------------------------------------------------------------------------------------------
def http_part(method: str, url: str, body: dict[str, Any] | None = None, content_id: int | None = None) -> str:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id is not None:
        head += f"Content-ID: {content_id}\r\n"
    text = f"{head}\r\n{method} {url} HTTP/1.1\r\n"
    if body is None:
        return text + "Accept: application/json\r\n\r\n"
    return text + "Content-Type: application/json; type=entry\r\n\r\n" + json.dumps(body) + "\r\n"


def changeset(boundary: str, parts: list[str]) -> str:
    inner = "".join(f"--{boundary}\r\n{p}" for p in parts) + f"--{boundary}--\r\n"
    return f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n{inner}"


def batch(items: list[str], boundary: str = "batch_scale") -> tuple[str, dict[str, str]]:
    body = "".join(f"--{boundary}\r\n{item}" for item in items) + f"--{boundary}--\r\n"
    return body, {"Content-Type": f'multipart/mixed; boundary="{boundary}"'}


def batch_answers(text: str) -> list[tuple[int, str]]:
    """(status, body) of every inner response, in order (change set parts included)."""
    found = re.findall(r"^HTTP/1\.1 (\d{3})[^\r\n]*\r\n(.*?)(?=\r\n--(?:batch|changeset)response_)", text, re.M | re.S)
    out = []
    for status, rest in found:
        _, _, body = rest.partition("\r\n\r\n")
        out.append((int(status), body.strip()))
    return out
