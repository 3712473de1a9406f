"""Metadata over HTTP: EntityDefinitions with $filter/$select/$expand, addressing by MetadataId, attributes by
name and by type cast with their option sets, relationships (generated from the lookups that drive Merge),
keys, RelationshipDefinitions, and what the metadata endpoints refuse."""

from __future__ import annotations

from typing import Any

import pytest

from dataverse_emulator.relationships import merge_cascades

NS = "Microsoft.Dynamics.CRM"
ENTITY = "EntityDefinitions(LogicalName='contact')"


def test_the_sdk_table_lookup_filters_by_logical_name(api: Any) -> None:
    resp = api.get("EntityDefinitions", params={"$select": "LogicalName,EntitySetName,PrimaryIdAttribute",
                                                "$filter": "LogicalName eq 'contact'"})
    assert resp.status_code == 200, resp.text
    (row,) = resp.json()["value"]
    assert row == {"LogicalName": "contact", "EntitySetName": "contacts", "PrimaryIdAttribute": "contactid",
                   "MetadataId": row["MetadataId"]}
    assert api.get("EntityDefinitions", params={"$filter": "LogicalName eq 'nosuch'"}).json()["value"] == []
    private = api.get("EntityDefinitions?$filter=IsPrivate eq false and (SchemaName eq 'Account')&$select=LogicalName")
    assert [r["LogicalName"] for r in private.json()["value"]] == ["account"]
    owned = api.get(f"EntityDefinitions?$select=LogicalName&$filter=OwnershipType eq {NS}.OwnershipTypes'UserOwned' "
                    "and CanCreateAttributes/Value eq true").json()["value"]
    assert "contact" in {r["LogicalName"] for r in owned} and "systemuser" not in {r["LogicalName"] for r in owned}


def test_entity_definition_properties_clients_read(api: Any) -> None:
    row = api.get(ENTITY).json()
    for prop in ("MetadataId", "SchemaName", "DisplayName", "IsCustomEntity", "OwnershipType", "PrimaryIdAttribute",
                 "PrimaryNameAttribute", "LogicalCollectionName", "EntitySetName", "CollectionSchemaName",
                 "ObjectTypeCode", "IsActivity", "IsIntersect", "DisplayCollectionName", "IsCustomizable"):
        assert prop in row, prop
    assert (row["SchemaName"], row["LogicalCollectionName"], row["OwnershipType"]) == ("Contact", "contacts",
                                                                                       "UserOwned")
    assert row["DisplayName"]["UserLocalizedLabel"]["Label"] == "Contact"
    assert row["DisplayName"]["LocalizedLabels"][0]["LanguageCode"] == 1033
    assert row["IsCustomEntity"] is False and "Attributes" not in row  # navigation properties need $expand
    by_id = api.get(f"EntityDefinitions({row['MetadataId']})?$select=LogicalName").json()
    assert by_id["LogicalName"] == "contact"
    assert api.get(f"EntityDefinitions({'0' * 8}-0000-0000-0000-{'0' * 12})").status_code == 404


def test_expand_attributes_relationships_and_keys(api: Any) -> None:
    expand = ("Attributes($select=LogicalName,AttributeType;$filter=AttributeType eq "
              f"{NS}.AttributeTypeCode'Picklist'),OneToManyRelationships($select=SchemaName),"
              "ManyToOneRelationships($select=SchemaName),ManyToManyRelationships,Keys")
    resp = api.get(ENTITY, params={"$select": "LogicalName", "$expand": expand})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert {a["LogicalName"] for a in body["Attributes"]} == {"gendercode", "preferredcontactmethodcode"}
    assert "Contact_Tasks" in {r["SchemaName"] for r in body["OneToManyRelationships"]}
    assert "contact_customer_accounts" in {r["SchemaName"] for r in body["ManyToOneRelationships"]}
    assert [r["SchemaName"] for r in body["ManyToManyRelationships"]] == ["listcontact_association"]
    assert body["Keys"] == []
    bad = api.get(ENTITY, params={"$expand": "Attributes($top=1)"})
    assert bad.status_code == 400 and "$top" in bad.json()["error"]["message"]


def test_attributes_by_name_id_and_cast_with_option_sets(api: Any) -> None:
    one = api.get(f"{ENTITY}/Attributes(LogicalName='emailaddress1')").json()
    for prop in ("MetadataId", "SchemaName", "DisplayName", "RequiredLevel", "IsValidForUpdate", "MaxLength",
                 "AttributeTypeName"):
        assert prop in one, prop
    assert (one["SchemaName"], one["MaxLength"], one["@odata.type"]) == (
        "EMailAddress1", 100, f"#{NS}.StringAttributeMetadata")
    by_id = api.get(f"{ENTITY}/Attributes({one['MetadataId']})?$select=LogicalName").json()
    assert by_id["LogicalName"] == "emailaddress1"
    picklists = api.get(f"{ENTITY}/Attributes/{NS}.PicklistAttributeMetadata?$select=LogicalName"
                        "&$expand=OptionSet($select=Options),GlobalOptionSet").json()["value"]
    gender = next(p for p in picklists if p["LogicalName"] == "gendercode")
    assert [(o["Value"], o["Label"]["UserLocalizedLabel"]["Label"]) for o in gender["OptionSet"]["Options"]] == [
        (1, "Male"), (2, "Female")]
    assert gender["GlobalOptionSet"] is None
    state = api.get(f"{ENTITY}/Attributes(LogicalName='statecode')/{NS}.StateAttributeMetadata"
                    "?$select=LogicalName&$expand=OptionSet").json()
    assert [(o["Value"], o["DefaultStatus"], o["InvariantName"]) for o in state["OptionSet"]["Options"]] == [
        (0, 1, "Active"), (1, 2, "Inactive")]
    status = api.get(f"{ENTITY}/Attributes(LogicalName='statuscode')/{NS}.StatusAttributeMetadata/OptionSet").json()
    assert [(o["Value"], o["State"]) for o in status["Options"]] == [(1, 0), (2, 1)]
    lookups = api.get(f"{ENTITY}/Attributes/{NS}.LookupAttributeMetadata?$select=LogicalName,Targets").json()
    assert {"LogicalName": "parentcustomerid", "Targets": ["account", "contact"]} in [
        {k: v for k, v in a.items() if k in ("LogicalName", "Targets")} for a in lookups["value"]]
    wrong = api.get(f"{ENTITY}/Attributes(LogicalName='firstname')/{NS}.PicklistAttributeMetadata")
    assert wrong.status_code == 400
    assert api.get(f"{ENTITY}/Attributes/{NS}.NoSuchAttributeMetadata").status_code == 400


def test_one_to_many_relationships_are_one_per_target_with_their_navigation(api: Any) -> None:
    rels = api.get(f"{ENTITY}/OneToManyRelationships").json()["value"]
    tasks = next(r for r in rels if r["SchemaName"] == "Contact_Tasks")
    assert (tasks["ReferencingEntity"], tasks["ReferencingAttribute"], tasks["ReferencedEntity"],
            tasks["ReferencedAttribute"]) == ("task", "regardingobjectid", "contact", "contactid")
    assert tasks["ReferencingEntityNavigationPropertyName"] == "regardingobjectid_contact_task"
    assert tasks["ReferencedEntityNavigationPropertyName"] == "Contact_Tasks"
    assert tasks["CascadeConfiguration"]["Merge"] == "Cascade" and "MetadataId" in tasks
    by_name = {r["SchemaName"]: r for r in rels}
    assert by_name["contact_master_contact"]["CascadeConfiguration"]["Merge"] == "NoCascade"
    assert by_name["Contact_DuplicateBaseRecord"]["CascadeConfiguration"]["Merge"] == "NoCascade"
    assert by_name["Contact_Annotation"]["ReferencingEntityNavigationPropertyName"] == "objectid_contact"
    assert by_name["opportunity_customer_contacts"]["ReferencingEntityNavigationPropertyName"] == "customerid_contact"
    account_side = api.get("EntityDefinitions(LogicalName='account')/OneToManyRelationships"
                           "?$select=SchemaName,ReferencingEntityNavigationPropertyName"
                           "&$filter=ReferencingEntity eq 'task'").json()["value"]
    assert account_side == [{"SchemaName": "Account_Tasks", "MetadataId": account_side[0]["MetadataId"],
                             "ReferencingEntityNavigationPropertyName": "regardingobjectid_account_task"}]
    single = api.get(f"{ENTITY}/OneToManyRelationships(SchemaName='Contact_Phonecalls')").json()
    assert single["ReferencingEntity"] == "phonecall"


def test_merge_cascade_metadata_is_what_merge_moves(api: Any) -> None:
    """The relationships listed with Merge: Cascade are exactly the ones the Merge action re-points."""
    for entity in ("contact", "account", "lead", "incident"):
        rels = api.get(f"EntityDefinitions(LogicalName='{entity}')/OneToManyRelationships"
                       "?$select=SchemaName,CascadeConfiguration").json()["value"]
        listed = {r["SchemaName"] for r in rels if r["CascadeConfiguration"]["Merge"] == "Cascade"}
        assert listed == {r.schema_name for r in merge_cascades(entity)}
        assert listed  # every mergeable table moves something


def test_relationship_definitions_and_many_to_one(api: Any) -> None:
    m2o = api.get("EntityDefinitions(LogicalName='task')/ManyToOneRelationships?$select=SchemaName").json()["value"]
    assert {"Contact_Tasks", "Account_Tasks", "Lead_Tasks", "Incident_Tasks"} <= {r["SchemaName"] for r in m2o}
    typed = api.get(f"RelationshipDefinitions/{NS}.OneToManyRelationshipMetadata?$select=SchemaName"
                    "&$filter=ReferencedEntity eq 'account'").json()["value"]
    assert "contact_customer_accounts" in {r["SchemaName"] for r in typed}
    one = api.get("RelationshipDefinitions(SchemaName='listcontact_association')").json()
    assert (one["IntersectEntityName"], one["Entity1LogicalName"], one["Entity2LogicalName"]) == (
        "listmember", "list", "contact")


@pytest.mark.parametrize(("path", "needle"), [
    ("EntityDefinitions?$top=1", "$top"),
    ("EntityDefinitions?$orderby=LogicalName", "$orderby"),
    ("EntityDefinitions?$filter=NoSuch eq 1", "NoSuch"),
    ("EntityDefinitions?$filter=DisplayName eq 'x'", "DisplayName"),
    ("EntityDefinitions?$select=Attributes", "$expand"),
    (f"{ENTITY}?$expand=Privileges", "Privileges"),
    (f"{ENTITY}/Attributes?$count=true", "$count"),
    (f"{ENTITY}/Attributes?$expand=OptionSet($filter=IsGlobal eq false)", "$select"),
    (f"{ENTITY}/Nope", "Nope"),
])
def test_unsupported_metadata_requests_are_400(api: Any, path: str, needle: str) -> None:
    resp = api.get(path)
    assert resp.status_code == 400, resp.text
    assert needle in resp.json()["error"]["message"]


def test_metadata_writes_other_than_keys_are_refused(api: Any) -> None:
    resp = api.post(f"{ENTITY}/Attributes", json={"SchemaName": "new_x"})
    assert resp.status_code in (400, 405)
    assert api.request("PUT", ENTITY, json={}).status_code in (400, 405)
