"""Metadata documents: `EntityDefinitions(...)`, their `Attributes`, the service document and the CSDL `$metadata`.

Everything is derived from `schema.SCHEMA`. Lookups get the companion attributes the real service lists
(`{x}name`, and `{x}type` for polymorphic ones) with `AttributeOf` set, so a client that filters companions out
is exercised. Ids (`MetadataId`) are stable name-based UUIDs.
"""

from __future__ import annotations

import functools
import re
import uuid
from typing import Any
from xml.sax.saxutils import quoteattr

from . import schema as S
from .errors import ServiceError, bad_request
from .schema import SCHEMA, Attr, Entity
from .serialize import EDM_TYPES, NS

_NAMESPACE = uuid.UUID("5b0e8f62-6d4a-4f0c-9a57-6b3f1f0c2a11")
_ENTITY_LABELS = {
    "contact": "Contact", "account": "Account", "lead": "Lead", "incident": "Case", "quote": "Quote",
    "list": "Marketing List", "listmember": "List Member", "task": "Task", "systemuser": "User",
    "savedquery": "View", "userquery": "Saved View", "duplicaterule": "Duplicate Detection Rule",
    "duplicaterulecondition": "Duplicate Rule Condition", "asyncoperation": "System Job",
    "duplicaterecord": "Duplicate Record",
}
_METADATA_TYPES = {
    S.STRING: "StringAttributeMetadata", S.MEMO: "MemoAttributeMetadata", S.INTEGER: "IntegerAttributeMetadata",
    S.BIGINT: "BigIntAttributeMetadata", S.BOOLEAN: "BooleanAttributeMetadata",
    S.DATETIME: "DateTimeAttributeMetadata", S.DECIMAL: "DecimalAttributeMetadata", S.MONEY: "MoneyAttributeMetadata",
    S.PICKLIST: "PicklistAttributeMetadata", S.STATE: "StateAttributeMetadata", S.STATUS: "StatusAttributeMetadata",
    S.LOOKUP: "LookupAttributeMetadata", S.CUSTOMER: "LookupAttributeMetadata", S.OWNER: "LookupAttributeMetadata",
    S.UNIQUEID: "UniqueIdentifierAttributeMetadata", S.ENTITYNAME: "EntityNameAttributeMetadata",
}
ENTITY_PROPS = ("LogicalName", "SchemaName", "EntitySetName", "PrimaryIdAttribute", "PrimaryNameAttribute",
                "ObjectTypeCode", "MetadataId", "DisplayName", "IsCustomEntity")
ATTRIBUTE_PROPS = ("LogicalName", "SchemaName", "EntityLogicalName", "AttributeType", "AttributeTypeName",
                   "IsValidForRead", "IsValidForCreate", "IsValidForUpdate", "AttributeOf", "IsPrimaryId",
                   "IsPrimaryName", "IsCustomAttribute", "MetadataId", "Targets")
_KEY = re.compile(r"^\(LogicalName='([^']*)'\)")
_LOOKUP_CAST = f"/{NS}.LookupAttributeMetadata"


def metadata_id(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


def entity_not_found(name: str) -> ServiceError:
    return ServiceError(404, "0x80040217", f"Could not find an entity with specified LogicalName '{name}'.")


def _label(text: str) -> dict[str, Any]:
    label = {"Label": text, "LanguageCode": 1033, "IsManaged": True, "MetadataId": metadata_id("label", text),
             "HasChanged": None}
    return {"LocalizedLabels": [label], "UserLocalizedLabel": label}


def _pick(record: dict[str, Any], select: list[str] | None, allowed: tuple[str, ...], type_: str) -> dict[str, Any]:
    if select is None:
        return record
    out = {k: v for k, v in record.items() if k.startswith("@")}
    for name in select:
        if name not in allowed:
            raise bad_request(f"Could not find a property named '{name}' on type '{NS}.{type_}'.")
        out[name] = record.get(name)
    out["MetadataId"] = record["MetadataId"]  # always returned
    return out


def entity_record(meta: Entity) -> dict[str, Any]:
    return {
        "LogicalName": meta.name, "SchemaName": meta.name[:1].upper() + meta.name[1:],
        "EntitySetName": meta.set_name, "PrimaryIdAttribute": meta.primary_id,
        "PrimaryNameAttribute": meta.primary_name, "ObjectTypeCode": meta.object_type_code,
        "MetadataId": metadata_id(meta.name), "IsCustomEntity": False,
        "DisplayName": _label(_ENTITY_LABELS.get(meta.name, meta.name)),
    }


def attribute_records(meta: Entity) -> list[dict[str, Any]]:
    """Every attribute with its companions (`{x}name`, `{x}type`) placed after the lookup they extend."""
    out: list[dict[str, Any]] = []
    for attr in meta.attrs.values():
        out.append(_attribute_record(meta, attr))
        if attr.is_lookup:
            companions = [Attr(f"{attr.name}name", S.STRING, updatable=False, creatable=False,
                               attribute_of=attr.name)]
            if len(attr.targets) > 1 or attr.type in (S.CUSTOMER, S.OWNER):
                companions.append(Attr(f"{attr.name}type", S.ENTITYNAME, updatable=False, creatable=False,
                                       attribute_of=attr.name))
            out += [_attribute_record(meta, c) for c in companions]
    return out


def _attribute_record(meta: Entity, attr: Attr) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "@odata.type": f"#{NS}.{_METADATA_TYPES.get(attr.type, 'AttributeMetadata')}",
        "LogicalName": attr.name, "SchemaName": attr.name, "EntityLogicalName": meta.name,
        "AttributeType": attr.type, "AttributeTypeName": {"Value": f"{attr.type}Type"},
        "IsValidForRead": attr.readable, "IsValidForCreate": attr.creatable or attr.name == meta.primary_id,
        "IsValidForUpdate": attr.updatable, "AttributeOf": attr.attribute_of,
        "IsPrimaryId": attr.name == meta.primary_id, "IsPrimaryName": attr.name == meta.primary_name,
        "IsCustomAttribute": attr.name.startswith("new_"), "MetadataId": metadata_id(meta.name, attr.name),
    }
    if attr.is_lookup:
        rec["Targets"] = list(attr.targets)
    return rec


def entity_definitions(rest: str, select: list[str] | None, api_url: str) -> dict[str, Any]:
    """Answer `EntityDefinitions{rest}`: the collection, one entity, its Attributes (or one, or the lookups)."""
    ctx = f"{api_url}$metadata#EntityDefinitions"
    if rest in ("", "()"):
        rows = [_pick(entity_record(m), select, ENTITY_PROPS, "EntityMetadata") for m in SCHEMA.values()]
        return {"@odata.context": ctx, "value": rows}
    m = _KEY.match(rest)
    if m is None:
        raise bad_request(f"Resource not found for the segment 'EntityDefinitions{rest}'. Address entity "
                          "definitions as EntityDefinitions(LogicalName='name').")
    meta = SCHEMA.get(m.group(1))
    if meta is None:
        raise entity_not_found(m.group(1))
    tail = rest[m.end():]
    if tail == "":
        body = _pick(entity_record(meta), select, ENTITY_PROPS, "EntityMetadata")
        return {"@odata.context": f"{ctx}/$entity", **body}
    attrs = attribute_records(meta)
    actx = f"{ctx}('{meta.name}')/Attributes"
    if tail in ("/Attributes", "/Attributes" + _LOOKUP_CAST):
        if tail.endswith(_LOOKUP_CAST):
            attrs = [a for a in attrs if "Targets" in a]
        return {"@odata.context": actx, "value": [_pick(a, select, ATTRIBUTE_PROPS, "AttributeMetadata")
                                                   for a in attrs]}
    one = re.match(r"^/Attributes\(LogicalName='([^']*)'\)$", tail)
    if one is not None:
        found = next((a for a in attrs if a["LogicalName"] == one.group(1)), None)
        if found is None:
            raise ServiceError(404, "0x80040217", f"Could not find an attribute with specified LogicalName "
                               f"'{one.group(1)}' on entity '{meta.name}'.")
        return {"@odata.context": f"{actx}/$entity", **_pick(found, select, ATTRIBUTE_PROPS, "AttributeMetadata")}
    raise bad_request(f"Resource not found for the segment '{tail.lstrip('/')}'.")


def service_document(api_url: str) -> dict[str, Any]:
    sets = [{"name": m.set_name, "kind": "EntitySet", "url": m.set_name} for m in SCHEMA.values()]
    sets.append({"name": "EntityDefinitions", "kind": "EntitySet", "url": "EntityDefinitions"})
    return {"@odata.context": f"{api_url}$metadata", "value": sets}


# -- CSDL ------------------------------------------------------------------------------------------------------
_COMPLEX_TYPES: dict[str, list[tuple[str, str]]] = {
    "ColumnSet": [("AllColumns", "Edm.Boolean"), ("Columns", "Collection(Edm.String)")],
    "ConditionExpression": [("AttributeName", "Edm.String"), ("Operator", "Edm.String"),
                            ("Values", "Collection(mscrm.Object)"), ("EntityName", "Edm.String")],
    "FilterExpression": [("FilterOperator", "Edm.String"), ("Conditions", "Collection(mscrm.ConditionExpression)"),
                         ("Filters", "Collection(mscrm.FilterExpression)"), ("IsQuickFindFilter", "Edm.Boolean")],
    "PagingInfo": [("PageNumber", "Edm.Int32"), ("Count", "Edm.Int32"), ("PagingCookie", "Edm.String"),
                   ("ReturnTotalRecordCount", "Edm.Boolean")],
    "Object": [("Value", "Edm.String"), ("Type", "Edm.String")],
    "BulkDetectDuplicatesResponse": [("JobId", "Edm.Guid")],
    "PublishDuplicateRuleResponse": [("JobId", "Edm.Guid")],
    "AddMemberListResponse": [("Id", "Edm.Guid")],
    "WhoAmIResponse": [("BusinessUnitId", "Edm.Guid"), ("UserId", "Edm.Guid"), ("OrganizationId", "Edm.Guid")],
    "FetchXmlToQueryExpressionResponse": [("Query", "mscrm.QueryExpression")],
}
_QUERY_EXPRESSION = [("EntityName", "Edm.String"), ("ColumnSet", "mscrm.ColumnSet"),
                     ("Criteria", "mscrm.FilterExpression"), ("Distinct", "Edm.Boolean"), ("NoLock", "Edm.Boolean"),
                     ("PageInfo", "mscrm.PagingInfo"), ("TopCount", "Edm.Int32")]
# (name, kind, bound to, [(parameter, type, nullable)], return type)
OPERATIONS: list[tuple[str, str, str | None, list[tuple[str, str, bool]], str | None]] = [
    ("Merge", "Action", None, [("Target", "mscrm.crmbaseentity", False),
                               ("Subordinate", "mscrm.crmbaseentity", False),
                               ("UpdateContent", "mscrm.crmbaseentity", True),
                               ("PerformParentingChecks", "Edm.Boolean", False)], None),
    ("BulkDetectDuplicates", "Action", None, [
        ("Query", "mscrm.QueryBase", False), ("JobName", "Edm.String", False),
        ("SendEmailNotification", "Edm.Boolean", False), ("TemplateId", "Edm.Guid", False),
        ("ToRecipients", "Collection(mscrm.activityparty)", False),
        ("CCRecipients", "Collection(mscrm.activityparty)", False), ("RecurrencePattern", "Edm.String", False),
        ("RecurrenceStartTime", "Edm.DateTimeOffset", False)], "mscrm.BulkDetectDuplicatesResponse"),
    ("PublishDuplicateRule", "Action", None, [("DuplicateRuleId", "Edm.Guid", False)],
     "mscrm.PublishDuplicateRuleResponse"),
    ("AddMemberList", "Action", "mscrm.list", [("EntityId", "Edm.Guid", False)], "mscrm.AddMemberListResponse"),
    ("RemoveMemberList", "Action", "mscrm.list", [("EntityId", "Edm.Guid", False)], None),
    ("WhoAmI", "Function", None, [], "mscrm.WhoAmIResponse"),
    ("FetchXmlToQueryExpression", "Function", None, [("FetchXml", "Edm.String", False)],
     "mscrm.FetchXmlToQueryExpressionResponse"),
    ("RetrieveDuplicates", "Function", None, [
        ("BusinessEntity", "mscrm.crmbaseentity", False), ("MatchingEntityName", "Edm.String", False),
        ("PagingInfo", "mscrm.PagingInfo", False)], "Collection(mscrm.crmbaseentity)"),
]


def _entity_type_xml(meta: Entity) -> list[str]:
    lines = [f'<EntityType Name="{meta.name}" BaseType="mscrm.crmbaseentity">',
             f'<Key><PropertyRef Name="{meta.primary_id}" /></Key>']
    for attr in meta.attrs.values():
        name = f"_{attr.name}_value" if attr.is_lookup else attr.name
        lines.append(f'<Property Name="{name}" Type="{EDM_TYPES.get(attr.type, "Edm.String")}" />')
    for attr in meta.lookup_attrs():
        for target in attr.targets:
            lines.append(f'<NavigationProperty Name="{attr.nav_name(target)}" Type="mscrm.{target}" />')
    lines.append("</EntityType>")
    return lines


def _operation_xml(name: str, kind: str, bound: str | None, params: list[tuple[str, str, bool]],
                   returns: str | None) -> list[str]:
    lines = [f'<{kind} Name="{name}"' + (' IsBound="true">' if bound else ">")]
    if bound:
        lines.append(f'<Parameter Name="entity" Type="{bound}" Nullable="false" />')
    for pname, ptype, nullable in params:
        lines.append(f'<Parameter Name="{pname}" Type="{ptype}"' + ("" if nullable else ' Nullable="false"') + " />")
    if returns:
        lines.append(f'<ReturnType Type="{returns}" Nullable="false" />')
    lines.append(f"</{kind}>")
    return lines


@functools.lru_cache(maxsize=1)
def csdl() -> str:
    """The `$metadata` document (CSDL XML) for every table and the operations the tool uses."""
    out = ['<?xml version="1.0" encoding="utf-8"?>',
           '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">',
           "<edmx:DataServices>",
           f'<Schema Namespace="{NS}" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">',
           '<EntityType Name="crmbaseentity" Abstract="true" />',
           '<EntityType Name="activityparty" BaseType="mscrm.crmbaseentity"><Key><PropertyRef Name="activitypartyid"'
           ' /></Key><Property Name="activitypartyid" Type="Edm.Guid" /></EntityType>',
           '<ComplexType Name="QueryBase" Abstract="true" />',
           '<ComplexType Name="QueryExpression" BaseType="mscrm.QueryBase">',
           *[f'<Property Name="{n}" Type="{t}" />' for n, t in _QUERY_EXPRESSION], "</ComplexType>"]
    for cname, props in _COMPLEX_TYPES.items():
        out.append(f'<ComplexType Name="{cname}">')
        out += [f'<Property Name="{n}" Type="{t}" />' for n, t in props]
        out.append("</ComplexType>")
    for meta in SCHEMA.values():
        out += _entity_type_xml(meta)
    for op in OPERATIONS:
        out += _operation_xml(*op)
    out.append('<EntityContainer Name="System">')
    for meta in SCHEMA.values():
        out.append(f'<EntitySet Name="{meta.set_name}" EntityType="mscrm.{meta.name}" />')
    for name, kind, bound, _, _ in OPERATIONS:
        if bound is None:
            imp = "ActionImport" if kind == "Action" else "FunctionImport"
            attr = "Action" if kind == "Action" else "Function"
            out.append(f"<{imp} Name={quoteattr(name)} {attr}={quoteattr('mscrm.' + name)} />")
    out += ["</EntityContainer>", "</Schema>", "</edmx:DataServices>", "</edmx:Edmx>"]
    return "\n".join(out)
