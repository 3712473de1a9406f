"""Splitting request URLs: the path under the API root, segments with keys, comma lists and function
parameters (aliases resolved; literals decoded by prepass.parse_literal)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .errors import ServiceError, bad_request
from .prepass import parse_literal
from .wire import API_PREFIX

_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_.]*")


def resource_not_found(segment: str) -> ServiceError:
    return ServiceError(404, "0x80060888", f"Resource not found for the segment '{segment}'.")


def method_not_allowed(method: str) -> ServiceError:
    return ServiceError(405, "0x80060888", f"The requested resource does not support http method '{method}'.")


def split_target(target: str) -> tuple[str, str, list[tuple[str, str]]]:
    """`/api/data/v9.2/contacts(x)?$select=a` -> ("contacts(x)", "$select=a", [("$select", "a")])."""
    parts = urlsplit(target)
    path = parts.path
    if path.rstrip("/") == API_PREFIX.rstrip("/"):
        path = API_PREFIX
    if not path.startswith(API_PREFIX):
        raise resource_not_found(path.lstrip("/") or "/")
    params = parse_qsl(parts.query, keep_blank_values=True)
    return unquote(path[len(API_PREFIX):]), parts.query, params


def _closing_paren(text: str, start: int) -> int:
    """Index of the `)` matching the `(` at text[start], skipping quoted strings and nested brackets."""
    depth, i, quote = 0, start, ""
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote and not (quote == "'" and text[i + 1 : i + 2] == "'"):
                quote = ""
            elif ch == quote:
                i += 1
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise bad_request(f"Unbalanced parentheses in '{text}'.")


def split_segment(rel: str) -> tuple[str, str | None, str]:
    """`contacts(id)/x` -> ("contacts", "id", "/x"); `WhoAmI()` -> ("WhoAmI", "", "")."""
    m = _NAME.match(rel)
    if m is None:
        raise resource_not_found(rel)
    name, i = m.group(0), m.end()
    if i < len(rel) and rel[i] == "(":
        end = _closing_paren(rel, i)
        return name, rel[i + 1 : end], rel[end + 1 :]
    return name, None, rel[i:]


def split_args(text: str) -> list[str]:
    """Top-level comma split of `A=@a,B='x,y',C={"k":[1,2]}`."""
    out, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    if cur or out:
        out.append("".join(cur))
    return [a.strip() for a in out if a.strip()]


def function_params(args: str, params: list[tuple[str, str]]) -> dict[str, Any]:
    """Function parameters with aliases (`P=@a` and `?@a=...`) resolved and literals decoded."""
    aliases = {k: v for k, v in params if k.startswith("@")}
    out: dict[str, Any] = {}
    for arg in split_args(args):
        name, eq, value = arg.partition("=")
        if not eq or not name.strip():
            raise bad_request(f"Invalid function parameter '{arg}'; expected Name=value or Name=@alias.")
        value = value.strip()
        if value.startswith("@"):
            if value not in aliases:
                raise bad_request(f"The parameter alias '{value}' has no value in the query string.")
            value = aliases[value]
        out[name.strip()] = parse_literal(value)
    return out
