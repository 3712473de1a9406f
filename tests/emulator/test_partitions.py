"""`synthetic-partitions:N`: a view with three times the 5,000-duplicate cap, its known groups, and detection
jobs cut into GUID or createdon partitions that together find every record with duplicates exactly once."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any
from urllib.parse import quote

import pytest

from dataverse_emulator.datasets import dataset_groups, load_dataset
from dataverse_emulator.partitions_data import KnownGroup
from dataverse_emulator.store import Store
from tests.emulator.over_http import batch, batch_answers, fetch_to_query, http_part, run_job, with_partition

NAME = "synthetic-partitions:15000"
CAP = 5000
VIEW = "Active Contacts for Duplicate Checking"


@pytest.fixture(scope="module")
def groups() -> list[KnownGroup]:
    return dataset_groups(NAME)


@pytest.fixture(scope="module")
def dv() -> Any:
    from dataverse_emulator import start_emulator

    handle = start_emulator(NAME, job_seconds=0)
    yield handle
    handle.stop()


@pytest.fixture
def api(dv: Any, make_api: Any) -> Any:
    return make_api(dv, timeout=60)


def test_builds_fast_with_the_designed_structure(groups: list[KnownGroup]) -> None:
    store = Store()
    started = time.perf_counter()
    load_dataset(store, NAME, 1)
    assert time.perf_counter() - started < 10.0  # a guard against a slip (about 0.3 s here)
    members = [rid for g in groups for rid in g.ids]
    assert 3 * CAP <= len(members) <= 3 * CAP + 3 and len(set(members)) == len(members)
    kinds = Counter(g.kind for g in groups)
    assert set(kinds) == {"pair", "triple", "chain", "long-chain"} and abs(kinds["pair"] - 3 * kinds["triple"]) <= 3
    contacts = store.tables["contact"]
    assert all(contacts[rid]["statecode"] == 0 for rid in members)
    active = [r for r in contacts.values() if r["statecode"] == 0]
    assert len(active) == len(members) + 15000 // 2 and len(contacts) == len(active) + 150
    chain = next(g for g in groups if g.kind == "long-chain")
    a, b, c, d = (contacts[rid] for rid in chain.ids)
    assert a["emailaddress1"] == b["emailaddress1"] and b["telephone1"] == c["telephone1"]
    assert c["emailaddress1"] == d["emailaddress1"] and a["telephone1"] != c["telephone1"]
    assert dataset_groups(NAME, 1) == groups and dataset_groups(NAME, 2) != groups
    with pytest.raises(ValueError):
        dataset_groups("synthetic:100")


def _view_query(api: Any) -> dict[str, Any]:
    flt = quote(f"name eq '{VIEW}' and returnedtypecode eq 'contact'")
    resp = api.get("savedqueries?$select=fetchxml&$filter=" + flt)
    (view,) = resp.json()["value"]
    return fetch_to_query(api, view["fetchxml"])


def _guid_ranges() -> list[list[dict[str, Any]]]:
    bounds = ["00000000-0000-0000-0000-400000000000", "00000000-0000-0000-0000-800000000000",
              "00000000-0000-0000-0000-c00000000000"]

    def cond(op: str, value: str) -> dict[str, Any]:
        return {"AttributeName": "contactid", "Operator": op, "Values": [{"Value": value, "Type": "System.Guid"}]}

    return ([[cond("LessThan", bounds[0])]]
            + [[cond("GreaterEqual", lo), cond("LessThan", hi)] for lo, hi in zip(bounds, bounds[1:], strict=False)]
            + [[cond("GreaterEqual", bounds[-1])]])


def test_one_job_hits_the_cap_partitions_find_everyone_once(dv: Any, api: Any, groups: list[KnownGroup]) -> None:
    view = _view_query(api)
    whole = run_job(api, view, "whole view")
    assert len(whole) == len(set(whole)) == CAP  # the service's cap: the view needs partitions
    members = {rid for g in groups for rid in g.ids}
    parts = [run_job(api, with_partition(view, conds), f"part {i}") for i, conds in enumerate(_guid_ranges())]
    assert all(1000 < len(p) < CAP for p in parts)  # each partition stays under the cap
    found = [rid for p in parts for rid in p]
    assert len(found) == len(set(found)) and set(found) == members


def test_createdon_partitions_find_everyone_once(dv: Any, api: Any, groups: list[KnownGroup]) -> None:
    view = _view_query(api)
    years = ["2018-01-01T00:00:00Z", "2020-07-01T00:00:00Z", "2023-01-01T00:00:00Z"]

    def cond(op: str, value: str) -> dict[str, Any]:
        return {"AttributeName": "createdon", "Operator": op, "Values": [{"Value": value, "Type": "System.DateTime"}]}

    ranges = ([[cond("LessThan", years[0])]]
              + [[cond("GreaterEqual", lo), cond("LessThan", hi)] for lo, hi in zip(years, years[1:], strict=False)]
              + [[cond("GreaterEqual", years[-1])]])
    parts = [run_job(api, with_partition(view, conds), f"year {i}") for i, conds in enumerate(ranges)]
    assert all(len(p) < CAP for p in parts)
    found = [rid for p in parts for rid in p]
    assert len(found) == len(set(found)) and set(found) == {rid for g in groups for rid in g.ids}


def test_retrieve_duplicates_in_batches_rebuilds_the_known_groups(api: Any, groups: list[KnownGroup]) -> None:
    sample = groups[:120]  # every kind, 20 times
    ids = [rid for g in sample for rid in g.ids]
    paging = quote(json.dumps({"PageNumber": 1, "Count": 50}))
    parts = []
    for rid in ids:
        business = quote(json.dumps({"@odata.type": "Microsoft.Dynamics.CRM.contact", "contactid": rid}))
        parts.append(http_part("GET", "RetrieveDuplicates(BusinessEntity=@b,MatchingEntityName=@m,PagingInfo=@p)"
                                      f"?@b={business}&@m='contact'&@p={paging}"))
    body, headers = batch(parts)
    resp = api.post("$batch", data=body, headers=headers)
    answers = batch_answers(resp.text)
    assert resp.status_code == 200 and len(answers) == len(ids)
    parent = {rid: rid for rid in ids}

    def find(x: str) -> str:
        while parent[x] != x:
            x = parent[x]
        return x

    for rid, (_, text) in zip(ids, answers, strict=True):
        for match in json.loads(text)["value"]:
            parent[find(match["contactid"])] = find(rid)  # matches stay inside the designed group
    rebuilt = {frozenset(r for r in ids if find(r) == root) for root in {find(r) for r in ids}}
    assert rebuilt == {frozenset(g.ids) for g in sample}
    chain = next(g for g in sample if g.kind == "chain")
    first = json.loads(answers[ids.index(chain.ids[0])][1])["value"]
    assert [r["contactid"] for r in first] == [chain.ids[1]]  # A matches B only; C is reached through B
