"""Parsing the simple query options (`$select`, `$orderby`, `$top`, `$count`) for a table, with the service's
400s. Shared by entity-set queries, `$expand` options and navigation collections."""

from __future__ import annotations

from .errors import bad_request
from .schema import Attr, Entity
from .serialize import resolve_column


def split_top(text: str, sep: str = ",") -> list[str]:
    """Split on `sep` outside parentheses and quotes."""
    out, depth, quote, cur = [], 0, False, []
    for ch in text:
        if ch == "'":
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        elif not quote and depth == 0 and ch == sep:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return [p.strip() for p in out]


def parse_select(meta: Entity, text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise bad_request(f"Syntax error in $select: '{text}'.")
    for name in names:
        resolve_column(meta, name, plain_lookup=True)
    return names


def parse_orderby(meta: Entity, text: str | None) -> list[tuple[Attr, bool]]:
    if text is None:
        return []
    out: list[tuple[Attr, bool]] = []
    for item in text.split(","):
        parts = item.split()
        if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
            raise bad_request(f"Syntax error in $orderby: '{text}'.")
        if "/" in parts[0]:
            raise bad_request(f"Ordering by a navigation path ('{parts[0]}') is not supported by the emulator.")
        out.append((resolve_column(meta, parts[0]), len(parts) == 2 and parts[1].lower() == "desc"))
    return out


def parse_top(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.strip().isdigit():
        raise bad_request(f"Invalid value '{text}' for $top query option found. The $top query option requires a "
                          "non-negative integer value.")
    return int(text)


def parse_bool(name: str, text: str | None) -> bool:
    if text is None:
        return False
    if text.lower() not in ("true", "false"):
        raise bad_request(f"'{text}' is not a valid count option.")
    return text.lower() == "true"
