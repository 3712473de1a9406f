"""review.html's data (the JSON its script renders the groups from) and its summary (rendered as HTML). Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from report.review_collect import Names, ReviewCollector
from report.verdicts import SEVERITY_TEXT, VERDICT_TEXT, Verdict, finding_rows
from runfolder.plan_file import PlanHeader
from runfolder.state import Finding, PlannedMerge


def review_document(merges: Sequence[PlannedMerge], verdicts: Sequence[Verdict], review: ReviewCollector,
                    related: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """The JSON the page's script renders from: groups in plan order (id, target id and name, size, merges),
    and per merge short keys: g group, o order, s subordinate id, sn its name, v verdict, c changed fields,
    and only when there is something to say: f findings, e e-mails (merges without detail), r related rows.
    Column names, changed fields and finding texts are written once (`columns`, `fields`, `texts`) and referred
    to by position; `first`: the columns always shown (primary id and name). The values are in a JSON array
    of their own (`detail_array`), one entry per merge. `verdicts`: each merge's, in the same order."""
    fields, texts = Names(), Names()
    changed: dict[tuple[str, ...], list[int]] = {}        # the same lists recur: each is made once
    found: dict[tuple[Finding, ...], list[list[Any]]] = {}
    groups: list[dict[str, Any]] = []
    at: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    for m, verdict in zip(merges, verdicts, strict=True):
        if m.group_id not in at:
            at[m.group_id] = len(groups)
            groups.append({"id": m.group_id, "t": m.target_id, "tn": m.target_name, "n": 1, "m": []})
        group = groups[at[m.group_id]]
        group["n"] += 1
        group["m"].append(len(rows))
        c = changed.get(m.changed_fields)
        if c is None:
            c = changed[m.changed_fields] = [fields(f) for f in m.changed_fields]
        row: dict[str, Any] = {"g": at[m.group_id], "o": m.order, "s": m.subordinate_id, "sn": m.subordinate_name,
                               "v": verdict.value, "c": c}
        if m.preflight:
            f = found.get(m.preflight)
            if f is None:
                f = found[m.preflight] = [[texts(x.code), x.severity.value, texts(x.message)] for x in m.preflight]
            row["f"] = f
        if m.subordinate_id in review.emails:
            row["e"] = review.emails[m.subordinate_id]
        if related.get(m.subordinate_id):
            row["r"] = dict(related[m.subordinate_id])
        rows.append(row)
    return {"columns": review.columns.names(), "first": list(range(len(review.first))), "fields": fields.names(),
            "texts": texts.names(), "groups": groups, "merges": rows, "limit": review.limit,
            "verdict_text": {v.value: t for v, t in VERDICT_TEXT.items()},
            "severity_text": {s.value: t for s, t in SEVERITY_TEXT.items()}}


def detail_array(merges: Sequence[PlannedMerge], review: ReviewCollector) -> Markup:
    """Every merge's values in plan order (null beyond the limit): a JSON array of the collector's HTML-safe
    JSON texts, so it is as safe inside a script element as each of them."""
    null = Markup("null")
    parts: list[Markup] = [review.details.get(m.subordinate_id, null) for m in merges]
    return Markup("[" + ",".join(parts) + "]")  # every part is Markup already (Markup.join would check each)


@dataclass(frozen=True)
class ReviewSummary:
    """The page's first section (rendered as HTML, so it reads without the script)."""

    header: PlanHeader
    groups: int
    merges: int
    records: int
    verdicts: dict[str, int]
    findings: list[dict[str, Any]]
    top_fields: list[tuple[str, int]]
    related: list[tuple[str, int]]
    group_sizes: list[tuple[int, int]]
    omitted: int
    limit: int


def review_summary(header: PlanHeader, merges: Sequence[PlannedMerge], verdicts: Sequence[Verdict],
                   review: ReviewCollector, related: Mapping[str, Mapping[str, int]]) -> ReviewSummary:
    """The counts, findings by class, top fields, related rows and group sizes the summary shows."""
    sizes = Counter(m.group_id for m in merges)
    counted = Counter(verdicts)
    moving: Counter[str] = Counter()
    for m in merges:
        moving.update(related.get(m.subordinate_id) or {})
    return ReviewSummary(
        header=header, groups=len(sizes), merges=len(merges), records=len(merges) + len(sizes),
        verdicts={v.value: counted.get(v, 0) for v in Verdict},
        findings=finding_rows(merges),
        top_fields=Counter(f for m in merges for f in m.changed_fields).most_common(15),
        related=sorted(moving.items(), key=lambda kv: (-kv[1], kv[0])),
        group_sizes=sorted(Counter(n + 1 for n in sizes.values()).items()),
        omitted=review.omitted, limit=review.limit,
    )


def size_options(summary: ReviewSummary) -> Iterable[tuple[str, str]]:
    """The group-size filter's choices: (value, label)."""
    for size, count in summary.group_sizes:
        yield str(size), f"{size} records ({count} group{'s' if count != 1 else ''})"
