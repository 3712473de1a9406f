"""Pre-flight checks: will Dataverse refuse this planned merge? Pure: data in, findings out (`gather` reads
through a fetch function it is given, so it too does no I/O of its own).

`check_merge` predicts every refusal of `research/merge-rules.md` that data can predict, with the
service's own wording, mirroring the emulator (`dataverse_emulator/merge_checks.py`) so step 4 can
compare predictions with outcomes. Severity says when a finding bites:
- `fail`: always; `warn`: never (the merge runs, but read the note);
- `fail_if_parenting`: only when step 4 runs with parenting checks on;
- `fail_if_marketing_plugin`: only where Dynamics Marketing's plugin is installed.
Rows are Web API rows without annotations (lookups as `_x_value` ids). `target_after` is the target
as it will be once this merge's UpdateContent is written (the parenting and loop checks read its parent).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dataverse.odata import LOOKUP_TABLE
from runfolder.state import Finding, Severity

Row = Mapping[str, Any]

MERGEABLE = frozenset({"account", "contact", "lead", "incident"})
# The hierarchy parent each table's Merge checks read (merge-rules.md: "Parent here means ...").
PARENT_COLUMN = {"account": "_parentaccountid_value", "contact": "_parentcustomerid_value",
                 "incident": "_parentcaseid_value"}
MAX_CHILD_CASES = 100

FAIL, FAIL_IF_PARENTING, FAIL_IF_MARKETING_PLUGIN, WARN = (
    Severity.FAIL, Severity.FAIL_IF_PARENTING, Severity.FAIL_IF_MARKETING_PLUGIN, Severity.WARN)

# Every code this module writes, with its severity: step 4 reads codes back from merges.csv through this.
SEVERITY = {
    "same_record": FAIL, "unsupported_entity": FAIL, "inactive": FAIL, "active_quote": FAIL,
    "hierarchy_loop": FAIL, "child_cases": FAIL,
    "parenting_differs": FAIL_IF_PARENTING, "parent_lost": FAIL_IF_PARENTING,
    "marketing_list": FAIL_IF_MARKETING_PLUGIN,
    "lookup_dropped": WARN, "update_ignored": WARN,
}


def severity_of(code: str) -> Severity:
    """The severity of a finding code read back from merges.csv; an unknown code only warns."""
    return SEVERITY.get(code, WARN)


@dataclass(frozen=True)
class PreflightData:
    """What step 3 fetched in bulk for the checks (ids are lower-case GUID strings)."""

    active_quotes: Mapping[str, int] = field(default_factory=dict)     # customer id -> Active quotes (statecode 1)
    list_memberships: Mapping[str, int] = field(default_factory=dict)  # member id -> marketing lists it is in
    parents: Mapping[str, str | None] = field(default_factory=dict)    # record id -> same-table parent id
    child_cases: Mapping[str, int] = field(default_factory=dict)       # case id -> its child cases


def check_merge(
    entity: str, target_after: Row, subordinate: Row, ctx: PreflightData, *, absorbed: Collection[str] = (),
    target_before: Row | None = None,
) -> tuple[Finding, ...]:
    """Every finding for merging `subordinate` into the target (empty tuple: nothing predicts a refusal).

    `absorbed`: subordinates merged into this target earlier in the group (their children and cases
    now belong to the target).
    """
    if entity not in MERGEABLE:
        return (Finding("unsupported_entity", FAIL, f"This type: {entity} is not supported with merge operation"),)
    pk = f"{entity}id"
    target_id, sub_id = str(target_after.get(pk) or ""), str(subordinate.get(pk) or "")
    if target_id == sub_id:
        return (Finding("same_record", FAIL,
                        "Merge cannot be performed on master and sub-entities that are identical."),)
    merged = frozenset(absorbed) | {sub_id}
    found = [*_inactive(entity, target_after, subordinate, target_id, sub_id)]
    if entity == "incident":
        found += _cases(target_after, subordinate, target_id, merged, ctx)
    if entity in ("account", "contact"):
        # "whether the parent information is different for the two entity records" (MergeRequest docs): the
        # records as they stand when the Merge runs, before its UpdateContent is applied
        found += _parenting(entity, target_after if target_before is None else target_before, subordinate)
        if ctx.active_quotes.get(sub_id, 0) > 0:
            found.append(Finding("active_quote", FAIL,
                                 "Merge cannot be performed on sub-entity that has active quote."))
        found += _loop(entity, target_after, target_id, merged, ctx)
    if entity != "incident":
        found += _marketing(entity, ctx.list_memberships.get(sub_id, 0))
    return tuple(found)


def _inactive(entity: str, target: Row, sub: Row, target_id: str, sub_id: str) -> list[Finding]:
    found = []
    if target.get("statecode") not in (None, 0):
        found.append(Finding("inactive", FAIL, f"master entity:{entity}-{target_id} is deactive"))
    if sub.get("statecode") not in (None, 0):
        found.append(Finding("inactive", FAIL, f"sub-entity:{entity}-{sub_id} is deactive"))
    return found


def _parenting(entity: str, target_after: Row, sub: Row) -> list[Finding]:
    column = PARENT_COLUMN[entity]
    target_parent, sub_parent = target_after.get(column), sub.get(column)
    if sub_parent is None:
        return []
    if target_parent is None:
        return [Finding("parent_lost", FAIL_IF_PARENTING, "Merge warning: sub-entity might lose parenting.")]
    if target_parent != sub_parent:
        return [Finding("parenting_differs", FAIL_IF_PARENTING,
                        "Merge warning: sub-entity will be differently parented.")]
    return []


def _loop(entity: str, target_after: Row, target_id: str, merged: frozenset[str], ctx: PreflightData) -> list[Finding]:
    """Walk up from the target's new parent; a record merged into the target reads as the target."""

    def step(record_id: object) -> str | None:
        if not record_id:
            return None
        return target_id if record_id in merged else str(record_id)

    current = step(target_after.get(PARENT_COLUMN[entity]))
    seen: set[str] = set()
    while current is not None and current not in seen:
        if current == target_id:
            message = ("Merge could create cyclical parenting." if entity == "account"
                       else "Loop exists in the contacts hierarchy.")
            return [Finding("hierarchy_loop", FAIL, message)]
        seen.add(current)
        current = step(ctx.parents.get(current))
    return []


def _cases(target: Row, sub: Row, target_id: str, merged: frozenset[str], ctx: PreflightData) -> list[Finding]:
    column = PARENT_COLUMN["incident"]

    def parent(row: Row) -> object:
        value = row.get(column)
        return target_id if value in merged else value

    found = []
    if parent(target) != parent(sub):
        found.append(Finding("child_cases", FAIL, "Child cases having different parent case can not be merged."))
    children = sum(ctx.child_cases.get(i, 0) for i in (target_id, *merged))
    if children > MAX_CHILD_CASES:
        found.append(Finding("child_cases", FAIL, "A Parent Case cannot have more than 100 child cases. "
                                                  f"Contact your administrator for more details ({children})."))
    return found


def _marketing(entity: str, lists: int) -> list[Finding]:
    if lists <= 0:
        return []
    plural = "list" if lists == 1 else "lists"
    return [Finding(
        "marketing_list", FAIL_IF_MARKETING_PLUGIN,
        f"The subordinate is in {lists} marketing {plural}: with the Dynamics Marketing plugin the merge fails "
        f"('Disassociation cannot be performed between an entity of type list and an entity of type {entity}'); "
        f"remove it from the {plural} and add the target to them, then merge.",
    )]


def would_fail(finding: Finding, *, parenting_checks: bool, marketing_plugin: bool = False) -> bool:
    """Whether a finding predicts a refusal under step 4's settings."""
    return (
        finding.severity == FAIL
        or (finding.severity == FAIL_IF_PARENTING and parenting_checks)
        or (finding.severity == FAIL_IF_MARKETING_PLUGIN and marketing_plugin)
    )


def summarise(findings_per_merge: Iterable[Iterable[Finding]]) -> dict[str, int]:
    """Code -> how many merges have at least one finding with that code, codes in alphabetical order."""
    counts: Counter[str] = Counter()
    for findings in findings_per_merge:
        counts.update({f.code for f in findings})
    return dict(sorted(counts.items()))


# -- building PreflightData from fetched rows (pure) -----------------------------------------------
def count_by(rows: Iterable[Row], column: str, *, distinct: str | None = None) -> dict[str, int]:
    """How many rows per value of `column` (ids lower-cased); with `distinct`, how many distinct values of it."""
    if distinct is None:
        return dict(Counter(str(r[column]).lower() for r in rows if r.get(column)))
    seen: dict[str, set[str]] = {}
    for r in rows:
        if r.get(column) and r.get(distinct):
            seen.setdefault(str(r[column]).lower(), set()).add(str(r[distinct]).lower())
    return {k: len(v) for k, v in seen.items()}


def active_quote_counts(quotes: Iterable[Row]) -> dict[str, int]:
    """Quotes (`_customerid_value`, `statecode`) -> Active (statecode 1) quotes per customer; Draft does not block."""
    return count_by((q for q in quotes if q.get("statecode") == 1), "_customerid_value")


# -- fetching it: `fetch(entity_set, key, ids, select)` reads rows in bulk (annotated); step 3 passes the client's
Fetch = Callable[[str, str, list[str], list[str]], Iterable[Row]]


def gather(entity: str, entity_set: str, primary_id: str, records: Mapping[str, Row], fetch: Fetch) -> PreflightData:
    """Everything the checks read, for all records of the run (targets are chosen later, so: all of them)."""
    return with_parents(gather_by_ids(entity, list(records), fetch), entity, entity_set, primary_id, records, fetch)


def gather_by_ids(entity: str, ids: list[str], fetch: Fetch) -> PreflightData:
    """The checks' data that needs only the records' ids (quotes, list memberships, child cases): step 3 reads
    it while it reads the record files."""
    data = PreflightData()
    if entity in ("account", "contact"):
        quotes = fetch("quotes", "_customerid_value", ids, ["quoteid", "_customerid_value", "statecode"])
        data = replace(data, active_quotes=active_quote_counts(quotes))
    if entity in ("account", "contact", "lead"):
        members = fetch("listmembers", "_entityid_value", ids, ["listmemberid", "_listid_value", "_entityid_value"])
        data = replace(data, list_memberships=count_by(members, "_entityid_value", distinct="_listid_value"))
    if entity == "incident":
        children = fetch("incidents", "_parentcaseid_value", ids, ["incidentid", "_parentcaseid_value"])
        data = replace(data, child_cases=count_by(children, "_parentcaseid_value"))
    return data


def with_parents(data: PreflightData, entity: str, entity_set: str, primary_id: str, records: Mapping[str, Row],
                 fetch: Fetch) -> PreflightData:
    """`data` plus the hierarchy of the records' parents (the loop check), where the table has one."""
    if entity not in ("account", "contact"):
        return data
    return replace(data, parents=parent_chains(entity, entity_set, primary_id, records, fetch))


def parent_chains(entity: str, entity_set: str, primary_id: str, records: Mapping[str, Row],
                  fetch: Fetch) -> dict[str, str | None]:
    """record id -> same-table parent id, for the records and every ancestor up their hierarchy."""
    column = PARENT_COLUMN[entity]
    parents = {str(i).lower(): _same_table_parent(r, column, entity) for i, r in records.items()}
    for _ in range(100):  # hierarchies are shallow; a loop in the data stops here at the latest
        frontier = sorted({p for p in parents.values() if p and p not in parents})
        if not frontier:
            break
        for row in fetch(entity_set, primary_id, frontier, [primary_id, column]):
            parents[str(row[primary_id]).lower()] = _same_table_parent(row, column, entity)
        parents.update({p: None for p in frontier if p not in parents})  # gone from Dataverse
    return parents


def _same_table_parent(row: Row, column: str, entity: str) -> str | None:
    value, table = row.get(column), row.get(column + LOOKUP_TABLE)
    if not value or (table and table != entity):
        return None  # no parent, or one in another table (a contact's account): not part of this hierarchy
    return str(value).lower()
