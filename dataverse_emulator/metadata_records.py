"""Metadata definitions as the Web API returns them: EntityMetadata, the AttributeMetadata types, option sets,
relationships and keys, all derived from tables.py, states.py and relationships.py (one source).

Property names and shapes follow Microsoft's metadata reference (EntityMetadata, AttributeMetadata and its
derived types, OneToManyRelationshipMetadata, ManyToManyRelationshipMetadata, OptionSetMetadata) and the
documented responses of query-metadata-web-api.md. `MetadataId` values are stable name-based UUIDs.
"""

from __future__ import annotations

import uuid
from typing import Any

from . import schema as S
from . import states
from .relationships import ManyToMany, OneToMany
from .schema import Attr, Entity

NS = "Microsoft.Dynamics.CRM"
_NAMESPACE = uuid.UUID("5b0e8f62-6d4a-4f0c-9a57-6b3f1f0c2a11")
METADATA_TYPES = {
    S.STRING: "StringAttributeMetadata", S.MEMO: "MemoAttributeMetadata", S.INTEGER: "IntegerAttributeMetadata",
    S.BIGINT: "BigIntAttributeMetadata", S.BOOLEAN: "BooleanAttributeMetadata",
    S.DATETIME: "DateTimeAttributeMetadata", S.DECIMAL: "DecimalAttributeMetadata", S.MONEY: "MoneyAttributeMetadata",
    S.PICKLIST: "PicklistAttributeMetadata", S.STATE: "StateAttributeMetadata", S.STATUS: "StatusAttributeMetadata",
    S.LOOKUP: "LookupAttributeMetadata", S.CUSTOMER: "LookupAttributeMetadata", S.OWNER: "LookupAttributeMetadata",
    S.UNIQUEID: "UniqueIdentifierAttributeMetadata", S.ENTITYNAME: "EntityNameAttributeMetadata",
}
ENUM_TYPES = {S.PICKLIST, S.STATE, S.STATUS, S.BOOLEAN}


def metadata_id(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


def label(text: str | None, key: str = "") -> dict[str, Any]:
    if not text:
        return {"LocalizedLabels": [], "UserLocalizedLabel": None}
    one = {"Label": text, "LanguageCode": 1033, "IsManaged": True, "MetadataId": metadata_id("label", key, text),
           "HasChanged": None}
    return {"LocalizedLabels": [one], "UserLocalizedLabel": one}


def managed(value: bool, logical: str, can_change: bool = True) -> dict[str, Any]:
    return {"Value": value, "CanBeChanged": can_change, "ManagedPropertyLogicalName": logical}


def _words(name: str) -> str:
    return name.replace("_", " ").title()


def entity_record(meta: Entity) -> dict[str, Any]:
    """EntityMetadata without its navigation properties (Attributes, relationships, Keys: `$expand`)."""
    return {
        "MetadataId": metadata_id(meta.name), "LogicalName": meta.name, "SchemaName": meta.schema_name,
        "EntitySetName": meta.set_name, "LogicalCollectionName": meta.set_name,
        "CollectionSchemaName": meta.collection_schema_name, "DisplayName": label(meta.display, meta.name),
        "DisplayCollectionName": label(meta.display_collection, meta.name + "s"),
        "Description": label(None), "PrimaryIdAttribute": meta.primary_id,
        "PrimaryNameAttribute": meta.primary_name, "PrimaryImageAttribute": None,
        "ObjectTypeCode": meta.object_type_code, "OwnershipType": meta.ownership, "TableType": "Standard",
        "IsCustomEntity": False, "IsManaged": True, "IsPrivate": False, "IsIntersect": meta.is_intersect,
        "IsActivity": meta.is_activity, "IsActivityParty": meta.name in ("account", "contact", "lead", "systemuser"),
        "IsLogicalEntity": False, "IsValidForAdvancedFind": not meta.is_intersect, "IsBPFEntity": False,
        "IsChildEntity": False, "IsAvailableOffline": True, "ChangeTrackingEnabled": True,
        "HasActivities": meta.name in ("account", "contact", "lead", "incident", "opportunity", "quote"),
        "HasNotes": meta.name in ("account", "contact", "lead", "incident", "opportunity", "quote"),
        "HasEmailAddresses": "emailaddress1" in meta.attrs, "IntroducedVersion": "5.0.0.0", "HasChanged": None,
        "ExternalName": None, "ExternalCollectionName": None,
        "IsAuditEnabled": managed(True, "canmodifyauditsettings"),
        "IsCustomizable": managed(True, "iscustomizable", False),
        "IsDuplicateDetectionEnabled": managed(meta.name in ("account", "contact", "lead"),
                                               "canmodifyduplicatedetectionsettings"),
        "CanCreateAttributes": managed(not meta.is_intersect, "cancreateattributes", False),
        "CanCreateForms": managed(not meta.is_intersect, "cancreateforms", False),
        "CanBeRelatedEntityInRelationship": managed(True, "canberelatedentityinrelationship", False),
        "Privileges": [], **_ENTITY_DEFAULTS,
    }


# The other EntityMetadata properties of the reference, with the values an out-of-the-box table has (defaults).
_ENTITY_DEFAULTS: dict[str, Any] = {
    **{name: None for name in ("ActivityTypeMask", "DataProviderId", "DataSourceId", "EntityColor", "EntityHelpUrl",
                               "IconLargeName", "IconMediumName", "IconSmallName", "IconVectorName",
                               "MobileOfflineFilters", "RecurrenceBaseEntityLogicalName", "ReportViewName")},
    **{name: False for name in ("AutoCreateAccessTeams", "AutoRouteToOwnerQueue", "EnforceStateTransitions",
                                "EntityHelpUrlEnabled", "HasFeedback", "IsBusinessProcessEnabled",
                                "IsDocumentManagementEnabled", "IsDocumentRecommendationsEnabled",
                                "IsEnabledForExternalChannels", "IsEnabledForTrace", "IsInteractionCentricEnabled",
                                "IsKnowledgeManagementEnabled", "IsOneNoteIntegrationEnabled", "IsQuickCreateEnabled",
                                "IsSLAEnabled", "IsStateModelAware", "SyncToExternalSearchIndex",
                                "UsesBusinessDataLabelTable")},
    **{name: True for name in ("CanTriggerWorkflow", "IsAIRUpdated", "IsEnabledForCharts", "IsImportable",
                               "IsOptimisticConcurrencyEnabled", "IsReadingPaneEnabled")},
    "DaysSinceRecordLastModified": 0,
    **{name: managed(True, name.lower()) for name in (
        "CanBeInManyToMany", "CanBePrimaryEntityInRelationship", "CanChangeHierarchicalRelationship",
        "CanChangeTrackingBeEnabled", "CanCreateCharts", "CanCreateViews", "CanEnableSyncToExternalSearchIndex",
        "CanModifyAdditionalSettings", "IsConnectionsEnabled", "IsMailMergeEnabled", "IsMappable",
        "IsOfflineInMobileClient", "IsReadOnlyInMobileClient", "IsRenameable", "IsValidForQueue",
        "IsVisibleInMobile", "IsVisibleInMobileClient")},
}


def attribute_records(meta: Entity) -> list[dict[str, Any]]:
    """Every attribute with its companions (`{x}name`, `{x}type`) placed after the lookup they extend."""
    out: list[dict[str, Any]] = []
    for number, attr in enumerate(meta.attrs.values(), start=1):
        out.append(attribute_record(meta, attr, number))
        if attr.is_lookup:
            companions = [Attr(f"{attr.name}name", S.STRING, updatable=False, creatable=False,
                               attribute_of=attr.name, max_length=160)]
            if len(attr.targets) > 1 or attr.type in (S.CUSTOMER, S.OWNER):
                companions.append(Attr(f"{attr.name}type", S.ENTITYNAME, updatable=False, creatable=False,
                                       attribute_of=attr.name))
            out += [attribute_record(meta, c, 0) for c in companions]
    return out


def schema_name(attr: Attr) -> str:
    if attr.schema_name:
        return attr.schema_name
    if attr.name.startswith("new_"):
        return "new_" + attr.name[4:].title().replace("_", "")
    name = attr.name[:1].upper() + attr.name[1:]
    return name[:-2] + "Id" if name.endswith("id") else name


def attribute_record(meta: Entity, attr: Attr, column: int) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "@odata.type": f"#{NS}.{METADATA_TYPES.get(attr.type, 'AttributeMetadata')}",
        "MetadataId": metadata_id(meta.name, attr.name), "LogicalName": attr.name, "SchemaName": schema_name(attr),
        "EntityLogicalName": meta.name, "AttributeType": attr.type, "AttributeTypeName": {"Value": f"{attr.type}Type"},
        "DisplayName": label(attr.display or (None if attr.attribute_of else _words(attr.name)), attr.name),
        "Description": label(None),
        "RequiredLevel": managed(attr.required != "None", "canmodifyrequirementlevelsettings")
        | {"Value": attr.required},
        "IsValidForRead": attr.readable, "IsValidForCreate": attr.creatable or attr.name == meta.primary_id,
        "IsValidForUpdate": attr.updatable, "IsValidForForm": attr.attribute_of is None,
        "IsValidForGrid": attr.attribute_of is None, "IsRequiredForForm": attr.required != "None",
        "IsValidForAdvancedFind": managed(attr.attribute_of is None, "canmodifysearchsettings"),
        "AttributeOf": attr.attribute_of, "IsPrimaryId": attr.name == meta.primary_id,
        "IsPrimaryName": attr.name == meta.primary_name, "IsCustomAttribute": attr.name.startswith("new_"),
        "IsLogical": attr.attribute_of is not None, "IsManaged": not attr.name.startswith("new_"), "IsSecured": False,
        "IsFilterable": True, "IsSearchable": attr.attribute_of is None, "IsRetrievable": True,
        "ColumnNumber": column, "SourceType": 0, "IntroducedVersion": "5.0.0.0", "DeprecatedVersion": None,
        "HasChanged": None, "ExternalName": None, "LinkedAttributeId": None, "IsDataSourceSecret": False,
        "CanBeSecuredForCreate": False, "CanBeSecuredForRead": False, "CanBeSecuredForUpdate": False,
        "IsAuditEnabled": managed(True, "canmodifyauditsettings"),
        "IsCustomizable": managed(True, "iscustomizable", False),
        "IsRenameable": managed(True, "isrenameable", False),
        "IsSortableEnabled": managed(True, "issortableenabled"),
        "IsGlobalFilterEnabled": managed(False, "isglobalfilterenabled"),
        "CanModifyAdditionalSettings": managed(True, "canmodifyadditionalsettings"), "InheritsFrom": None,
    }
    rec.update(_typed(attr))
    return rec


def _typed(attr: Attr) -> dict[str, Any]:
    t = attr.type
    if t == S.STRING:
        n = attr.limit or 100
        return {"MaxLength": n, "DatabaseLength": n * 2, "Format": "Text", "FormatName": {"Value": "Text"},
                "ImeMode": "Auto", "YomiOf": None, "IsLocalizable": False, "AutoNumberFormat": ""}
    if t == S.MEMO:
        return {"MaxLength": attr.limit, "Format": "TextArea", "FormatName": {"Value": "TextArea"},
                "ImeMode": "Auto", "IsLocalizable": False}
    if t == S.INTEGER:
        return {"MinValue": -2147483648, "MaxValue": 2147483647, "Format": "None"}
    if t == S.BIGINT:
        return {"MinValue": -9223372036854775808, "MaxValue": 9223372036854775807}
    if t in (S.MONEY, S.DECIMAL):
        extra = {"PrecisionSource": 2, "IsBaseCurrency": False} if t == S.MONEY else {}
        return {"Precision": 2, "MinValue": -100000000000000.0, "MaxValue": 100000000000000.0, **extra}
    if t == S.DATETIME:
        return {"Format": "DateAndTime", "DateTimeBehavior": {"Value": "UserLocal"}, "ImeMode": "Inactive",
                "MinSupportedValue": "1753-01-01T00:00:00Z", "MaxSupportedValue": "9999-12-30T23:59:59Z"}
    if t == S.BOOLEAN:
        return {"DefaultValue": False}
    if t in (S.PICKLIST, S.STATE, S.STATUS):
        return {"DefaultFormValue": -1 if t == S.PICKLIST else None}
    if attr.is_lookup:
        return {"Targets": list(attr.targets), "Format": "None"}
    return {}


def _option(value: int, text: str, key: str, **extra: Any) -> dict[str, Any]:
    return {"Value": value, "Label": label(text, key), "Description": label(None), "Color": None,
            "IsManaged": True, "ExternalValue": None, "ParentValues": [], "Tag": None, "IsHidden": False,
            "MetadataId": None, "HasChanged": None, **extra}


def option_set(meta: Entity, attr: Attr) -> dict[str, Any] | None:
    """The OptionSet navigation property of an enum or boolean attribute (None for other types)."""
    key = f"{meta.name}_{attr.name}"
    base = {"MetadataId": metadata_id("optionset", key), "Name": key, "IsGlobal": False, "IsManaged": True,
            "IsCustomOptionSet": False, "DisplayName": label(attr.display or _words(attr.name), key),
            "Description": label(None), "IsCustomizable": managed(True, "iscustomizable", False),
            "IntroducedVersion": "5.0.0.0", "ExternalTypeName": None, "ParentOptionSetName": None,
            "HasChanged": None}
    if attr.type == S.BOOLEAN:
        return {"@odata.type": f"#{NS}.BooleanOptionSetMetadata", **base, "OptionSetType": "Boolean",
                "TrueOption": _option(1, "Yes", key + "1"), "FalseOption": _option(0, "No", key + "0")}
    if attr.type == S.PICKLIST:
        options = [_option(v, text, f"{key}{v}") for v, text in attr.options]
        return {"@odata.type": f"#{NS}.OptionSetMetadata", **base, "OptionSetType": "Picklist", "Options": options}
    if attr.type == S.STATE:
        options = [_option(s.value, s.label, f"{key}{s.value}", **{"@odata.type": f"#{NS}.StateOptionMetadata",
                   "DefaultStatus": s.default_status, "InvariantName": s.invariant_name})
                   for s in states.states(meta.name)]
        return {"@odata.type": f"#{NS}.OptionSetMetadata", **base, "OptionSetType": "State", "Options": options}
    if attr.type == S.STATUS:
        options = [_option(v, text, f"{key}{v}", **{"@odata.type": f"#{NS}.StatusOptionMetadata", "State": s.value,
                                                      "TransitionData": None})
                   for s in states.states(meta.name) for v, text in s.statuses]
        return {"@odata.type": f"#{NS}.OptionSetMetadata", **base, "OptionSetType": "Status", "Options": options}
    return None


def _menu() -> dict[str, Any]:
    return {"Behavior": "DoNotDisplay", "Group": "Details", "Label": label(None), "Order": None,
            "IsCustomizable": False, "AvailableOffline": True, "MenuId": None, "QueryApi": None,
            "ViewId": "00000000-0000-0000-0000-000000000000"}


def one_to_many_record(rel: OneToMany) -> dict[str, Any]:
    return {
        "@odata.type": f"#{NS}.OneToManyRelationshipMetadata", "MetadataId": metadata_id("rel", rel.schema_name),
        "SchemaName": rel.schema_name, "RelationshipType": "OneToManyRelationship", "IsCustomRelationship": False,
        "IsManaged": True, "IsValidForAdvancedFind": True, "IsHierarchical": False,
        "SecurityTypes": "ParentChild" if rel.cascade[0] == "Cascade" else "Append",
        "ReferencedEntity": rel.referenced_entity, "ReferencedAttribute": rel.referenced_attribute,
        "ReferencingEntity": rel.referencing_entity, "ReferencingAttribute": rel.referencing_attribute,
        "ReferencedEntityNavigationPropertyName": rel.referenced_nav,
        "ReferencingEntityNavigationPropertyName": rel.referencing_nav,
        "CascadeConfiguration": rel.cascade_json(), "AssociatedMenuConfiguration": _menu(),
        "RelationshipBehavior": 0, "IsDenormalizedLookup": None, "DenormalizedAttributeName": None,
        "IsCustomizable": managed(True, "iscustomizable", False), "IntroducedVersion": "5.0.0.0",
        "HasChanged": None, "RelationshipAttributes": [],
    }


def many_to_many_record(rel: ManyToMany) -> dict[str, Any]:
    return {
        "@odata.type": f"#{NS}.ManyToManyRelationshipMetadata", "MetadataId": metadata_id("rel", rel.schema_name),
        "SchemaName": rel.schema_name, "RelationshipType": "ManyToManyRelationship", "IsCustomRelationship": False,
        "IsManaged": True, "IsValidForAdvancedFind": True, "SecurityTypes": "None",
        "IntersectEntityName": rel.intersect_entity, "Entity1LogicalName": rel.entity1,
        "Entity1IntersectAttribute": rel.entity1_attribute, "Entity1NavigationPropertyName": rel.entity1_nav,
        "Entity2LogicalName": rel.entity2, "Entity2IntersectAttribute": rel.entity2_attribute,
        "Entity2NavigationPropertyName": rel.entity2_nav, "Entity1AssociatedMenuConfiguration": _menu(),
        "Entity2AssociatedMenuConfiguration": _menu(), "IsCustomizable": managed(False, "iscustomizable", False),
        "IntroducedVersion": "5.0.0.0", "HasChanged": None,
    }
