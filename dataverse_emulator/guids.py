"""Ordering of `uniqueidentifier` values as SQL Server (and so Dataverse) compares them.

SQL Server does not compare GUIDs as text: it compares the 16 bytes of the value (in .NET
`Guid.ToByteArray()` layout, the first three groups little-endian) in the order 10-15, 8-9, 6-7, 4-5, 0-3
(`System.Data.SqlTypes.SqlGuid.CompareTo`). So the last group decides first, and within the first three
groups the text's byte pairs count from right to left: ascending order runs
`01000000-0000-0000-0000-000000000000 < 00000001-0000-... < ... < 00000000-0000-0000-0000-010000000000`.

`sql_guid_key` turns a canonical GUID string into a string whose plain ordering is that order, so sorting and
gt/ge/lt/le comparisons stay cheap (slicing, no parsing) and the key can travel in a paging cookie.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical_guid(value: Any) -> str:
    """`{ABC...}` or `abc...` -> the lower-case 8-4-4-4-12 form; ValueError when it is not a GUID."""
    return str(uuid.UUID(str(value).strip().strip("{}")))


def sql_guid_key(guid: str) -> str:
    """A string that sorts like SQL Server's uniqueidentifier order; `guid` must be canonical (lower case)."""
    g = guid
    return (g[24:36] + g[19:23] + g[16:18] + g[14:16] + g[11:13] + g[9:11]
            + g[6:8] + g[4:6] + g[2:4] + g[0:2])


def sql_guid_key_of(value: Any) -> str:
    """sql_guid_key of any GUID spelling (validated); ValueError when it is not a GUID."""
    if isinstance(value, str) and _CANONICAL.fullmatch(value):  # the store's own form: no parsing
        return sql_guid_key(value)
    return sql_guid_key(canonical_guid(value))
