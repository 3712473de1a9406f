"""Datasets: the base every dataset has, the demo's determinism and designed patterns (checked through
detection and Merge, as the tool will meet them), synthetic size and speed, JSON files."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from dataverse_emulator.context import Context
from dataverse_emulator.datasets import DEMO_ADMIN_ID, load_dataset
from dataverse_emulator.errors import ServiceError
from dataverse_emulator.operations import ACTIONS, FUNCTIONS, advance_jobs
from dataverse_emulator.options import EmulatorOptions, Faults
from dataverse_emulator.queryexpr import evaluate
from dataverse_emulator.store import Ref, Store

T = "Microsoft.Dynamics.CRM."


@pytest.fixture(scope="module")
def demo() -> Store:
    s = Store()
    load_dataset(s, "demo", 1)
    return s


@pytest.fixture
def fresh_demo() -> Store:
    s = Store()
    load_dataset(s, "demo", 1)
    return s


def ctx_for(store: Store, **options: Any) -> Context:
    return Context(store, EmulatorOptions(**options), DEMO_ADMIN_ID, "http://test/api/data/v9.2/")


def by_email(store: Store, email: str) -> list[dict[str, Any]]:
    rows = [r for r in store.rows("contact") if (r.get("emailaddress1") or "").lower() == email.lower()]
    return sorted(rows, key=lambda r: r["createdon"])


def by_name(store: Store, name: str) -> list[dict[str, Any]]:
    return sorted((r for r in store.rows("account") if r.get("name") == name), key=lambda r: r["createdon"])


def merge_body(entity: str, master: str, sub: str, update: dict[str, Any] | None = None, checks: bool = False) -> dict:
    pk = f"{entity}id"
    return {"Target": {"@odata.type": T + entity, pk: master}, "Subordinate": {"@odata.type": T + entity, pk: sub},
            "UpdateContent": {"@odata.type": T + entity, **(update or {})}, "PerformParentingChecks": checks}


def merge_error(store: Store, params: dict[str, Any]) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        ACTIONS["Merge"](ctx_for(store), params)
    return info.value


# -- base -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["empty", "demo", "synthetic:50"])
def test_every_dataset_has_the_base(name: str) -> None:
    s = Store()
    load_dataset(s, name, 3)
    assert s.get("systemuser", DEMO_ADMIN_ID)["fullname"] == "Demo Admin"
    views = {r["name"] for r in s.rows("savedquery")}
    assert {"Active Contacts for Duplicate Checking", "Active Accounts for Duplicate Checking",
            "Active Leads for Duplicate Checking", "All Contacts"} <= views
    assert {r["name"] for r in s.rows("userquery")} == {"My Contacts (O'Brien's view)", "Kontakte für Dubletten — José"}
    published = {r["name"]: (r["statecode"], r["statuscode"], r["excludeinactiverecords"])
                 for r in s.rows("duplicaterule")}
    assert published == {
        "Contacts with the same e-mail": (1, 2, True), "Contacts with the same business phone": (1, 2, True),
        "Accounts with the same name": (1, 2, True), "Leads with the same e-mail": (0, 0, True)}


def test_empty_has_no_business_records() -> None:
    s = Store()
    load_dataset(s, "empty", 1)
    assert not s.rows("contact") and not s.rows("account")


def test_every_view_converts_and_runs(demo: Store) -> None:
    ctx = ctx_for(demo)
    for view in demo.rows("savedquery") + demo.rows("userquery"):
        query = FUNCTIONS["FetchXmlToQueryExpression"](ctx, {"FetchXml": view["fetchxml"]})["Query"]
        assert query["EntityName"] == view["returnedtypecode"]
        evaluate(demo, query, DEMO_ADMIN_ID)
    view = next(r for r in demo.rows("savedquery") if r["name"] == "Active Contacts for Duplicate Checking")
    query = FUNCTIONS["FetchXmlToQueryExpression"](ctx, {"FetchXml": view["fetchxml"]})["Query"]
    active = [r for r in demo.rows("contact") if r["statecode"] == 0]
    assert len(evaluate(demo, query)) == len(active) < len(demo.rows("contact"))


def test_unknown_dataset_is_an_error() -> None:
    with pytest.raises(ValueError):
        load_dataset(Store(), "huge", 1)


def test_json_file_round_trip(tmp_path: Path, demo: Store) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(demo.to_json(), ensure_ascii=False), encoding="utf-8")
    loaded = Store()
    load_dataset(loaded, str(path), 1)
    assert loaded.to_json()["tables"] == demo.to_json()["tables"]


# -- demo -------------------------------------------------------------------------------------------
def test_demo_is_deterministic_and_fast() -> None:
    start = time.perf_counter()
    a, b, c = Store(), Store(), Store()
    load_dataset(a, "demo", 42)
    assert time.perf_counter() - start < 5.0  # a guard, not a benchmark
    load_dataset(b, "demo", 42)
    load_dataset(c, "demo", 43)
    assert a.to_json()["tables"] == b.to_json()["tables"]
    assert set(a.tables["contact"]) != set(c.tables["contact"])
    sizes = {name: len(rows) for name, rows in a.tables.items()}
    assert 1800 <= sizes["contact"] <= 2500 and 250 <= sizes["account"] <= 350
    assert sizes["task"] > 100 and sizes["quote"] > 10 and sizes["listmember"] > 20


@pytest.mark.parametrize(("email", "size"), [
    ("pair01@dup.example", 2), ("pair60@dup.example", 2), ("group01@dup.example", 3), ("group20@dup.example", 4),
    ("chain01@dup.example", 2), ("chain01.c@dup.example", 1), ("parents01@dup.example", 2),
    ("loseparent01@dup.example", 2), ("activequote01@dup.example", 2), ("listmember05@dup.example", 2),
    ("tasks01@dup.example", 2), ("inactive01@dup.example", 2), ("jose.garcia@dup.example", 2),
    ("wang.wei@dup.example", 2), ("patrick.o'brien@dup.example", 2), ("maria.d'angelo@dup.example", 2),
    ("address01@dup.example", 2), ("flags01@dup.example", 2), ("case01@dup.example", 2),
])
def test_demo_patterns_exist(demo: Store, email: str, size: int) -> None:
    assert len(by_email(demo, email)) == size


def test_demo_pattern_details(demo: Store) -> None:
    a, b = by_email(demo, "chain01@dup.example")
    (c,) = by_email(demo, "chain01.c@dup.example")
    assert b["telephone1"] == c["telephone1"] != a["telephone1"]
    older, newer = by_email(demo, "parents01@dup.example")
    assert older["parentcustomerid"] != newer["parentcustomerid"] and older["parentcustomerid"] is not None
    _, inactive = by_email(demo, "inactive01@dup.example")
    assert (inactive["statecode"], inactive["statuscode"]) == (1, 2)
    assert {r["fullname"] for r in by_email(demo, "wang.wei@dup.example")} == {"王伟"}
    assert {r["emailaddress1"] for r in by_email(demo, "case01@dup.example")} == {"case01@dup.example",
                                                                                 "Case01@DUP.example"}
    flags = by_email(demo, "flags01@dup.example")
    assert flags[0]["new_isvip"] != flags[1]["new_isvip"] and flags[0]["donotemail"] != flags[1]["donotemail"]
    assert len(by_name(demo, "Fabrikam, Inc.")) == 3 and len(by_name(demo, "O'Reilly Media")) == 2
    top, bottom = by_name(demo, "Adventure Works Cycles")
    (middle,) = by_name(demo, "Adventure Works Cycles (Europe)")
    assert bottom["parentaccountid"] == Ref("account", middle["accountid"])
    assert middle["parentaccountid"] == Ref("account", top["accountid"]) and top.get("parentaccountid") is None
    counts = {r["listname"]: r["membercount"] for r in demo.rows("list")}
    real = {r["listname"]: len([m for m in demo.rows("listmember") if m["listid"].id == r["listid"]])
            for r in demo.rows("list")}
    assert counts == real and counts["VIP contacts (dynamic)"] == 0


def test_demo_detection_finds_designed_duplicates_only(demo: Store) -> None:
    s = Store()
    s.load_json(demo.to_json())
    ctx = ctx_for(s, job_seconds=0)
    view = next(r for r in s.rows("savedquery") if r["name"] == "Active Contacts for Duplicate Checking")
    query = FUNCTIONS["FetchXmlToQueryExpression"](ctx, {"FetchXml": view["fetchxml"]})["Query"]
    ACTIONS["BulkDetectDuplicates"](ctx, {"Query": query, "JobName": "demo"})
    advance_jobs(ctx)
    flagged = {s.get("contact", r["baserecordid"].id)["emailaddress1"] for r in s.rows("duplicaterecord")}
    assert all(e.lower().endswith("@dup.example") for e in flagged)
    assert {"pair01@dup.example", "group20@dup.example", "chain01.c@dup.example", "case01@dup.example",
            "Case01@DUP.example", "phoneonly01a@dup.example", "patrick.o'brien@dup.example"} <= flagged
    assert "inactive01@dup.example" not in flagged  # its only match is inactive and excluded


def test_demo_merge_obstacles(fresh_demo: Store) -> None:
    s = fresh_demo
    older, newer = (r["contactid"] for r in by_email(s, "activequote01@dup.example"))
    assert merge_error(s, merge_body("contact", older, newer)).code == "0x80045302"
    older, newer = (r["contactid"] for r in by_email(s, "loseparent01@dup.example"))
    assert merge_error(s, merge_body("contact", older, newer, checks=True)).code == "0x80045317"
    older, newer = (r["contactid"] for r in by_email(s, "parents01@dup.example"))
    assert merge_error(s, merge_body("contact", older, newer, checks=True)).code == "0x80045316"
    top, bottom = (r["accountid"] for r in by_name(s, "Adventure Works Cycles"))
    assert merge_error(s, merge_body("account", bottom, top)).message == "Merge could create cyclical parenting."
    older, newer = (r["contactid"] for r in by_email(s, "draftquote01@dup.example"))
    ACTIONS["Merge"](ctx_for(s), merge_body("contact", older, newer))
    older, newer = (r["contactid"] for r in by_email(s, "tasks01@dup.example"))
    ACTIONS["Merge"](ctx_for(s), merge_body("contact", older, newer))
    assert not [t for t in s.rows("task") if t["regardingobjectid"] == Ref("contact", newer)]


def test_demo_list_members_trip_the_marketing_plugin(fresh_demo: Store) -> None:
    older, newer = (r["contactid"] for r in by_email(fresh_demo, "listmember01@dup.example"))
    ctx = Context(fresh_demo, EmulatorOptions(faults=Faults(marketing_plugin=True)), DEMO_ADMIN_ID, "http://t/")
    with pytest.raises(ServiceError) as info:
        ACTIONS["Merge"](ctx, merge_body("contact", older, newer))
    assert info.value.code == "0x80040265"


# -- synthetic --------------------------------------------------------------------------------------
def test_synthetic_100k_builds_fast() -> None:
    s = Store()
    start = time.perf_counter()
    load_dataset(s, "synthetic:100000", 1)
    assert time.perf_counter() - start < 30.0  # a guard against a slip, not a benchmark
    assert len(s.tables["contact"]) == 100_000 and len(s.tables["account"]) == 5_000
    grouped = sum(1 for r in s.tables["contact"].values()
                  if (r.get("emailaddress1") or "").startswith("dup"))
    assert 20_000 <= grouped <= 20_003  # 20%, the last group may run over by up to 3


def test_synthetic_structure_is_what_detection_finds() -> None:
    s = Store()
    load_dataset(s, "synthetic:3000", 5)
    ctx = ctx_for(s, job_seconds=0)
    ACTIONS["BulkDetectDuplicates"](ctx, {"Query": {"EntityName": "contact"}, "JobName": "synthetic"})
    advance_jobs(ctx)
    flagged = {r["baserecordid"].id for r in s.rows("duplicaterecord")}
    designed = {r["contactid"] for r in s.rows("contact") if "@dup.synthetic" in (r.get("emailaddress1") or "")}
    assert flagged == designed and 600 + 60 <= len(designed) <= 600 + 60 + 3


# -- over HTTP -------------------------------------------------------------------------------------
def test_demo_over_http_caller_and_views(make_emulator: Any, make_api: Any) -> None:
    from urllib.parse import quote

    api = make_api(make_emulator("demo"))
    assert api.get("WhoAmI").json()["UserId"] == DEMO_ADMIN_ID
    name = "My Contacts (O'Brien's view)".replace("'", "''")
    resp = api.get("userqueries?$select=name,fetchxml,returnedtypecode&$filter=" + quote(f"name eq '{name}'"))
    assert resp.status_code == 200, resp.text
    assert [v["name"] for v in resp.json()["value"]] == ["My Contacts (O'Brien's view)"]
    resp = api.get("contacts?$select=fullname&$filter=" + quote("emailaddress1 eq 'patrick.o''brien@dup.example'"))
    assert [r["fullname"] for r in resp.json()["value"]] == ["Patrick O'Brien", "Patrick O'Brien"]
