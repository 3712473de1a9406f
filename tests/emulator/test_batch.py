"""`$batch`: plain parts, atomic change sets, Content-ID references, limits and error handling."""

from __future__ import annotations

import re
from typing import Any

from tests.emulator.over_http import batch, changeset, http_part


def _statuses(text: str) -> list[int]:
    return [int(s) for s in re.findall(r"^HTTP/1\.1 (\d{3})", text, re.M)]


def test_gets_and_a_failing_changeset_create_nothing(api: Any, emulator: Any) -> None:
    rid = api.create("accounts", {"name": "Batch Read"})
    cset = changeset("changeset_BBB456", [
        http_part("POST", "/api/data/v9.2/accounts", {"name": "Batch Atomic 1"}, 1),
        http_part("POST", "/api/data/v9.2/accounts", {"name": "Batch Atomic 2", "nosuch": 1}, 2),
    ])
    body, headers = batch([
        http_part("GET", f"/api/data/v9.2/accounts({rid})?$select=name"),
        http_part("GET", "accounts?$select=name&$filter=name eq 'Batch Read'"),
        http_part("GET", f"{emulator.api_url}WhoAmI"),
        cset,
    ])
    resp = api.post("$batch", data=body, headers=headers)
    assert resp.status_code == 400
    assert resp.headers["Content-Type"].startswith("multipart/mixed; boundary=batchresponse_")
    assert _statuses(resp.text) == [200, 200, 200, 400]
    assert '"name":"Batch Read"' in resp.text
    assert "Invalid property 'nosuch'" in resp.text
    assert not [r for r in emulator.store.rows("account") if r["name"].startswith("Batch Atomic")]


def test_changeset_commits_together_with_content_id_references(api: Any, emulator: Any) -> None:
    cset = changeset("cs", [
        http_part("POST", "accounts", {"name": "Batch Parent"}, 1),
        http_part("POST", "contacts", {"lastname": "Batch Child", "parentcustomerid_account@odata.bind": "$1"}, 2),
        http_part("PATCH", "$1", {"telephone1": "555"}, 3),
    ])
    body, headers = batch([cset])
    resp = api.post("$batch", data=body, headers=headers)
    assert resp.status_code == 200, resp.text
    assert _statuses(resp.text) == [204, 204, 204]
    assert "changesetresponse_" in resp.text and "Content-ID: 2" in resp.text
    parent = next(r for r in emulator.store.rows("account") if r["name"] == "Batch Parent")
    child = next(r for r in emulator.store.rows("contact") if r.get("lastname") == "Batch Child")
    assert child["parentcustomerid"].id == parent["accountid"] and parent["telephone1"] == "555"


def test_continue_on_error_runs_every_part(api: Any) -> None:
    body, headers = batch([
        http_part("GET", "nosuchset"),
        http_part("GET", "WhoAmI"),
    ])
    stop = api.post("$batch", data=body, headers=headers)
    assert stop.status_code == 404 and _statuses(stop.text) == [404]
    go_on = api.post("$batch", data=body, headers={**headers, "Prefer": "odata.continue-on-error"})
    assert go_on.status_code == 200 and _statuses(go_on.text) == [404, 200]


def test_batch_limits_and_malformed_requests(api: Any) -> None:
    body, headers = batch([http_part("GET", "WhoAmI")] * 1001)
    too_many = api.post("$batch", data=body, headers=headers)
    assert too_many.status_code == 400 and "1000" in too_many.json()["error"]["message"]
    assert api.post("$batch", data="x", headers={"Content-Type": "application/json"}).status_code == 400
    get_in_changeset, headers = batch([changeset("cs", [http_part("GET", "WhoAmI")])])
    resp = api.post("$batch", data=get_in_changeset, headers=headers)
    assert resp.status_code == 400 and "change set" in resp.text
    bad_ref, headers = batch([changeset("cs", [http_part("PATCH", "$9", {"name": "x"}, 1)])])
    assert "Content-ID Reference: '$9' does not exist" in api.post("$batch", data=bad_ref, headers=headers).text


def test_batch_with_lf_line_endings(api: Any) -> None:
    body = ("--b\nContent-Type: application/http\nContent-Transfer-Encoding: binary\n\n"
            "GET /api/data/v9.2/WhoAmI HTTP/1.1\nAccept: application/json\n\n--b--\n")
    resp = api.post("$batch", data=body, headers={"Content-Type": "multipart/mixed; boundary=b"})
    assert resp.status_code == 200 and _statuses(resp.text) == [200]
