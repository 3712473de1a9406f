"""Entity references in function and action parameters, as the Web API accepts them: by key
(`{"@odata.type": "Microsoft.Dynamics.CRM.contact", "contactid": "..."}`) or by `@odata.id`
(`{"@odata.id": "contacts(...)"}`, also an absolute URL or an alternate key: `contacts(emailaddress1='x')`).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from . import keys
from .errors import bad_request, not_found
from .schema import BY_SET_NAME, SCHEMA, Entity
from .store import Store

_ID = re.compile(r"(?:^|/)([A-Za-z_][A-Za-z0-9_]*)\((.+)\)$")
NS = "Microsoft.Dynamics.CRM."


def resolve_odata_id(store: Store, value: str) -> tuple[Entity, str]:
    """`contacts(ID)` (relative or absolute, or by alternate key) -> (table, record id); 404 when missing."""
    m = _ID.search(value.split("?", 1)[0])
    meta = BY_SET_NAME.get(m.group(1)) if m else None
    if m is None or meta is None:
        raise bad_request(f"'{value}' is not a reference to a record (expected 'contacts(00000000-...)').")
    key = m.group(2).strip()
    try:
        return meta, str(uuid.UUID(key.strip("{}")))
    except ValueError:
        pass
    found = keys.find_by_key(store, meta, keys.parse_key_segment(meta, key))
    if found is None:
        raise keys.not_found_by_key(meta.name)
    return meta, found


def entity_of(value: dict[str, Any], label: str) -> Entity:
    kind = str(value.get("@odata.type") or "").lstrip("#")
    if not kind.startswith(NS) or kind[len(NS):].lower() not in SCHEMA:
        raise bad_request(f"{label} needs an @odata.type like 'Microsoft.Dynamics.CRM.contact' or an @odata.id.",
                          "0x80040203")
    return SCHEMA[kind[len(NS):].lower()]


def resolve(store: Store, value: Any, label: str) -> tuple[Entity, dict[str, Any] | None, dict[str, Any]]:
    """(table, stored record or None when no id was given, the other columns the parameter carries)."""
    if not isinstance(value, dict):
        raise bad_request(f"The {label} parameter must be an entity object (@odata.type and key, or @odata.id).",
                          "0x80040203")
    if "@odata.id" in value:
        meta, rid = resolve_odata_id(store, str(value["@odata.id"]))
    else:
        meta = entity_of(value, label)
        raw = value.get(meta.primary_id)
        rid = str(raw).strip("{}").lower() if raw else ""
    columns = {k: v for k, v in value.items() if "@" not in k and k in meta.attrs and k != meta.primary_id}
    if not rid:
        return meta, None, columns
    with store.lock:
        stored = store.get(meta.name, rid)
    if stored is None:
        raise not_found(meta.name, rid)
    return meta, stored, columns


def typed(store: Store, value: Any) -> Any:
    """An `{"@odata.id": ...}` reference rewritten as `{"@odata.type": ..., "<pk>": id}` (other values as given),
    for operations that read entity parameters by type and key."""
    if not isinstance(value, dict) or "@odata.id" not in value:
        return value
    meta, rid = resolve_odata_id(store, str(value["@odata.id"]))
    rest = {k: v for k, v in value.items() if k != "@odata.id"}
    return {**rest, "@odata.type": f"{NS}{meta.name}", meta.primary_id: rid}
