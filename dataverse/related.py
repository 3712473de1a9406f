"""The related rows a Merge moves from the subordinate to the target, as the metadata describes them.

Which: the table's one-to-many relationships whose `CascadeConfiguration.Merge` is `Cascade` (each
polymorphic lookup, such as `regardingobjectid`, appears once per target table with its own navigation
property, e.g. `regardingobjectid_contact_task`), and marketing-list memberships (`listmember`): Merge moves a
membership, or drops it when the target is already in that list. A real org has dozens of such relationships,
most on empty tables: one `$top=1` read per table tells which have rows at all (exact, where
RetrieveTotalRecordCount answers from a snapshot up to a day old); a table the user may not read is skipped
and named. Rows are then read in bulk (`Microsoft.Dynamics.CRM.In` over the record ids).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from dataverse.client import DataverseClient
from dataverse.odata import lookup_column, odata_string
from errors import DataverseError, NotFoundError

log = logging.getLogger(__name__)

MEMBERSHIP = "listmember"           # the intersect table of marketing-list memberships
_MEMBER_TABLES = frozenset({"account", "contact", "lead"})


@dataclass(frozen=True)
class Cascade:
    """One relationship whose rows a merge re-points from the subordinate to the target."""

    schema_name: str
    table: str              # the referencing table (task)
    column: str             # its lookup (regardingobjectid)
    nav: str                # the lookup's navigation property for this target type (regardingobjectid_contact_task)
    entity_set: str         # tasks
    primary_id: str         # activityid

    @property
    def lookup(self) -> str:
        """The column as the Web API reads it (`_regardingobjectid_value`)."""
        return lookup_column(self.column)


@dataclass(frozen=True)
class MergeRelationships:
    """Everything a merge of this table moves, as far as the user may read it."""

    entity: str
    cascades: tuple[Cascade, ...]
    memberships: bool                          # marketing-list memberships move too
    skipped: tuple[str, ...] = ()              # sentences: tables that could not be read (no privilege)
    empty_tables: tuple[str, ...] = field(default=(), compare=False)


def merge_relationships(client: DataverseClient, entity: str, *, skip_empty: bool = True) -> MergeRelationships:
    """The relationships a merge of `entity` cascades over, without those on unreadable tables (and, unless
    told otherwise, those on empty ones)."""
    rows = client.get(f"EntityDefinitions(LogicalName={odata_string(entity)})/OneToManyRelationships", {
        "$select": "SchemaName,ReferencingEntity,ReferencingAttribute,ReferencingEntityNavigationPropertyName,"
                   "CascadeConfiguration"}).get("value", [])
    tables = client.table_names()
    cascades: list[Cascade] = []
    skipped: list[str] = []
    empty: list[str] = []
    state: dict[str, bool | None] = {}      # table -> has rows (None: cannot be read)
    for r in rows:
        if str((r.get("CascadeConfiguration") or {}).get("Merge")) != "Cascade":
            continue
        table = str(r["ReferencingEntity"])
        if table not in tables:
            continue
        if table not in state:
            state[table] = _has_rows(client, tables[table]) if skip_empty else True
            if state[table] is None:
                skipped.append(f"{table}: not readable with your privileges, so its rows are not counted or "
                               "snapshotted (a merge still moves them; undo cannot move them back)")
            elif not state[table]:
                empty.append(table)
        if state[table]:
            set_name, pk = tables[table]
            cascades.append(Cascade(str(r["SchemaName"]), table, str(r["ReferencingAttribute"]),
                                    str(r.get("ReferencingEntityNavigationPropertyName") or r["ReferencingAttribute"]),
                                    set_name, pk))
    members = entity in _MEMBER_TABLES and MEMBERSHIP in tables and _has_rows(client, tables[MEMBERSHIP]) is True
    log.info("merge cascade of %s: %d relationships with rows, %d empty tables, %d skipped", entity, len(cascades),
             len(empty), len(skipped))
    return MergeRelationships(entity, tuple(cascades), members, tuple(skipped), tuple(empty))


def _has_rows(client: DataverseClient, table: tuple[str, str]) -> bool | None:
    set_name, pk = table
    try:
        return bool(client.get(set_name, {"$select": pk, "$top": "1"}).get("value"))
    except NotFoundError:
        return False
    except DataverseError as exc:
        if exc.status in (401, 403):
            return None
        raise


def related_rows(client: DataverseClient, relationships: MergeRelationships,
                 record_ids: Iterable[str]) -> dict[str, dict[str, list[str]]]:
    """record id -> relationship schema name -> ids of the rows that point at it (only non-empty ones)."""
    ids = list(dict.fromkeys(record_ids))
    found: dict[str, dict[str, list[str]]] = {}
    if not ids:
        return found
    for c in relationships.cascades:
        for row in client.get_many(c.entity_set, c.lookup, ids, [c.primary_id, c.lookup]):
            owner = str(row.get(c.lookup) or "").lower()
            if owner and not (c.table == relationships.entity and str(row[c.primary_id]).lower() == owner):
                found.setdefault(owner, {}).setdefault(c.schema_name, []).append(str(row[c.primary_id]).lower())
    return found


def list_memberships(client: DataverseClient, record_ids: Iterable[str]) -> dict[str, list[str]]:
    """record id -> the marketing lists it is a member of."""
    found: dict[str, list[str]] = {}
    for row in client.get_many("listmembers", "_entityid_value", list(dict.fromkeys(record_ids)),
                               ["listmemberid", "_listid_value", "_entityid_value"]):
        owner, list_id = str(row.get("_entityid_value") or "").lower(), str(row.get("_listid_value") or "").lower()
        if owner and list_id:
            found.setdefault(owner, []).append(list_id)
    return found


def counts(relationships: MergeRelationships, rows: dict[str, list[str]], lists: list[str]) -> dict[str, int]:
    """One record's related rows per table (`task: 3`), memberships as `listmember`."""
    by_schema = {c.schema_name: c.table for c in relationships.cascades}
    out: dict[str, int] = {}
    for schema, ids in rows.items():
        out[by_schema[schema]] = out.get(by_schema[schema], 0) + len(ids)
    if lists:
        out[MEMBERSHIP] = len(lists)
    return dict(sorted(out.items()))
