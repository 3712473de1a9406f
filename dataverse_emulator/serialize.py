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

from . import keys, states
from . import schema as S
from .errors import ServiceError, bad_request, not_found
from .prefer import ALL, NONE, Annotations
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

_KEYED = re.compile(r"(?:^|/)([A-Za-z_][A-Za-z0-9_]*)\((.+)\)$")
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
                   annotations: bool | Annotations, api_url: str, *, etag: bool = True) -> dict[str, Any]:
    """One record in the Web API's shape (without `@odata.context`). Callers hold store.lock.

    `annotations` is the request's `odata.include-annotations` (True: all, False: none)."""
    meta = SCHEMA[entity_name]
    wanted = ALL if annotations is True else NONE if annotations is False else annotations
    if select:
        attrs = [resolve_column(meta, n, plain_lookup=True) for n in select]
        pid = meta.attrs.get(meta.primary_id)
        if pid is not None and pid not in attrs:
            attrs.append(pid)  # the service always returns the primary key
    else:
        attrs = [a for a in meta.attrs.values() if a.readable]
    out: dict[str, Any] = {}
    if etag and record.get("versionnumber") is not None:
        out["@odata.etag"] = f'W/"{record["versionnumber"]}"'
    formatted = wanted.wants(FORMATTED)
    for attr in attrs:
        value = record.get(attr.name)
        if attr.is_lookup:
            _put_lookup(store, out, attr, value, wanted)
            continue
        if formatted and value is not None:
            label = formatted_value(entity_name, attr, value)
            if label is not None:
                out[attr.name + FORMATTED] = label
        out[attr.name] = value
    return out


def _put_lookup(store: Store, out: dict[str, Any], attr: Attr, value: Any, wanted: Annotations) -> None:
    key = output_name(attr)
    if not isinstance(value, Ref):
        out[key] = None
        return
    if wanted.wants(FORMATTED):
        target = SCHEMA.get(value.entity)
        ref_rec = store.get(value.entity, value.id) if target is not None else None
        name = ref_rec.get(target.primary_name) if ref_rec is not None and target is not None else None
        if name is not None:
            out[key + FORMATTED] = str(name)
    if wanted.wants(NAV_PROPERTY):
        out[key + NAV_PROPERTY] = attr.nav_name(value.entity) if value.entity in attr.targets else attr.name
    if wanted.wants(LOOKUP_NAME):
        out[key + LOOKUP_NAME] = value.entity
    out[key] = value.id


def formatted_value(entity_name: str, attr: Attr, value: Any) -> str | None:
    """The `FormattedValue` annotation Dataverse adds to a non-null value, or None for types it leaves alone."""
    t = attr.type
    if t == S.BOOLEAN:
        return "Yes" if value else "No"
    if t == S.STATE:
        return states.state_label(entity_name, value)
    if t == S.STATUS:
        return states.status_label(entity_name, value)
    if t == S.PICKLIST:
        return dict(attr.options).get(value, str(value))
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
            _check_annotation(entity_name, prop, annotation)
        elif (nav := find_nav(meta, prop)) is not None:  # `"parentaccountid": null` disassociates
            attr = nav[0]
            if value is not None:
                raise bad_request(f"Deep insert or update through the navigation property '{prop}' is not supported "
                                  f"by the emulator; bind an existing record with '{prop}@odata.bind'.")
            _check_writable(meta, attr, for_update)
            values[attr.name] = None
        else:
            attr = meta.attrs.get(prop)
            if attr is None or attr.is_lookup:
                raise bad_request(f"Invalid property '{prop}' was found in entity '{type_name(entity_name)}'.")
            if not (prop == meta.primary_id and not for_update):
                _check_writable(meta, attr, for_update)
            values[prop] = check_value(meta, attr, value)
    return values


def _check_annotation(entity_name: str, prop: str, annotation: str) -> None:
    """`@odata.type` must name this table; `@odata.etag` and `@odata.id` are ignored as the service does;
    anything else is refused rather than ignored."""
    if prop:
        raise bad_request(f"The property annotation '{prop}@{annotation}' is not supported by the emulator.")
    if annotation == "odata.type":
        return
    if annotation not in ("odata.etag", "odata.id", "odata.context"):
        raise bad_request(f"The instance annotation '@{annotation}' is not supported by the emulator.")


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


def _parse_bind(store: Store, meta: Entity, nav: str, value: Any) -> tuple[Attr, Ref | None]:
    found = find_nav(meta, nav)
    if found is None:
        raise bad_request(f"An undeclared property '{nav}' which only has property annotations in the payload but "
                          f"no property value was found in the payload. (No navigation property named '{nav}' on "
                          f"type '{type_name(meta.name)}'.)")
    attr, target = found
    if value is None:
        return attr, None  # `"x@odata.bind": null` disassociates (associate-disassociate-entities-using-web-api)
    match = _BIND.search(value) if isinstance(value, str) else None
    keyed = _KEYED.search(value) if isinstance(value, str) and match is None else None
    if match is None and keyed is None:
        raise bad_request(f"The value of '{nav}@odata.bind' must be an entity reference such as "
                          f"'/{SCHEMA[target].set_name}(00000000-0000-0000-0000-000000000000)'; got {value!r}.")
    set_name = (match or keyed).group(1)  # type: ignore[union-attr]
    if set_name != SCHEMA[target].set_name:
        raise bad_request(f"The entity set '{set_name}' does not match the navigation property '{nav}', which "
                          f"references '{type_name(target)}' ({SCHEMA[target].set_name}).")
    if match is not None:
        rid = match.group(2).lower()
        if store.get(target, rid) is None:
            raise not_found(target, rid)
        return attr, Ref(target, rid)
    found_id = keys.find_by_key(store, SCHEMA[target], keys.parse_key_segment(SCHEMA[target], keyed.group(2)))
    if found_id is None:
        raise keys.not_found_by_key(target)
    return attr, Ref(target, found_id)


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
        limit = attr.limit or (MAX_MEMO if t == S.MEMO else MAX_STRING)
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
