"""Merge validations, one small function per rule of `research/merge-rules.md` (B = basic, A = advanced).

Each check raises a ServiceError with the service's message; merge.py calls them in the service's order
inside one transaction. Status and code choices are listed in merge.py's docstring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .context import Context
from .errors import ServiceError, not_found
from .schema import MERGEABLE, SCHEMA
from .store import Ref, Store

MAX_CHILD_CASES = 100
Record = dict[str, Any]


@dataclass
class MergeRequest:
    entity: str
    target_id: str
    sub_id: str
    update: dict[str, Any] = field(default_factory=dict)   # UpdateContent without annotations
    parenting_checks: bool = False

    @property
    def master_ref(self) -> Ref:
        return Ref(self.entity, self.target_id)

    @property
    def sub_ref(self) -> Ref:
        return Ref(self.entity, self.sub_id)


def _fail(code: str, message: str, status: int = 400) -> ServiceError:
    return ServiceError(status, code, message)


# -- basic validation -----------------------------------------------------------------------------
def check_identical(req: MergeRequest) -> None:
    """B1: the same record twice."""
    if req.target_id == req.sub_id:
        raise _fail("0x80045305", "Merge cannot be performed on master and sub-entities that are identical.")


def check_supported(req: MergeRequest) -> None:
    """B2: only account, contact, lead and incident merge."""
    if req.entity not in MERGEABLE:
        raise _fail("0x80040203", f"This type: {req.entity} is not supported with merge operation")


def load_records(store: Store, req: MergeRequest) -> tuple[Record, Record]:
    """The master and the subordinate; 404 0x80040217 when either is missing (target checked first)."""
    master = store.get(req.entity, req.target_id)
    if master is None:
        raise not_found(req.entity, req.target_id)
    sub = store.get(req.entity, req.sub_id)
    if sub is None:
        raise not_found(req.entity, req.sub_id)
    return master, sub


def check_active(req: MergeRequest, master: Record, sub: Record) -> None:
    """B3: both records must be active (statecode in the entity's active states)."""
    active = SCHEMA[req.entity].active_states
    if master.get("statecode", 0) not in active:
        raise _fail("0x80045304", f"master entity:{req.entity}-{req.target_id} is deactive")
    if sub.get("statecode", 0) not in active:
        raise _fail("0x80045304", f"sub-entity:{req.entity}-{req.sub_id} is deactive")


def check_privilege(ctx: Context, req: MergeRequest) -> None:
    """B4: the caller lacks a privilege on either record (fault `deny-merge=ID;ID`)."""
    denied = {d.lower() for d in ctx.options.faults.deny_merge}
    if req.target_id in denied or req.sub_id in denied:
        raise _fail("0x80045301", "Merge is not allowed: caller does not have the privilege or access.", 403)


# -- advanced validation --------------------------------------------------------------------------
def check_case_parents(req: MergeRequest, master: Record, sub: Record) -> None:
    """A1: incidents whose parent cases differ (one with a parent and one without counts as differing)."""
    if req.entity == "incident" and master.get("parentcaseid") != sub.get("parentcaseid"):
        raise _fail("0x8003F450", "Child cases having different parent case can not be merged.")


def check_parenting(req: MergeRequest, master: Record, sub: Record) -> None:
    """A2: with PerformParentingChecks, the subordinate would lose its parent or get a different one.

    Compares the two records as they stand: the docs describe the flag as checking "if the parent
    information is different for the two entity records", and validation runs before UpdateContent is
    applied (merge-rules.md), so a parent sent in UpdateContent does not avoid the warning.
    """
    attr = SCHEMA[req.entity].parent_attr
    if not req.parenting_checks or req.entity not in ("account", "contact") or attr is None:
        return
    master_parent = master.get(attr)
    sub_parent = sub.get(attr)
    if sub_parent is not None and master_parent is None:
        raise _fail("0x80045317", "Merge warning: sub-entity might lose parenting.")
    if sub_parent is not None and master_parent != sub_parent:
        raise _fail("0x80045316", "Merge warning: sub-entity will be differently parented.")


def check_child_case_limit(store: Store, req: MergeRequest) -> None:
    """A3: the merged case would have more than 100 child cases."""
    if req.entity != "incident":
        return
    parents = (req.master_ref, req.sub_ref)
    children = {i for p in parents for i in store.referencing_ids("incident", "parentcaseid", p)}
    if len(children) > MAX_CHILD_CASES:
        raise _fail("0x8003F454", "A Parent Case cannot have more than 100 child cases. "
                                  "Contact your administrator for more details")


def check_active_quote(ctx: Context, req: MergeRequest) -> None:
    """A4: the subordinate is the customer of an Active (statecode 1) quote; Draft quotes do not block.

    The refusal comes from a Dynamics 365 Sales plug-in (settled-2026-11.md Q1), so it only happens when the
    org has Sales installed (`options.sales`, on by default)."""
    if req.entity not in ("account", "contact") or not ctx.options.sales:
        return
    store = ctx.store
    sub = req.sub_ref
    if any(store.tables["quote"][i].get("statecode") == 1 for i in store.referencing_ids("quote", "customerid", sub)):
        raise _fail("0x80045302", "Merge cannot be performed on sub-entity that has active quote.")


def check_hierarchy_loop(store: Store, req: MergeRequest, master: Record, changes: dict[str, Any]) -> None:
    """A5: after the merge the master's parent chain would reach the master.

    After the merge the master's parent is UpdateContent's (when sent) or its own, and every record whose
    parent is the subordinate has the master as parent; so the walk up from the master follows parents,
    reading "subordinate" as "master". Only same-table parents form the hierarchy (a contact's account
    parent does not).
    """
    attr = SCHEMA[req.entity].parent_attr
    if req.entity not in ("account", "contact") or attr is None:
        return

    def step(ref: Any) -> str | None:
        if not isinstance(ref, Ref) or ref.entity != req.entity:
            return None
        return req.target_id if ref.id == req.sub_id else ref.id

    current = step(changes[attr] if attr in changes else master.get(attr))
    seen: set[str] = set()
    while current is not None and current not in seen:
        if current == req.target_id:
            if req.entity == "account":
                raise _fail("0x80045300", "Merge could create cyclical parenting.")
            raise _fail("0x80045300", "Loop exists in the contacts hierarchy.")
        seen.add(current)
        parent = store.get(req.entity, current)
        current = step(parent.get(attr)) if parent is not None else None


# -- plugins --------------------------------------------------------------------------------------
def check_marketing_plugin(ctx: Context, req: MergeRequest) -> None:
    """Dynamics Marketing's PreDisassociateEntitiesPlugin: fails when the subordinate is in a marketing list."""
    if not (ctx.options.faults.marketing_plugin or ctx.store.settings.get("marketing_plugin")):
        return
    sub = req.sub_ref
    if ctx.store.referencing_ids("listmember", "entityid", sub):
        raise _fail(
            "0x80040265",
            f"Disassociation cannot be performed between an entity of type list and an entity of type "
            f"{req.entity}.; [Microsoft.Dynamics.Marketing.Plugins: "
            f"Microsoft.Dynamics.Marketing.Plugins.PreDisassociateEntitiesPlugin]",
        )
