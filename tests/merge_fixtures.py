"""Builds merge-step scenarios without step 3: contacts inserted straight into an emulator store, and a run
folder whose plan (prepare/plan.jsonl, and its view merges.csv, written by the real writers) plans their
merges against that emulator. Used by the merge tests, the SIGKILL worker and the throughput benchmark."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auth import StaticTokenProvider
from dataverse import DataverseClient, Environment
from dataverse_emulator.store import Ref
from planning.preflight import severity_of
from runfolder.folder import RunFolder
from runfolder.merges_csv import write_view
from runfolder.plan_file import PlanHeader, write_plan
from runfolder.state import Finding, PlannedMerge

CONTACT = "Microsoft.Dynamics.CRM.contact"


@dataclass(frozen=True)
class Planned:
    group_id: str
    target_id: str
    subordinate_id: str
    order: int
    update_content: dict[str, Any]


def seed_groups(store: Any, groups: int, subs_per_group: int = 1, *, stamp: str = "2024-01-01T00:00:00Z",
                prefix: str = "") -> list[Planned]:
    """Insert `groups` targets with `subs_per_group` subordinates each; return the planned merges, in order."""
    planned = []
    for g in range(groups):
        target = store.insert("contact", {"firstname": f"T{prefix}{g}", "lastname": "Target",
                                          "emailaddress1": f"t{prefix}{g}@example.com",
                                          "createdon": stamp})
        for k in range(subs_per_group):
            sub = store.insert("contact", {"firstname": f"S{prefix}{g}-{k}", "lastname": "Sub",
                                           "emailaddress1": f"s{prefix}{g}-{k}@example.com", "createdon": stamp})
            content = {"@odata.type": CONTACT, "emailaddress2": f"s{prefix}{g}-{k}@example.com",
                       "description": f"merged {k + 1} of {subs_per_group}"}
            planned.append(Planned(target, target, sub, k + 1, content))
    return planned


def findings(text: str) -> tuple[Finding, ...]:
    """'code: message | code: message' (as merges.csv shows them) -> findings with their severity."""
    out = []
    for part in (p.strip() for p in text.split(" | ") if p.strip() and p.strip() != "ok"):
        code, _, message = part.partition(":")
        out.append(Finding(code.strip(), severity_of(code.strip()), message.strip() or code.strip()))
    return tuple(out)


def planned_merges(planned: list[Planned], *, preflight: dict[str, str] | None = None,
                   modifiedon: dict[str, str] | None = None) -> list[PlannedMerge]:
    """The plan's merges; `preflight` and `modifiedon` are keyed by subordinate / record id."""
    preflight, modifiedon = preflight or {}, modifiedon or {}
    return [PlannedMerge(
        group_id=p.group_id, order=p.order, target_id=p.target_id, subordinate_id=p.subordinate_id,
        update_content=p.update_content, changed_fields=tuple(k for k in p.update_content if not k.startswith("@")),
        preflight=findings(preflight.get(p.subordinate_id, "ok")), target_modifiedon=modifiedon.get(p.target_id),
        subordinate_modifiedon=modifiedon.get(p.subordinate_id), target_name=f"target {p.target_id[:8]}",
        subordinate_name=f"subordinate {p.subordinate_id[:8]}") for p in planned]


def environment_of(url: str) -> Environment:
    """What the emulator at `url` says it is (WhoAmI), as step 3 records it."""
    with DataverseClient(url, StaticTokenProvider("t")) as client:
        return client.environment()


def make_run(root: Path, url: str, planned: list[Planned], *, entity: str = "contact", **kw: Any) -> RunFolder:
    """A run folder at `root` whose plan (for the emulator at `url`) merges `planned`, all selected."""
    run = RunFolder(root)
    merges = planned_merges(planned, **kw)
    write_plan(run.plan_path, PlanHeader.new(entity, environment_of(url), "oldest_record"), merges)
    write_view(run.merges_csv, merges)
    return run


def assert_all_done_once(dv: Any, run: RunFolder, planned: list) -> dict:
    """Every planned merge done exactly once in the emulator, and listed once in merge_actions_made.json."""
    for p in planned:
        sub = dv.store.get("contact", p.subordinate_id)
        assert sub["statecode"] == 1 and sub["masterid"] == Ref("contact", p.target_id), p.subordinate_id
    assert max(dv.store.counters.merge_success.values()) <= 1
    assert set(dv.store.counters.merge_success) == {p.subordinate_id for p in planned}
    doc = json.loads(run.merge_actions_path.read_text(encoding="utf-8"))
    subs = [a["subordinate_id"] for a in doc["merges"]]
    assert sorted(subs) == sorted(p.subordinate_id for p in planned)
    assert {a["status"] for a in doc["merges"]} <= {"merged", "already_merged"}
    return doc
