"""The guard against runaway groups (pure). A too-loose rule can chain hundreds of records into one group
(A = B by e-mail, B = C by phone, ...), and merging them is the costliest mistake this tool can make. So
step 2 flags two kinds of group, with the pairs that joined them and the published rules each pair meets:

- LARGE: more records than a threshold (10 by default);
- SEVERAL_RULES: three or more records that no single rule joins: a chain through different rules.

Step 3 leaves large groups out unless the user allows them. Which rules a pair meets is worked out here from
the two records and the published rules' conditions, as duplicate detection evaluates them (research
emulators.md: conditions ANDed, case-insensitive unless the rule says otherwise, blanks ignored when asked
and always in a one-condition rule).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dataverse.duplicate_rules import Condition, Rule
from dataverse.odata import lookup_column
from runfolder.state import FlaggedGroup, GroupFlag

DEFAULT_MAX_GROUP_SIZE = 10
PAIRS_KEPT = 200  # pairs listed per flagged group (the rest are counted)

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Evidence:
    """A group of three or more records: its pairs and the rules each meets (what a flag is decided from)."""

    group_id: str
    size: int
    joined: tuple[tuple[str, str, tuple[str, ...]], ...]
    chained: bool      # no single rule meets every pair: a chain through different rules


def gather_evidence(groups: Iterable[Sequence[str]], pairs: Iterable[tuple[str, str]],
                    record: Callable[[str], Record], rules: Sequence[Rule]) -> list[Evidence]:
    """The pairs of every group of three or more records, and the rules each pair meets. `record(id)` gives a
    record; only the records of those groups are asked for."""
    member_of: dict[str, int] = {}
    listed = [list(g) for g in groups]
    for n, g in enumerate(listed):
        if len(g) >= 3:
            member_of.update((i, n) for i in g)
    edges: dict[int, list[tuple[str, str]]] = {}
    for a, b in pairs:
        at = member_of.get(a)
        if at is not None and member_of.get(b) == at and a != b:
            edges.setdefault(at, []).append((a, b))
    found = []
    for n, g in enumerate(listed):
        if len(g) < 3:
            continue
        joined = tuple((a, b, tuple(r.name for r in rules if rule_matches(r, record(a), record(b))))
                       for a, b in edges.get(n, []))
        common = set.intersection(*(set(names) for _, _, names in joined)) if joined else set()
        found.append(Evidence(min(g), len(g), joined, bool(len(rules) > 1 and joined and not common)))
    return found


def flag_groups(evidence: Iterable[Evidence], max_size: int = DEFAULT_MAX_GROUP_SIZE) -> list[FlaggedGroup]:
    """The groups to flag under a size threshold (decided again, without reading anything, when it changes)."""
    flagged = []
    for e in evidence:
        flags = tuple(f for f, on in ((GroupFlag.LARGE, e.size > max_size), (GroupFlag.SEVERAL_RULES, e.chained))
                      if on)
        if flags:
            flagged.append(FlaggedGroup(e.group_id, e.size, flags, e.joined[:PAIRS_KEPT], len(e.joined)))
    return flagged


def rule_matches(rule: Rule, a: Record, b: Record) -> bool:
    """Whether duplicate detection would match record `b` to record `a` under `rule`."""
    if not rule.conditions:
        return False
    one = len(rule.conditions) == 1
    return all(_condition(c, a, b, rule.case_sensitive, one) for c in rule.conditions)


def _condition(c: Condition, a: Record, b: Record, case_sensitive: bool, one: bool) -> bool:
    left, right = _value(a, c.base_attribute), _value(b, c.matching_attribute)
    if _blank(left) or _blank(right):
        return _blank(left) and _blank(right) and not (c.ignore_blank or one)
    if isinstance(left, str) and isinstance(right, str):
        if not case_sensitive:
            left, right = left.casefold(), right.casefold()
        n = c.param or 0
        if c.operator == 1:
            return len(left) >= n and len(right) >= n and left[:n] == right[:n]
        if c.operator == 2:
            return len(left) >= n and len(right) >= n and left[-n:] == right[-n:]
        if c.operator in (3, 4):
            return _same_time(left, right, date_only=c.operator == 3)
    return bool(left == right)


def _value(record: Record, attribute: str) -> Any:
    return record.get(attribute, record.get(lookup_column(attribute)))


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _same_time(left: str, right: str, *, date_only: bool) -> bool:
    try:
        a, b = datetime.fromisoformat(left.replace("Z", "+00:00")), datetime.fromisoformat(right.replace("Z", "+00:00"))
    except ValueError:
        return left == right
    return a.date() == b.date() if date_only else a == b
