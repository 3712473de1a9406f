"""Queries over HTTP beyond plain OData: $expand, navigation in $filter, navigation collections, FetchXML
(and saved/personal views), $apply aggregation and RetrieveTotalRecordCount."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from dataverse_emulator.store import Ref

ANNOTATIONS = {"Prefer": 'odata.include-annotations="*"'}


@pytest.fixture(scope="module")
def org(emulator: Any) -> dict[str, Any]:
    """Two accounts; five contacts (three under Contoso); tasks and a phone call regarding contacts."""
    s = emulator.store
    contoso = s.insert("account", {"name": "Contoso", "revenue": 100.0})
    fabrikam = s.insert("account", {"name": "Fabrikam", "revenue": 50.0})
    ids = {}
    for i, (first, acc) in enumerate([("Ann", contoso), ("Bob", contoso), ("Cid", contoso), ("Dee", fabrikam),
                                      ("Eve", None)]):
        ids[first] = s.insert("contact", {
            "firstname": first, "lastname": "Q", "fullname": f"{first} Q", "emailaddress1": f"{first}@q.example",
            "parentcustomerid": Ref("account", acc) if acc else None, "statecode": 1 if first == "Eve" else 0,
            "statuscode": 2 if first == "Eve" else 1, "createdon": f"2024-02-0{i + 1}T00:00:00Z"})
    for n, who in enumerate(["Ann", "Ann", "Ann", "Bob"]):
        s.insert("task", {"subject": f"Task {n} for {who}", "regardingobjectid": Ref("contact", ids[who])})
    s.insert("phonecall", {"subject": "Call Dee", "regardingobjectid": Ref("contact", ids["Dee"])})
    s.update("account", contoso, {"primarycontactid": Ref("contact", ids["Ann"])})
    return {"ids": ids, "contoso": contoso, "fabrikam": fabrikam}


# -- $expand ------------------------------------------------------------------------------------------------
def test_expand_single_valued_with_select(api: Any, org: dict[str, Any]) -> None:
    resp = api.get("contacts", params={"$select": "firstname", "$filter": "lastname eq 'Q'", "$orderby": "firstname",
                                       "$expand": "parentcustomerid_account($select=name;$expand=primarycontactid("
                                                  "$select=firstname))"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["@odata.context"].endswith(
        "#contacts(firstname,parentcustomerid_account(name,primarycontactid(firstname)))")
    ann, eve = body["value"][0], body["value"][-1]
    assert ann["parentcustomerid_account"]["name"] == "Contoso"
    assert ann["parentcustomerid_account"]["accountid"] == org["contoso"]
    assert ann["parentcustomerid_account"]["primarycontactid"]["firstname"] == "Ann"
    assert "@odata.etag" not in ann["parentcustomerid_account"]
    assert eve["parentcustomerid_account"] is None
    ref = api.get(f"contacts({org['ids']['Ann']})?$select=firstname&$expand=parentcustomerid_account/$ref").json()
    assert ref["parentcustomerid_account"]["@odata.id"].endswith(f"accounts({org['contoso']})")


def test_expand_collection_valued_with_nested_options(api: Any, org: dict[str, Any]) -> None:
    resp = api.get(f"contacts({org['ids']['Ann']})", params={
        "$select": "firstname",
        "$expand": "Contact_Tasks($select=subject;$filter=contains(subject,'Task');$orderby=subject desc;$top=2)"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [t["subject"] for t in body["Contact_Tasks"]] == ["Task 2 for Ann", "Task 1 for Ann"]
    assert body["Contact_Tasks"][0]["_regardingobjectid_value"] == org["ids"]["Ann"]  # the link back is there
    link = body["Contact_Tasks@odata.nextLink"]
    assert urlsplit(link).path.endswith(f"contacts({org['ids']['Ann']})/Contact_Tasks")
    followed = api.get(link)
    assert followed.status_code == 200
    assert [t["subject"] for t in followed.json()["value"]] == ["Task 2 for Ann", "Task 1 for Ann"]
    accounts = api.get("accounts", params={"$select": "name", "$filter": "name eq 'Contoso'",
                                           "$expand": "contact_customer_accounts($select=firstname)"}).json()
    assert sorted(c["firstname"] for c in accounts["value"][0]["contact_customer_accounts"]) == ["Ann", "Bob", "Cid"]


@pytest.mark.parametrize(("expand", "needle"), [
    ("Contact_Tasks/$ref", "Expand with $ref is only supported on lookup type navigation property."),
    ("parentcustomerid_account($top=1)", "$top"),
    ("Contact_Tasks($skip=1)", "$skip"),
    ("Contact_Tasks($expand=regardingobjectid_contact_task)", "Nested $expand"),
    ("listcontact_association", "many-to-many"),
    ("nosuch", "nosuch"),
])
def test_unsupported_expands_are_400(api: Any, org: dict[str, Any], expand: str, needle: str) -> None:
    resp = api.get("contacts", params={"$expand": expand})
    assert resp.status_code == 400, resp.text
    assert needle in resp.json()["error"]["message"]


# -- navigation in $filter ----------------------------------------------------------------------------------
def test_filter_on_single_valued_navigation_properties(api: Any, org: dict[str, Any]) -> None:
    names = api.get("contacts", params={"$select": "firstname",
                                        "$filter": "parentcustomerid_account/name eq 'contoso'"}).json()["value"]
    assert sorted(n["firstname"] for n in names) == ["Ann", "Bob", "Cid"]
    two_levels = api.get("contacts", params={"$select": "firstname", "$filter":
                                             "parentcustomerid_account/primarycontactid/firstname eq 'Ann'"})
    assert len(two_levels.json()["value"]) == 3
    tasks = api.get("tasks", params={"$select": "subject", "$filter":
                                     "regardingobjectid_contact_task/firstname eq 'Bob'"}).json()["value"]
    assert [t["subject"] for t in tasks] == ["Task 3 for Bob"]


def test_filter_with_any_and_all(api: Any, org: dict[str, Any]) -> None:
    def names(flt: str) -> list[str]:
        resp = api.get("contacts", params={"$select": "firstname", "$filter": f"lastname eq 'Q' and ({flt})"})
        assert resp.status_code == 200, resp.text
        return sorted(r["firstname"] for r in resp.json()["value"])

    assert names("Contact_Tasks/any(t:contains(t/subject,'Task'))") == ["Ann", "Bob"]
    assert names("Contact_Tasks/any()") == ["Ann", "Bob"]
    assert names("not Contact_Tasks/any()") == ["Cid", "Dee", "Eve"]
    assert names("Contact_Tasks/all(t:t/subject eq 'Task 3 for Bob')") == ["Bob", "Cid", "Dee", "Eve"]
    assert names("Contact_Phonecalls/any(p:p/subject eq 'Call Dee')") == ["Dee"]
    accounts = api.get("accounts", params={"$select": "name", "$filter":
                                           "contact_customer_accounts/any(c:c/firstname eq 'Dee')"}).json()
    assert [a["name"] for a in accounts["value"]] == ["Fabrikam"]


# -- FetchXML -----------------------------------------------------------------------------------------------
def _fetch(api: Any, xml: str, prefer: dict[str, str] | None = None) -> Any:
    return api.get("contacts", params={"fetchXml": xml}, headers=prefer or {})


def test_fetchxml_attributes_filters_orders_and_links(api: Any, org: dict[str, Any]) -> None:
    xml = ("<fetch><entity name='contact'><attribute name='firstname'/><attribute name='emailaddress1'/>"
           "<order attribute='firstname' descending='true'/>"
           "<filter type='and'><condition attribute='lastname' operator='eq' value='Q'/>"
           "<filter type='or'><condition attribute='firstname' operator='like' value='A%'/>"
           "<condition attribute='statecode' operator='eq' value='1'/></filter></filter>"
           "<link-entity name='account' from='accountid' to='parentcustomerid' link-type='outer' alias='acc'>"
           "<attribute name='name'/></link-entity></entity></fetch>")
    resp = _fetch(api, xml)
    assert resp.status_code == 200, resp.text
    rows = resp.json()["value"]
    assert [r["firstname"] for r in rows] == ["Eve", "Ann"]
    assert rows[1]["acc.name"] == "Contoso" and "acc.name" not in rows[0]  # outer join, nulls left out
    inner = xml.replace("link-type='outer'", "link-type='inner'")
    assert [r["firstname"] for r in _fetch(api, inner).json()["value"]] == ["Ann"]
    one_to_many = ("<fetch><entity name='account'><attribute name='name'/><filter>"
                   "<condition attribute='name' operator='eq' value='Contoso'/></filter>"
                   "<link-entity name='contact' from='parentcustomerid' to='accountid'>"
                   "<attribute name='firstname'/></link-entity></entity></fetch>")
    rows = api.get("accounts", params={"fetchXml": one_to_many}).json()["value"]
    assert sorted(r["contact1.firstname"] for r in rows) == ["Ann", "Bob", "Cid"]  # one row per contact


def test_fetchxml_paging_with_cookie_and_annotations(api: Any, org: dict[str, Any]) -> None:
    prefer = {"Prefer": 'odata.include-annotations="Microsoft.Dynamics.CRM.fetchxmlpagingcookie,'
                        'Microsoft.Dynamics.CRM.morerecords"'}
    base = ("<fetch count='2' page='{page}'{cookie}><entity name='contact'><attribute name='firstname'/>"
            "<order attribute='firstname'/><filter><condition attribute='lastname' operator='eq' value='Q'/>"
            "</filter></entity></fetch>")
    seen, page, cookie = [], 1, ""
    while True:
        body = _fetch(api, base.format(page=page, cookie=cookie), prefer).json()
        seen += [r["firstname"] for r in body["value"]]
        if not body.get("@Microsoft.Dynamics.CRM.morerecords"):
            assert "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie" not in body
            break
        outer = body["@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"]
        assert outer.startswith(f'<cookie pagenumber="{page + 1}" pagingcookie="%253')
        inner = unquote(unquote(outer.split('pagingcookie="')[1].split('"')[0]))
        assert inner.startswith(f'<cookie page="{page}"><contactid last="{{')
        cookie = " paging-cookie='" + inner.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;") + "'"
        page += 1
    assert seen == ["Ann", "Bob", "Cid", "Dee", "Eve"]
    plain = _fetch(api, base.format(page=1, cookie="")).json()
    assert "@Microsoft.Dynamics.CRM.morerecords" not in plain  # annotations only when asked for
    top = _fetch(api, "<fetch top='1'><entity name='contact'><attribute name='firstname'/></entity></fetch>")
    assert len(top.json()["value"]) == 1


def test_views_run_their_fetchxml(make_emulator: Any, make_api: Any) -> None:
    api = make_api(make_emulator("demo"))
    view = api.get("savedqueries?$select=savedqueryid&$filter=name eq 'Contacts named O''Brien'").json()["value"][0]
    rows = api.get(f"contacts?savedQuery={view['savedqueryid']}").json()["value"]
    assert {r["fullname"] for r in rows} == {"Patrick O'Brien"} and len(rows) == 2
    assert set(rows[0]) <= {"@odata.etag", "fullname", "emailaddress1", "telephone1", "contactid"}
    mine = api.get("userqueries?$select=userqueryid&$filter=startswith(name,'My Contacts')").json()["value"][0]
    assert api.get(f"contacts?userQuery={mine['userqueryid']}").status_code == 200
    assert api.get(f"accounts?savedQuery={view['savedqueryid']}").status_code == 400  # a contact view


@pytest.mark.parametrize(("xml", "needle"), [
    ("<fetch aggregate='true'><entity name='contact'><attribute name='contactid' aggregate='count' alias='n'/>"
     "</entity></fetch>", "aggregate"),
    ("<fetch><entity name='contact'><link-entity name='account' from='accountid' to='parentcustomerid' "
     "link-type='exists'/></entity></fetch>", "exists"),
    ("<fetch><entity name='contact'><attribute name='firstname' alias='f'/></entity></fetch>", "alias"),
    ("<fetch><entity name='account'/></fetch>", "must be 'contact'"),
    ("<fetch><entity name='contact'><nosuch/></entity></fetch>", "nosuch"),
    ("<fetch top='1' count='2'><entity name='contact'/></fetch>", "top"),
    ("not xml", "Invalid XML"),
])
def test_unsupported_fetchxml_is_400(api: Any, org: dict[str, Any], xml: str, needle: str) -> None:
    resp = _fetch(api, xml)
    assert resp.status_code == 400, resp.text
    assert needle in resp.json()["error"]["message"]


# -- $apply and counts --------------------------------------------------------------------------------------
def test_apply_groupby_and_aggregates(api: Any, org: dict[str, Any]) -> None:
    resp = api.get("contacts", params={"$apply": "filter(lastname eq 'Q')/groupby((statecode),aggregate($count as n))"},
                   headers=ANNOTATIONS)
    assert resp.status_code == 200, resp.text
    rows = resp.json()["value"]
    assert [(r["statecode"], r["n"]) for r in rows] == [(0, 4), (1, 1)]
    assert rows[0]["statecode@OData.Community.Display.V1.FormattedValue"] == "Active"
    total = api.get("accounts", params={"$apply": "aggregate(revenue with sum as total,$count as n)"}).json()
    assert total["value"][0]["total"] >= 150.0
    by_parent = api.get("contacts", params={"$apply": "filter(lastname eq 'Q')/groupby((_parentcustomerid_value))"})
    assert {r.get("_parentcustomerid_value") for r in by_parent.json()["value"]} == {
        org["contoso"], org["fabrikam"], None}
    for bad in ("groupby((createdon))", "groupby((parentcustomerid_account/name))", "topcount(2,revenue)"):
        assert api.get("contacts", params={"$apply": bad}).status_code == 400, bad
    assert api.get("contacts", params={"$apply": "aggregate($count as n)", "$top": "1"}).status_code == 400


def test_retrieve_total_record_count_is_a_snapshot(make_emulator: Any, make_api: Any) -> None:
    stale = make_emulator("empty")
    api = make_api(stale)
    stale.store.insert("task", {"subject": "after the snapshot"})
    resp = api.get('RetrieveTotalRecordCount(EntityNames=@p)?@p=["task","incident"]')
    assert resp.status_code == 200, resp.text
    counts = resp.json()["EntityRecordCountCollection"]
    assert (counts["Keys"], counts["Values"], counts["Count"]) == (["task", "incident"], [0, 0], 2)
    live = make_emulator("empty", count_snapshot_s=0)
    live.store.insert("task", {"subject": "counted"})
    values = make_api(live).get("RetrieveTotalRecordCount(EntityNames=['task'])").json()
    assert values["EntityRecordCountCollection"]["Values"] == [1]
    assert api.get('RetrieveTotalRecordCount(EntityNames=@p)?@p=["nosuch"]').status_code == 400
    assert api.get("tasks?$top=1&$select=subject").json()["value"]  # a $top=1 read sees the row


def test_collection_next_links_page_navigation_collections(api: Any, org: dict[str, Any]) -> None:
    first = api.get(f"contacts({org['ids']['Ann']})/Contact_Tasks?$select=subject",
                    headers={"Prefer": "odata.maxpagesize=2"}).json()
    assert len(first["value"]) == 2
    query = parse_qs(urlsplit(first["@odata.nextLink"]).query)
    assert "$skiptoken" in query
    second = api.get(first["@odata.nextLink"], headers={"Prefer": "odata.maxpagesize=2"}).json()
    assert len(second["value"]) == 1 and "@odata.nextLink" not in second
    counted = api.get(f"contacts({org['ids']['Ann']})/Contact_Tasks?$count=true&$top=1").json()
    assert counted["@odata.count"] == 3 and len(counted["value"]) == 1
