"""What report.html shows of step 4's outcomes, from merge_actions_made.json's document (built from the
journal) and, for names, the plan. Pure. Statuses, failure classes and skip reasons are read as their enums;
the sentences come from the enums' own tables (merging/outcomes.py, merging/failure_classes.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from merging.failure_classes import HINTS, FailureClass
from merging.outcomes import SKIP_TEXT
from report.review_collect import shown
from runfolder.state import MergeStatus, PlannedMerge, SkipReason

UNKNOWN = "unknown"   # merge_actions_made.json's status for a Merge sent with no answer recorded
STATUS_TEXT = {
    str(MergeStatus.MERGED): "merged", str(MergeStatus.ALREADY_MERGED): "found merged already",
    str(MergeStatus.FAILED): "failed", str(MergeStatus.SKIPPED): "skipped", UNKNOWN: "outcome unknown",
}
MISMATCHES_SHOWN = 200


def status_of(entry: Mapping[str, Any]) -> str:
    """An entry's status as a MergeStatus value, or UNKNOWN (pending, or a value this version does not know)."""
    try:
        return str(MergeStatus(str(entry.get("status"))))
    except ValueError:
        return UNKNOWN


def failure_class_of(entry: Mapping[str, Any]) -> FailureClass | None:
    try:
        return FailureClass(str(entry.get("failure_class") or entry.get("reason_code") or ""))
    except ValueError:
        return None


def skip_reason_of(entry: Mapping[str, Any]) -> SkipReason | None:
    try:
        return SkipReason(str(entry.get("reason_code") or ""))
    except ValueError:
        return None


def verified_of(entry: Mapping[str, Any]) -> str:
    """'verified', 'mismatch', 'not_verified' (the read-back failed) or '' (not checked)."""
    check = entry.get("verification")
    if not isinstance(check, Mapping):
        return ""
    if not check.get("checked"):
        return "not_verified"
    return "mismatch" if check.get("mismatches") else "verified"


def _hint(entry: Mapping[str, Any], kind: FailureClass | None) -> str:
    return HINTS[kind] if kind is not None else str(entry.get("hint") or "")


@dataclass(frozen=True)
class OutcomeSummary:
    entity: str
    generated: str
    total: int
    statuses: list[tuple[str, str, int]]           # (status, text, count), every status
    failures: list[dict[str, Any]]                 # by class: class, count, hint, messages [(text, count)]
    skips: list[tuple[str, str, int]]              # (reason code, text, count)
    verified: int
    not_verified: int
    mismatches: list[dict[str, str]]               # the first MISMATCHES_SHOWN
    mismatch_count: int


def outcome_summary(doc: Mapping[str, Any]) -> OutcomeSummary:
    entries: Sequence[Mapping[str, Any]] = doc.get("merges") or []
    statuses = Counter(status_of(e) for e in entries)
    failures: dict[str, dict[str, Any]] = {}
    messages: dict[str, Counter[str]] = {}
    skips: Counter[tuple[str, str]] = Counter()
    mismatches: list[dict[str, str]] = []
    verified = not_verified = 0
    for e in entries:
        status = status_of(e)
        if status == MergeStatus.FAILED:
            kind = failure_class_of(e)
            name = str(kind) if kind else str(e.get("failure_class") or "other")
            row = failures.setdefault(name, {"failure_class": name, "count": 0, "hint": _hint(e, kind)})
            row["count"] += 1
            messages.setdefault(name, Counter())[str(e.get("error_message") or "(no message)")] += 1
        elif status == MergeStatus.SKIPPED:
            reason = skip_reason_of(e)
            code = str(reason) if reason else str(e.get("reason_code") or "")
            skips[code, SKIP_TEXT[reason] if reason else str(e.get("error_message") or code)] += 1
        check = verified_of(e)
        verified += check in ("verified", "mismatch")
        not_verified += check == "not_verified"
        if check == "mismatch":
            mismatches += [{"subordinate_id": str(e.get("subordinate_id")), "target_id": str(e.get("target_id")),
                            "field": str(m.get("field")), "expected": shown(m.get("expected")) or "",
                            "actual": shown(m.get("actual")) or ""}
                           for m in e["verification"]["mismatches"] if isinstance(m, Mapping)]
    for name, row in failures.items():
        row["messages"] = messages[name].most_common(5)
        row["more_messages"] = max(0, len(messages[name]) - 5)
    return OutcomeSummary(
        entity=str(doc.get("entity") or ""), generated=str(doc.get("generated") or ""), total=len(entries),
        statuses=[(s, t, statuses.get(s, 0)) for s, t in STATUS_TEXT.items()],
        failures=sorted(failures.values(), key=lambda r: (-r["count"], r["failure_class"])),
        skips=[(code, text, n) for (code, text), n in sorted(skips.items(), key=lambda kv: (-kv[1], kv[0]))],
        verified=verified, not_verified=not_verified, mismatches=mismatches[:MISMATCHES_SHOWN],
        mismatch_count=len(mismatches),
    )


def outcome_document(doc: Mapping[str, Any], planned: Mapping[str, PlannedMerge]) -> dict[str, Any]:
    """The JSON the page's script renders the table of outcomes from (short keys, like the review page's)."""
    rows = []
    for e in doc.get("merges") or []:
        sub = str(e.get("subordinate_id") or "")
        plan = planned.get(sub)
        status, kind, reason = status_of(e), failure_class_of(e), skip_reason_of(e)
        check = e.get("verification") if isinstance(e.get("verification"), Mapping) else {}
        rows.append({
            "s": sub, "sn": plan.subordinate_name if plan else "", "t": str(e.get("target_id") or ""),
            "tn": plan.target_name if plan else "", "g": str(e.get("group_id") or ""), "st": status,
            "fc": (str(kind) if kind else str(e.get("failure_class") or "")) if status == MergeStatus.FAILED else "",
            "why": SKIP_TEXT[reason] if reason and status == MergeStatus.SKIPPED else "",
            "m": str(e.get("error_message") or ""), "vf": verified_of(e),
            "mm": [[str(m.get("field")), shown(m.get("expected")) or "", shown(m.get("actual")) or ""]
                   for m in check.get("mismatches") or [] if isinstance(m, Mapping)],
            "a": e.get("attempts") or 0, "fin": str(e.get("finished") or ""),
        })
    hints = {str(k): HINTS[k] for k in FailureClass}
    return {"merges": rows, "hints": hints, "statuses": STATUS_TEXT}
