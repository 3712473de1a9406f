"""uniqueidentifier order: SQL Server's (last group first), in $orderby, paging, $filter and QueryExpression/FetchXML
conditions, so a view cut into GUID ranges covers every record exactly once."""

from __future__ import annotations

import random
import uuid
from typing import Any
from urllib.parse import quote

from dataverse_emulator.guids import sql_guid_key
from tests.emulator.over_http import fetch_to_query, guid_condition, read_all, run_job, with_partition

# Ascending in SQL Server, as measured on a real server (tliangnet.blogspot.com, "SQL Server Guid sorting") and as
# System.Data.SqlTypes.SqlGuid compares: bytes 10-15, 8-9, 6-7, 4-5, 0-3 of the .NET byte layout.
SQL_ORDER = """01000000-0000-0000-0000-000000000000 00010000-0000-0000-0000-000000000000
00000100-0000-0000-0000-000000000000 00000001-0000-0000-0000-000000000000 00000000-0100-0000-0000-000000000000
00000000-0001-0000-0000-000000000000 00000000-0000-0100-0000-000000000000 00000000-0000-0001-0000-000000000000
00000000-0000-0000-0001-000000000000 00000000-0000-0000-0100-000000000000 00000000-0000-0000-0000-000000000001
00000000-0000-0000-0000-000000000100 00000000-0000-0000-0000-000000010000 00000000-0000-0000-0000-000001000000
00000000-0000-0000-0000-000100000000 00000000-0000-0000-0000-010000000000""".split()
BOUNDS = [f"00000000-0000-0000-0000-{q:x}00000000000" for q in (4, 8, 12)]  # differ only in the last group
SQLGUID_ORDER = [10, 11, 12, 13, 14, 15, 8, 9, 6, 7, 4, 5, 0, 1, 2, 3]


def test_key_is_sqlguid_byte_order() -> None:
    assert sorted(reversed(SQL_ORDER), key=sql_guid_key) == SQL_ORDER
    rng = random.Random(7)
    for _ in range(2000):
        a, b = (uuid.UUID(int=rng.getrandbits(128)) for _ in range(2))
        by_bytes = bytes(a.bytes_le[i] for i in SQLGUID_ORDER) < bytes(b.bytes_le[i] for i in SQLGUID_ORDER)
        assert by_bytes == (sql_guid_key(str(a)) < sql_guid_key(str(b)))


def _contacts(api: Any, ids: list[str]) -> None:
    for i, rid in enumerate(ids):
        assert api.create("contacts", {"contactid": rid, "lastname": f"Order {i}"}) == rid


def test_orderby_and_paging_follow_sql_server_order(make_emulator: Any, make_api: Any) -> None:
    api = make_api(make_emulator("empty"))
    shuffled = SQL_ORDER[:]
    random.Random(3).shuffle(shuffled)
    _contacts(api, shuffled)
    only = "$filter=" + quote("startswith(lastname,'Order ')")
    assert read_all(api, f"contacts?$select=contactid&$orderby=contactid&{only}", "contactid") == SQL_ORDER
    desc = read_all(api, f"contacts?$select=contactid&$orderby=contactid desc&{only}", "contactid", page_size=3)
    assert desc == SQL_ORDER[::-1]
    # without $orderby Dataverse pages by the primary key; pages of 5 still see every row once, in that order
    assert read_all(api, f"contacts?$select=contactid&{only}", "contactid", page_size=5) == SQL_ORDER


def test_filter_ranges_on_the_key_use_sql_server_order(make_emulator: Any, make_api: Any) -> None:
    api = make_api(make_emulator("empty"))
    _contacts(api, SQL_ORDER)
    middle = SQL_ORDER[8]  # 00000000-0000-0000-0001-000000000000
    got = read_all(api, "contacts?$select=contactid&$filter=" + quote(f"contactid gt {middle}"), "contactid")
    assert sorted(got, key=sql_guid_key) == SQL_ORDER[9:]  # string order would have answered the first four
    got = read_all(api, "contacts?$select=contactid&$filter=" + quote(f"contactid le {middle}"), "contactid")
    assert sorted(got, key=sql_guid_key) == SQL_ORDER[:9]


def _random_contacts(dv: Any, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]
    for i, rid in enumerate(ids):
        dv.store.insert("contact", {"contactid": rid, "lastname": f"Part {i}", "emailaddress1": f"p{i // 2}@x.example",
                                    "createdon": f"20{15 + i % 10}-0{1 + i % 9}-1{i % 10}T12:00:00Z"})
    return ids


def _covers_exactly_once(parts: list[list[str]], ids: list[str]) -> None:
    flat = [rid for part in parts for rid in part]
    assert len(flat) == len(set(flat)) == len(ids) and set(flat) == set(ids)
    assert all(len(part) > len(ids) // 8 for part in parts)  # random ids spread over all four ranges


def test_filter_partition_by_last_group_covers_every_record_once(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty")
    ids = _random_contacts(dv, 400, 11)
    api = make_api(dv)
    filters = [f"contactid lt {BOUNDS[0]}"]
    filters += [f"contactid ge {lo} and contactid lt {hi}" for lo, hi in zip(BOUNDS, BOUNDS[1:], strict=False)]
    filters.append(f"contactid ge {BOUNDS[-1]}")
    parts = [read_all(api, "contacts?$select=contactid&$filter=" + quote(f"{f} and startswith(lastname,'Part')"),
                      "contactid", page_size=50) for f in filters]
    _covers_exactly_once(parts, ids)


def _ranges(attribute: str, bounds: list[str], kind: str) -> list[list[dict[str, Any]]]:
    def cond(op: str, value: str) -> dict[str, Any]:
        return {"AttributeName": attribute, "Operator": op, "Values": [{"Value": value, "Type": kind}]}

    out = [[cond("LessThan", bounds[0])]]
    out += [[cond("GreaterEqual", lo), cond("LessThan", hi)] for lo, hi in zip(bounds, bounds[1:], strict=False)]
    return out + [[cond("GreaterEqual", bounds[-1])]]


def test_job_queries_partitioned_by_guid_and_by_createdon(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty", job_seconds=0)
    ids = _random_contacts(dv, 400, 12)  # pairs by e-mail: every contact has exactly one duplicate
    api = make_api(dv)
    view = fetch_to_query(api, '<fetch><entity name="contact"><all-attributes /><filter><condition '
                               'attribute="statecode" operator="eq" value="0" /></filter></entity></fetch>')
    by_guid = [run_job(api, with_partition(view, conds)) for conds in _ranges("contactid", BOUNDS, "System.Guid")]
    _covers_exactly_once(by_guid, ids)
    dates = ["2017-01-01T00:00:00Z", "2019-06-01T00:00:00Z", "2022-01-01"]
    by_date = [run_job(api, with_partition(view, conds)) for conds in _ranges("createdon", dates, "System.DateTime")]
    _covers_exactly_once(by_date, ids)
    between = {"AttributeName": "contactid", "Operator": "Between",
               "Values": [{"Value": BOUNDS[0], "Type": "System.Guid"}, {"Value": BOUNDS[1], "Type": "System.Guid"}]}
    inside = run_job(api, with_partition(view, [between]))
    assert set(inside) == set(by_guid[1]) | ({BOUNDS[1]} & set(ids))


def test_fetchxml_ge_lt_on_uniqueidentifier_and_datetime(make_emulator: Any, make_api: Any) -> None:
    dv = make_emulator("empty", job_seconds=0)
    ids = _random_contacts(dv, 200, 13)
    api = make_api(dv)

    def fetch(conditions: str) -> dict[str, Any]:
        return fetch_to_query(api, '<fetch><entity name="contact"><all-attributes /><filter type="and">'
                                   '<condition attribute="statecode" operator="eq" value="0" />'
                                   f'<filter type="and">{conditions}</filter></filter></entity></fetch>')

    cut = "{" + BOUNDS[1].upper() + "}"  # braces and upper case, as FetchXML often spells GUIDs
    low = run_job(api, fetch(f'<condition attribute="contactid" operator="lt" value="{cut}" />'))
    high = run_job(api, fetch(f'<condition attribute="contactid" operator="ge" value="{cut}" />'))
    _covers_exactly_once([low, high], ids)
    assert set(low) == {r for r in ids if sql_guid_key(r) < sql_guid_key(BOUNDS[1])}
    old = run_job(api, fetch('<condition attribute="createdon" operator="lt" value="2020-01-01" />'))
    new = run_job(api, fetch('<condition attribute="createdon" operator="ge" value="2020-01-01" />'))
    _covers_exactly_once([old, new], ids)
    assert set(old) == {r["contactid"] for r in dv.store.rows("contact") if r["createdon"] < "2020"}


def test_guid_range_with_a_bad_value_is_refused(make_emulator: Any, make_api: Any) -> None:
    api = make_api(make_emulator("empty", job_seconds=0))
    query = with_partition({"@odata.type": "Microsoft.Dynamics.CRM.QueryExpression", "EntityName": "contact"},
                           [guid_condition("contactid", "GreaterEqual", "not-a-guid")])
    resp = api.post("BulkDetectDuplicates", json={"Query": query, "JobName": "bad"})
    assert resp.status_code == 400 and "contactid" in resp.json()["error"]["message"]


def test_lookup_columns_compare_in_the_same_order(make_emulator: Any, make_api: Any) -> None:
    from dataverse_emulator.queryexpr import evaluate
    from dataverse_emulator.store import Ref

    dv = make_emulator("empty")
    for i, account in enumerate(SQL_ORDER):
        dv.store.insert("account", {"accountid": account, "name": f"Parent {i}"})
        dv.store.insert("contact", {"lastname": f"Child {i}", "parentcustomerid": Ref("account", account)})
    api = make_api(dv)
    middle = SQL_ORDER[8]
    flt = quote(f"_parentcustomerid_value ge {middle}")
    got = read_all(api, "contacts?$select=_parentcustomerid_value&$filter=" + flt, "_parentcustomerid_value")
    assert sorted(got, key=sql_guid_key) == SQL_ORDER[8:]
    ordered = read_all(api, "contacts?$select=_parentcustomerid_value&$orderby=_parentcustomerid_value desc"
                            "&$filter=_parentcustomerid_value ne null", "_parentcustomerid_value", page_size=4)
    assert ordered == SQL_ORDER[::-1]
    query = {"EntityName": "contact", "Criteria": {"FilterOperator": "And", "Conditions": [
        guid_condition("parentcustomerid", "LessThan", "{" + middle.upper() + "}")]}}
    assert sorted((r["parentcustomerid"].id for r in evaluate(dv.store, query)), key=sql_guid_key) == SQL_ORDER[:8]
