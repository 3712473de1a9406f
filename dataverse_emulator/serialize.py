"""Records in and out of the Web API's JSON shape.

`record_to_json` turns a store record into what `GET contacts(id)` answers (lookups as `_x_value`, annotations
when asked); `parse_write_body` turns a create/update body into store values, refusing what Dataverse refuses
(unknown or read-only columns, `_x_value` in a write, bad `@odata.bind`, wrong types). Callers hold store.lock.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from . import schema as S
from .errors import ServiceError, bad_request, not_found
from .schema import SCHEMA, Attr, Entity
from .store import Ref, Store

NS = "Microsoft.Dynamics.CRM"
FORMATTED = "@OData.Community.Display.V1.FormattedValue"
LOOKUP_NAME = "@Microsoft.Dynamics.CRM.lookuplogicalname"
NAV_PROPERTY = "@Microsoft.Dynamics.CRM.associatednavigationproperty"
MAX_STRING, MAX_MEMO = 4000, 1048576
VALIDATION_CODE = "0x80044331"

EDM_TYPES = {
    S.STRING: "Edm.String", S.MEMO: "Edm.String", S.INTEGER: "Edm.Int32", S.BIGINT: "Edm.Int64",
    S.BOOLEAN: "Edm.Boolean", S.DATETIME: "Edm.DateTimeOffset", S.DECIMAL: "Edm.Decimal", S.MONEY: "Edm.Decimal",
    S.PICKLIST: "Edm.Int32", S.STATE: "Edm.Int32", S.STATUS: "Edm.Int32", S.UNIQUEID: "Edm.Guid",
    S.ENTITYNAME: "Edm.String", S.LOOKUP: "Edm.Guid", S.CUSTOMER: "Edm.Guid", S.OWNER: "Edm.Guid",
}

_ACTIVE = {0: "Active", 1: "Inactive"}
_ACTIVE_STATUS = {1: "Active", 2: "Inactive"}
STATE_LABELS: dict[str, dict[int, str]] = {
    "lead": {0: "Open", 1: "Qualified", 2: "Disqualified"},
    "incident": {0: "Active", 1: "Resolved", 2: "Canceled"},
    "quote": {0: "Draft", 1: "Active", 2: "Won", 3: "Closed"},
    "asyncoperation": {0: "Ready", 1: "Suspended", 2: "Locked", 3: "Completed"},
    "duplicaterule": {0: "Inactive", 1: "Active"},
}
STATUS_LABELS: dict[str, dict[int, str]] = {
    "lead": {1: "New", 2: "Contacted", 3: "Qualified", 4: "Lost", 5: "Cannot Contact", 6: "No Longer Interested",
             7: "Canceled"},
    "incident": {1: "In Progress", 2: "On Hold", 5: "Problem Solved", 6: "Canceled", 2000: "Merged"},
    "quote": {1: "In Progress", 2: "In Progress", 3: "Open", 4: "Won", 5: "Lost", 6: "Canceled", 7: "Revised"},
    "asyncoperation": {0: "Waiting For Resources", 10: "Waiting", 20: "In Progress", 21: "Pausing",
                       22: "Canceling", 30: "Succeeded", 31: "Failed", 32: "Canceled"},
    "duplicaterule": {0: "Unpublished", 1: "Publishing", 2: "Published"},
}

_BIND = re.compile(r"(?:^|/)([A-Za-z_][A-Za-z0-9_]*)\(\{?([0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12})\}?\)$")


def type_name(entity_name: str) -> str:
    return f"{NS}.{entity_name}"


def property_not_found(entity_name: str, name: str) -> ServiceError:
    return bad_request(f"Could not find a property named '{name}' on type '{type_name(entity_name)}'.")


def resolve_column(meta: Entity, name: str, *, plain_lookup: bool = False) -> Attr:
    """The readable column a query names: plain columns by logical name, lookups as `_x_value` (also as `x`
    when `plain_lookup`, which `$select` allows)."""
    attr = meta.attrs.get(name)
    if attr is not None and attr.is_lookup and not plain_lookup:
        attr = None
    if attr is None and name.startswith("_") and name.endswith("_value"):
        attr = meta.attrs.get(name[1:-6])
        if attr is not None and not attr.is_lookup:
            attr = None
    if attr is None or not attr.readable:
        raise property_not_found(meta.name, name)
    return attr


def output_name(attr: Attr) -> str:
    return f"_{attr.name}_value" if attr.is_lookup else attr.name


def record_to_json(store: Store, entity_name: str, record: dict[str, Any], select: list[str] | None,
                   annotations: bool, api_url: str) -> dict[str, Any]:
    """One record in the Web API's shape (without `@odata.context`). Callers hold store.lock."""
    meta = SCHEMA[entity_name]
    if select:
        attrs = [resolve_column(meta, n, plain_lookup=True) for n in select]
        pid = meta.attrs.get(meta.primary_id)
        if pid is not None and pid not in attrs:
            attrs.append(pid)  # the service always returns the primary key
    else:
        attrs = [a for a in meta.attrs.values() if a.readable]
    out: dict[str, Any] = {}
    if record.get("versionnumber") is not None:
        out["@odata.etag"] = f'W/"{record["versionnumber"]}"'
    for attr in attrs:
        value = record.get(attr.name)
        if attr.is_lookup:
            _put_lookup(store, out, attr, value, annotations)
            continue
        if annotations and value is not None:
            label = formatted_value(entity_name, attr, value)
            if label is not None:
                out[attr.name + FORMATTED] = label
        out[attr.name] = value
    return out


def _put_lookup(store: Store, out: dict[str, Any], attr: Attr, value: Any, annotations: bool) -> None:
    key = output_name(attr)
    if not isinstance(value, Ref):
        out[key] = None
        return
    if annotations:
        target = SCHEMA.get(value.entity)
        ref_rec = store.get(value.entity, value.id) if target is not None else None
        name = ref_rec.get(target.primary_name) if ref_rec is not None and target is not None else None
        if name is not None:
            out[key + FORMATTED] = str(name)
        out[key + NAV_PROPERTY] = attr.nav_name(value.entity)
        out[key + LOOKUP_NAME] = value.entity
    out[key] = value.id


def formatted_value(entity_name: str, attr: Attr, value: Any) -> str | None:
    """The `FormattedValue` annotation Dataverse adds to a non-null value, or None for types it leaves alone."""
    t = attr.type
    if t == S.BOOLEAN:
        return "Yes" if value else "No"
    if t == S.STATE:
        return STATE_LABELS.get(entity_name, _ACTIVE).get(value, str(value))
    if t == S.STATUS:
        return STATUS_LABELS.get(entity_name, _ACTIVE_STATUS).get(value, str(value))
    if t == S.PICKLIST:
        return str(value)
    if t == S.DATETIME:
        return format_datetime(str(value))
    if t == S.MONEY and isinstance(value, int | float):
        return f"${value:,.2f}"
    if t in (S.INTEGER, S.DECIMAL) and isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,}"
    return None


def format_datetime(value: str) -> str:
    """`2024-01-02T15:04:00Z` -> `1/2/2024 3:04 PM` (a date-only value -> `1/2/2024`)."""
    try:
        if len(value) == 10:
            d = datetime.strptime(value, "%Y-%m-%d")
            return f"{d.month}/{d.day}/{d.year}"
        d = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return value
    hour = d.hour % 12 or 12
    return f"{d.month}/{d.day}/{d.year} {hour}:{d.minute:02d} {'AM' if d.hour < 12 else 'PM'}"


def normalize_datetime(value: str) -> str:
    """ISO-8601 text -> the store's form (`YYYY-MM-DDTHH:MM:SSZ`, or `YYYY-MM-DD` for a date). ValueError if bad."""
    if len(value) == 10:
        return datetime.strptime(value, "%Y-%m-%d").strftime("%Y-%m-%d")
    d = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- writes ---------------------------------------------------------------------------------------------------
def parse_write_body(store: Store, entity_name: str, body: dict[str, Any], *, for_update: bool) -> dict[str, Any]:
    """A create/update JSON body -> store values (lookups as `Ref`). Raises ServiceError as Dataverse would."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    meta = SCHEMA[entity_name]
    values: dict[str, Any] = {}
    for key, value in body.items():
        prop, _, annotation = key.partition("@")
        if prop.startswith("_") and prop.endswith("_value"):
            raise bad_request(
                f"The property '{prop}' is a read-only lookup value and cannot be written; set the lookup with "
                f"'<navigation property>@odata.bind' instead (entity '{type_name(entity_name)}').")
        if annotation == "odata.bind":
            attr, ref = _parse_bind(store, meta, prop, value)
            _check_writable(meta, attr, for_update)
            values[attr.name] = ref
        elif annotation or not prop:
            continue  # @odata.type, @odata.etag, instance annotations: ignored
        else:
            attr = meta.attrs.get(prop)
            if attr is None or attr.is_lookup:
                raise bad_request(f"Invalid property '{prop}' was found in entity '{type_name(entity_name)}'.")
            if not (prop == meta.primary_id and not for_update):
                _check_writable(meta, attr, for_update)
            values[prop] = check_value(meta, attr, value)
    return values


def _check_writable(meta: Entity, attr: Attr, for_update: bool) -> None:
    if for_update and not attr.updatable:
        raise ServiceError(400, VALIDATION_CODE, f"The attribute '{attr.name}' of entity '{meta.name}' cannot be "
                           "updated: it is not valid for update (IsValidForUpdate is false).")
    if not for_update and not attr.creatable:
        raise ServiceError(400, VALIDATION_CODE, f"The attribute '{attr.name}' of entity '{meta.name}' cannot be "
                           "set on create: it is not valid for create (IsValidForCreate is false).")


def find_nav(meta: Entity, nav: str) -> tuple[Attr, str] | None:
    for attr in meta.attrs.values():
        if attr.is_lookup:
            for target in attr.targets:
                if attr.nav_name(target) == nav:
                    return attr, target
    return None


def _parse_bind(store: Store, meta: Entity, nav: str, value: Any) -> tuple[Attr, Ref]:
    found = find_nav(meta, nav)
    if found is None:
        raise bad_request(f"An undeclared property '{nav}' which only has property annotations in the payload but "
                          f"no property value was found in the payload. (No navigation property named '{nav}' on "
                          f"type '{type_name(meta.name)}'.)")
    attr, target = found
    if value is None:
        raise bad_request(f"A null value was found for the navigation property '{nav}'. To remove a reference, "
                          f"send DELETE to {meta.set_name}(id)/{nav}/$ref instead of binding null.")
    match = _BIND.search(value) if isinstance(value, str) else None
    if match is None:
        raise bad_request(f"The value of '{nav}@odata.bind' must be an entity reference such as "
                          f"'/{SCHEMA[target].set_name}(00000000-0000-0000-0000-000000000000)'; got {value!r}.")
    set_name, rid = match.group(1), match.group(2).lower()
    if set_name != SCHEMA[target].set_name:
        raise bad_request(f"The entity set '{set_name}' does not match the navigation property '{nav}', which "
                          f"references '{type_name(target)}' ({SCHEMA[target].set_name}).")
    if store.get(target, rid) is None:
        raise not_found(target, rid)
    return attr, Ref(target, rid)


def check_value(meta: Entity, attr: Attr, value: Any) -> Any:
    """Type-check one written value; returns it in the store's form."""
    if value is None:
        return None
    t = attr.type
    ok = True
    if t == S.BOOLEAN:
        ok = isinstance(value, bool)
    elif t in (S.INTEGER, S.BIGINT, S.PICKLIST, S.STATE, S.STATUS):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t in (S.DECIMAL, S.MONEY):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif t in (S.STRING, S.MEMO, S.ENTITYNAME):
        ok = isinstance(value, str)
        if value == "":
            return None  # Dataverse stores an empty string as null
        limit = MAX_MEMO if t == S.MEMO else MAX_STRING
        if ok and len(value) > limit:
            raise ServiceError(400, VALIDATION_CODE, f"A validation error occurred.  The length of the "
                               f"'{attr.name}' attribute of the '{meta.name}' entity exceeded the maximum allowed "
                               f"length of '{limit}'.")
    elif t == S.DATETIME:
        try:
            return normalize_datetime(value) if isinstance(value, str) else _bad_literal(attr, value)
        except ValueError:
            ok = False
    elif t == S.UNIQUEID:
        try:
            return str(uuid.UUID(value)) if isinstance(value, str) else _bad_literal(attr, value)
        except ValueError:
            ok = False
    if not ok:
        _bad_literal(attr, value)
    return value


def _bad_literal(attr: Attr, value: Any) -> Any:
    raise bad_request(f"Cannot convert the literal '{value}' to the expected type "
                      f"'{EDM_TYPES.get(attr.type, 'Edm.String')}' (property '{attr.name}').")
