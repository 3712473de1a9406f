"""Alternate keys: their definitions (`EntityDefinitions(LogicalName='x')/Keys`), addressing records by them
(`contacts(emailaddress1='a@b.c')`) and the uniqueness they enforce.

Keys are org customisations, kept in `store.settings["entity_keys"]` (so a state file keeps them); no table
has one out of the box. Creating a key checks the existing rows at once (the service builds the index in a
background job): duplicates make its `EntityKeyIndexStatus` `Failed`, and only `Active` keys address records
or refuse duplicates. Errors:
- a key segment naming columns that are no defined key: 400 0x80060888 (wording is the emulator's);
- no record with those values: 404 0x80060891 "A record with the specified key values does not exist in
  {entity} entity" (RecordNotFoundByEntityKey);
- a write that would duplicate an active key's values: 412 0x80060892 (DuplicateRecordEntityKey).
"""

from __future__ import annotations

import uuid
from typing import Any

from .errors import ServiceError, bad_request
from .model import Entity
from .prepass import parse_literal
from .store import Ref, Store
from .urlparts import split_args

SETTINGS_KEY = "entity_keys"
NOT_FOUND_CODE = "0x80060891"
DUPLICATE_CODE = "0x80060892"


def definitions(store: Store, entity: str) -> list[dict[str, Any]]:
    with store.lock:
        return list(store.settings.get(SETTINGS_KEY, {}).get(entity, []))


def _value_key(value: Any) -> Any:
    if isinstance(value, Ref):
        return value.id
    return value.casefold() if isinstance(value, str) else value


def _duplicates(store: Store, meta: Entity, columns: list[str]) -> bool:
    seen: set[tuple[Any, ...]] = set()
    for row in store.rows(meta.name):
        values = tuple(_value_key(row.get(c)) for c in columns)
        if any(v is None for v in values):
            continue
        if values in seen:
            return True
        seen.add(values)
    return False


def create_key(store: Store, meta: Entity, body: Any) -> dict[str, Any]:
    """POST EntityDefinitions(LogicalName='x')/Keys with an EntityKeyMetadata body."""
    if not isinstance(body, dict) or not isinstance(body.get("SchemaName"), str):
        raise bad_request("An EntityKeyMetadata needs a SchemaName and KeyAttributes.")
    columns = body.get("KeyAttributes")
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
        raise bad_request("KeyAttributes must be a non-empty list of column logical names.")
    columns = [c.lower() for c in columns]
    for name in columns:
        attr = meta.attrs.get(name)
        if attr is None:
            raise bad_request(f"The column '{name}' does not exist on '{meta.name}'.")
        if attr.type not in ("String", "Integer", "Decimal", "DateTime", "Lookup", "Picklist", "Uniqueidentifier"):
            raise bad_request(f"The column '{name}' of type {attr.type} cannot be part of an alternate key.")
    with store.lock:
        keys = store.settings.setdefault(SETTINGS_KEY, {}).setdefault(meta.name, [])
        if any(k["SchemaName"].lower() == body["SchemaName"].lower() for k in keys):
            raise ServiceError(400, "0x80060888", f"An alternate key named '{body['SchemaName']}' already exists.")
        key = {"MetadataId": str(uuid.uuid4()), "SchemaName": body["SchemaName"],
               "LogicalName": body["SchemaName"].lower(), "EntityLogicalName": meta.name,
               "KeyAttributes": columns,
               "EntityKeyIndexStatus": "Failed" if _duplicates(store, meta, columns) else "Active",
               "DisplayName": body.get("DisplayName") or _label(body["SchemaName"]), "IsManaged": False,
               "IsCustomizable": {"Value": True, "CanBeChanged": True,
                                  "ManagedPropertyLogicalName": "iscustomizable"},
               "IsSecondaryKey": False, "IsExportKey": False, "IsSynchronous": False, "HasChanged": None}
        keys.append(key)
        return key


def _label(text: str) -> dict[str, Any]:
    label = {"Label": text, "LanguageCode": 1033}
    return {"LocalizedLabels": [label], "UserLocalizedLabel": label}


def delete_key(store: Store, entity: str, key_id: str) -> None:
    with store.lock:
        keys = store.settings.get(SETTINGS_KEY, {}).get(entity, [])
        found = [k for k in keys if k["MetadataId"] == key_id.lower()]
        if not found:
            raise ServiceError(404, "0x80040217", f"Could not find an entity key with MetadataId '{key_id}'.")
        keys.remove(found[0])


def parse_key_segment(meta: Entity, text: str) -> dict[str, Any]:
    """`emailaddress1='a',x=1` -> {"emailaddress1": "a", "x": 1} (values as literals)."""
    out: dict[str, Any] = {}
    for part in split_args(text):
        name, eq, raw = part.partition("=")
        if not eq:
            raise bad_request(f"The key '{text}' of '{meta.set_name}' is neither a GUID nor name=value pairs.")
        out[name.strip().lower()] = parse_literal(raw)
    return out


def _active_key(store: Store, meta: Entity, columns: set[str]) -> dict[str, Any]:
    for key in definitions(store, meta.name):
        if set(key["KeyAttributes"]) == columns:
            if key["EntityKeyIndexStatus"] != "Active":
                raise bad_request(f"The alternate key '{key['SchemaName']}' of '{meta.name}' is not active "
                                  f"(EntityKeyIndexStatus {key['EntityKeyIndexStatus']}).")
            return key
    raise bad_request(f"No alternate key of '{meta.name}' has the columns {sorted(columns)}; define one "
                      f"(EntityDefinitions(LogicalName='{meta.name}')/Keys) before addressing records by it.")


def find_by_key(store: Store, meta: Entity, values: dict[str, Any]) -> str | None:
    """The id of the record with these key values (the key must be defined and active), or None."""
    _active_key(store, meta, set(values))
    wanted = {c: _value_key(v) for c, v in values.items()}
    for row in store.rows(meta.name):
        if all(_value_key(row.get(c)) == v for c, v in wanted.items()):
            return str(row[meta.primary_id])
    return None


def not_found_by_key(entity: str) -> ServiceError:
    return ServiceError(404, NOT_FOUND_CODE, f"A record with the specified key values does not exist in {entity} "
                        "entity")


def check_unique(store: Store, meta: Entity, record: dict[str, Any], record_id: str) -> None:
    """Refuse a write that gives this record the same values as another for an active key."""
    for key in definitions(store, meta.name):
        if key["EntityKeyIndexStatus"] != "Active":
            continue
        values = tuple(_value_key(record.get(c)) for c in key["KeyAttributes"])
        if any(v is None for v in values):
            continue
        for row in store.rows(meta.name):
            if row[meta.primary_id] != record_id and tuple(
                    _value_key(row.get(c)) for c in key["KeyAttributes"]) == values:
                shown = ",".join(str(record.get(c)) for c in key["KeyAttributes"])
                raise ServiceError(412, DUPLICATE_CODE, f"A record that has the attribute values {shown} already "
                                   f"exists. The entity key {key['SchemaName']} requires that this set of "
                                   "attributes contains unique values.")
