"""The actions and functions the emulator serves, by name (the server looks them up here).

A handler takes `(ctx, params)` and returns the response body, or None for 204. For a bound operation
`params["@bound"]` is `{"entity": logical name, "id": id}`.

Actions: Merge; BulkDetectDuplicates; PublishDuplicateRule / UnpublishDuplicateRule (bound to
duplicaterule: `duplicaterules({id})/Microsoft.Dynamics.CRM.PublishDuplicateRule`; unbound with
`DuplicateRuleId` also accepted); AddMemberList / RemoveMemberList (bound to list, or with `ListId`);
AddListMembersList; CreateMultiple / UpdateMultiple (bound to an entity set, bulk.py). Functions:
FetchXmlToQueryExpression(FetchXml), RetrieveDuplicates(BusinessEntity, MatchingEntityName, PagingInfo),
RetrieveTotalRecordCount(EntityNames) (counts.py).
"""

from __future__ import annotations

from typing import Any

from . import bulk, counts, detection, lists, merge, rules
from .context import Context, Handler
from .errors import bad_request
from .fetchxml import fetch_to_query
from .serialize import record_to_json


def _rule_id(params: dict[str, Any]) -> str:
    bound = params.get("@bound")
    if isinstance(bound, dict) and bound.get("entity") == "duplicaterule":
        return str(bound.get("id")).lower()
    rule_id = params.get("DuplicateRuleId")
    if not rule_id:
        raise bad_request("PublishDuplicateRule is bound to a duplicaterule (or takes DuplicateRuleId).", "0x80040203")
    return str(rule_id).strip("{}").lower()


def publish_duplicate_rule(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Publishes at once; answers the (already completed) publishing asyncoperation."""
    job_id = rules.publish_rule(ctx.store, _rule_id(params), ctx.caller_id)
    with ctx.store.lock:
        job = record_to_json(ctx.store, "asyncoperation", ctx.store.require("asyncoperation", job_id),
                             None, False, ctx.api_url)
    return {"@odata.context": f"{ctx.api_url}$metadata#asyncoperations/$entity", **job}


def unpublish_duplicate_rule(ctx: Context, params: dict[str, Any]) -> None:
    rules.unpublish_rule(ctx.store, _rule_id(params))


def fetch_xml_to_query_expression(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "@odata.context": f"{ctx.api_url}$metadata#Microsoft.Dynamics.CRM.FetchXmlToQueryExpressionResponse",
        "Query": fetch_to_query(params.get("FetchXml")),  # type: ignore[arg-type]
    }


ACTIONS: dict[str, Handler] = {
    "Merge": merge.merge,
    "BulkDetectDuplicates": detection.bulk_detect_duplicates,
    "PublishDuplicateRule": publish_duplicate_rule,
    "UnpublishDuplicateRule": unpublish_duplicate_rule,
    "AddMemberList": lists.add_member_list,
    "RemoveMemberList": lists.remove_member_list,
    "AddListMembersList": lists.add_list_members_list,
    "CreateMultiple": bulk.create_multiple,
    "UpdateMultiple": bulk.update_multiple,
}

FUNCTIONS: dict[str, Handler] = {
    "FetchXmlToQueryExpression": fetch_xml_to_query_expression,
    "RetrieveDuplicates": detection.retrieve_duplicates,
    "RetrieveTotalRecordCount": counts.retrieve_total_record_count,
}
# Operations bound to an entity set (`POST contacts/Microsoft.Dynamics.CRM.CreateMultiple`).
COLLECTION_BOUND = frozenset({"CreateMultiple", "UpdateMultiple"})
# Dataverse messages clients send that the emulator does not serve: a 400 naming them (not a 404 a client may
# retry, and never a made-up answer).
NOT_SERVED = frozenset({
    "UpsertMultiple", "BulkDelete", "RetrieveMetadataChanges", "CreateEntities", "ExecuteAsync", "SetState",
    "QualifyLead", "WinOpportunity", "LoseOpportunity", "CloseIncident", "WinQuote", "CloseQuote", "Assign",
    "RetrieveEntity", "RetrieveAllEntities", "RetrieveAttribute", "InitializeFrom", "RetrieveCurrentOrganization",
    "RetrieveVersion", "ExecuteTransaction", "DeleteMultiple", "Associate", "Disassociate",
})

advance_jobs = detection.advance_jobs
