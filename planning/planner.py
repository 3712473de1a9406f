"""Planning merges (pure): per group the target, then per subordinate the merge rule's result filtered to
real, writable changes, converted to UpdateContent, with the target as it will be after.

No I/O: everything the planner needs from Dataverse (the table's metadata, the entity set of every table a
lookup may point to, the pre-flight data) is fetched before planning starts and handed in. `plan_all` is
step 3's loop: every group in turn, each subordinate's audit rows handed to a writer as they are planned.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from dataverse import EntityMetadata
from dataverse.odata import FORMATTED, LOOKUP_TABLE, NAV_PROPERTY, is_lookup_column, logical_name, lookup_column
from errors import ResolverError
from planning.audit_files import NAME_SUFFIX, AuditRows
from planning.helpers import is_empty
from planning.preflight import PreflightData, check_merge
from planning.targets import Strategy, parse_when
from runfolder.state import Finding, Group, PlannedMerge, Severity

_LATE = "9999-12-31"
_ABSENT = object()
_dict_get = dict.get

MergeFn = Callable[[dict, dict, list[str]], dict]


class MergeLogicError(ResolverError):
    """The user-edited merge logic raised an exception."""


class AuditSink(Protocol):
    def add(self, rows: AuditRows) -> None: ...


def writable_columns(meta: EntityMetadata, ignore: Iterable[str]) -> frozenset[str]:
    """Row columns UpdateContent may carry: valid for update, not ignored; lookups as `_x_value`."""
    skip = {logical_name(c) for c in ignore}
    return frozenset(
        lookup_column(name) if a.is_lookup else name
        for name, a in meta.attributes.items()
        if a.is_valid_for_update and not a.attribute_of and name not in skip
    )


class Row(dict):
    """A record as the merge logic sees it: column -> value. An empty column may be absent (step 3 keeps
    only the columns with a value, a third of the memory for real records); reading one gives None, with
    `row[col]` and `row.get(col)` alike. A name that is no column of the table raises KeyError either way,
    so a typo (`emailadress1`) shows instead of reading as an empty value."""

    __slots__ = ("columns",)

    def __init__(self, data: Mapping[str, Any], columns: frozenset[str]) -> None:
        super().__init__(data)
        self.columns = columns

    def __missing__(self, key: str) -> None:
        if key in self.columns:
            return None
        raise KeyError(f"{key!r} is not a column of this table")

    def get(self, key: str, default: Any = None) -> Any:
        value = _dict_get(self, key, _ABSENT)
        if value is not _ABSENT:
            return value
        if key in self.columns:
            return default
        raise KeyError(f"{key!r} is not a column of this table")


class _Rec:
    """A record split once into its plain row and its annotations per column."""

    __slots__ = ("row", "notes", "_shown")

    def __init__(self, row: dict[str, Any], notes: dict[str, dict[str, Any]]) -> None:
        self.row, self.notes = row, notes
        self._shown: dict[str, Any] | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> _Rec:
        row: dict[str, Any] = {}
        notes: dict[str, dict[str, Any]] = {}
        for key, value in raw.items():
            if "@" not in key:
                row[key] = value
                continue
            col, _, suffix = key.partition("@")
            if col:
                notes.setdefault(col, {})["@" + suffix] = value
        return cls(row, notes)

    def display(self) -> dict[str, Any]:
        """The row plus `x@name` (the lookup's display name) for the audit view (built once)."""
        if self._shown is None:
            row = self.row
            names = {c + NAME_SUFFIX: n[FORMATTED] for c, n in self.notes.items()
                     if FORMATTED in n and c in row and is_lookup_column(c)}
            self._shown = {**row, **names} if names else row
        return self._shown


class Planner:
    """Plans the merges of groups of one table; holds what every group shares.

    `entity_sets` maps a table to its entity set name (`account` -> `accounts`), for the lookups a rule
    writes; a lookup to a table missing from it is dropped with a warning.
    """

    def __init__(self, meta: EntityMetadata, merge_fn: MergeFn, ignore: Iterable[str],
                 entity_sets: Mapping[str, str], preflight: PreflightData | None) -> None:
        self.meta, self.entity, self.merge_fn = meta, meta.logical_name, merge_fn
        self.writable = writable_columns(meta, ignore)
        self.columns = frozenset(lookup_column(n) if a.is_lookup else n for n, a in meta.attributes.items())
        self.dropped: Counter[str] = Counter()  # columns a rule returned that cannot be written
        self.entity_sets, self.preflight = entity_sets, preflight
        self.odata_type = f"Microsoft.Dynamics.CRM.{meta.logical_name}"

    def plan(self, group_id: str, records: Sequence[Mapping[str, Any]], strategy: Strategy,
             target_id: str | None = None) -> tuple[list[PlannedMerge], list[AuditRows]]:
        """One group's merges. `target_id` fixes the target (a group step 4 has begun merging keeps its
        target when step 3 plans the rest); otherwise `strategy` chooses it."""
        pk, name = self.meta.primary_id, self.meta.primary_name
        ordered = [_as_dict(r) for r in sorted(records, key=lambda r: str(r.get(pk) or ""))]
        if target_id is None:
            target_raw = strategy(ordered)
            target_id = str(target_raw.get(pk))
        else:
            target_raw = next(r for r in ordered if str(r.get(pk)) == target_id)
        subs = sorted((r for r in ordered if str(r.get(pk)) != target_id), key=lambda r: _merge_order(r, pk))
        after = _Rec.parse(target_raw)
        merges: list[PlannedMerge] = []
        audits: list[AuditRows] = []
        absorbed: list[str] = []
        for order, sub_raw in enumerate(subs, start=1):
            sub = _Rec.parse(sub_raw)
            write, update, findings, new_after = self._merge(after, sub)
            sub_id = str(sub.row.get(pk))
            if self.preflight is not None:
                findings += check_merge(self.entity, new_after.row, sub.row, self.preflight, absorbed=absorbed,
                                        target_before=after.row)
            merges.append(PlannedMerge(
                group_id=group_id, order=order, target_id=target_id, subordinate_id=sub_id,
                update_content=update, changed_fields=tuple(logical_name(c) for c in write),
                preflight=tuple(findings), target_modifiedon=target_raw.get("modifiedon"),
                subordinate_modifiedon=sub_raw.get("modifiedon"), target_name=str(target_raw.get(name) or ""),
                subordinate_name=str(sub_raw.get(name) or ""),
            ))
            shown = _Rec(write, {c: new_after.notes[c] for c in write if c in new_after.notes})
            audits.append(AuditRows(sub_id, sub.display(), after.display(), shown.display(), new_after.display()))
            if any(f.severity is Severity.FAIL for f in findings):
                continue  # Dataverse will refuse this merge: later merges must not count on its changes
            absorbed.append(sub_id)
            after = new_after
        return merges, audits

    def _merge(self, after: _Rec, sub: _Rec) -> tuple[dict[str, Any], dict[str, Any], list[Finding], _Rec]:
        """One merge: the rule's result filtered to real changes, as UpdateContent, and the target after it."""
        columns = sorted((after.row.keys() | sub.row.keys()) & self.writable)
        try:  # copies: a rule may scribble on them
            result = self.merge_fn(Row(after.row, self.columns), Row(sub.row, self.columns), columns)
        except Exception as exc:  # noqa: BLE001 - user code: say where it failed, in one line
            raise MergeLogicError(
                f"The merge logic (_create_merge_result) failed for subordinate {sub.row.get(self.meta.primary_id)}: "
                f"{type(exc).__name__}: {exc}.", "Fix prepare_duplicates.py and run step 3 again.") from exc
        write: dict[str, Any] = {}
        update: dict[str, Any] = {"@odata.type": self.odata_type}
        notes: dict[str, dict[str, Any]] = {}
        findings: list[Finding] = []
        for col, value in (result or {}).items():
            if col not in self.writable:
                self.dropped[col] += 1  # reported once in step 3's summary (ignored, read-only, or unknown)
                continue
            if isinstance(value, float) and value != value:  # NaN is pandas' "no value": write nothing
                continue
            old = after.row.get(col)
            if (value == old and type(value) is type(old)) or (is_empty(value) and is_empty(old)):
                continue
            from_sub = sub.row.get(col) == value
            if is_lookup_column(col):
                bind = self._bind(col, value, sub.notes.get(col) if from_sub else None)
                if isinstance(bind, Finding):
                    findings.append(bind)
                    continue
                update[bind[0]] = bind[1]
            else:
                update[col] = value
            write[col] = value
            notes[col] = sub.notes.get(col, {}) if from_sub else {}
        if self.entity == "incident":  # the service ignores UpdateContent when merging cases
            if write:
                findings.append(Finding("update_ignored", Severity.WARN, "Dataverse does not apply UpdateContent "
                                        "when merging cases: " + ", ".join(map(logical_name, write))
                                        + " will not change."))
            return write, update, findings, after
        return write, update, findings, _Rec({**after.row, **write}, {**after.notes, **notes})

    def _bind(self, col: str, value: Any, source: Mapping[str, Any] | None) -> tuple[str, str] | Finding:
        """`_x_value: id` -> (`nav@odata.bind`, `/entityset(id)`), or a warning when that cannot be worked out."""
        attr = logical_name(col)
        if value is None:
            return Finding("lookup_dropped", Severity.WARN, f"{attr}: a merge cannot clear a lookup; not written "
                                                            "(clear it in Dataverse after merging if needed).")
        meta_attr = self.meta.attributes.get(attr)
        targets = meta_attr.targets if meta_attr is not None else ()
        notes = source or {}
        table = notes.get(LOOKUP_TABLE) or (targets[0] if len(targets) == 1 else None)
        entity_set = self.entity_sets.get(table) if table else None
        if not table or not entity_set:
            return Finding("lookup_dropped", Severity.WARN, f"{attr} = {value}: cannot tell which table it points "
                                                            "to; not written.")
        nav = notes.get(NAV_PROPERTY) or (attr if len(targets) <= 1 else f"{attr}_{table}")
        return f"{nav}@odata.bind", f"/{entity_set}({value})"


def plan_all(planner: Planner, groups: Sequence[Group], records: Mapping[str, Mapping[str, Any]],
             strategy: Strategy, audit: AuditSink, targets: Mapping[str, str] | None = None) -> list[PlannedMerge]:
    """Every group through the planner, in order; each subordinate's audit rows go to `audit` as planned.
    `targets`: group id -> a target fixed in advance (see Planner.plan)."""
    merges: list[PlannedMerge] = []
    fixed = targets or {}
    for group in groups:
        planned, audits = planner.plan(group.group_id, [records[i] for i in group.record_ids], strategy,
                                       fixed.get(group.group_id))
        for rows in audits:
            audit.add(rows)
        merges += planned
    return merges


def _as_dict(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record itself when it is a dict (a strategy returns one of the records it was given)."""
    return record if isinstance(record, dict) else dict(record)


def _merge_order(record: Mapping[str, Any], pk: str) -> tuple[bool, str, str]:
    """Subordinates merge oldest first (createdon, then id); one without createdon goes last."""
    when = parse_when(record.get("createdon"))
    return when is None, when.isoformat() if when else _LATE, str(record.get(pk) or "")
