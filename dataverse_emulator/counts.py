"""`RetrieveTotalRecordCount(EntityNames=@p)?@p=["task","incident"]`: row counts per table, answered as
`{"EntityRecordCountCollection": {"Count", "IsReadOnly", "Keys", "Values"}}` (RetrieveTotalRecordCountResponse).

The service answers from a snapshot "within last 24 hours" (Microsoft's RetrieveTotalRecordCountRequest
description), not a live count: rows added since can be missing. The emulator takes a snapshot when it starts
and again when the last one is older than `options.count_snapshot_s` (0: live counts).
"""

from __future__ import annotations

from typing import Any

from .context import Context
from .errors import bad_request
from .schema import SCHEMA
from .store import Store

SNAPSHOT_KEY = "record-count-snapshot"


def take_snapshot(store: Store, now: float) -> None:
    with store.lock:
        store.derived[SNAPSHOT_KEY] = (now, {name: len(rows) for name, rows in store.tables.items()})


def _counts(ctx: Context) -> dict[str, int]:
    store, now = ctx.store, ctx.clock()
    with store.lock:
        snap = store.derived.get(SNAPSHOT_KEY)
        if snap is None or now - snap[0] >= ctx.options.count_snapshot_s:
            take_snapshot(store, now)
            snap = store.derived[SNAPSHOT_KEY]
        return dict(snap[1])


def retrieve_total_record_count(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    names = params.get("EntityNames")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise bad_request("EntityNames must be a non-empty array of table logical names, e.g. "
                          "RetrieveTotalRecordCount(EntityNames=@p)?@p=[\"contact\"].", "0x80040203")
    unknown = [n for n in names if n.lower() not in SCHEMA]
    if unknown:
        raise bad_request(f"The entity with a name = '{unknown[0]}' with namemapping = 'Logical' was not found in "
                          "the MetadataCache.", "0x80041102")
    counts = _counts(ctx)
    keys = [n.lower() for n in names]
    return {
        "@odata.context": f"{ctx.api_url}$metadata#Microsoft.Dynamics.CRM.RetrieveTotalRecordCountResponse",
        "EntityRecordCountCollection": {"Count": len(keys), "IsReadOnly": False, "Keys": keys,
                                        "Values": [counts.get(k, 0) for k in keys]},
    }
