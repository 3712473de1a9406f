"""Shared by the emulator's Merge tests: a store, Merge bodies, and running Merge with a check that it merged."""

from __future__ import annotations

from typing import Any

import pytest

from dataverse_emulator.context import Context
from dataverse_emulator.datasets import DEMO_ADMIN_ID, load_dataset
from dataverse_emulator.errors import ServiceError
from dataverse_emulator.operations import ACTIONS
from dataverse_emulator.options import EmulatorOptions, Faults
from dataverse_emulator.schema import SCHEMA
from dataverse_emulator.store import Ref, Store

OLD = "2020-01-01T00:00:00Z"
T = "Microsoft.Dynamics.CRM."


def empty_store() -> Store:
    s = Store()
    load_dataset(s, "empty", 1)
    return s


def ctx_for(store: Store, **faults: Any) -> Context:
    return Context(store, EmulatorOptions(faults=Faults(**faults)), DEMO_ADMIN_ID, "http://test/api/data/v9.2/")


def add(store: Store, entity: str, **values: Any) -> str:
    values.setdefault("createdon", OLD)
    return store.insert(entity, values)


def body(entity: str, target: str, sub: str, update: dict[str, Any] | None = None, checks: bool = False) -> dict:
    pk = store_pk(entity)
    out: dict[str, Any] = {"Target": {"@odata.type": T + entity, pk: target},
                           "Subordinate": {"@odata.type": T + entity, pk: sub}, "PerformParentingChecks": checks}
    if update is not None:
        out["UpdateContent"] = {"@odata.type": T + entity, **update}
    return out


def store_pk(entity: str) -> str:
    return SCHEMA[entity].primary_id if entity in SCHEMA else f"{entity}id"


def merge(store: Store, params: dict[str, Any], **faults: Any) -> None:
    """Run Merge and check that it merged: 204 (None), the subordinate inactive, merged into the target."""
    assert ACTIONS["Merge"](ctx_for(store, **faults), params) is None
    entity = params["Target"]["@odata.type"][len(T):]
    pk = store_pk(entity)
    sub = store.get(entity, params["Subordinate"][pk])
    assert sub is not None and sub["merged"] is True and sub["statecode"] != 0
    assert sub["masterid"] == Ref(entity, params["Target"][pk])


def refused(store: Store, params: dict[str, Any], **faults: Any) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        merge(store, params, **faults)
    return info.value


def pair(store: Store, entity: str = "contact", **common: Any) -> tuple[str, str]:
    return add(store, entity, **common), add(store, entity, **common)


def marketing_list(store: Store, code: int = 2) -> str:
    return add(store, "list", listname="L", createdfromcode=code, type=False, membercount=0)


def join_list(store: Store, list_id: str, entity: str, rid: str) -> None:
    ACTIONS["AddMemberList"](ctx_for(store), {"@bound": {"entity": "list", "id": list_id}, "EntityId": rid})


def hierarchy(store: Store) -> tuple[str, str, str]:
    """A <- B <- C (C's parent is B, B's parent is A)."""
    a = add(store, "account", name="A")
    b = add(store, "account", name="B", parentaccountid=Ref("account", a))
    c = add(store, "account", name="C", parentaccountid=Ref("account", b))
    return a, b, c
