"""OData queries over HTTP: $filter (incl. Microsoft.Dynamics.CRM.In), $select, $orderby, $top, $count, paging,
every malformed or unsupported form answering 400, and the metadata documents."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from dataverse_emulator.store import Ref

FIRST = ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Grace", "Henry", "Isla", "Jack", "Karen", "Liam"]


@pytest.fixture(scope="module")
def people(emulator: Any) -> dict[str, Any]:
    """12 contacts (one O'Brien, one without e-mail, one inactive) under two accounts."""
    store = emulator.store
    acc1 = store.insert("account", {"name": "Contoso"})
    acc2 = store.insert("account", {"name": "Litware"})
    ids: dict[str, str] = {}
    for i, first in enumerate(FIRST):
        last = "O'Brien" if i == 3 else f"Test{i:02d}"
        ids[first] = store.insert("contact", {
            "firstname": first, "lastname": last, "fullname": f"{first} {last}",
            "emailaddress1": None if i == 5 else f"{first.lower()}@example.com",
            "createdon": f"2024-01-{i + 1:02d}T10:00:00Z", "donotemail": i % 3 == 0, "gendercode": 1 + i % 2,
            "parentcustomerid": Ref("account", acc1 if i % 2 == 0 else acc2),
        })
    store.update("contact", ids["Liam"], {"statecode": 1, "statuscode": 2})
    return {"ids": ids, "acc1": acc1, "acc2": acc2}


def names(api: Any, flt: str, **params: str) -> list[str]:
    resp = api.get("contacts", params={"$filter": flt, "$select": "firstname", **params})
    assert resp.status_code == 200, resp.text
    return sorted(r["firstname"] for r in resp.json()["value"])


def test_comparison_and_logic(api: Any, people: dict[str, Any]) -> None:
    assert names(api, "firstname eq 'Anna'") == ["Anna"]
    assert names(api, "firstname eq 'ANNA'") == ["Anna"]  # case-insensitive, like Dataverse's collation
    assert len(names(api, "firstname ne 'Anna'")) == 11
    assert names(api, "firstname eq 'Anna' or firstname eq 'Ben'") == ["Anna", "Ben"]
    assert names(api, "statecode eq 0 and (firstname eq 'Liam' or firstname eq 'Ben')") == ["Ben"]
    assert len(names(api, "not (statecode eq 0)")) == 1
    assert names(api, "emailaddress1 eq null") == ["Felix"]
    assert len(names(api, "emailaddress1 ne null")) == 11
    assert "Felix" not in names(api, "emailaddress1 ne 'anna@example.com'")  # null never compares (SQL)
    assert names(api, "lastname eq 'o''brien'") == ["David"]
    assert names(api, "createdon gt 2024-01-10T00:00:00Z") == ["Jack", "Karen", "Liam"]
    assert names(api, "createdon le 2024-01-02") == ["Anna"]
    assert names(api, "gendercode eq 2 and donotemail eq true") == ["David", "Jack"]
    assert names(api, "donotemail and firstname eq 'Anna'") == ["Anna"]
    assert names(api, "statecode in (1,2)") == ["Liam"]


def test_string_functions(api: Any, people: dict[str, Any]) -> None:
    assert names(api, "contains(emailaddress1,'RACE@')") == ["Grace"]
    assert names(api, "startswith(firstname,'e')") == ["Emma"]
    assert names(api, "endswith(lastname,'brien')") == ["David"]
    assert names(api, "not contains(firstname,'a')") == ["Ben", "Felix", "Henry"]


def test_guids_and_lookups(api: Any, people: dict[str, Any]) -> None:
    anna = people["ids"]["Anna"]
    assert names(api, f"contactid eq {anna}") == ["Anna"]
    assert names(api, f"contactid eq {anna.upper()}") == ["Anna"]
    assert names(api, f"contactid eq '{anna}'") == ["Anna"]
    assert len(names(api, f"_parentcustomerid_value eq {people['acc1']}")) == 6
    assert names(api, f"_parentcustomerid_value eq {people['acc1']} and startswith(firstname,'A')") == ["Anna"]
    assert names(api, f"contactid eq {uuid.uuid4()}") == []


def test_in_function(api: Any, people: dict[str, Any]) -> None:
    ids = people["ids"]
    two = f"Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=['{ids['Anna']}','{ids['Ben']}'])"
    assert names(api, two) == ["Anna", "Ben"]
    many = [str(uuid.uuid4()) for _ in range(298)] + [ids["Clara"], ids["David"]]
    flt = f"Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=[{','.join(repr(i) for i in many)}])"
    assert names(api, flt) == ["Clara", "David"]
    quoted = "Microsoft.Dynamics.CRM.In(PropertyName='lastname',PropertyValues=['o''brien','Test00'])"
    assert names(api, quoted) == ["Anna", "David"]
    double = 'Microsoft.Dynamics.CRM.In(PropertyName=\'lastname\',PropertyValues=["O\'Brien"])'
    assert names(api, double) == ["David"]
    ints = 'Microsoft.Dynamics.CRM.In(PropertyName=\'statecode\',PropertyValues=["1"]) or firstname eq \'Anna\''
    assert names(api, ints) == ["Anna", "Liam"]
    lookup = f"Microsoft.Dynamics.CRM.In(PropertyName='_parentcustomerid_value',PropertyValues=['{people['acc2']}'])"
    assert len(names(api, lookup)) == 6
    others = ",".join(repr(n) for n in FIRST[1:])
    notin = f"Microsoft.Dynamics.CRM.NotIn(PropertyName='firstname',PropertyValues=[{others}])"
    assert names(api, notin) == ["Anna"]
    aliased = "Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)"
    assert names(api, aliased, **{"@p1": "'firstname'", "@p2": '["Ben","Clara"]'}) == ["Ben", "Clara"]


@pytest.mark.parametrize(("flt", "needle"), [
    ("nosuch eq 1", "Could not find a property named 'nosuch' on type 'Microsoft.Dynamics.CRM.contact'."),
    ("parentcustomerid eq null", "parentcustomerid"),
    ("firstname eq", "Syntax error"),
    ("firstname eqq 'a'", "Syntax error"),
    ("firstname eq 'unterminated", "unterminated"),
    ("tolower(firstname) eq 'anna'", "tolower"),
    ("foo(firstname) eq 1", "foo"),
    ("parentcustomerid_account/nosuch eq 'x'", "nosuch"),
    ("Contact_Tasks/subject eq 'x'", "collection-valued"),
    ("nosuchnav/any(t:t/subject eq 'x')", "nosuchnav"),
    ("statecode eq 'zero'", "incompatible types"),
    ("firstname eq 1", "incompatible types"),
    ("firstname", "boolean"),
    ("firstname eq lastname", "literal"),
    ("statecode add 1 eq 2", "Arithmetic"),
    ("Microsoft.Dynamics.CRM.Between(PropertyName='statecode',PropertyValues=['0','1'])", "Between"),
    ("Microsoft.Dynamics.CRM.In(PropertyName='nosuch',PropertyValues=['a'])", "nosuch"),
    ("Microsoft.Dynamics.CRM.In(PropertyName='firstname',PropertyValues=[])", "at least one"),
    ("Microsoft.Dynamics.CRM.In(PropertyName='firstname',PropertyValues=['a' 'b'])", "comma"),
    ("Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=['not-a-guid'])", "Edm.Guid"),
    ("firstname eq @p9", "@p9"),
])
def test_bad_filters_are_400(api: Any, people: dict[str, Any], flt: str, needle: str) -> None:
    resp = api.get("contacts", params={"$filter": flt})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "0x80060888"
    assert needle in resp.json()["error"]["message"]


@pytest.mark.parametrize(("params", "needle"), [
    ({"$skip": "5"}, "$skip is not supported"),
    ({"$expand": "nosuchnav"}, "nosuchnav"),
    ({"fetchXml": "<fetch><entity name='contact'/></fetch>", "$top": "1"}, "cannot be combined"),
    ({"sql": "SELECT fullname FROM contact"}, "'sql'"),
    ({"savedQuery": str(uuid.uuid4()), "$select": "fullname"}, "cannot be combined"),
    ({"$apply": "x"}, "$apply"),
    ({"$select": "firstname,nosuch"}, "nosuch"),
    ({"$orderby": "firstname sideways"}, "$orderby"),
    ({"$orderby": "nosuch"}, "nosuch"),
    ({"$top": "-1"}, "$top"),
    ({"$count": "maybe"}, "count"),
    ({"$skiptoken": "garbage"}, "skiptoken"),
])
def test_bad_query_options_are_400(api: Any, people: dict[str, Any], params: dict[str, str], needle: str) -> None:
    resp = api.get("contacts", params=params)
    assert resp.status_code == 400, resp.text
    assert needle in resp.json()["error"]["message"]


def test_duplicate_option_is_400(api: Any, people: dict[str, Any]) -> None:
    assert api.get("contacts?$top=1&$top=2").status_code == 400


def test_select_orderby_top_count(api: Any, people: dict[str, Any], emulator: Any) -> None:
    resp = api.get("contacts", params={"$select": "firstname,_parentcustomerid_value", "$orderby": "firstname desc",
                                       "$top": "3", "$count": "true", "$filter": "statecode eq 0"})
    body = resp.json()
    assert [r["firstname"] for r in body["value"]] == ["Karen", "Jack", "Isla"]
    assert body["@odata.count"] == 11
    assert set(body["value"][0]) == {"@odata.etag", "firstname", "_parentcustomerid_value", "contactid"}
    assert body["@odata.context"] == f"{emulator.api_url}$metadata#contacts(firstname,_parentcustomerid_value)"
    assert "@odata.nextLink" not in body
    plain_lookup = api.get("contacts", params={"$select": "parentcustomerid", "$top": "1"}).json()["value"][0]
    assert "_parentcustomerid_value" in plain_lookup
    by_two = api.get("contacts", params={"$select": "firstname", "$orderby": "donotemail desc,createdon asc",
                                         "$top": "4"}).json()["value"]
    assert [r["firstname"] for r in by_two] == ["Anna", "David", "Grace", "Jack"]
    nulls_first = api.get("contacts", params={"$select": "firstname", "$orderby": "emailaddress1", "$top": "1"})
    assert nulls_first.json()["value"][0]["firstname"] == "Felix"


def _pages(api: Any, first_url: str, params: dict[str, str] | None, size: int) -> list[list[dict[str, Any]]]:
    pages, url, seen_links = [], first_url, set()
    prefer = {"Prefer": f"odata.maxpagesize={size}"}
    resp = api.get(url, params=params, headers=prefer)
    while True:
        assert resp.status_code == 200, resp.text
        assert resp.headers["Preference-Applied"] == f"odata.maxpagesize={size}"
        body = resp.json()
        pages.append(body["value"])
        link = body.get("@odata.nextLink")
        if link is None:
            return pages
        assert link not in seen_links
        seen_links.add(link)
        resp = api.get(link, headers=prefer)


def test_paging_follows_next_links_without_gaps_or_repeats(api: Any, people: dict[str, Any]) -> None:
    pages = _pages(api, "contacts", {"$select": "firstname"}, 5)
    assert [len(p) for p in pages] == [5, 5, 2]
    ids = [r["contactid"] for p in pages for r in p]
    assert sorted(ids) == sorted(people["ids"].values())
    ordered = _pages(api, "contacts", {"$select": "firstname", "$orderby": "donotemail desc,firstname desc"}, 5)
    got = [r["firstname"] for p in ordered for r in p]
    assert got == ["Jack", "Grace", "David", "Anna"] + sorted(set(FIRST) - {"Jack", "Grace", "David", "Anna"},
                                                              reverse=True)


def test_top_wins_over_maxpagesize(api: Any, people: dict[str, Any]) -> None:
    """A live observation (settled-2026-11.md Q3): $top caps the answer, no nextLink, maxpagesize not applied."""
    resp = api.get("contacts", params={"$select": "firstname", "$top": "7"}, headers={"Prefer": "odata.maxpagesize=5"})
    assert resp.status_code == 200
    assert len(resp.json()["value"]) == 7 and "@odata.nextLink" not in resp.json()
    assert "odata.maxpagesize" not in resp.headers.get("Preference-Applied", "")


def test_next_link_carries_a_paging_cookie(api: Any, people: dict[str, Any]) -> None:
    body = api.get("contacts?$select=firstname", headers={"Prefer": "odata.maxpagesize=5"}).json()
    link = body["@odata.nextLink"]
    query = parse_qs(urlsplit(link).query)
    assert query["$select"] == ["firstname"]
    token = query["$skiptoken"][0]
    assert token.startswith('<cookie pagenumber="2" pagingcookie="') and token.endswith('istracking="False" />')
    tampered = link.replace("pagenumber=%222%22", "pagenumber=%22x%22")
    assert tampered != link
    assert api.get(tampered).status_code == 400
    other_order = api.get(link + "&$orderby=firstname")
    assert other_order.status_code == 400


def test_page_after_deleting_the_last_row_still_continues(api: Any, emulator: Any) -> None:
    for i in range(6):
        emulator.store.insert("lead", {"subject": f"paging lead {i}"})
    prefer = {"Prefer": "odata.maxpagesize=3"}
    first = api.get("leads?$select=subject&$filter=startswith(subject,'paging lead')", headers=prefer).json()
    emulator.store.delete("lead", first["value"][-1]["leadid"])
    second = api.get(first["@odata.nextLink"], headers=prefer).json()
    assert len(second["value"]) == 3
    assert not {r["leadid"] for r in first["value"]} & {r["leadid"] for r in second["value"]}


def test_annotations_on_collections_and_count_cap(api: Any, people: dict[str, Any]) -> None:
    resp = api.get("contacts", params={"$select": "firstname,_parentcustomerid_value", "$count": "true", "$top": "1",
                                       "$filter": "firstname eq 'Anna'"},
                   headers={"Prefer": 'odata.include-annotations="*"'})
    row = resp.json()["value"][0]
    assert row["_parentcustomerid_value@OData.Community.Display.V1.FormattedValue"] == "Contoso"
    assert 'odata.include-annotations="*"' in resp.headers["Preference-Applied"]


# -- metadata -------------------------------------------------------------------------------------------------
def test_entity_definition(api: Any) -> None:
    resp = api.get("EntityDefinitions(LogicalName='contact')", params={
        "$select": "LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute,ObjectTypeCode"})
    body = resp.json()
    assert (body["EntitySetName"], body["PrimaryIdAttribute"], body["PrimaryNameAttribute"]) == (
        "contacts", "contactid", "fullname")
    assert body["ObjectTypeCode"] == 2 and "MetadataId" in body
    assert "DisplayName" not in body
    missing = api.get("EntityDefinitions(LogicalName='nosuch')")
    assert missing.status_code == 404
    assert missing.json()["error"] == {"code": "0x80040217",
                                       "message": "Could not find an entity with specified LogicalName 'nosuch'."}
    assert api.get("EntityDefinitions(LogicalName='contact')?$select=Nope").status_code == 400


def test_attributes(api: Any) -> None:
    base = "EntityDefinitions(LogicalName='contact')/Attributes"
    attrs = api.get(base, params={"$select": "LogicalName,AttributeType,IsValidForUpdate,IsValidForRead,"
                                             "AttributeOf"}).json()["value"]
    by_name = {a["LogicalName"]: a for a in attrs}
    assert by_name["firstname"]["IsValidForUpdate"] is True
    assert by_name["createdon"]["IsValidForUpdate"] is False
    assert by_name["parentcustomerid"]["AttributeType"] == "Customer"
    assert by_name["parentcustomeridname"]["AttributeOf"] == "parentcustomerid"
    assert by_name["firstname"]["@odata.type"] == "#Microsoft.Dynamics.CRM.StringAttributeMetadata"
    lookups = api.get(base + "/Microsoft.Dynamics.CRM.LookupAttributeMetadata",
                      params={"$select": "LogicalName,Targets"}).json()["value"]
    assert {"LogicalName": "parentcustomerid", "Targets": ["account", "contact"]} in [
        {k: v for k, v in a.items() if k in ("LogicalName", "Targets")} for a in lookups]
    one = api.get(base + "(LogicalName='emailaddress1')").json()
    assert one["AttributeType"] == "String"
    assert api.get(base + "(LogicalName='nope')").status_code == 404


def test_service_document_and_csdl(api: Any) -> None:
    sets = {v["name"] for v in api.get("").json()["value"]}
    assert {"contacts", "accounts", "duplicaterecords", "asyncoperations"} <= sets
    resp = api.get("$metadata")
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("application/xml")
    root = ET.fromstring(resp.content)
    ns = {"edm": "http://docs.oasis-open.org/odata/ns/edm"}
    actions = {a.get("Name"): [p.get("Name") for p in a.findall("edm:Parameter", ns)]
               for a in root.iter("{http://docs.oasis-open.org/odata/ns/edm}Action")}
    assert actions["Merge"] == ["Target", "Subordinate", "UpdateContent", "PerformParentingChecks"]
    assert actions["BulkDetectDuplicates"] == ["Query", "JobName", "SendEmailNotification", "TemplateId",
                                               "ToRecipients", "CCRecipients", "RecurrencePattern",
                                               "RecurrenceStartTime"]
    functions = {f.get("Name") for f in root.iter("{http://docs.oasis-open.org/odata/ns/edm}Function")}
    assert {"WhoAmI", "FetchXmlToQueryExpression", "RetrieveDuplicates"} <= functions
    contact = next(e for e in root.iter("{http://docs.oasis-open.org/odata/ns/edm}EntityType")
                   if e.get("Name") == "contact")
    navs = {n.get("Name") for n in contact.findall("edm:NavigationProperty", ns)}
    assert {"parentcustomerid_account", "parentcustomerid_contact"} <= navs
