"""Test data builders shared by the test modules: the emulator's tables as the client's metadata, records
as the Web API returns them, and a few fixed ids. Plain functions (fixtures live in conftest.py)."""

from __future__ import annotations

from typing import Any

from dataverse import AttributeMetadata, ClientSettings, EntityMetadata
from dataverse.odata import FORMATTED, LOOKUP_TABLE, NAV_PROPERTY
from dataverse_emulator.schema import SCHEMA

T, S1, S2 = (f"00000000-0000-0000-0000-00000000000{c}" for c in "abc")
ACC, ACC2, X = (f"00000000-0000-0000-0000-0000000000{c}" for c in ("e1", "e2", "f1"))
ENTITY_SETS = {name: e.set_name for name, e in SCHEMA.items()}


def meta(name: str) -> EntityMetadata:
    """The emulator's table as the client's metadata."""
    e = SCHEMA[name]
    attrs = {
        a.name: AttributeMetadata(a.name, a.type, a.updatable, a.readable, a.attribute_of, a.targets)
        for a in e.attrs.values()
    }
    return EntityMetadata(e.name, e.set_name, e.primary_id, e.primary_name, e.object_type_code, attrs)


CONTACT = meta("contact")


def contact(rid: str, created: str | None = "2020-01-01T00:00:00Z", **cols: Any) -> dict[str, Any]:
    """A contact row as the Web API returns it (with its etag and state)."""
    return {
        "@odata.etag": 'W/"1"',
        "contactid": rid,
        "createdon": created,
        "modifiedon": "2024-01-01T00:00:00Z",
        "statecode": 0,
        "statuscode": 1,
        **cols,
    }


def with_parent(record: dict[str, Any], account_id: str, name: str = "Contoso") -> dict[str, Any]:
    """The record with an account as its parentcustomerid, annotated as Dataverse annotates it."""
    col = "_parentcustomerid_value"
    return {
        **record,
        col: account_id,
        col + LOOKUP_TABLE: "account",
        col + NAV_PROPERTY: "parentcustomerid_account",
        col + FORMATTED: name,
    }


# a client that gives up fast, for the client's own tests against a scripted server
FAST = ClientSettings(connect_timeout=2, read_timeout=5, backoff_base=0.01, max_retries=3, max_retry_after=5)


class RecordingTokens:
    """A token provider that records calls; force_refresh hands out the next token."""

    def __init__(self) -> None:
        self.calls: list[bool] = []
        self.version = 1

    def get_token(self, *, force_refresh: bool = False) -> str:
        self.calls.append(force_refresh)
        if force_refresh:
            self.version += 1
        return f"tok-{self.version}"
