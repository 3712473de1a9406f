"""Records over HTTP: state changes by PATCH, lookups cleared and set through `$ref`, notes on records,
alternate keys, CreateMultiple/UpdateMultiple and duplicate detection on create and update."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from dataverse_emulator.datasets import Builder, add_rule


def _error(resp: Any) -> dict[str, str]:
    return resp.json()["error"]


def _state(api: Any, set_name: str, rid: str) -> tuple[int, int]:
    row = api.get(f"{set_name}({rid})?$select=statecode,statuscode").json()
    return row["statecode"], row["statuscode"]


# -- state changes -------------------------------------------------------------------------------------------
def test_deactivate_and_reactivate_a_contact_by_patch(api: Any) -> None:
    rid = api.create("contacts", {"lastname": "Stateful"})
    assert _state(api, "contacts", rid) == (0, 1)
    assert api.patch(f"contacts({rid})", json={"statecode": 1, "statuscode": 2}).status_code == 204
    assert _state(api, "contacts", rid) == (1, 2)
    assert api.patch(f"contacts({rid})", json={"statecode": 0}).status_code == 204  # default status of Active
    assert _state(api, "contacts", rid) == (0, 1)


def test_invalid_pairs_get_the_platform_error(api: Any) -> None:
    rid = api.create("accounts", {"name": "Pairs"})
    resp = api.patch(f"accounts({rid})", json={"statecode": 0, "statuscode": 2})
    assert resp.status_code == 400
    assert _error(resp) == {"code": "0x80048408", "message": f"2 is not a valid status code for state code "
                                                             f"AccountState.Active on account with Id {rid}."}
    alone = api.patch(f"accounts({rid})", json={"statuscode": 2})  # checked against the current state (Active)
    assert alone.status_code == 400 and "AccountState.Active" in _error(alone)["message"]
    unknown = api.patch(f"accounts({rid})", json={"statuscode": 5})
    assert _error(unknown) == {"code": "0x80048408", "message": "5 is not a valid status code on account"}
    assert api.patch(f"accounts({rid})", json={"statecode": 7}).status_code == 400
    assert _state(api, "accounts", rid) == (0, 1)  # nothing changed


def test_create_ignores_statecode_and_checks_statuscode_against_active(api: Any) -> None:
    resp = api.post("accounts", json={"name": "Born inactive?", "statecode": 1, "statuscode": 2})
    assert resp.status_code == 400 and _error(resp)["code"] == "0x80048408"
    assert "AccountState.Active" in _error(resp)["message"]
    rid = api.create("accounts", {"name": "Born active", "statecode": 1})
    assert _state(api, "accounts", rid) == (0, 1)


def test_quote_activation_and_the_messages_update_cannot_replace(api: Any) -> None:
    quote = api.create("quotes", {"name": "Q1"})
    assert _state(api, "quotes", quote) == (0, 1)
    assert api.patch(f"quotes({quote})", json={"statecode": 1, "statuscode": 2}).status_code == 204
    assert _state(api, "quotes", quote) == (1, 2)
    won = api.patch(f"quotes({quote})", json={"statecode": 2, "statuscode": 4})
    assert won.status_code == 400 and "WinQuote" in _error(won)["message"]
    case = api.create("incidents", {"title": "C"})
    resolved = api.patch(f"incidents({case})", json={"statecode": 1, "statuscode": 5})
    assert resolved.status_code == 400 and "CloseIncident" in _error(resolved)["message"]
    assert api.patch(f"incidents({case})", json={"statecode": 2, "statuscode": 6}).status_code == 204
    task = api.create("tasks", {"subject": "T"})
    assert _state(api, "tasks", task) == (0, 2)  # an open task starts Not Started
    assert api.patch(f"tasks({task})", json={"statecode": 1, "statuscode": 5}).status_code == 204


def test_a_merged_record_can_be_reactivated_and_keeps_merged_and_masterid(api: Any) -> None:
    target, sub = api.create("contacts", {"lastname": "T"}), api.create("contacts", {"lastname": "S"})
    body = {"Target": {"@odata.type": "Microsoft.Dynamics.CRM.contact", "contactid": target},
            "Subordinate": {"@odata.type": "Microsoft.Dynamics.CRM.contact", "contactid": sub},
            "PerformParentingChecks": False}
    assert api.post("Merge", json=body).status_code == 204
    assert api.patch(f"contacts({sub})", json={"statecode": 0, "statuscode": 1}).status_code == 204
    row = api.get(f"contacts({sub})?$select=statecode,merged,_masterid_value").json()
    assert (row["statecode"], row["merged"], row["_masterid_value"]) == (0, True, target)
    for write in ({"merged": False}, {"masterid@odata.bind": None}, {"masterid": None}):
        resp = api.patch(f"contacts({sub})", json=write)
        assert resp.status_code == 400, write
        assert "masterid" in _error(resp)["message"] or "merged" in _error(resp)["message"]


# -- lookups ------------------------------------------------------------------------------------------------
def test_lookups_are_cleared_by_null_binds_and_by_ref(api: Any) -> None:
    acc = api.create("accounts", {"name": "Parent"})
    bind = {"parentcustomerid_account@odata.bind": f"/accounts({acc})"}
    rid = api.create("contacts", {"lastname": "Child", **bind})

    def parent() -> str | None:
        return api.get(f"contacts({rid})?$select=_parentcustomerid_value").json()["_parentcustomerid_value"]

    assert parent() == acc
    assert api.patch(f"contacts({rid})", json={"parentcustomerid_account@odata.bind": None}).status_code == 204
    assert parent() is None
    api.patch(f"contacts({rid})", json=bind)
    assert api.patch(f"contacts({rid})", json={"parentcustomerid_account": None}).status_code == 204
    assert parent() is None
    api.patch(f"contacts({rid})", json=bind)
    assert api.delete(f"contacts({rid})/parentcustomerid_account/$ref").status_code == 204
    assert parent() is None
    put = api.request("PUT", f"contacts({rid})/parentcustomerid_account/$ref", json={"@odata.id": f"accounts({acc})"})
    assert put.status_code == 204 and parent() == acc
    assert api.delete(f"accounts({acc})/contact_customer_accounts({rid})/$ref").status_code == 204
    assert parent() is None
    assert api.post(f"accounts({acc})/contact_customer_accounts/$ref",
                    json={"@odata.id": f"{api.base}contacts({rid})"}).status_code == 204
    assert parent() == acc
    assert api.get(f"contacts({rid})/parentcustomerid_account?$select=name").json()["name"] == "Parent"
    children = api.get(f"accounts({acc})/contact_customer_accounts?$select=lastname").json()["value"]
    assert [c["lastname"] for c in children] == ["Child"]
    assert api.post(f"lists({uuid.uuid4()})/listcontact_association/$ref", json={}).status_code in (400, 404)


def test_a_note_is_created_on_a_record_by_objectid_bind(api: Any) -> None:
    contact = api.create("contacts", {"lastname": "Noted"})
    account = api.create("accounts", {"name": "Noted Inc"})
    for entity, set_name, rid in (("contact", "contacts", contact), ("account", "accounts", account)):
        note = api.create("annotations", {"subject": "Hello", "notetext": "Body",
                                          f"objectid_{entity}@odata.bind": f"/{set_name}({rid})"})
        row = api.get(f"annotations({note})?$select=subject,objecttypecode,_objectid_value").json()
        assert (row["objecttypecode"], row["_objectid_value"]) == (entity, rid)
    notes = api.get(f"contacts({contact})/Contact_Annotation?$select=subject").json()["value"]
    assert [n["subject"] for n in notes] == ["Hello"]


# -- alternate keys -----------------------------------------------------------------------------------------
def test_alternate_keys_address_records_where_defined(api: Any, emulator: Any) -> None:
    undefined = api.get("accounts(accountnumber='AK-1')")
    assert undefined.status_code == 400 and "alternate key" in _error(undefined)["message"]
    resp = api.post("EntityDefinitions(LogicalName='account')/Keys",
                    json={"SchemaName": "new_accountnumber_key", "KeyAttributes": ["accountnumber"]})
    assert resp.status_code == 204 and "Keys(" in resp.headers["OData-EntityId"]
    key = api.get("EntityDefinitions(LogicalName='account')/Keys").json()["value"][0]
    assert (key["KeyAttributes"], key["EntityKeyIndexStatus"]) == (["accountnumber"], "Active")
    missing = api.get("accounts(accountnumber='AK-1')")
    assert missing.status_code == 404 and _error(missing)["code"] == "0x80060891"
    assert api.patch("accounts(accountnumber='AK-1')", json={"name": "Upserted"}).status_code == 204  # upsert
    found = api.get("accounts(accountnumber='AK-1')?$select=name,accountnumber").json()
    assert (found["name"], found["accountnumber"]) == ("Upserted", "AK-1")
    assert api.patch("accounts(accountnumber='AK-1')", json={"name": "Updated"}).status_code == 204
    assert api.get(f"accounts({found['accountid']})?$select=name").json()["name"] == "Updated"
    dup = api.post("accounts", json={"name": "Clash", "accountnumber": "ak-1"})
    assert dup.status_code == 412 and _error(dup)["code"] == "0x80060892"
    bind = api.post("contacts", json={"lastname": "K", "parentcustomerid_account@odata.bind":
                                      "/accounts(accountnumber='AK-1')"})
    assert bind.status_code == 204
    assert api.delete("accounts(accountnumber='NOPE')").status_code == 404
    key_id = key["MetadataId"]
    assert api.delete(f"EntityDefinitions(LogicalName='account')/Keys({key_id})").status_code == 204


def test_a_key_over_duplicate_values_fails_to_index(api: Any) -> None:
    for _ in range(2):
        api.create("leads", {"subject": "same", "companyname": "Twice"})
    api.post("EntityDefinitions(LogicalName='lead')/Keys", json={"SchemaName": "k", "KeyAttributes": ["companyname"]})
    key = api.get("EntityDefinitions(LogicalName='lead')/Keys").json()["value"][0]
    assert key["EntityKeyIndexStatus"] == "Failed"
    assert api.get("leads(companyname='Twice')").status_code == 400


# -- bulk operations ----------------------------------------------------------------------------------------
def test_create_multiple_and_update_multiple(api: Any) -> None:
    typed = {"@odata.type": "Microsoft.Dynamics.CRM.contact"}
    resp = api.post("contacts/Microsoft.Dynamics.CRM.CreateMultiple",
                    json={"Targets": [{**typed, "lastname": "Bulk1"}, {**typed, "lastname": "Bulk2"}]})
    assert resp.status_code == 200, resp.text
    ids = resp.json()["Ids"]
    assert resp.json()["@odata.context"].endswith("$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse")
    assert [api.get(f"contacts({i})?$select=lastname").json()["lastname"] for i in ids] == ["Bulk1", "Bulk2"]
    upd = api.post("contacts/Microsoft.Dynamics.CRM.UpdateMultiple",
                   json={"Targets": [{**typed, "contactid": i, "jobtitle": "Bulk"} for i in ids]})
    assert upd.status_code == 204
    assert {api.get(f"contacts({i})?$select=jobtitle").json()["jobtitle"] for i in ids} == {"Bulk"}
    bad = api.post("contacts/Microsoft.Dynamics.CRM.CreateMultiple",
                   json={"Targets": [{**typed, "lastname": "ok"}, {**typed, "nosuch": 1}]})
    assert bad.status_code == 400
    assert api.get("contacts?$filter=lastname eq 'ok'").json()["value"] == []  # all or nothing
    wrong = api.post("contacts/Microsoft.Dynamics.CRM.CreateMultiple",
                     json={"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.account", "name": "x"}]})
    assert wrong.status_code == 400
    assert api.post("Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": []}).status_code == 404


# -- duplicate detection on write ---------------------------------------------------------------------------
@pytest.fixture
def dup_rule(make_emulator: Any, make_api: Any) -> Any:
    handle = make_emulator("empty")
    store = handle.store
    for rule in store.rows("duplicaterule"):  # only this test's rule is published
        store.update("duplicaterule", rule["duplicateruleid"], {"statecode": 0, "statuscode": 0})
    add_rule(Builder(store, 1), "Same e-mail", "contact", [("emailaddress1", 0, None)])
    store.insert("contact", {"lastname": "Existing", "emailaddress1": "taken@example.com"})
    return make_api(handle)


def test_suppress_duplicate_detection_false_refuses_a_duplicate_create(dup_rule: Any) -> None:
    api = dup_rule
    body = {"lastname": "Again", "emailaddress1": "TAKEN@example.com"}
    refused = api.post("contacts", json=body, headers={"MSCRM.SuppressDuplicateDetection": "false"})
    assert refused.status_code == 500
    assert _error(refused) == {"code": "0x80040333", "message": "A record was not created or updated because a "
                                                                "duplicate of the current record already exists."}
    assert api.get("contacts?$filter=lastname eq 'Again'").json()["value"] == []
    assert api.post("contacts", json=body).status_code == 204  # detection is off unless asked for
    assert api.post("contacts", json=body, headers={"MSCRM.SuppressDuplicateDetection": "true"}).status_code == 204
    fresh = api.post("contacts", json={"lastname": "New", "emailaddress1": "new@example.com"},
                     headers={"MSCRM.SuppressDuplicateDetection": "false"})
    assert fresh.status_code == 204
    assert api.post("contacts", json=body, headers={"MSCRM.SuppressDuplicateDetection": "maybe"}).status_code == 400


def test_suppress_duplicate_detection_false_refuses_a_duplicate_update(dup_rule: Any) -> None:
    api = dup_rule
    rid = api.create("contacts", {"lastname": "Other", "emailaddress1": "other@example.com"})
    header = {"MSCRM.SuppressDuplicateDetection": "false"}
    resp = api.patch(f"contacts({rid})", json={"emailaddress1": "taken@example.com"}, headers=header)
    assert resp.status_code == 500 and _error(resp)["code"] == "0x80040333"
    assert api.patch(f"contacts({rid})", json={"jobtitle": "unchanged e-mail"}, headers=header).status_code == 204
    assert api.get(f"contacts({rid})?$select=emailaddress1").json()["emailaddress1"] == "other@example.com"


def test_inactive_matches_do_not_count_when_the_rule_excludes_them(dup_rule: Any) -> None:
    api = dup_rule
    store = api.handle.store
    existing = next(r for r in store.rows("contact") if r.get("emailaddress1") == "taken@example.com")
    store.update("contact", existing["contactid"], {"statecode": 1, "statuscode": 2})
    resp = api.post("contacts", json={"lastname": "Fine", "emailaddress1": "taken@example.com"},
                    headers={"MSCRM.SuppressDuplicateDetection": "false"})
    assert resp.status_code == 204
