"""Published duplicate detection rules for a table: read them, and describe them for a person.

Everything a job finds will be merged, so a user must see what the rules match before starting one.
"""

from __future__ import annotations

from dataclasses import dataclass

from dataverse.client import DataverseClient
from dataverse.odata import odata_string

OPERATORS = {
    0: "exact match",
    1: "same first {n} characters",
    2: "same last {n} characters",
    3: "same date",
    4: "same date and time",
    5: "exact match (choice label)",
    6: "exact match (choice value)",
}
STRICT_OPERATORS = frozenset({0, 4, 5, 6})


@dataclass(frozen=True)
class Condition:
    base_attribute: str
    matching_attribute: str
    operator: int
    param: int | None
    ignore_blank: bool


@dataclass(frozen=True)
class Rule:
    rule_id: str
    name: str
    base_entity: str
    matching_entity: str
    case_sensitive: bool
    exclude_inactive: bool
    conditions: tuple[Condition, ...]

    @property
    def strict(self) -> bool:
        return bool(self.conditions) and all(c.operator in STRICT_OPERATORS for c in self.conditions)


def describe(rule: Rule) -> list[str]:
    """Lines a person reads: what the rule matches, and a warning when it is not strict."""
    lines = [f"{rule.name} ({rule.base_entity} against {rule.matching_entity})"]
    one = len(rule.conditions) == 1
    for c in rule.conditions:
        op = OPERATORS.get(c.operator, f"operator {c.operator}").format(n=c.param or "N")
        # A one-condition rule always ignores blanks (Microsoft's duplicate rule reference).
        blanks = "blanks ignored" if (c.ignore_blank or one) else "blank = blank counts as a match"
        lines.append(f"  - {c.base_attribute} vs {c.matching_attribute}: {op}, {blanks}")
    lines.append("  - " + ", ".join([
        "case-sensitive" if rule.case_sensitive else "case-insensitive",
        "inactive records excluded" if rule.exclude_inactive else "inactive records INCLUDED",
    ]))
    if not rule.strict:
        lines.append("  ! Not strict: partial matches (first/last characters or dates) will be merged too.")
    return lines


def published_rules(client: DataverseClient, entity: str) -> list[Rule]:
    """Published rules (statecode 1) whose base table is `entity`, with their conditions."""
    rows = list(client.get_all("duplicaterules", {
        "$select": "duplicateruleid,name,baseentityname,matchingentityname,iscasesensitive,excludeinactiverecords",
        "$filter": f"baseentityname eq {odata_string(entity)} and statecode eq 1",
    }))
    if not rows:
        return []
    by_rule = " or ".join(f"_regardingobjectid_value eq {r['duplicateruleid']}" for r in rows)
    conditions: dict[str, list[Condition]] = {}
    for c in client.get_all("duplicateruleconditions", {
        "$select": "baseattributename,matchingattributename,operatorcode,operatorparam,ignoreblankvalues,"
                   "_regardingobjectid_value",
        "$filter": by_rule,
    }):
        conditions.setdefault(str(c.get("_regardingobjectid_value")), []).append(Condition(
            c.get("baseattributename") or "", c.get("matchingattributename") or "",
            int(c.get("operatorcode") or 0), c.get("operatorparam"), bool(c.get("ignoreblankvalues")),
        ))
    return [
        Rule(r["duplicateruleid"], r.get("name") or "", r.get("baseentityname") or entity,
             r.get("matchingentityname") or entity, bool(r.get("iscasesensitive")),
             bool(r.get("excludeinactiverecords")), tuple(conditions.get(r["duplicateruleid"], [])))
        for r in sorted(rows, key=lambda r: (r.get("name") or "", r["duplicateruleid"]))
    ]
