"""A planned merge's pre-flight verdict in one word, and the summary of findings by class with their hints.

Decided on the findings' severities (enums), never on their wording. Pre-flight codes name the same refusals
as step 4's failure classes (merging/failure_classes.py), so the page shows step 4's hint for each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from merging.failure_classes import HINTS, FailureClass
from runfolder.state import PlannedMerge, Severity


class Verdict(StrEnum):
    """What pre-flight predicts for one merge."""

    FAIL = "fail"                  # Dataverse will refuse it whatever step 4's settings
    CONDITIONAL = "conditional"    # refused under one of step 4's settings (parenting checks, marketing plugin)
    NOTE = "note"                  # findings that do not stop the merge
    OK = "ok"                      # nothing found


VERDICT_TEXT = {
    Verdict.FAIL: "predicted to fail",
    Verdict.CONDITIONAL: "fails under some settings",
    Verdict.NOTE: "note",
    Verdict.OK: "no findings",
}

WHEN = {
    Severity.FAIL: "always",
    Severity.FAIL_IF_PARENTING: "when step 4 runs with parenting checks on",
    Severity.FAIL_IF_MARKETING_PLUGIN: "where the marketing-list plugin is installed (unless the workaround is used)",
    Severity.WARN: "never: a note",
}

# pre-flight codes named differently from their failure class (the others have the same name)
SEVERITY_TEXT = {   # one finding, in a merge's list
    Severity.FAIL: "fails",
    Severity.FAIL_IF_PARENTING: "fails with parenting checks on",
    Severity.FAIL_IF_MARKETING_PLUGIN: "fails where the marketing-list plugin is installed",
    Severity.WARN: "note",
}

_CLASS_OF = {
    "unsupported_entity": FailureClass.UNSUPPORTED,
    "parenting_differs": FailureClass.PARENTING,
    "parent_lost": FailureClass.PARENTING,
    "marketing_list": FailureClass.MARKETING_PLUGIN,
}

_ORDER = {Severity.FAIL: 0, Severity.FAIL_IF_PARENTING: 1, Severity.FAIL_IF_MARKETING_PLUGIN: 2, Severity.WARN: 3}


def verdict_of(merge: PlannedMerge) -> Verdict:
    if not merge.preflight:
        return Verdict.OK
    severities = {f.severity for f in merge.preflight}
    if Severity.FAIL in severities:
        return Verdict.FAIL
    if severities & {Severity.FAIL_IF_PARENTING, Severity.FAIL_IF_MARKETING_PLUGIN}:
        return Verdict.CONDITIONAL
    return Verdict.NOTE if severities else Verdict.OK


def failure_class_of(code: str) -> FailureClass | None:
    """The failure class a pre-flight code predicts (None for a note such as lookup_dropped)."""
    if code in _CLASS_OF:
        return _CLASS_OF[code]
    try:
        return FailureClass(code)
    except ValueError:
        return None


def finding_rows(merges: Iterable[PlannedMerge]) -> list[dict[str, Any]]:
    """One row per (finding code, severity): merges, class, when it bites, the hint (a note: its first message)."""
    counts: Counter[tuple[str, Severity]] = Counter()
    first_message: dict[tuple[str, Severity], str] = {}
    for m in merges:
        for f in {(f.code, f.severity): f for f in m.preflight}.values():  # a merge counts once per finding
            counts[f.code, f.severity] += 1
            first_message.setdefault((f.code, f.severity), f.message)
    rows = []
    for (code, severity), n in sorted(counts.items(), key=lambda kv: (_ORDER[kv[0][1]], -kv[1], kv[0][0])):
        kind = failure_class_of(code)
        rows.append({"code": code, "severity": str(severity), "when": WHEN[severity], "merges": n,
                     "failure_class": str(kind) if kind else "",
                     "hint": HINTS[kind] if kind else first_message[code, severity]})
    return rows
