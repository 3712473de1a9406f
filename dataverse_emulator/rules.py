"""Duplicate detection rules: loading published rules, match keys, and publishing.

A rule (`duplicaterule`) with its conditions (`duplicaterulecondition`, `regardingobjectid` -> rule) says
when a base record and a matching record are duplicates: every condition holds (AND). Each condition
compares the base record's `baseattributename` with the matching record's `matchingattributename`:
operatorcode 0 exact, 1 same first N characters, 2 same last N (N = operatorparam), 3 same date, 4 same
date and time, 5/6 pick-list label/value (exact). Text compares case-insensitively unless the rule is
`iscasesensitive`. A blank value (None or "") never matches when the condition ignores blanks
(`ignoreblankvalues`, always true in a one-condition rule); otherwise blank equals blank.

Instead of comparing pairs, each record gets a match key per rule (a tuple of normalised condition
values; first/last-N truncate), so "a matches b" is "key(a) == key(b)" and a job can index a table once.
This mirrors the service's match codes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import ServiceError, not_found
from .schema import SCHEMA
from .store import Ref, Store, new_id, now_iso

PUBLISHED = (1, 2)      # statecode Active, statuscode Published
UNPUBLISHED = (0, 0)    # statecode Inactive, statuscode Unpublished
MAX_PUBLISHED = 5
BLANK = object()        # a blank value in a key when blanks count as equal

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Condition:
    base_attr: str
    match_attr: str
    operator: int
    param: int
    ignore_blank: bool


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    base: str
    matching: str
    case_sensitive: bool
    exclude_inactive: bool
    conditions: tuple[Condition, ...]

    def key(self, record: dict[str, Any], side: str) -> Key | None:
        """The record's match key under this rule (side "base" or "match"); None when it can match nothing."""
        parts = []
        for cond in self.conditions:
            value = record.get(cond.base_attr if side == "base" else cond.match_attr)
            part = normalise(value, cond.operator, cond.param, self.case_sensitive)
            if part is None:
                if cond.ignore_blank:
                    return None
                part = BLANK
            parts.append(part)
        return tuple(parts)

    def candidate(self, record: dict[str, Any]) -> bool:
        """Whether a matching-table record may be flagged (exclude inactive records)."""
        if not self.exclude_inactive:
            return True
        return record.get("statecode", 0) in SCHEMA[self.matching].active_states


def normalise(value: Any, operator: int, param: int, case_sensitive: bool) -> Any:
    """The comparable part of one value for one condition; None for a blank value."""
    if value is None or value == "":
        return None
    if isinstance(value, Ref):
        return value.id
    if isinstance(value, bool):
        return value
    text = str(value)
    if operator == 3:
        return text[:10]
    if operator == 4:
        return text[:19]
    if not case_sensitive:
        text = text.lower()
    if operator == 1:
        return text[:param] if param > 0 else text
    if operator == 2:
        return text[-param:] if param > 0 else text
    return text


def load_rule(store: Store, rule_id: str) -> Rule:
    with store.lock:
        row = store.get("duplicaterule", rule_id)
        if row is None:
            raise not_found("duplicaterule", rule_id)
        return _build(row, _conditions_by_rule(store).get(row["duplicateruleid"], []))


def published_rules(store: Store, base: str | None = None, matching: str | None = None) -> list[Rule]:
    """Published rules, optionally for one base and/or matching table, in creation order."""
    with store.lock:
        rows = [r for r in store.rows("duplicaterule") if (r.get("statecode"), r.get("statuscode")) == PUBLISHED]
        conds = _conditions_by_rule(store)
    rows.sort(key=lambda r: (r.get("createdon") or "", r["duplicateruleid"]))
    rules = [_build(r, conds.get(r["duplicateruleid"], [])) for r in rows]
    return [
        r for r in rules
        if r.conditions and (base is None or r.base == base) and (matching is None or r.matching == matching)
    ]


def _conditions_by_rule(store: Store) -> dict[str, list[dict[str, Any]]]:
    by_rule: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for cond in store.rows("duplicaterulecondition"):
        ref = cond.get("regardingobjectid")
        if isinstance(ref, Ref):
            by_rule[ref.id].append(cond)
    return by_rule


def _build(row: dict[str, Any], conds: Iterable[dict[str, Any]]) -> Rule:
    conds = sorted(conds, key=lambda c: (c.get("createdon") or "", c["duplicateruleconditionid"]))
    single = len(conds) == 1
    return Rule(
        id=row["duplicateruleid"], name=row.get("name") or "",
        base=(row.get("baseentityname") or "").lower(), matching=(row.get("matchingentityname") or "").lower(),
        case_sensitive=bool(row.get("iscasesensitive")), exclude_inactive=bool(row.get("excludeinactiverecords")),
        conditions=tuple(
            Condition(
                base_attr=c.get("baseattributename") or "",
                match_attr=c.get("matchingattributename") or c.get("baseattributename") or "",
                operator=int(c.get("operatorcode") or 0), param=int(c.get("operatorparam") or 0),
                ignore_blank=single or bool(c.get("ignoreblankvalues")),
            )
            for c in conds
        ),
    )


def publish_rule(store: Store, rule_id: str, caller_id: str) -> str:
    """Publish a rule at once (the service does it in a background job); returns that job's id."""
    with store.transaction():
        rule = load_rule(store, rule_id)
        if not rule.conditions:
            raise ServiceError(400, "0x80040203", "The duplicate detection rule has no conditions. "
                               "Add at least one condition before publishing it.")
        _check_rule_tables(rule)
        others = [r for r in published_rules(store, base=rule.base) if r.id != rule.id]
        if len(others) >= MAX_PUBLISHED:
            raise ServiceError(
                400, "0x80040203",
                f"You can't publish more than {MAX_PUBLISHED} duplicate detection rules for the "
                f"'{rule.base}' record type. Unpublish a rule first.",
            )
        store.update("duplicaterule", rule.id, {"statecode": PUBLISHED[0], "statuscode": PUBLISHED[1]})
        stamp = now_iso()
        return store.insert("asyncoperation", {
            "asyncoperationid": new_id(), "name": f"Publishing duplicate detection rule {rule.name}",
            "operationtype": 7, "statecode": 3, "statuscode": 30, "startedon": stamp, "completedon": stamp,
            "ownerid": Ref("systemuser", caller_id) if caller_id else None,
        })


def unpublish_rule(store: Store, rule_id: str) -> None:
    with store.transaction():
        load_rule(store, rule_id)
        store.update("duplicaterule", rule_id, {"statecode": UNPUBLISHED[0], "statuscode": UNPUBLISHED[1]})


def _check_rule_tables(rule: Rule) -> None:
    for table, attrs in ((rule.base, [c.base_attr for c in rule.conditions]),
                         (rule.matching, [c.match_attr for c in rule.conditions])):
        meta = SCHEMA.get(table)
        if meta is None:
            raise ServiceError(400, "0x80040203", f"The record type '{table}' does not support duplicate detection.")
        for attr in attrs:
            if attr not in meta.attrs:
                raise ServiceError(400, "0x80040203", f"The attribute '{attr}' does not exist on '{table}'.")
