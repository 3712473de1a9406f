"""What step 4 checks in Dataverse around each merge: record states (drift, unknown outcomes) and verification.

- `read_states` reads subordinates and targets in bulk (``Microsoft.Dynamics.CRM.In`` over chunks of ids):
  statecode, modifiedon and masterid, before anything is merged.
- `drift_verdict` decides from those states whether a planned merge still makes sense (both exist and are
  active, the subordinate not merged yet) and `merged_into` reads what a merge whose answer was lost did.
- `verify_target` reads a target back after its merge and compares it with the UpdateContent sent.
The verdict functions are pure; only `read_states`, `read_state` and `verify_target` do HTTP.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dataverse import DataverseClient
from dataverse.odata import NAV_PROPERTY, is_lookup_column
from errors import NotFoundError, ResolverError
from runfolder.state import MergeStatus, PlannedMerge, SkipReason

_BIND = re.compile(r"\(\{?([0-9a-fA-F-]{36})\}?\)\s*$")
_STATE_COLUMNS = ("statecode", "modifiedon", "_masterid_value")


@dataclass(frozen=True)
class RecordState:
    """A record as the drift checks see it; exists=False when Dataverse no longer has it."""

    record_id: str
    exists: bool = True
    statecode: int | None = 0
    modifiedon: str | None = None
    masterid: str | None = None

    @property
    def active(self) -> bool:
        return self.exists and self.statecode == 0


def _state(record_id: str, row: dict[str, Any]) -> RecordState:
    master = row.get("_masterid_value")
    return RecordState(record_id, True, row.get("statecode"), row.get("modifiedon"),
                       str(master).lower() if master else None)


def read_states(client: DataverseClient, entity_set: str, primary_id: str, ids: list[str]) -> dict[str, RecordState]:
    """The current state of every id (missing ones with exists=False), in a few bulk requests."""
    unique = list(dict.fromkeys(i.lower() for i in ids))
    found = {str(r[primary_id]).lower(): r for r in
             client.get_many(entity_set, primary_id, unique, [primary_id, *_STATE_COLUMNS])}
    return {i: _state(i, found[i]) if i in found else RecordState(i, exists=False) for i in unique}


def read_state(client: DataverseClient, entity_set: str, record_id: str) -> RecordState:
    """One record's state (a GET); a 404 gives exists=False."""
    try:
        row = client.get(f"{entity_set}({record_id})", {"$select": ",".join(_STATE_COLUMNS)})
    except NotFoundError:
        return RecordState(record_id, exists=False)
    return _state(record_id, row)


def merged_into(sub: RecordState) -> str | None:
    """The record a subordinate was merged into, or None when it was not merged."""
    return sub.masterid if sub.exists and sub.masterid else None


def drift_verdict(
    row: PlannedMerge,
    sub: RecordState,
    target: RecordState,
    *,
    check_modified: bool = False,
    check_target_modified: bool = False,
) -> tuple[MergeStatus, SkipReason | None, str] | None:
    """(status, skip reason, detail) when the merge must not be sent as planned, or None when it may go ahead.
    A subordinate already merged into this very target is done: (ALREADY_MERGED, None, '')."""
    master = merged_into(sub)
    if master == row.target_id and not sub.active:
        return MergeStatus.ALREADY_MERGED, None, ""
    skip = MergeStatus.SKIPPED
    if not sub.exists:
        return skip, SkipReason.SUBORDINATE_GONE, ""
    if master:
        return skip, SkipReason.SUBORDINATE_MERGED_ELSEWHERE, f"into {master}"
    if not sub.active:
        return skip, SkipReason.SUBORDINATE_INACTIVE, ""
    if not target.exists:
        return skip, SkipReason.TARGET_GONE, ""
    if not target.active:
        return skip, SkipReason.TARGET_INACTIVE, ""
    if check_modified and not same_instant(sub.modifiedon, row.subordinate_modifiedon):
        return skip, SkipReason.SUBORDINATE_CHANGED, f"modifiedon {sub.modifiedon}"
    if check_target_modified and not same_instant(target.modifiedon, row.target_modifiedon):
        return skip, SkipReason.TARGET_CHANGED, f"modifiedon {target.modifiedon}"
    return None


def same_instant(current: str | None, prepared: str | None) -> bool:
    """True when two modifiedon values name the same moment (or nothing was recorded at prepare)."""
    if not prepared:
        return True
    if not current:
        return False
    a, b = _datetime(current), _datetime(prepared)
    return a == b if a is not None and b is not None else current.strip() == prepared.strip()


def _datetime(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        return None


# -- verification -----------------------------------------------------------------------------------------

def expectations(update_content: dict[str, Any], lookups: list[str]) -> dict[str, tuple[str, Any]]:
    """UpdateContent -> {column to $select: (column or nav property as written, expected value)}.

    ``nav@odata.bind: "/accounts(id)"`` is read back as ``_lookup_value``; the lookup is the longest lookup
    name that the navigation property starts with (``parentcustomerid_account`` -> ``parentcustomerid``).
    """
    out: dict[str, tuple[str, Any]] = {}
    for key, value in update_content.items():
        if key.startswith("@"):
            continue
        if key.endswith("@odata.bind"):
            nav = key[: -len("@odata.bind")]
            names = [n for n in lookups if nav == n or nav.startswith(n + "_")]
            column = max(names, key=len) if names else nav
            match = _BIND.search(str(value or ""))
            out[f"_{column}_value"] = (nav, match.group(1).lower() if match else value)
        elif "@" not in key:
            out[key] = (key, value)
    return out


def compare(expected: dict[str, tuple[str, Any]], record: dict[str, Any]) -> list[dict[str, Any]]:
    """Columns whose value read back differs from the one sent."""
    mismatches = []
    for column, (written, value) in expected.items():
        actual = record.get(column)
        if is_lookup_column(column):
            nav = record.get(column + NAV_PROPERTY)
            ok = str(actual or "").lower() == str(value or "").lower() and (not nav or nav == written)
        else:
            ok = same_value(value, actual)
        if not ok:
            mismatches.append({"field": written, "expected": value, "actual": actual})
    return mismatches


def same_value(expected: Any, actual: Any) -> bool:
    """Equality as Dataverse stores values: numbers by value, dates by instant, date-only by day."""
    if expected is None or expected == "":
        return actual is None or actual == ""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual or str(expected).lower() == str(actual).lower()
    if isinstance(expected, int | float) or isinstance(actual, int | float):
        try:
            return math.isclose(float(expected), float(actual), rel_tol=1e-9, abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    if expected == actual:
        return True
    a, b = _datetime(expected), _datetime(actual)
    if a is None or b is None:
        return False
    if len(str(expected).strip()) == 10 or len(str(actual).strip()) == 10:  # a date-only value
        return a.date() == b.date()
    if (a.tzinfo is None) != (b.tzinfo is None):
        a, b = a.replace(tzinfo=None), b.replace(tzinfo=None)
    return a == b


def verify_target(client: DataverseClient, entity_set: str, lookups: list[str], row: PlannedMerge) -> dict[str, Any]:
    """Read the target back and compare it with the UpdateContent sent: {"checked", "mismatches"[, "error"]}."""
    wanted = expectations(row.update_content, lookups)
    if not wanted:
        return {"checked": True, "mismatches": []}
    try:
        record = client.get(f"{entity_set}({row.target_id})", {"$select": ",".join(wanted)}, annotations=True)
    except ResolverError as exc:  # a failed read-back (even a sign-in failure) must not lose the merge's result
        return {"checked": False, "mismatches": [], "error": exc.message}
    return {"checked": True, "mismatches": compare(wanted, record)}
