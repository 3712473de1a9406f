"""The `$filter` pre-pass, and OData/JSON literals.

odata-query cannot tokenise the `[...]` arrays of Dataverse query functions, so before parsing, parameter
aliases (`@p1`) are substituted and each `Microsoft.Dynamics.CRM.In(PropertyName=...,PropertyValues=[...])`
(or `NotIn`) is replaced by a placeholder identifier, which odata.py binds to a membership test. This also
keeps a 5000-id filter cheap to parse. Values may be `'x'` (with `''` escapes), `"x"` (JSON), numbers or GUIDs.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from .errors import bad_request

PLACEHOLDER = "__dvin{}__"
_CRM_CALL = re.compile(r"Microsoft\.Dynamics\.CRM\.([A-Za-z]+)\s*\(", re.I)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE = re.compile(r"[^,\]\)\s]+")


@dataclass
class InCall:
    """One `Microsoft.Dynamics.CRM.In`/`NotIn` call: the property name and its values as given."""

    prop: str
    values: list[Any]
    negate: bool


_STRING_LITERAL = {"'": re.compile(r"'(?:[^']|'')*'"), '"': re.compile(r'"(?:[^"\\]|\\.)*"')}


def skip_string(text: str, i: int) -> int:
    """Index after the literal that starts at text[i] (a quote); `''` / `\\"` escapes handled."""
    m = _STRING_LITERAL[text[i]].match(text, i)
    if m is None:
        raise bad_request(f"There is an unterminated literal at position {i} in '{text}'.")
    return m.end()


def rewrite(text: str, aliases: dict[str, str]) -> tuple[str, list[InCall]]:
    """The filter with aliases substituted and each In/NotIn call replaced by a placeholder identifier."""
    in_calls: list[InCall] = []
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            end = skip_string(text, i)
            out.append(text[i:end])
            i = end
        elif ch == "@":
            m = _NAME.match(text, i + 1)
            if m is None or ("@" + m.group(0)) not in aliases:
                raise bad_request(f"The parameter alias '{text[i:i + 20]}' used in $filter has no value.")
            out.append(aliases["@" + m.group(0)])
            i = m.end()
        elif (m := _CRM_CALL.match(text, i)) is not None and (i == 0 or not text[i - 1].isalnum()):
            name = m.group(1)
            if name.lower() not in ("in", "notin"):
                raise bad_request(f"The query function 'Microsoft.Dynamics.CRM.{name}' is not supported by the "
                                  "emulator (supported: In, NotIn).")
            prop, values, i = _parse_in_call(text, m.end(), aliases)
            out.append(PLACEHOLDER.format(len(in_calls)))
            in_calls.append(InCall(prop, values, name.lower() == "notin"))
        else:
            out.append(ch)
            i += 1
    return "".join(out), in_calls


def _parse_in_call(text: str, i: int, aliases: dict[str, str]) -> tuple[str, list[Any], int]:
    params: dict[str, Any] = {}
    while True:
        i = _ws(text, i)
        m = _NAME.match(text, i)
        if m is None or _ws(text, m.end()) >= len(text) or text[_ws(text, m.end())] != "=":
            raise bad_request(f"Microsoft.Dynamics.CRM.In expects PropertyName='...',PropertyValues=[...] in "
                              f"'{text}'.")
        value, i = _read_value(text, _ws(text, _ws(text, m.end()) + 1), aliases)
        params[m.group(0)] = value
        i = _ws(text, i)
        if i < len(text) and text[i] == ",":
            i += 1
            continue
        if i < len(text) and text[i] == ")":
            break
        raise bad_request(f"Syntax error at position {i} in '{text}'.")
    prop, values = params.get("PropertyName"), params.get("PropertyValues")
    if not isinstance(prop, str) or not isinstance(values, list) or set(params) != {"PropertyName",
                                                                                    "PropertyValues"}:
        raise bad_request("Microsoft.Dynamics.CRM.In takes PropertyName (a string) and PropertyValues (an array).")
    if not values:
        raise bad_request("The PropertyValues of Microsoft.Dynamics.CRM.In must contain at least one value.")
    return prop, values, i + 1


def _ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def _read_value(text: str, i: int, aliases: dict[str, str]) -> tuple[Any, int]:
    """One In parameter: 'string', "string", [array], @alias, or a bare number/GUID/keyword."""
    if i >= len(text):
        raise bad_request(f"Unexpected end of $filter in '{text}'.")
    ch = text[i]
    if ch in "'\"":
        end = skip_string(text, i)
        return parse_literal(text[i:end]), end
    if ch == "@":
        m = _NAME.match(text, i + 1)
        if m is None or "@" + m.group(0) not in aliases:
            raise bad_request(f"The parameter alias '{text[i:i + 20]}' used in $filter has no value.")
        return parse_literal(aliases["@" + m.group(0)]), m.end()
    if ch == "[":
        items: list[Any] = []
        i += 1
        while True:
            i = _ws(text, i)
            if i < len(text) and text[i] == "]" and not items:
                return items, i + 1
            item, i = _read_value(text, i, aliases)
            items.append(item)
            i = _ws(text, i)
            if i < len(text) and text[i] == ",":
                i += 1
            elif i < len(text) and text[i] == "]":
                return items, i + 1
            else:
                raise bad_request("Invalid JSON. A comma character ',' was expected in scope 'Array'. Every two "
                                  "elements in an array and properties of an object must be separated by commas.")
    m = _BARE.match(text, i)
    if m is None:
        raise bad_request(f"Syntax error at position {i} in '{text}'.")
    return parse_literal(m.group(0)), m.end()


def parse_literal(raw: str) -> Any:
    """An OData or JSON literal as Python: 'x' (with '' escapes), "x", numbers, true/false/null, JSON (also with
    single-quoted strings, as Microsoft's own examples write parameter aliases: `{'PageNumber':1}`), GUIDs."""
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1].replace("''", "'")
    if raw in ("true", "false", "null") or raw[:1] in '"[{-' or raw[:1].isdigit():
        try:
            return json.loads(raw)
        except ValueError:
            pass
        if raw[:1] in "[{":
            try:
                return json.loads(_requote(raw))
            except ValueError as exc:
                raise bad_request(f"Invalid JSON in the literal '{raw}': {exc}.") from None
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise bad_request(f"Unrecognized literal '{raw}'.") from None


def _requote(text: str) -> str:
    """JSON with single-quoted strings -> standard JSON (double-quoted strings kept as they are)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            end = skip_string(text, i)
            out.append(text[i:end])
            i = end
        elif ch == "'":
            j, buf = i + 1, []
            while j < len(text):
                if text[j] == "\\" and j + 1 < len(text):
                    buf.append(text[j + 1])
                    j += 2
                elif text[j] == "'" and text[j + 1 : j + 2] == "'":
                    buf.append("'")
                    j += 2
                elif text[j] == "'":
                    break
                else:
                    buf.append(text[j])
                    j += 1
            if j >= len(text):
                raise ValueError(f"unterminated string at position {i}")
            out.append(json.dumps("".join(buf), ensure_ascii=False))
            i = j + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def placeholder_index(name: str) -> int | None:
    """The In-call index a placeholder identifier stands for, or None for an ordinary name."""
    if name.startswith("__dvin") and name.endswith("__") and name[6:-2].isdigit():
        return int(name[6:-2])
    return None
