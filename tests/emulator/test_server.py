"""The emulator over real HTTP: authentication, CRUD, lookups, record shape, routing, operations, faults."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import requests

ANNOTATIONS = {"Prefer": 'odata.include-annotations="*"'}


def _error(resp: requests.Response) -> dict[str, str]:
    return resp.json()["error"]


# -- authentication -------------------------------------------------------------------------------------------
def test_no_token_is_401_with_bearer_challenge(emulator: Any, make_api: Any) -> None:
    anonymous = make_api(emulator, token=None)
    resp = anonymous.get("WhoAmI")
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=https://login.microsoftonline.com/")
    assert "resource_id=" in resp.headers["WWW-Authenticate"]
    assert resp.content == b""  # the service sends no body with a 401 (settled-2026-11.md Q6)
    malformed = anonymous.get("WhoAmI", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert malformed.status_code == 401


def test_require_token_accepts_only_that_token(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator(require_token="s3cret")
    assert make_api(dv, token="other").get("WhoAmI").status_code == 401
    assert make_api(dv, token="s3cret").get("WhoAmI").status_code == 200


def test_token_ttl_expires_a_token_but_not_a_new_one(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator(faults="token-ttl=0.4")
    old = make_api(dv, token="first")
    assert old.get("WhoAmI").status_code == 200
    time.sleep(0.6)
    expired = old.get("WhoAmI")
    assert expired.status_code == 401 and expired.content == b""
    assert "authorization_uri=" in expired.headers["WWW-Authenticate"]
    assert make_api(dv, token="second").get("WhoAmI").status_code == 200


def test_who_am_i_and_common_headers(api: Any, emulator: Any) -> None:
    resp = api.get("WhoAmI")
    assert resp.status_code == 200
    body = resp.json()
    assert body["UserId"] == emulator.app.caller_id()
    assert {"BusinessUnitId", "OrganizationId"} <= set(body)
    assert body["@odata.context"].endswith("$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse")
    assert resp.headers["OData-Version"] == "4.0"
    assert resp.headers["x-ms-dop-hint"] == str(emulator.options.dop_hint)
    uuid.UUID(resp.headers["x-ms-service-request-id"])
    assert "ARRAffinity=" in resp.headers["Set-Cookie"]
    assert resp.headers["Content-Type"].startswith("application/json")
    assert api.get("WhoAmI()").status_code == 200


# -- CRUD -----------------------------------------------------------------------------------------------------
def test_create_returns_204_with_entity_id_and_record_is_readable(api: Any, emulator: Any) -> None:
    resp = api.post("contacts", json={"firstname": "Ada", "lastname": "Lovelace", "donotemail": True})
    assert resp.status_code == 204 and resp.content == b""
    entity_id = resp.headers["OData-EntityId"]
    assert entity_id.startswith(emulator.api_url + "contacts(")
    rid = entity_id.rsplit("(", 1)[1].rstrip(")")
    rec = api.get(f"contacts({rid})").json()
    assert rec["fullname"] == "Ada Lovelace" and rec["contactid"] == rid
    assert rec["@odata.context"] == f"{emulator.api_url}$metadata#contacts/$entity"
    assert rec["@odata.etag"].startswith('W/"')
    assert rec["_ownerid_value"] == emulator.app.caller_id()


def test_create_with_return_representation_is_201(api: Any) -> None:
    resp = api.post("accounts?$select=name", json={"name": "Fabrikam"}, headers={"Prefer": "return=representation"})
    assert resp.status_code == 201
    body = resp.json()
    assert body["name"] == "Fabrikam" and "accountid" in body
    assert "telephone1" not in body  # $select honoured
    assert resp.headers["Preference-Applied"] == "return=representation"


def test_update_with_etags_and_upsert(api: Any) -> None:
    rid = api.create("accounts", {"name": "Before"})
    etag = api.get(f"accounts({rid})").json()["@odata.etag"]
    assert api.patch(f"accounts({rid})", json={"name": "After"}, headers={"If-Match": etag}).status_code == 204
    stale = api.patch(f"accounts({rid})", json={"name": "Again"}, headers={"If-Match": etag})
    assert stale.status_code == 412 and _error(stale)["code"] == "0x80060882"
    assert api.get(f"accounts({rid})").json()["name"] == "After"
    missing = str(uuid.uuid4())
    no_upsert = api.patch(f"accounts({missing})", json={"name": "X"}, headers={"If-Match": "*"})
    assert no_upsert.status_code == 404 and _error(no_upsert)["code"] == "0x80040217"
    upsert = api.patch(f"accounts({missing})", json={"name": "Upserted"})
    assert upsert.status_code == 204
    assert api.get(f"accounts({missing})").json()["name"] == "Upserted"
    assert api.patch(f"accounts({missing})", json={"name": "Y"}, headers={"If-None-Match": "*"}).status_code == 412


def test_delete_then_get_is_404(api: Any) -> None:
    rid = api.create("accounts", {"name": "Doomed"})
    assert api.delete(f"accounts({rid})").status_code == 204
    gone = api.get(f"accounts({rid})")
    assert gone.status_code == 404
    assert _error(gone) == {"code": "0x80040217", "message": f"account With Id = {rid} Does Not Exist"}
    assert api.delete(f"accounts({rid})").status_code == 404


def test_lookup_binding_polymorphic_and_annotations(api: Any) -> None:
    acc = api.create("accounts", {"name": "Parent Account"})
    con = api.create("contacts", {"firstname": "Par", "lastname": "Ent"})
    child = api.create("contacts", {"lastname": "Child", "parentcustomerid_account@odata.bind": f"/accounts({acc})"})
    rec = api.get(f"contacts({child})", headers=ANNOTATIONS).json()
    key = "_parentcustomerid_value"
    assert rec[key] == acc
    assert rec[f"{key}@Microsoft.Dynamics.CRM.lookuplogicalname"] == "account"
    assert rec[f"{key}@Microsoft.Dynamics.CRM.associatednavigationproperty"] == "parentcustomerid_account"
    assert rec[f"{key}@OData.Community.Display.V1.FormattedValue"] == "Parent Account"
    full_url = f"{api.base}contacts({con})"
    assert api.patch(f"contacts({child})", json={"parentcustomerid_contact@odata.bind": full_url}).status_code == 204
    rec = api.get(f"contacts({child})", headers=ANNOTATIONS).json()
    assert rec[key] == con and rec[f"{key}@Microsoft.Dynamics.CRM.lookuplogicalname"] == "contact"
    plain = api.get(f"contacts({child})").json()
    assert not [k for k in plain if "@" in k and k != "@odata.etag" and k != "@odata.context"]
    assert api.delete(f"contacts({child})/parentcustomerid_contact/$ref").status_code == 204
    assert api.get(f"contacts({child})").json()[key] is None


def test_record_shape_formatted_values(api: Any) -> None:
    rid = api.create("contacts", {"lastname": "Shape", "donotemail": True, "donotphone": False,
                                  "birthdate": "1990-01-02", "new_lastcontacteddate": "2024-01-02T15:04:00Z"})
    rec = api.get(f"contacts({rid})", headers=ANNOTATIONS).json()
    fv = "@OData.Community.Display.V1.FormattedValue"
    assert rec["donotemail" + fv] == "Yes" and rec["donotphone" + fv] == "No"
    assert rec["statecode" + fv] == "Active" and rec["statuscode" + fv] == "Active"
    assert rec["new_lastcontacteddate" + fv] == "1/2/2024 3:04 PM"
    assert rec["birthdate" + fv] == "1/2/1990"
    assert rec["emailaddress1"] is None and "emailaddress1" + fv not in rec
    assert "_parentcustomerid_value" in rec and "parentcustomerid" not in rec


@pytest.mark.parametrize(("body", "needle"), [
    ({"_parentcustomerid_value": "00000000-0000-0000-0000-000000000001"}, "_parentcustomerid_value"),
    ({"nosuchcolumn": "x"}, "Invalid property 'nosuchcolumn' was found in entity 'Microsoft.Dynamics.CRM.contact'."),
    ({"parentcustomerid_account": {"name": "deep"}}, "Deep insert"),
    ({"lastname@odata.type": "Edm.String"}, "lastname@odata.type"),
    ({"@odata.nosuch": 1}, "@odata.nosuch"),
    ({"parentcustomerid@odata.bind": "/accounts(00000000-0000-0000-0000-000000000001)"}, "parentcustomerid"),
    ({"parentcustomerid_account@odata.bind": "/contacts(00000000-0000-0000-0000-000000000001)"}, "contacts"),
    ({"parentcustomerid_account@odata.bind": "accounts"}, "entity reference"),
    ({"donotemail": "yes"}, "Edm.Boolean"),
    ({"lastname": 5}, "Edm.String"),
    ({"birthdate": "not a date"}, "birthdate"),
    ({"lastname": "x" * 51}, "maximum allowed length of '50'"),
])
def test_bad_write_bodies_are_400(api: Any, body: dict[str, Any], needle: str) -> None:
    resp = api.post("contacts", json=body)
    assert resp.status_code == 400, resp.text
    assert needle in _error(resp)["message"]


def test_bind_to_missing_record_is_404(api: Any) -> None:
    resp = api.post("contacts", json={"parentcustomerid_account@odata.bind": f"/accounts({uuid.uuid4()})"})
    assert resp.status_code == 404 and _error(resp)["code"] == "0x80040217"


def test_non_updatable_columns_are_refused_on_update(api: Any) -> None:
    rid = api.create("contacts", {"lastname": "Locked"})
    for body in ({"createdon": "2020-01-01T00:00:00Z"}, {"fullname": "X"}, {"merged": True}):
        resp = api.patch(f"contacts({rid})", json=body)
        assert resp.status_code == 400, body
        assert next(iter(body)) in _error(resp)["message"]
    masterid = api.patch(f"contacts({rid})", json={"masterid@odata.bind": f"/contacts({rid})"})
    assert masterid.status_code == 400


# -- routing and operations -----------------------------------------------------------------------------------
def test_unknown_segments_and_methods(api: Any) -> None:
    resp = api.get("foos")
    assert resp.status_code == 404
    assert _error(resp) == {"code": "0x80060888", "message": "Resource not found for the segment 'foos'."}
    assert api.post("NoSuchAction", json={}).status_code == 404
    assert api.request("PUT", "contacts").status_code == 405
    assert api.get("contacts(not-a-guid)").status_code == 400
    assert api.get("contacts?$select=fullname", headers={"Authorization": "Bearer x"}).status_code == 200


def test_actions_and_functions_dispatch(api: Any, emulator: Any) -> None:
    seen: list[dict[str, Any]] = []

    def echo(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        seen.append(params)
        return {"Echo": params}

    emulator.app.actions["EchoAction"] = echo
    emulator.app.functions["EchoFunction"] = echo
    resp = api.post("EchoAction", json={"A": 1, "B": "x"})
    assert resp.status_code == 200 and resp.json()["Echo"] == {"A": 1, "B": "x"}
    assert resp.json()["@odata.context"].endswith("$metadata#Microsoft.Dynamics.CRM.EchoActionResponse")
    rid = api.create("lists", {"listname": "L"})
    assert api.post(f"lists({rid})/Microsoft.Dynamics.CRM.EchoAction", json={}).status_code == 200
    assert seen[-1]["@bound"] == {"entity": "list", "id": rid}
    params = {"@a": "'O''Brien, Jr.'", "@b": '{"PageNumber":1,"Count":50}', "@c": "42"}
    resp = api.get("EchoFunction(Name=@a,Paging=@b,Number=@c,Inline='x',Flag=true)", params=params)
    assert resp.status_code == 200, resp.text
    assert resp.json()["Echo"] == {"Name": "O'Brien, Jr.", "Paging": {"PageNumber": 1, "Count": 50},
                                   "Number": 42, "Inline": "x", "Flag": True}
    assert api.get("EchoFunction(Name=@missing)").status_code == 400
    assert api.get("EchoAction").status_code == 405


def test_unexpected_exception_is_500_and_serving_goes_on(api: Any, emulator: Any) -> None:
    def boom(ctx: Any, params: dict[str, Any]) -> None:
        raise RuntimeError("kaboom")

    emulator.app.actions["Boom"] = boom
    resp = api.post("Boom", json={})
    assert resp.status_code == 500
    assert _error(resp)["code"] == "0x80040216" and "kaboom" in _error(resp)["message"]
    assert api.get("WhoAmI").status_code == 200


def test_requests_are_logged(api: Any, emulator: Any) -> None:
    before = len(emulator.store.counters.requests)
    api.get("WhoAmI")
    api.get("nothing")
    entries = emulator.store.counters.requests[before:]
    assert [(e.method, e.path, e.status) for e in entries] == [
        ("GET", "/api/data/v9.2/WhoAmI", 200), ("GET", "/api/data/v9.2/nothing", 404)]
    assert all(e.duration_ms >= 0 and e.user for e in entries)


def test_url_longer_than_32768_is_refused(api: Any) -> None:
    resp = api.get("contacts?$filter=" + "a" * 33000)
    assert resp.status_code == 414


# -- faults and latency ---------------------------------------------------------------------------------------
def test_fault_503_answers_before_processing(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator(faults="503=1.0")
    resp = make_api(dv).post("accounts", json={"name": "never"})
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "1" and _error(resp)["code"] == "0x80040216"
    assert dv.store.rows("account") == []


def test_fault_drop_processes_then_closes_the_connection(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator(faults="drop=1.0")
    with pytest.raises(requests.ConnectionError):
        make_api(dv).post("accounts", json={"name": "Written anyway"})
    assert [r["name"] for r in dv.store.rows("account")] == ["Written anyway"]


def test_fault_slow_and_latency(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator(faults="slow=1.0:0.3", latency_ms=100)
    started = time.monotonic()
    assert make_api(dv).get("WhoAmI").status_code == 200
    assert time.monotonic() - started >= 0.4


def test_faults_are_seeded(make_emulator: Any, make_api: Any) -> None:
    def statuses(seed: int) -> list[int]:
        dv = make_emulator(faults="503=0.5", seed=seed)
        client = make_api(dv)
        return [client.get("WhoAmI").status_code for _ in range(20)]

    first = statuses(7)
    assert first == statuses(7)
    assert set(first) == {200, 503}


# -- the domain operations over HTTP (skipped until operations.py serves them) ----------------------------------
def _require(emulator: Any, *names: str) -> None:
    missing = [n for n in names if n not in emulator.app.actions and n not in emulator.app.functions]
    if missing:
        pytest.skip(f"operations not available yet: {missing}")


def test_merge_over_http_sleeps_merge_ms_and_deactivates_the_subordinate(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator(merge_ms=150)
    _require(dv, "Merge")
    api = make_api(dv)
    target = api.create("contacts", {"lastname": "Target", "emailaddress1": "same@example.com"})
    sub = api.create("contacts", {"lastname": "Sub", "emailaddress1": "same@example.com", "telephone1": "1"})
    body = {"Target": {"@odata.type": "Microsoft.Dynamics.CRM.contact", "contactid": target},
            "Subordinate": {"@odata.type": "Microsoft.Dynamics.CRM.contact", "contactid": sub},
            "UpdateContent": {"@odata.type": "Microsoft.Dynamics.CRM.contact", "telephone1": "1"},
            "PerformParentingChecks": False}
    started = time.monotonic()
    resp = api.post("Merge", json=body)
    assert resp.status_code == 204, resp.text
    assert time.monotonic() - started >= 0.15
    merged = api.get(f"contacts({sub})?$select=statecode,merged,_masterid_value").json()
    assert (merged["statecode"], merged["merged"], merged["_masterid_value"]) == (1, True, target)
    assert api.get(f"contacts({target})?$select=telephone1").json()["telephone1"] == "1"
    again = api.post("Merge", json=body)
    assert again.status_code == 400 and again.json()["error"]["code"] == "0x80045304"


def test_detection_job_advances_as_the_client_polls(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator(job_seconds=0.3)
    _require(dv, "BulkDetectDuplicates")
    api = make_api(dv)
    first = api.create("contacts", {"lastname": "Dup One", "emailaddress1": "twin@example.com"})
    api.create("contacts", {"lastname": "Dup Two", "emailaddress1": "TWIN@example.com"})
    query = {"@odata.type": "Microsoft.Dynamics.CRM.QueryExpression", "EntityName": "contact",
             "ColumnSet": {"AllColumns": True, "Columns": []},
             "Criteria": {"FilterOperator": "And", "Conditions": [], "Filters": []}}
    resp = api.post("BulkDetectDuplicates", json={
        "Query": query, "JobName": "test job", "SendEmailNotification": False,
        "TemplateId": "00000000-0000-0000-0000-000000000000", "ToRecipients": [], "CCRecipients": [],
        "RecurrencePattern": "", "RecurrenceStartTime": "2026-01-01T00:00:00Z"})
    assert resp.status_code == 200, resp.text
    job_id = resp.json()["JobId"]
    deadline = time.monotonic() + 5
    while True:
        job = api.get(f"asyncoperations({job_id})?$select=statecode,statuscode").json()
        if job["statecode"] == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (job["statecode"], job["statuscode"]) == (3, 30)
    rows = api.get("duplicaterecords", params={"$filter": f"_asyncoperationid_value eq {job_id}",
                                               "$select": "_baserecordid_value"}).json()["value"]
    assert first in {r["_baserecordid_value"] for r in rows}
