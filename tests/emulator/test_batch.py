"""`$batch`: plain parts, atomic change sets, Content-ID references, limits and error handling."""

from __future__ import annotations

import json
import re
from typing import Any


def _request(method: str, url: str, body: dict[str, Any] | None = None, content_id: int | None = None) -> str:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id is not None:
        head += f"Content-ID: {content_id}\r\n"
    text = f"{head}\r\n{method} {url} HTTP/1.1\r\n"
    if body is None:
        return text + "Accept: application/json\r\n\r\n"
    return text + "Content-Type: application/json; type=entry\r\n\r\n" + json.dumps(body) + "\r\n"


def _changeset(boundary: str, requests: list[str]) -> str:
    inner = "".join(f"--{boundary}\r\n{r}" for r in requests) + f"--{boundary}--\r\n"
    return f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n{inner}"


def _batch(items: list[str], boundary: str = "batch_AAA123") -> tuple[str, dict[str, str]]:
    body = "".join(f"--{boundary}\r\n{item}" for item in items) + f"--{boundary}--\r\n"
    return body, {"Content-Type": f'multipart/mixed; boundary="{boundary}"'}


def _statuses(text: str) -> list[int]:
    return [int(s) for s in re.findall(r"^HTTP/1\.1 (\d{3})", text, re.M)]


def test_gets_and_a_failing_changeset_create_nothing(api: Any, emulator: Any) -> None:
    rid = api.create("accounts", {"name": "Batch Read"})
    changeset = _changeset("changeset_BBB456", [
        _request("POST", "/api/data/v9.2/accounts", {"name": "Batch Atomic 1"}, 1),
        _request("POST", "/api/data/v9.2/accounts", {"name": "Batch Atomic 2", "nosuch": 1}, 2),
    ])
    body, headers = _batch([
        _request("GET", f"/api/data/v9.2/accounts({rid})?$select=name"),
        _request("GET", "accounts?$select=name&$filter=name eq 'Batch Read'"),
        _request("GET", f"{emulator.api_url}WhoAmI"),
        changeset,
    ])
    resp = api.post("$batch", data=body, headers=headers)
    assert resp.status_code == 400
    assert resp.headers["Content-Type"].startswith("multipart/mixed; boundary=batchresponse_")
    assert _statuses(resp.text) == [200, 200, 200, 400]
    assert '"name":"Batch Read"' in resp.text
    assert "Invalid property 'nosuch'" in resp.text
    assert not [r for r in emulator.store.rows("account") if r["name"].startswith("Batch Atomic")]


def test_changeset_commits_together_with_content_id_references(api: Any, emulator: Any) -> None:
    changeset = _changeset("cs", [
        _request("POST", "accounts", {"name": "Batch Parent"}, 1),
        _request("POST", "contacts", {"lastname": "Batch Child", "parentcustomerid_account@odata.bind": "$1"}, 2),
        _request("PATCH", "$1", {"telephone1": "555"}, 3),
    ])
    body, headers = _batch([changeset])
    resp = api.post("$batch", data=body, headers=headers)
    assert resp.status_code == 200, resp.text
    assert _statuses(resp.text) == [204, 204, 204]
    assert "changesetresponse_" in resp.text and "Content-ID: 2" in resp.text
    parent = next(r for r in emulator.store.rows("account") if r["name"] == "Batch Parent")
    child = next(r for r in emulator.store.rows("contact") if r.get("lastname") == "Batch Child")
    assert child["parentcustomerid"].id == parent["accountid"] and parent["telephone1"] == "555"


def test_continue_on_error_runs_every_part(api: Any) -> None:
    body, headers = _batch([
        _request("GET", "nosuchset"),
        _request("GET", "WhoAmI"),
    ])
    stop = api.post("$batch", data=body, headers=headers)
    assert stop.status_code == 404 and _statuses(stop.text) == [404]
    go_on = api.post("$batch", data=body, headers={**headers, "Prefer": "odata.continue-on-error"})
    assert go_on.status_code == 200 and _statuses(go_on.text) == [404, 200]


def test_batch_limits_and_malformed_requests(api: Any) -> None:
    body, headers = _batch([_request("GET", "WhoAmI")] * 1001)
    too_many = api.post("$batch", data=body, headers=headers)
    assert too_many.status_code == 400 and "1000" in too_many.json()["error"]["message"]
    assert api.post("$batch", data="x", headers={"Content-Type": "application/json"}).status_code == 400
    get_in_changeset, headers = _batch([_changeset("cs", [_request("GET", "WhoAmI")])])
    resp = api.post("$batch", data=get_in_changeset, headers=headers)
    assert resp.status_code == 400 and "change set" in resp.text
    bad_ref, headers = _batch([_changeset("cs", [_request("PATCH", "$9", {"name": "x"}, 1)])])
    assert "Content-ID Reference: '$9' does not exist" in api.post("$batch", data=bad_ref, headers=headers).text


def test_batch_with_lf_line_endings(api: Any) -> None:
    body = ("--b\nContent-Type: application/http\nContent-Transfer-Encoding: binary\n\n"
            "GET /api/data/v9.2/WhoAmI HTTP/1.1\nAccept: application/json\n\n--b--\n")
    resp = api.post("$batch", data=body, headers={"Content-Type": "multipart/mixed; boundary=b"})
    assert resp.status_code == 200 and _statuses(resp.text) == [200]
