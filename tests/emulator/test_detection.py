"""Duplicate detection in the emulator: rule operators, publishing, FetchXML conversion, QueryExpression
evaluation, the BulkDetectDuplicates job lifecycle (fake clock), result shapes, the cap, RetrieveDuplicates."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import pytest

from dataverse_emulator.context import Context
from dataverse_emulator.datasets import DEMO_ADMIN_ID, Builder, add_rule, load_dataset
from dataverse_emulator.errors import ServiceError
from dataverse_emulator.operations import ACTIONS, FUNCTIONS, advance_jobs
from dataverse_emulator.options import EmulatorOptions
from dataverse_emulator.queryexpr import evaluate
from dataverse_emulator.store import Ref, Store

T = "Microsoft.Dynamics.CRM."
OLD = "2020-01-01T00:00:00Z"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> Store:
    """The base dataset without its rules (tests add the rules they need)."""
    s = Store()
    load_dataset(s, "empty", 1)
    for rule in s.rows("duplicaterule"):
        s.update("duplicaterule", rule["duplicateruleid"], {"statecode": 0, "statuscode": 0})
    return s


def make_ctx(store: Store, clock: Clock | None = None, **options: Any) -> Context:
    opts = EmulatorOptions(**{"job_seconds": 10.0, **options})
    return Context(store, opts, DEMO_ADMIN_ID, "http://test/api/data/v9.2/", clock=clock or Clock())


def add(store: Store, entity: str = "contact", **values: Any) -> str:
    values.setdefault("createdon", OLD)
    return store.insert(entity, values)


_SEEDS = itertools.count(100)


def rule(store: Store, conditions: list[tuple[str, int, int | None]], entity: str = "contact", **kw: Any) -> str:
    return add_rule(Builder(store, next(_SEEDS)), "test rule", entity, conditions, **kw)


def dups(store: Store, record_id: str, entity: str = "contact", paging: dict | None = None) -> list[str]:
    pk = store.schema[entity].primary_id
    params = {"BusinessEntity": {"@odata.type": T + entity, pk: record_id}, "MatchingEntityName": entity,
              "PagingInfo": paging or {"PageNumber": 1, "Count": 50}}
    return [r[pk] for r in FUNCTIONS["RetrieveDuplicates"](make_ctx(store), params)["value"]]


# -- rule semantics ---------------------------------------------------------------------------------
def test_exact_match_is_case_insensitive_by_default(store: Store) -> None:
    rule(store, [("emailaddress1", 0, None)])
    a, b = add(store, emailaddress1="Ann@X.example"), add(store, emailaddress1="ann@x.example")
    add(store, emailaddress1="other@x.example")
    assert dups(store, a) == [b]


def test_case_sensitive_rule(store: Store) -> None:
    rule(store, [("emailaddress1", 0, None)], case_sensitive=True)
    a = add(store, emailaddress1="Ann@X.example")
    add(store, emailaddress1="ann@x.example")
    b = add(store, emailaddress1="Ann@X.example")
    assert dups(store, a) == [b]


def test_same_first_n_characters(store: Store) -> None:
    rule(store, [("firstname", 1, 3)])
    a, b = add(store, firstname="Jonathan"), add(store, firstname="jonas")
    add(store, firstname="Jim")
    assert dups(store, a) == [b]


def test_same_last_n_characters(store: Store) -> None:
    rule(store, [("telephone1", 2, 4)])
    a, b = add(store, telephone1="+1 555 1234"), add(store, telephone1="(020) 991234")
    add(store, telephone1="+1 555 1235")
    assert dups(store, a) == [b]


def test_same_date_and_same_date_and_time(store: Store) -> None:
    same_date = rule(store, [("birthdate", 3, None)])
    a = add(store, birthdate="1980-05-01T10:00:00Z")
    b = add(store, birthdate="1980-05-01T23:00:00Z")
    assert dups(store, a) == [b]
    ACTIONS["UnpublishDuplicateRule"](make_ctx(store), {"@bound": {"entity": "duplicaterule", "id": same_date}})
    rule(store, [("birthdate", 4, None)])
    c = add(store, birthdate="1980-05-01T10:00:00Z")
    assert dups(store, a) == [c]


def test_conditions_are_anded(store: Store) -> None:
    rule(store, [("lastname", 0, None), ("address1_postalcode", 0, None)])
    a = add(store, lastname="Smith", address1_postalcode="98101")
    b = add(store, lastname="smith", address1_postalcode="98101")
    add(store, lastname="Smith", address1_postalcode="98102")
    assert dups(store, a) == [b]


def test_blank_never_matches_in_a_one_condition_rule_even_without_ignore_blanks(store: Store) -> None:
    rule(store, [("emailaddress1", 0, None)], ignore_blank=False)
    a = add(store, emailaddress1=None)
    add(store, emailaddress1="")
    add(store)
    assert dups(store, a) == []


def test_blank_equals_blank_in_a_multi_condition_rule_without_ignore_blanks(store: Store) -> None:
    rule(store, [("lastname", 0, None), ("emailaddress1", 0, None)], ignore_blank=False)
    a, b = add(store, lastname="Smith"), add(store, lastname="Smith", emailaddress1="")
    add(store, lastname="Smith", emailaddress1="s@x.example")
    assert dups(store, a) == [b]


def test_ignore_blanks_in_a_multi_condition_rule(store: Store) -> None:
    rule(store, [("lastname", 0, None), ("emailaddress1", 0, None)], ignore_blank=True)
    a = add(store, lastname="Smith")
    add(store, lastname="Smith")
    assert dups(store, a) == []


def test_exclude_inactive_records(store: Store) -> None:
    rule(store, [("emailaddress1", 0, None)], exclude_inactive=True)
    a = add(store, emailaddress1="a@x.example")
    add(store, emailaddress1="a@x.example", statecode=1, statuscode=2)
    assert dups(store, a) == []


def test_inactive_records_match_when_not_excluded(store: Store) -> None:
    rule(store, [("emailaddress1", 0, None)], exclude_inactive=False)
    a = add(store, emailaddress1="a@x.example")
    b = add(store, emailaddress1="a@x.example", statecode=1, statuscode=2)
    assert dups(store, a) == [b]


def test_unpublished_rules_are_ignored(store: Store) -> None:
    rule(store, [("emailaddress1", 0, None)], published=False)
    a = add(store, emailaddress1="a@x.example")
    add(store, emailaddress1="a@x.example")
    assert dups(store, a) == []


def test_retrieve_duplicates_pages_and_accepts_unsaved_records(store: Store) -> None:
    rule(store, [("emailaddress1", 0, None)])
    ids = [add(store, emailaddress1="g@x.example", createdon=f"2020-01-0{i + 1}T00:00:00Z") for i in range(4)]
    assert dups(store, ids[0], paging={"PageNumber": 1, "Count": 2}) == ids[1:3]
    assert dups(store, ids[0], paging={"PageNumber": 2, "Count": 2}) == ids[3:]
    params = {"BusinessEntity": {"@odata.type": T + "contact", "emailaddress1": "G@x.example"},
              "MatchingEntityName": "contact", "PagingInfo": {"PageNumber": 1, "Count": 10}}
    answer = FUNCTIONS["RetrieveDuplicates"](make_ctx(store), params)
    assert answer["@odata.context"].endswith("$metadata#contacts") and len(answer["value"]) == 4


# -- publishing --------------------------------------------------------------------------------------
def test_publish_duplicate_rule(store: Store) -> None:
    rid = rule(store, [("emailaddress1", 0, None)], published=False)
    job = ACTIONS["PublishDuplicateRule"](make_ctx(store), {"@bound": {"entity": "duplicaterule", "id": rid}})
    row = store.get("duplicaterule", rid)
    assert (row["statecode"], row["statuscode"]) == (1, 2)
    assert store.get("asyncoperation", job["asyncoperationid"])["operationtype"] == 7


def test_publish_rule_without_conditions_is_refused(store: Store) -> None:
    rid = rule(store, [], published=False)
    with pytest.raises(ServiceError) as info:
        ACTIONS["PublishDuplicateRule"](make_ctx(store), {"DuplicateRuleId": rid})
    assert info.value.status == 400 and "no conditions" in info.value.message


def test_at_most_five_published_rules_per_table(store: Store) -> None:
    for _ in range(5):
        rule(store, [("emailaddress1", 0, None)])
    sixth = rule(store, [("telephone1", 0, None)], published=False)
    with pytest.raises(ServiceError) as info:
        ACTIONS["PublishDuplicateRule"](make_ctx(store), {"@bound": {"entity": "duplicaterule", "id": sixth}})
    assert info.value.status == 400 and "more than 5" in info.value.message


# -- FetchXML and QueryExpression --------------------------------------------------------------------
def to_query(store: Store, fetch: str) -> dict[str, Any]:
    answer = FUNCTIONS["FetchXmlToQueryExpression"](make_ctx(store), {"FetchXml": fetch})
    assert answer["@odata.context"].endswith("FetchXmlToQueryExpressionResponse")
    return answer["Query"]


def test_fetchxml_to_query_expression_shape(store: Store) -> None:
    query = to_query(store, '<fetch><entity name="contact"><all-attributes /><filter type="and">'
                            '<condition attribute="statecode" operator="eq" value="0" /></filter></entity></fetch>')
    assert query["EntityName"] == "contact" and query["ColumnSet"] == {"AllColumns": True, "Columns": []}
    assert query["Criteria"] == {"FilterOperator": "And", "Filters": [], "Conditions": [
        {"AttributeName": "statecode", "Operator": "Equal", "Values": [{"Value": "0", "Type": "System.Int32"}]}]}
    assert query["@odata.type"] == "#Microsoft.Dynamics.CRM.QueryExpression"
    assert query["Distinct"] is False and query["Orders"] == [] and query["LinkEntities"] == []


def test_fetchxml_with_apostrophe_unicode_in_values_and_nested_or(store: Store) -> None:
    query = to_query(store, '<fetch><entity name="contact"><attribute name="fullname" /><filter type="and">'
                            '<condition attribute="lastname" operator="eq" value="O\'Brien" /><filter type="or">'
                            '<condition attribute="address1_city" operator="in"><value>München</value>'
                            '<value>Kraków</value></condition><condition attribute="address1_city" operator="null" />'
                            '</filter></filter><order attribute="fullname" descending="true" /></entity></fetch>')
    crit = query["Criteria"]
    assert crit["Conditions"][0]["Values"] == [{"Value": "O'Brien", "Type": "System.String"}]
    inner = crit["Filters"][0]
    assert inner["FilterOperator"] == "Or" and inner["Conditions"][0]["Operator"] == "In"
    assert [v["Value"] for v in inner["Conditions"][0]["Values"]] == ["München", "Kraków"]
    assert query["Orders"] == [{"AttributeName": "fullname", "OrderType": "Descending"}]
    a = add(store, lastname="O'Brien", address1_city="münchen")
    b = add(store, lastname="o'brien")
    add(store, lastname="O'Brien", address1_city="Sevilla")
    assert sorted(r["contactid"] for r in evaluate(store, query)) == sorted([a, b])


@pytest.mark.parametrize("fetch", [
    "<fetch><entity name='contact'>",
    "<fetch><entity name='nosuchtable' /></fetch>",
    "<fetch><entity name='contact'><attribute name='nosuchcolumn' /></entity></fetch>",
    "<fetch><entity name='contact'><filter><condition attribute='lastname' operator='sounds-like' value='x' />"
    "</filter></entity></fetch>",
])
def test_bad_fetchxml_is_400(store: Store, fetch: str) -> None:
    with pytest.raises(ServiceError) as info:
        to_query(store, fetch)
    assert info.value.status == 400 and info.value.message


def test_query_operators_and_link_entities(store: Store) -> None:
    acc = add(store, "account", name="Contoso Ltd")
    a = add(store, lastname="Smith", parentcustomerid=Ref("account", acc), ownerid=Ref("systemuser", DEMO_ADMIN_ID))
    b = add(store, lastname="Smythe", createdon="2024-06-01T00:00:00Z")
    fetch = ('<fetch><entity name="contact"><filter><condition attribute="lastname" operator="like" value="sm%" />'
             '</filter><link-entity name="account" from="accountid" to="parentcustomerid"><filter>'
             '<condition attribute="name" operator="begins-with" value="contoso" /></filter></link-entity>'
             '</entity></fetch>')
    assert [r["contactid"] for r in evaluate(store, to_query(store, fetch))] == [a]
    mine = '<fetch><entity name="contact"><filter><condition attribute="ownerid" operator="eq-userid" /></filter>'
    assert [r["contactid"] for r in evaluate(store, to_query(store, mine + "</entity></fetch>"), DEMO_ADMIN_ID)] == [a]
    after = ('<fetch><entity name="contact"><filter><condition attribute="createdon" operator="on-or-after" '
             'value="2024-01-01" /><condition attribute="lastname" operator="ne" value="smith" /></filter>'
             '</entity></fetch>')
    assert [r["contactid"] for r in evaluate(store, to_query(store, after))] == [b]


# -- BulkDetectDuplicates job ------------------------------------------------------------------------
def start_job(ctx: Context, query: Any = None, **params: Any) -> str:
    query = query or {"@odata.type": "Microsoft.Dynamics.CRM.QueryExpression", "EntityName": "contact"}
    answer = ACTIONS["BulkDetectDuplicates"](ctx, {"Query": query, "JobName": "Dedupe contacts", **params})
    return answer["JobId"]


def job_state(store: Store, job_id: str) -> tuple[int, int]:
    job = store.get("asyncoperation", job_id)
    return job["statecode"], job["statuscode"]


def _emails(store: Store, *groups: tuple[str, int]) -> dict[str, list[str]]:
    return {email: [add(store, emailaddress1=email) for _ in range(n)] for email, n in groups}


def test_job_lifecycle_waiting_in_progress_succeeded(store: Store) -> None:
    rule(store, [("emailaddress1", 0, None)])
    groups = _emails(store, ("a@x.example", 2), ("b@x.example", 3), ("solo@x.example", 1))
    clock = Clock()
    ctx = make_ctx(store, clock)
    job = start_job(ctx)
    row = store.get("asyncoperation", job)
    assert (row["operationtype"], row["name"], job_state(store, job)) == (8, "Dedupe contacts", (0, 10))
    assert row["ownerid"] == Ref("systemuser", DEMO_ADMIN_ID)
    clock.now += 0.5
    advance_jobs(ctx)
    assert job_state(store, job) == (0, 10)
    clock.now += 1.0
    advance_jobs(ctx)
    assert job_state(store, job) == (2, 20) and not store.rows("duplicaterecord")
    clock.now += 9.0
    advance_jobs(ctx)
    assert job_state(store, job) == (3, 30) and store.get("asyncoperation", job)["completedon"]
    rows = store.rows("duplicaterecord")
    assert sorted(r["baserecordid"].id for r in rows) == sorted(groups["a@x.example"] + groups["b@x.example"])
    assert all(r["asyncoperationid"] == Ref("asyncoperation", job) and r["duplicaterecordid"] is None
               and r["duplicateruleid"] is None for r in rows)


def test_pairs_mode_writes_one_row_per_base_match_and_rule(store: Store) -> None:
    rid = rule(store, [("emailaddress1", 0, None)])
    a, b = _emails(store, ("a@x.example", 2))["a@x.example"]
    ctx = make_ctx(store, job_seconds=0, duplicate_records="pairs")
    start_job(ctx)
    advance_jobs(ctx)
    pairs = {(r["baserecordid"].id, r["duplicaterecordid"].id, r["duplicateruleid"].id)
             for r in store.rows("duplicaterecord")}
    assert pairs == {(a, b, rid), (b, a, rid)}


def test_job_base_records_come_from_the_query_and_candidates_from_the_table(store: Store) -> None:
    rule(store, [("emailaddress1", 0, None)], exclude_inactive=False)
    active = add(store, emailaddress1="a@x.example")
    add(store, emailaddress1="a@x.example", statecode=1, statuscode=2)
    ctx = make_ctx(store, job_seconds=0)
    query = to_query(store, '<fetch><entity name="contact"><filter><condition attribute="statecode" '
                            'operator="eq" value="0" /></filter></entity></fetch>')
    query.pop("@odata.type")
    start_job(ctx, query)
    advance_jobs(ctx)
    assert [r["baserecordid"].id for r in store.rows("duplicaterecord")] == [active]


def test_job_without_published_rules_fails(store: Store) -> None:
    _emails(store, ("a@x.example", 2))
    ctx = make_ctx(store, job_seconds=0)
    job = start_job(ctx)
    advance_jobs(ctx)
    assert job_state(store, job) == (3, 31)
    message = store.get("asyncoperation", job)["message"]
    assert message == "No published duplicate detection rules exist for this record type."
    assert not store.rows("duplicaterecord")


def test_job_caps_distinct_duplicates(store: Store) -> None:
    rule(store, [("emailaddress1", 0, None)])
    _emails(store, *[(f"g{i}@x.example", 2) for i in range(5)])
    ctx = make_ctx(store, job_seconds=0, max_job_duplicates=3, duplicate_records="pairs")
    start_job(ctx)
    advance_jobs(ctx)
    assert len({r["baserecordid"].id for r in store.rows("duplicaterecord")}) == 3


def test_job_accepts_fetch_expression_and_hashless_type(store: Store) -> None:
    rule(store, [("emailaddress1", 0, None)])
    _emails(store, ("a@x.example", 2))
    ctx = make_ctx(store, job_seconds=0)
    start_job(ctx, {"@odata.type": "#Microsoft.Dynamics.CRM.FetchExpression",
                    "Query": '<fetch><entity name="contact" /></fetch>'})
    advance_jobs(ctx)
    assert len(store.rows("duplicaterecord")) == 2


@pytest.mark.parametrize("params", [
    {"Query": {"EntityName": "contact"}},
    {"Query": {"EntityName": "nosuchtable"}, "JobName": "x"},
    {"Query": {"EntityName": "contact", "Criteria": {"Conditions": [
        {"AttributeName": "nosuch", "Operator": "Equal", "Values": [{"Value": "1"}]}]}}, "JobName": "x"},
    {"JobName": "x"},
])
def test_bad_bulk_detect_requests_are_400(store: Store, params: dict[str, Any]) -> None:
    with pytest.raises(ServiceError) as info:
        ACTIONS["BulkDetectDuplicates"](make_ctx(store), params)
    assert info.value.status == 400
    assert not store.rows("asyncoperation")


# -- over HTTP -------------------------------------------------------------------------------------
def test_view_to_job_to_results_over_http(make_emulator: Any, make_api: Any) -> None:
    from urllib.parse import quote

    handle = make_emulator("empty", job_seconds=0.3)
    groups = _emails(handle.store, ("o'brien@x.example", 2), ("zoë@x.example", 3))
    api = make_api(handle)
    fetch = ('<fetch><entity name="contact"><all-attributes /><filter><condition attribute="lastname" '
             'operator="ne" value="D\'Angelo – ü" /><condition attribute="statecode" operator="eq" value="0" />'
             '</filter></entity></fetch>')
    for ids in groups.values():
        for rid in ids:
            handle.store.update("contact", rid, {"lastname": "Smith"})
    literal = "'" + fetch.replace("'", "''") + "'"
    resp = api.get(f"FetchXmlToQueryExpression(FetchXml=@p1)?@p1={quote(literal)}")
    assert resp.status_code == 200, resp.text
    query = resp.json()["Query"]
    assert query["Criteria"]["Conditions"][0]["Values"][0]["Value"] == "D'Angelo – ü"
    query["@odata.type"] = "Microsoft.Dynamics.CRM.QueryExpression"
    resp = api.post("BulkDetectDuplicates", json={"Query": query, "JobName": "Dedupe contacts",
                                                  "SendEmailNotification": False, "ToRecipients": [],
                                                  "CCRecipients": [], "RecurrencePattern": "",
                                                  "RecurrenceStartTime": "2026-01-01T00:00:00Z"})
    assert resp.status_code == 200, resp.text
    job = resp.json()["JobId"]
    deadline = time.monotonic() + 5
    state = None
    while time.monotonic() < deadline:
        state = api.get(f"asyncoperations({job})?$select=statecode,statuscode,operationtype").json()
        if state["statecode"] == 3:
            break
        time.sleep(0.05)
    assert (state["statecode"], state["statuscode"], state["operationtype"]) == (3, 30, 8)
    rows = api.get(f"duplicaterecords?$select=_baserecordid_value&$filter=_asyncoperationid_value eq {job}").json()
    expected = sorted(rid for ids in groups.values() for rid in ids)
    assert sorted(r["_baserecordid_value"] for r in rows["value"]) == expected
    rid = groups["zoë@x.example"][0]
    business = quote(json.dumps({"@odata.type": "Microsoft.Dynamics.CRM.contact", "contactid": rid}))
    paging = quote(json.dumps({"PageNumber": 1, "Count": 50}))
    resp = api.get(f"RetrieveDuplicates(BusinessEntity=@b,MatchingEntityName=@m,PagingInfo=@p)"
                   f"?@b={business}&@m='contact'&@p={paging}")
    assert resp.status_code == 200, resp.text
    assert sorted(r["contactid"] for r in resp.json()["value"]) == sorted(groups["zoë@x.example"][1:])


def test_publish_duplicate_rule_over_http(make_emulator: Any, make_api: Any) -> None:
    handle = make_emulator("empty")
    lead_rule = next(r for r in handle.store.rows("duplicaterule") if r["baseentityname"] == "lead")
    api = make_api(handle)
    resp = api.post(f"duplicaterules({lead_rule['duplicateruleid']})/Microsoft.Dynamics.CRM.PublishDuplicateRule")
    assert resp.status_code == 200, resp.text
    assert resp.json()["asyncoperationid"]
    assert handle.store.get("duplicaterule", lead_rule["duplicateruleid"])["statuscode"] == 2


def test_pending_job_survives_a_state_file_restart(store: Store) -> None:
    rule(store, [("emailaddress1", 0, None)])
    _emails(store, ("a@x.example", 2))
    clock = Clock()
    job = start_job(make_ctx(store, clock))
    restarted = Store()
    restarted.load_json(json.loads(json.dumps(store.to_json())))
    clock.now += 60
    advance_jobs(make_ctx(restarted, clock))
    assert job_state(restarted, job) == (3, 30) and len(restarted.rows("duplicaterecord")) == 2
    assert not restarted.settings["detection_jobs"]
