"""Merge's cascade: the related rows that move from the subordinate to the master.

Which rows move is decided by relationships.py (1:N relationships whose `CascadeConfiguration.Merge` is
`Cascade`, and marketing-list memberships of the N:N `list*_association` relationships). A membership moves,
or is dropped when the master is already in that list (the list's membercount drops by one).

Dataverse runs a merge cascade in the request unless more than 1,000 related rows move and no plug-in is
registered on them; then it moves them in the background, batch by batch ("eventual consistency",
power-platform admin/async-cascading.md). With `options.async_cascade_s` set, a merge that would move more than
`options.async_cascade_threshold` rows answers at once and the rows are re-pointed that many seconds later
(checked at the start of each request, like detection jobs); rows deleted meanwhile are skipped, as the
service's job does. Pending moves live in `store.settings["pending_cascades"]`, so a state file keeps them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .context import Context
from .lists import bump_member_count
from .relationships import merge_cascades, merge_memberships
from .store import Ref, Store

PENDING_KEY = "pending_cascades"


def planned_moves(store: Store, entity: str, sub: Ref) -> list[tuple[str, str, list[str]]]:
    """(table, row id, lookup columns pointing at the subordinate) for every row the cascade re-points."""
    by_table: dict[str, list[str]] = {}
    for rel in merge_cascades(entity):
        by_table.setdefault(rel.referencing_entity, []).append(rel.referencing_attribute)
    moves = []
    for table, attrs in by_table.items():
        hits = {i for attr in attrs for i in store.referencing_ids(table, attr, sub)}  # indexed, not scanned
        hits.discard(sub.id if table == entity else "")
        for row_id in sorted(hits):
            row = store.tables[table][row_id]
            moves.append((table, row_id, [a for a in attrs if row.get(a) == sub]))
    return moves


def move_related(ctx: Context, entity: str, sub: Ref, master: Ref,
                 before_memberships: Callable[[], None] | None = None) -> int:
    """Move (or schedule) the related rows, then the memberships (at once; `before_memberships` runs first:
    the marketing plug-in's hook). Returns how many rows were deferred."""
    store = ctx.store
    moves = planned_moves(store, entity, sub)
    delay = ctx.options.async_cascade_s
    deferred = 0
    if delay is not None and len(moves) > ctx.options.async_cascade_threshold:
        pending = store.settings.setdefault(PENDING_KEY, [])
        pending.append({"due": ctx.clock() + delay, "sub": list(sub), "master": list(master),
                        "rows": [[t, i, a] for t, i, a in moves]})
        deferred = len(moves)
    else:
        _apply(store, moves, sub, master)
    if before_memberships is not None:
        before_memberships()
    _move_memberships(store, entity, sub, master)
    return deferred


def _apply(store: Store, moves: list[Any], sub: Ref, master: Ref) -> None:
    for table, row_id, attrs in moves:
        row = store.tables[table].get(row_id)
        if row is None:
            continue  # deleted meanwhile: the service's job carries on without it
        changes = {a: master for a in attrs if row.get(a) == sub}
        if changes:
            store.update(table, row_id, changes)


def _move_memberships(store: Store, entity: str, sub: Ref, master: Ref) -> None:
    for rel in merge_memberships(entity):
        table = store.tables[rel.intersect_entity]
        attr, list_attr = rel.entity2_attribute, rel.entity1_attribute
        master_lists = {table[i].get(list_attr) for i in store.referencing_ids(rel.intersect_entity, attr, master)}
        for row in [table[i] for i in store.referencing_ids(rel.intersect_entity, attr, sub)]:
            pk = store.schema[rel.intersect_entity].primary_id
            if row.get(list_attr) in master_lists:
                store.delete(rel.intersect_entity, row[pk])
                bump_member_count(store, row.get(list_attr), -1)
            else:
                store.update(rel.intersect_entity, row[pk], {attr: master})
                master_lists.add(row.get(list_attr))


def advance_cascades(store: Store, now: float) -> int:
    """Apply the deferred cascades that are due; returns how many merges finished moving."""
    if not store.settings.get(PENDING_KEY):
        return 0
    done = 0
    with store.lock:
        pending: list[dict[str, Any]] = store.settings[PENDING_KEY]
        for item in [p for p in pending if p["due"] <= now]:
            with store.transaction():
                _apply(store, [tuple(r) for r in item["rows"]], Ref(*item["sub"]), Ref(*item["master"]))
            pending.remove(item)
            done += 1
    return done


def pending_count(store: Store) -> int:
    """Rows still waiting to be re-pointed by deferred cascades."""
    with store.lock:
        return sum(len(p["rows"]) for p in store.settings.get(PENDING_KEY, []))
