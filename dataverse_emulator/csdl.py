"""The service document and the CSDL `$metadata` document, derived from the tables, their relationships and
the operations the emulator serves."""

from __future__ import annotations

import functools
from typing import Any
from xml.sax.saxutils import quoteattr

from .relationships import many_to_many, one_to_many
from .schema import SCHEMA, Entity
from .serialize import EDM_TYPES, NS


def service_document(api_url: str) -> dict[str, Any]:
    sets = [{"name": m.set_name, "kind": "EntitySet", "url": m.set_name} for m in SCHEMA.values()]
    for name in ("EntityDefinitions", "RelationshipDefinitions"):
        sets.append({"name": name, "kind": "EntitySet", "url": name})
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
    "CreateMultipleResponse": [("Ids", "Collection(Edm.Guid)")],
    "EntityRecordCountCollection": [("Count", "Edm.Int32"), ("IsReadOnly", "Edm.Boolean"),
                                    ("Keys", "Collection(Edm.String)"), ("Values", "Collection(Edm.Int64)")],
    "RetrieveTotalRecordCountResponse": [("EntityRecordCountCollection", "mscrm.EntityRecordCountCollection")],
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
    ("RetrieveTotalRecordCount", "Function", None, [("EntityNames", "Collection(Edm.String)", False)],
     "mscrm.RetrieveTotalRecordCountResponse"),
    ("CreateMultiple", "Action", "Collection(mscrm.crmbaseentity)",
     [("Targets", "Collection(mscrm.crmbaseentity)", False)], "mscrm.CreateMultipleResponse"),
    ("UpdateMultiple", "Action", "Collection(mscrm.crmbaseentity)",
     [("Targets", "Collection(mscrm.crmbaseentity)", False)], None),
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
    for rel in one_to_many(meta.name):
        lines.append(f'<NavigationProperty Name="{rel.referenced_nav}" '
                     f'Type="Collection(mscrm.{rel.referencing_entity})" />')
    for m2m in many_to_many(meta.name):
        other = m2m.entity2 if meta.name == m2m.entity1 else m2m.entity1
        lines.append(f'<NavigationProperty Name="{m2m.schema_name}" Type="Collection(mscrm.{other})" />')
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
