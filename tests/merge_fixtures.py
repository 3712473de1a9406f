"""Builds merge-step scenarios without step 3: contacts inserted straight into an emulator store, and a run
folder whose prepare/merges.csv plans their merges. Used by the merge tests, the SIGKILL worker and the
throughput benchmark."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runfolder.folder import RunFolder
from runfolder.state import MERGES_CSV_COLUMNS

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


def csv_rows(planned: list[Planned], *, preflight: dict[str, str] | None = None,
             modifiedon: dict[str, str] | None = None) -> list[list[str]]:
    """merges.csv rows for the plan; `preflight` and `modifiedon` are keyed by subordinate / record id."""
    preflight, modifiedon = preflight or {}, modifiedon or {}
    rows = []
    for p in planned:
        cells = {
            "group_id": p.group_id, "order": str(p.order), "target_id": p.target_id,
            "subordinate_id": p.subordinate_id, "preflight": preflight.get(p.subordinate_id, "ok"),
            "changed_fields": ";".join(k for k in p.update_content if not k.startswith("@")),
            "update_content": json.dumps(p.update_content), "target_modifiedon": modifiedon.get(p.target_id, ""),
            "subordinate_modifiedon": modifiedon.get(p.subordinate_id, ""),
        }
        rows.append([cells[c] for c in MERGES_CSV_COLUMNS])
    return rows


def make_run(root: Path, planned: list[Planned], **kw: Any) -> RunFolder:
    """A run folder at `root` whose merges.csv plans `planned`."""
    run = RunFolder(root)
    run.write_csv(run.merges_csv, MERGES_CSV_COLUMNS, csv_rows(planned, **kw), bom=True)
    return run
