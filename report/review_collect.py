"""What review.html needs of each planned merge, collected while step 3 plans.

`ReviewCollector` sits between the planner and the audit writer (it passes every merge's `AuditRows` on) and
keeps a compact copy of each merge's four views (`MergeDetail`): the columns with a value in any of them, the
subordinate's and the target's values, what the merge writes and the target after it (only where it differs
from the target), every value as the text the audit CSV shows. Each is kept as its HTML-safe JSON text, column
names as positions in one shared table: about 1.5 KB per merge, and no objects for the planner's
garbage collector to walk. A run of 100,000 merges must neither be held twice in memory nor make a page no
browser opens: the values of the first `DETAIL_LIMIT` merges are kept; later ones keep their e-mails (for
the page's search) and the page lists them with a link to their audit CSV.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from markupsafe import Markup

from planning.audit_files import AuditRows, AuditWriter, audit_columns

DETAIL_LIMIT = 20_000


@dataclass(frozen=True)
class MergeDetail:
    """One merge's four views, compact: values aligned with `columns` (None: no value); `writes` and `after`
    map a position in `columns` to the value written / the target's value after the merge where it changes."""

    columns: tuple[str, ...]
    subordinate: tuple[str | None, ...]
    target: tuple[str | None, ...]
    writes: dict[int, str | None]
    after: dict[int, str | None]


class Names:
    """A table of names, each written once in the page; the data refers to them by position."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, name: str) -> int:
        index = self.index
        found = index.get(name)
        return found if found is not None else index.setdefault(name, len(index))

    def names(self) -> list[str]:
        return list(self.index)


class ReviewCollector:
    """An audit sink (planning.planner.AuditSink) that keeps what the review page needs and hands every merge's
    rows on to `sink` (the audit writer). `first`: the columns listed first and always shown (primary id and
    name)."""

    def __init__(self, sink: AuditWriter | None = None, first: Sequence[str] = (), *,
                 limit: int = DETAIL_LIMIT) -> None:
        self._sink = sink
        self.first, self.limit = tuple(first), limit
        self.columns = Names()
        self.details: dict[str, Markup] = {}          # subordinate id -> its detail as HTML-safe JSON
        self.emails: dict[str, tuple[str, ...]] = {}  # subordinate id -> e-mails, for merges without detail
        self.omitted = 0                              # merges whose values are not kept (beyond the limit)
        for column in self.first:
            self.columns(column)

    def add(self, rows: AuditRows) -> None:
        columns = audit_columns(rows, self.first)  # once for both: the audit file and the page
        if self._sink is not None:
            self._sink.add(rows, columns)
        self.keep(rows, columns)

    def keep(self, rows: AuditRows, columns: Sequence[str]) -> None:
        """Keep what the page needs of one merge (`columns`: its `audit_columns(rows, first)`)."""
        if len(self.details) < self.limit:
            self.details[rows.subordinate_id] = detail_json(compact(rows, self.first, columns), self.columns)
            return
        self.omitted += 1
        found = emails(rows)
        if found:
            self.emails[rows.subordinate_id] = found


def shown(value: Any) -> str | None:
    """A value as the audit CSV shows it (without its spreadsheet-formula guard: a page runs no formulas)."""
    kind = type(value)
    if kind is str:  # the common case first: this runs for every cell of every merge
        return value or None
    if value is None:
        return None
    if kind is bool:
        return "True" if value else "False"
    if kind is int or kind is float:
        return str(value)
    if isinstance(value, str):
        return value or None
    return json.dumps(value, ensure_ascii=False)


def compact(rows: AuditRows, first: Sequence[str] = (), columns: Sequence[str] | None = None) -> MergeDetail:
    """One merge's `MergeDetail` (the columns in the audit CSV's order: `audit_columns(rows, first)`, passed in
    when the caller has them)."""
    columns = tuple(audit_columns(rows, first) if columns is None else columns)
    target = tuple(map(shown, map(rows.target.get, columns)))
    after_values = map(shown, map(rows.target_after_merge.get, columns))
    writes = rows.merge_function
    return MergeDetail(
        columns, tuple(map(shown, map(rows.subordinate.get, columns))), target,
        {i: shown(writes[c]) for i, c in enumerate(columns) if c in writes},
        {i: v for i, (v, t) in enumerate(zip(after_values, target, strict=True)) if v != t})


def detail_json(detail: MergeDetail, columns: Names) -> Markup:
    """The detail as the page's script reads it ({c: column positions, s, t: values, w, a: position -> value}),
    as JSON that is safe inside a script element (`<`, `>`, `&`, `'` escaped, as Jinja2's tojson does)."""
    data = {"c": list(map(columns, detail.columns)), "s": detail.subordinate, "t": detail.target,
            "w": detail.writes, "a": detail.after}
    text = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode()
    # escaped as Jinja2's htmlsafe_json_dumps (its tojson filter) escapes, so it is safe inside a script element
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
                  .replace("'", "\\u0027"))


def emails(rows: AuditRows) -> tuple[str, ...]:
    """The e-mail addresses in the subordinate's and the target's columns (for the page's search)."""
    found: list[str] = []
    for view in (rows.subordinate, rows.target):
        found += [v for k, v in view.items() if "email" in k and isinstance(v, str) and "@" in v]
    return tuple(dict.fromkeys(found))
