"""Cutting a view into primary-key ranges so that no detection job hits the service's cap.

Pure: ids and boundaries in, ranges and QueryExpression conditions out. A range is half-open,
`lower <= id < upper`, in SQL Server's `uniqueidentifier` order (Dataverse stores tables in SQL Server and
compares GUIDs its way): the bytes of the last group decide first, then the fourth group, then the third,
second and first groups with each group's byte pairs read right to left. `sql_key` maps a GUID to an integer
with that order, `guid_at` maps back, so ranges are cut by integer arithmetic and written as GUIDs.

Why cut where the ids are, not at fixed points: ids Dataverse assigns are sequential (NEWSEQUENTIALID-like:
`d31ba648-c592-ed11-aad1-000d3a993550`, `d41ba648-...` share the last two groups, the most significant ones),
so fixed cuts of the key space (quarters of the last group, say) would put nearly every record in one range.
A capped job's own results show where records with duplicates are: `split` cuts at their quantiles.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

KEY_SPACE = 1 << 128
# (start, end) slices of the canonical GUID text, most significant first (SqlGuid's byte order 10-15, 8-9,
# 6-7, 4-5, 0-3 on .NET's byte layout, whose first three groups are little-endian)
_ORDER = ((24, 36), (19, 23), (16, 18), (14, 16), (11, 13), (9, 11), (6, 8), (4, 6), (2, 4), (0, 2))


def sql_key(guid: str) -> int:
    """A lower-case canonical GUID as an integer that sorts like SQL Server's uniqueidentifier."""
    return int("".join(guid[a:b] for a, b in _ORDER), 16)


def guid_at(key: int) -> str:
    """The GUID whose sql_key is `key` (0 <= key < 2**128)."""
    if not 0 <= key < KEY_SPACE:
        raise ValueError(f"{key} is outside the GUID key space")
    digits = f"{key:032x}"
    chars = [""] * 36
    at = 0
    for a, b in _ORDER:
        chars[a:b] = digits[at:at + b - a]
        at += b - a
    for dash in (8, 13, 18, 23):
        chars[dash] = "-"
    return "".join(chars)


@dataclass(frozen=True)
class KeyRange:
    """Ids with `lower <= id < upper` in SQL Server's order; None = unbounded on that side."""

    lower: str | None = None
    upper: str | None = None

    @property
    def low_key(self) -> int:
        return 0 if self.lower is None else sql_key(self.lower)

    @property
    def high_key(self) -> int:
        return KEY_SPACE if self.upper is None else sql_key(self.upper)

    def __contains__(self, guid: object) -> bool:
        return isinstance(guid, str) and self.low_key <= sql_key(guid) < self.high_key

    def label(self) -> str:
        """`[lower, upper)` for people and logs."""
        return f"[{self.lower or 'start'}, {self.upper or 'end'})"


WHOLE = KeyRange()


def _range(low: int, high: int) -> KeyRange:
    return KeyRange(None if low == 0 else guid_at(low), None if high == KEY_SPACE else guid_at(high))


def split(part: KeyRange, found: Iterable[str], parts: int) -> list[KeyRange]:
    """`part` cut into up to `parts` ranges holding about as many of the `found` ids each.

    `found` are the records with duplicates a capped job reported for `part`; the cuts are at their
    quantiles, so where they are a fair sample of the range's duplicates every piece gets about
    1/parts of them. Without two distinct ids to cut between, the range is halved. Always at least two
    pieces that together cover `part` exactly; ValueError for a range of one key (it cannot be cut).
    """
    low, high = part.low_key, part.high_key
    if high - low < 2:
        raise ValueError(f"the key range {part.label()} holds a single id and cannot be split")
    keys = sorted({k for k in map(sql_key, found) if low <= k < high})
    cuts: list[int] = []
    if len(keys) >= 2:
        # the j-th cut is the first id of the j-th piece; the first piece starts at `low` and holds keys[0]
        n = len(keys)
        cuts = sorted({keys[min(n - 1, max(1, round(j * n / parts)))] for j in range(1, max(2, parts))})
        cuts = [c for c in cuts if low < c < high]
    if not cuts:
        cuts = [(low + high) // 2]
    bounds = [low, *cuts, high]
    return [_range(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]


def covers_exactly(ranges: Sequence[KeyRange], whole: KeyRange = WHOLE) -> bool:
    """True when the ranges, in order, tile `whole` with no gap and no overlap."""
    edge = whole.low_key
    for r in ranges:
        if r.low_key != edge or r.high_key <= r.low_key:
            return False
        edge = r.high_key
    return edge == whole.high_key


def conditions(part: KeyRange, primary_id: str) -> list[dict[str, Any]]:
    """The QueryExpression conditions that keep the ids of `part` (none for the whole key space)."""
    out = []
    for op, value in (("GreaterEqual", part.lower), ("LessThan", part.upper)):
        if value is not None:
            out.append({"AttributeName": primary_id, "Operator": op,
                        "Values": [{"Value": value, "Type": "System.Guid"}]})
    return out


def restrict(query: dict[str, Any], part: KeyRange, primary_id: str) -> dict[str, Any]:
    """The view's QueryExpression with `part`'s conditions ANDed on (the view's own criteria nested
    unchanged, so an Or at its top stays an Or); the query itself is not modified."""
    extra = conditions(part, primary_id)
    if not extra:
        return dict(query)
    view = query.get("Criteria") or {"FilterOperator": "And", "Conditions": [], "Filters": []}
    partition = {"FilterOperator": "And", "Conditions": extra, "Filters": []}
    return {**query, "Criteria": {"FilterOperator": "And", "Conditions": [], "Filters": [view, partition]}}
