"""No silently wrong answers: every query option, header, preference and parameter the emulator does not
serve is a 400 naming it (never a 200 with the whole table); and error details only when asked for."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

PLAIN_GETS = ["contacts", "contacts({id})", "WhoAmI", "EntityDefinitions", "contacts({id})/Contact_Tasks"]


@pytest.fixture(scope="module")
def rid(emulator: Any) -> str:
    return emulator.store.insert("contact", {"lastname": "Unsupported"})


@pytest.mark.parametrize(("path", "param"), [
    ("contacts", {"$skip": "1"}),
    ("contacts", {"$search": "x"}),
    ("contacts", {"$format": "json"}),
    ("contacts", {"$levels": "2"}),
    ("contacts", {"$compute": "1 as x"}),
    ("contacts", {"$index": "1"}),
    ("contacts", {"$schemaversion": "1"}),
    ("contacts", {"$deltatoken": "x"}),
    ("contacts", {"sql": "SELECT fullname FROM contact"}),
    ("contacts", {"foo": "bar"}),
    ("contacts", {"fetchxml": "<fetch/>"}),  # the parameter is case-sensitive: fetchXml
    ("contacts", {"savedquery": "x"}),
    ("contacts({id})", {"$filter": "firstname eq 'a'"}),
    ("contacts({id})", {"$top": "1"}),
    ("contacts({id})", {"foo": "bar"}),
    ("contacts({id})/Contact_Tasks", {"$skip": "1"}),
    ("WhoAmI", {"$select": "UserId"}),
    ("WhoAmI", {"foo": "bar"}),
    ("", {"$format": "json"}),
    ("$metadata", {"annotations": "true"}),
    ("EntityDefinitions", {"$top": "1"}),
    ("EntityDefinitions", {"$count": "true"}),
    ("EntityDefinitions", {"foo": "bar"}),
])
def test_unsupported_query_parameters_are_400(api: Any, rid: str, path: str, param: dict[str, str]) -> None:
    resp = api.get(path.format(id=rid), params=param)
    assert resp.status_code == 400, (path, param, resp.text[:200])
    assert resp.json()["error"]["code"] == "0x80060888"
    assert next(iter(param)) in resp.json()["error"]["message"]


@pytest.mark.parametrize("header", [
    {"Prefer": "odata.track-changes"},
    {"Prefer": "respond-async"},
    {"Prefer": "odata.allow-entityreferences"},
    {"Prefer": "return=nothing"},
    {"MSCRM.BypassCustomPluginExecution": "true"},
    {"MSCRM.BypassBusinessLogicExecution": "CustomSync"},
    {"MSCRM.SolutionUniqueName": "x"},
    {"CallerObjectId": str(uuid.uuid4())},
    {"MSCRMCallerID": str(uuid.uuid4())},
    {"If-Modified-Since": "Wed, 21 Oct 2015 07:28:00 GMT"},
    {"If-Unmodified-Since": "Wed, 21 Oct 2015 07:28:00 GMT"},
    {"Range": "bytes=0-10"},
    {"OData-Version": "3.0"},
    {"Consistency": "Eventual"},
    {"MSCRM.SuppressDuplicateDetection": "sometimes"},
])
@pytest.mark.parametrize("path", PLAIN_GETS)
def test_unsupported_headers_are_400_everywhere(api: Any, rid: str, header: dict[str, str], path: str) -> None:
    resp = api.get(path.format(id=rid), headers=header)
    assert resp.status_code == 400, (header, path, resp.text[:200])
    name, value = next(iter(header.items()))
    message = resp.json()["error"]["message"]
    assert name in message or value.split("=")[-1] in message or name.lower() in message


def test_headers_microsoft_samples_send_are_accepted(api: Any, rid: str) -> None:
    ok = {"If-None-Match": "null", "Consistency": "Strong", "OData-Version": "4.0", "OData-MaxVersion": "4.0",
          "x-ms-client-request-id": str(uuid.uuid4()), "User-Agent": "someone else's client"}
    assert api.get(f"contacts({rid})?$select=lastname", headers=ok).status_code == 200


def test_if_none_match_with_the_current_etag_is_304(api: Any, rid: str) -> None:
    first = api.get(f"contacts({rid})?$select=lastname")
    etag = first.json()["@odata.etag"]
    assert first.headers["ETag"] == etag
    assert api.get(f"contacts({rid})?$select=lastname", headers={"If-None-Match": etag}).status_code == 304
    assert api.get(f"contacts({rid})", headers={"If-None-Match": 'W/"1"'}).status_code == 200
    assert api.get(f"contacts({rid})", headers={"If-Match": etag}).status_code == 400


def test_unsupported_write_parameters_are_400(api: Any, rid: str) -> None:
    assert api.patch(f"contacts({rid})?$select=lastname", json={"jobtitle": "x"}).status_code == 400  # no return=
    assert api.delete(f"contacts({rid})?foo=bar").status_code == 400
    assert api.post("WhoAmI", json={}).status_code == 405
    assert api.post("Merge?foo=bar", json={}).status_code == 400


def test_batch_takes_no_query_parameters_and_checks_its_headers(api: Any) -> None:
    headers = {"Content-Type": "multipart/mixed; boundary=batch_x"}
    body = "--batch_x--\r\n"
    assert api.post("$batch?foo=bar", data=body, headers=headers).status_code == 400
    bypass = {**headers, "MSCRM.BypassCustomPluginExecution": "true"}
    assert api.post("$batch", data=body, headers=bypass).status_code == 400


def test_representation_honours_select_and_expand(api: Any, emulator: Any) -> None:
    acc = emulator.store.insert("account", {"name": "Rep"})
    resp = api.post("contacts?$select=lastname&$expand=parentcustomerid_account($select=name)",
                    json={"lastname": "Rep", "parentcustomerid_account@odata.bind": f"/accounts({acc})"},
                    headers={"Prefer": "return=representation"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["parentcustomerid_account"]["name"] == "Rep"
    assert set(resp.json()) >= {"lastname", "contactid"} and "firstname" not in resp.json()


def test_error_details_only_when_annotations_are_asked_for(api: Any) -> None:
    missing = f"contacts({uuid.uuid4()})"
    plain = api.get(missing).json()["error"]
    assert set(plain) == {"code", "message"}
    detailed = api.get(missing, headers={"Prefer": 'odata.include-annotations="*"'}).json()["error"]
    prefix = "@Microsoft.PowerApps.CDS."
    assert detailed[prefix + "ErrorDetails.ApiExceptionHttpStatusCode"] == "404"
    assert detailed[prefix + "ErrorDetails.ApiExceptionCategory"] == "ClientError"
    assert detailed[prefix + "ErrorDetails.ApiExceptionMesageName"] == "ObjectDoesNotExist"
    assert detailed[prefix + "HelpLink"].endswith("error=Microsoft.Crm.CrmException%3a80040217&client=platform")
    assert detailed[prefix + "InnerError.Message"] == detailed["message"]
    only_details = api.get(missing, headers={
        "Prefer": 'odata.include-annotations="Microsoft.PowerApps.CDS.ErrorDetails*"'}).json()["error"]
    assert prefix + "HelpLink" not in only_details and prefix + "ErrorDetails.ApiExceptionCategory" in only_details
    formatted_only = api.get(missing, headers={
        "Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'}).json()["error"]
    assert set(formatted_only) == {"code", "message"}


# -- function and action parameters -------------------------------------------------------------------------
@pytest.fixture
def dup_pair(make_emulator: Any, make_api: Any) -> tuple[Any, str, str]:
    handle = make_emulator("empty")
    a = handle.store.insert("contact", {"lastname": "A", "emailaddress1": "same@example.com"})
    b = handle.store.insert("contact", {"lastname": "B", "emailaddress1": "same@example.com"})
    return make_api(handle), a, b


def test_retrieve_duplicates_as_microsoft_documents_it(dup_pair: tuple[Any, str, str]) -> None:
    api, a, b = dup_pair
    url = ("RetrieveDuplicates(BusinessEntity=@p1,MatchingEntityName=@p2,PagingInfo=@p3)"
           f"?@p1={{'@odata.type':'Microsoft.Dynamics.CRM.contact','contactid':'{a}'}}&@p2='contact'"
           "&@p3={'PageNumber':1,'Count':50}")
    resp = api.get(url)
    assert resp.status_code == 200, resp.text
    assert [r["contactid"] for r in resp.json()["value"]] == [b]
    by_id = api.get("RetrieveDuplicates(BusinessEntity=@p1,MatchingEntityName=@p2,PagingInfo=@p3)"
                    f"?@p2='contact'&@p1={{'@odata.id':'contacts({a})'}}&@p3={{'PageNumber':1,'Count':50}}")
    assert [r["contactid"] for r in by_id.json()["value"]] == [b]
    json_quoted = api.get("RetrieveDuplicates(BusinessEntity=@p1,MatchingEntityName=@p2,PagingInfo=@p3)",
                          params={"@p1": f'{{"@odata.id":"{api.base}contacts({a})"}}', "@p2": "'contact'",
                                  "@p3": '{"PageNumber":1,"Count":50}'})
    assert [r["contactid"] for r in json_quoted.json()["value"]] == [b]
    gone = api.get(f"RetrieveDuplicates(BusinessEntity=@p1,MatchingEntityName=@p2,PagingInfo=@p3)"
                   f"?@p1={{'@odata.id':'contacts({uuid.uuid4()})'}}&@p2='contact'&@p3={{'PageNumber':1,'Count':5}}")
    assert gone.status_code == 404
    api.post("EntityDefinitions(LogicalName='contact')/Keys",
             json={"SchemaName": "new_lastname_key", "KeyAttributes": ["lastname"]})
    by_key = api.get("RetrieveDuplicates(BusinessEntity=@p1,MatchingEntityName=@p2,PagingInfo=@p3)"
                     "?@p1={'@odata.id':\"contacts(lastname='A')\"}&@p2='contact'&@p3={'PageNumber':1,'Count':5}")
    assert [r["contactid"] for r in by_key.json()["value"]] == [b]
    merged = api.post("Merge", json={"Target": {"@odata.id": f"contacts({a})"},
                                     "Subordinate": {"@odata.id": "contacts(lastname='B')"},
                                     "PerformParentingChecks": False})
    assert merged.status_code == 204, merged.text
    assert api.get(f"contacts({b})?$select=merged").json()["merged"] is True
    broken = api.get("RetrieveDuplicates(BusinessEntity=@p1,MatchingEntityName=@p2,PagingInfo=@p3)"
                     "?@p1={'@odata.id':'contacts(x)'&@p2='contact'&@p3={}")
    assert broken.status_code == 400
