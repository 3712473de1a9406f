"""How the Web API names things, defined once: record ids, table names, string literals, lookup columns
and the annotations that describe them. Pure; used by the client and by every layer that reads its rows.
"""

from __future__ import annotations

import re

from errors import UsageError

# A record id as Dataverse and our run files hold it: a lower-case GUID without braces.
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ENTITY_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")

# Annotations Dataverse adds to a lookup column `_x_value` (with Prefer: odata.include-annotations="*").
LOOKUP_TABLE = "@Microsoft.Dynamics.CRM.lookuplogicalname"
NAV_PROPERTY = "@Microsoft.Dynamics.CRM.associatednavigationproperty"
FORMATTED = "@OData.Community.Display.V1.FormattedValue"
BIND = "@odata.bind"


def is_guid(value: object) -> bool:
    """True for a lower-case GUID string without braces (the form `validate_guid` returns)."""
    return isinstance(value, str) and GUID.fullmatch(value) is not None


def validate_guid(value: str) -> str:
    """A GUID, lower-case, without braces or spaces; UsageError otherwise."""
    clean = value.strip().strip("{}").strip().lower() if isinstance(value, str) else ""
    if not GUID.fullmatch(clean):
        raise UsageError(
            f"{str(value)[:80]!r} is not a record id: expected a GUID like 00000000-0000-0000-0000-000000000000."
        )
    return clean


def validate_entity_name(name: str) -> str:
    """A table logical name (``contact``, ``new_project``), stripped; UsageError otherwise."""
    clean = name.strip() if isinstance(name, str) else ""
    if not _ENTITY_NAME.fullmatch(clean):
        raise UsageError(
            f"{str(name)[:80]!r} is not a table logical name: use lower-case letters, digits and _"
            " (like contact or new_project), at most 64 characters."
        )
    return clean


def odata_string(value: str) -> str:
    """An OData string literal: ``O'Brien`` -> ``'O''Brien'``."""
    return "'" + str(value).replace("'", "''") + "'"


def is_lookup_column(column: str) -> bool:
    """`_parentcustomerid_value`: how the Web API reads a lookup (read-only in that form)."""
    return column.startswith("_") and column.endswith("_value")


def lookup_column(logical_name: str) -> str:
    """`parentcustomerid` -> `_parentcustomerid_value`."""
    return f"_{logical_name}_value"


def logical_name(column: str) -> str:
    """`_parentcustomerid_value` -> `parentcustomerid`; other columns unchanged."""
    return column[1:-6] if is_lookup_column(column) else column
