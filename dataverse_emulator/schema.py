"""The tables the emulator serves, by logical name and by entity set name.

`SCHEMA` maps a logical name to an `Entity` (tables.py); everything else (store, OData, metadata documents,
Merge, detection) reads it from here so that one table definition drives them all. The types and builders are
in model.py and re-exported here.
"""

from __future__ import annotations

from .model import (  # noqa: F401 - re-exported for the emulator's modules and the tool's tests
    BIGINT,
    BOOLEAN,
    CUSTOMER,
    DATETIME,
    DECIMAL,
    ENTITYNAME,
    INTEGER,
    LOOKUP,
    LOOKUP_TYPES,
    MEMO,
    MERGEABLE,
    MONEY,
    OWNER,
    PICKLIST,
    STATE,
    STATUS,
    STRING,
    UNIQUEID,
    Attr,
    Entity,
)
from .tables import ALL

SCHEMA: dict[str, Entity] = {e.name: e for e in ALL}
BY_SET_NAME: dict[str, Entity] = {e.set_name: e for e in SCHEMA.values()}


def entity(name: str) -> Entity:
    """The entity by logical name; KeyError when the emulator does not serve it."""
    return SCHEMA[name]
