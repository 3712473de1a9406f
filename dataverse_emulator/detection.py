"""Duplicate detection: the `BulkDetectDuplicates` job and the `RetrieveDuplicates` function.

A job is an `asyncoperation` (operationtype 8) that moves with the context's clock: Waiting (statecode 0,
statuscode 10) when created; In Progress (statecode 2 Locked, statuscode 20) after 10% of
`options.job_seconds`; after `job_seconds` it computes its duplicates and ends Succeeded (3/30), or Failed
(3/31) when no published rule has the query's table as its base. The server calls `advance_jobs` at the
start of every request, so a client polling the job drives it. Pending jobs (their query, table, start
time and caller) are kept in `store.settings["detection_jobs"]`, so a state file carries them over a restart.

Semantics: base records = the Query's matches; candidates = the whole matching table (minus inactive rows
when the rule excludes them); a record never matches itself. Results go to `duplicaterecord`:
`options.duplicate_records == "base"` writes one row per base record with at least one match
(`duplicaterecordid`/`duplicateruleid` null, as in Microsoft's sample); `"pairs"` writes one row per
(base, match, rule). The cap `options.max_job_duplicates` counts distinct base records that have
duplicates, in creation order: with the cap reached, later base records are not reported (so a capped job
has exactly `cap` distinct `baserecordid` values in either mode). Matching is index-based (match keys, see
rules.py) on a snapshot of the rows; the store lock is held only to read the snapshot and to write rows.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from .context import Context
from .entityref import resolve
from .errors import ServiceError, bad_request
from .fetchxml import entity_meta
from .guids import sql_guid_key
from .queryexpr import compile_query, normalize_query
from .rules import Rule, published_rules
from .schema import Entity
from .serialize import record_to_json
from .store import Ref, Store, new_id, now_iso

NO_RULES_MESSAGE = "No published duplicate detection rules exist for this record type."
WAITING, IN_PROGRESS, SUCCEEDED, FAILED = (0, 10), (2, 20), (3, 30), (3, 31)


SETTINGS_KEY = "detection_jobs"  # store.settings[key][job_id] = {"query", "entity", "created", "caller"}
_RUNNING: weakref.WeakKeyDictionary[Store, set[str]] = weakref.WeakKeyDictionary()  # jobs being computed


@dataclass
class _Job:
    id: str
    query: dict[str, Any]
    entity: str
    created: float
    caller: str


def bulk_detect_duplicates(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Start a detection job; answers {"JobId": ...}."""
    name = params.get("JobName")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("The JobName parameter is required.", "0x80040203")
    if params.get("Query") is None:
        raise bad_request("The Query parameter is required.", "0x80040203")
    query = normalize_query(params["Query"])
    meta, _ = compile_query(ctx.store, query, ctx.caller_id)  # refuse a bad query now, not in the job
    job_id = new_id()
    with ctx.store.lock:
        ctx.store.insert("asyncoperation", {
            "asyncoperationid": job_id, "name": name, "operationtype": 8,
            "statecode": WAITING[0], "statuscode": WAITING[1],
            "ownerid": Ref("systemuser", ctx.caller_id) if ctx.caller_id else None,
        })
        pending = ctx.store.settings.setdefault(SETTINGS_KEY, {})
        pending[job_id] = {"query": query, "entity": meta.name, "created": ctx.clock(), "caller": ctx.caller_id}
    return {
        "@odata.context": f"{ctx.api_url}$metadata#Microsoft.Dynamics.CRM.BulkDetectDuplicatesResponse",
        "JobId": job_id,
    }


def advance_jobs(ctx: Context) -> None:
    """Move pending jobs along by the clock; finishes (computes) those whose time is up.

    Pending jobs live in `store.settings` (so a state file keeps them across restarts)."""
    store = ctx.store
    if not store.settings.get(SETTINGS_KEY):
        return
    now, total = ctx.clock(), max(0.0, ctx.options.job_seconds)
    due: list[_Job] = []
    with store.lock:
        pending: dict[str, dict[str, Any]] = store.settings[SETTINGS_KEY]
        running = _RUNNING.setdefault(store, set())
        for job_id, info in list(pending.items()):
            row = store.get("asyncoperation", job_id)
            if row is None:
                pending.pop(job_id, None)
                continue
            elapsed = now - float(info["created"])
            if job_id in running:
                continue
            if elapsed >= total:
                running.add(job_id)
                due.append(_Job(job_id, info["query"], info["entity"], float(info["created"]), info["caller"]))
            elif row.get("statuscode") == WAITING[1] and elapsed >= 0.1 * total:
                _set_state(store, job_id, IN_PROGRESS, startedon=now_iso())
    for job in due:
        _complete(ctx, job)


def _set_state(store: Store, job_id: str, state: tuple[int, int], **values: Any) -> None:
    store.update("asyncoperation", job_id, {"statecode": state[0], "statuscode": state[1], **values})


def _complete(ctx: Context, job: _Job) -> None:
    store = ctx.store
    try:
        found = _compute(ctx, job)
    except ServiceError as exc:
        found, message = None, exc.message
    else:
        message = NO_RULES_MESSAGE
    stamp = now_iso()
    with store.transaction():
        started = (store.get("asyncoperation", job.id) or {}).get("startedon") or stamp
        if found is None:
            _set_state(store, job.id, FAILED, message=message, friendlymessage=message,
                       startedon=started, completedon=stamp)
        else:
            for row in found:
                store.insert("duplicaterecord", {**row, "asyncoperationid": Ref("asyncoperation", job.id),
                                                 "createdon": stamp})
            _set_state(store, job.id, SUCCEEDED, startedon=started, completedon=stamp)
        store.settings.get(SETTINGS_KEY, {}).pop(job.id, None)
        _RUNNING.get(store, set()).discard(job.id)


def _compute(ctx: Context, job: _Job) -> list[dict[str, Any]] | None:
    """The job's duplicaterecord rows (without job and stamp), or None when no rule applies."""
    store = ctx.store
    rules = published_rules(store, base=job.entity)
    if not rules:
        return None
    meta, pred = compile_query(store, job.query, job.caller)
    base_rows = sorted((r for r in store.rows(meta.name) if pred(r)),
                       key=lambda r: (r.get("createdon") or "", sql_guid_key(r[meta.primary_id])))
    indexes = {rule.id: build_index(store, rule) for rule in rules}
    pairs_mode = ctx.options.duplicate_records == "pairs"
    cap = ctx.options.max_job_duplicates
    rows: list[dict[str, Any]] = []
    flagged = 0
    for record in base_rows:
        matches = _matches(meta, record, rules, indexes)
        if not matches:
            continue
        if flagged >= cap:
            break
        flagged += 1
        base_ref = Ref(meta.name, record[meta.primary_id])
        if not pairs_mode:
            rows.append({"baserecordid": base_ref, "duplicaterecordid": None, "duplicateruleid": None})
            continue
        for rule, match_id in matches:
            rows.append({"baserecordid": base_ref, "duplicaterecordid": Ref(rule.matching, match_id),
                         "duplicateruleid": Ref("duplicaterule", rule.id)})
    return rows


def build_index(store: Store, rule: Rule) -> dict[tuple[Any, ...], list[str]]:
    """Match key -> ids of the matching table's candidate records."""
    pk = entity_meta(rule.matching).primary_id
    index: dict[tuple[Any, ...], list[str]] = {}
    for row in store.rows(rule.matching):
        if not rule.candidate(row):
            continue
        key = rule.key(row, "match")
        if key is not None:
            index.setdefault(key, []).append(row[pk])
    return index


def cached_index(store: Store, rule: Rule) -> dict[tuple[Any, ...], list[str]]:
    """build_index, kept until the matching table changes (real Dataverse keeps match codes too)."""
    with store.lock:
        stamp = ("match-index", rule, store.table_versions[rule.matching])
        index = store.derived.get(stamp)
        if index is None:
            for old in [k for k in store.derived if k[:2] == ("match-index", rule)]:
                del store.derived[old]
            index = store.derived[stamp] = build_index(store, rule)
        return index


def _matches(meta: Entity, record: dict[str, Any], rules: list[Rule],
             indexes: dict[str, dict[tuple[Any, ...], list[str]]]) -> list[tuple[Rule, str]]:
    own_id = record[meta.primary_id]
    found: list[tuple[Rule, str]] = []
    for rule in rules:
        key = rule.key(record, "base")
        if key is None:
            continue
        for match_id in indexes[rule.id].get(key, ()):
            if not (match_id == own_id and rule.matching == meta.name):
                found.append((rule, match_id))
    return found


DUPLICATE_FOUND_CODE = "0x80040333"


def check_on_write(store: Store, meta: Entity, record: dict[str, Any], own_id: str) -> None:
    """Create/Update with `MSCRM.SuppressDuplicateDetection: false`: refuse when a published rule whose base is
    this table finds a duplicate (500 0x80040333, manage-duplicate-detection-create-update.md; settled Q6)."""
    for rule in published_rules(store, base=meta.name):
        key = rule.key(record, "base")
        if key is None:
            continue
        for match_id in cached_index(store, rule).get(key, ()):
            if not (match_id == own_id and rule.matching == meta.name):
                raise ServiceError(500, DUPLICATE_FOUND_CODE, "A record was not created or updated because a "
                                   "duplicate of the current record already exists.")


def retrieve_duplicates(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """RetrieveDuplicates(BusinessEntity, MatchingEntityName, PagingInfo): the record's current duplicates."""
    store = ctx.store
    meta, record = _business_entity(store, params.get("BusinessEntity"))
    matching = entity_meta(str(params.get("MatchingEntityName") or meta.name))
    own_id = record.get(meta.primary_id)
    found: dict[str, dict[str, Any]] = {}
    for rule in published_rules(store, base=meta.name, matching=matching.name):
        key = rule.key(record, "base")
        if key is None:
            continue
        for row_id in cached_index(store, rule).get(key, ()):
            if (row_id == own_id and matching.name == meta.name) or row_id in found:
                continue
            row = store.get(matching.name, row_id)
            if row is not None:
                found[row_id] = row
    ordered = sorted(found.values(), key=lambda r: (r.get("createdon") or "", sql_guid_key(r[matching.primary_id])))
    page = _page(ordered, params.get("PagingInfo"))
    with store.lock:
        value = [record_to_json(store, matching.name, row, None, False, ctx.api_url) for row in page]
    return {"@odata.context": f"{ctx.api_url}$metadata#{matching.set_name}", "value": value}


def _business_entity(store: Store, entity: Any) -> tuple[Entity, dict[str, Any]]:
    meta, stored, columns = resolve(store, entity, "BusinessEntity")
    record = dict(stored) if stored is not None else {}
    record.update(columns)
    return meta, record


def _page(rows: list[dict[str, Any]], paging: Any) -> list[dict[str, Any]]:
    if not isinstance(paging, dict):
        return rows
    count = int(paging.get("Count") or 0)
    number = max(1, int(paging.get("PageNumber") or 1))
    if count <= 0:
        return rows
    return rows[(number - 1) * count: number * count]
