"""OData `$filter` for entity sets: parsed with odata-query's grammar, evaluated here against store records.

A pre-pass (prepass.py) resolves parameter aliases and replaces each `Microsoft.Dynamics.CRM.In(...)` or
`NotIn(...)` call with a placeholder identifier, bound here to a membership test. The AST is compiled once
into a closure over a record. Comparison is three-valued like SQL (a null column never equals, differs from
or orders against a value), strings compare case-insensitively (Dataverse's collation), and lookups are
named `_x_value`. Anything unsupported is a 400 naming the problem, never a silently wrong answer.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from odata_query import ast
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser

from . import schema as S
from .errors import ServiceError, bad_request
from .guids import sql_guid_key
from .prepass import placeholder_index, rewrite
from .schema import Attr, Entity
from .serialize import EDM_TYPES, normalize_datetime, resolve_column
from .store import Ref

Row = dict[str, Any]
Pred = Callable[[Row], "bool | None"]
_STRING_TYPES = {S.STRING, S.MEMO, S.ENTITYNAME}
_INT_TYPES = {S.INTEGER, S.BIGINT, S.PICKLIST, S.STATE, S.STATUS}
_LITERAL_EDM = {ast.String: "Edm.String", ast.Integer: "Edm.Int32", ast.Float: "Edm.Double",
                ast.Boolean: "Edm.Boolean", ast.GUID: "Edm.Guid", ast.DateTime: "Edm.DateTimeOffset",
                ast.Date: "Edm.Date"}
_local = threading.local()  # SLY parsers keep state on the instance: one per thread


@dataclass
class Filter:
    """A compiled `$filter`: the predicate, and the primary ids it is limited to when it says so."""

    predicate: Pred
    ids: set[str] | None


def compile_filter(meta: Entity, text: str, aliases: dict[str, str] | None = None) -> Filter:
    rewritten, calls = rewrite(text, aliases or {})
    in_calls = []
    for call in calls:
        attr = resolve_column(meta, call.prop)
        in_calls.append((attr, {_coerce_loose(attr, v) for v in call.values}, call.negate))
    node = _parse(rewritten, text)
    return _Compiler(meta, in_calls).compile(node)


def _parse(text: str, original: str) -> ast._Node:
    if not hasattr(_local, "parser"):
        _local.lexer, _local.parser = ODataLexer(), ODataParser()
    try:
        return _local.parser.parse(_local.lexer.tokenize(text))
    except ODataException as exc:
        token = getattr(exc, "token", None)
        if token is not None and getattr(token, "index", None) is not None:
            raise bad_request(f"Syntax error at position {token.index} in '{original}'.") from None
        if getattr(exc, "function_name", None):
            raise bad_request(f"An unknown function with name '{exc.function_name}' was found. ({exc})") from None
        raise bad_request(f"Syntax error in '$filter': {exc} ('{original}').") from None


# -- value keys ------------------------------------------------------------------------------------------------
def value_key(attr: Attr, value: Any) -> Any:
    """A stored value in comparable form (strings case-folded, lookups as their id, datetimes normalised)."""
    if value is None:
        return None
    if isinstance(value, Ref):
        return value.id
    t = attr.type
    if t in _STRING_TYPES:
        return str(value).casefold()
    if t == S.DATETIME:
        return _dt_key(str(value))
    if t == S.UNIQUEID:
        return str(value).lower()
    return value


def is_guid(attr: Attr) -> bool:
    """A uniqueidentifier column: the primary key or a lookup (SQL Server orders these its own way)."""
    return attr.is_lookup or attr.type == S.UNIQUEID


def order_key(attr: Attr, value: Any) -> Any:
    """value_key, with GUIDs in SQL Server's uniqueidentifier order (guids.py): for sorting and gt/ge/lt/le."""
    key = value_key(attr, value)
    return sql_guid_key(key) if key is not None and is_guid(attr) else key


def _dt_key(value: str) -> str:
    try:
        norm = normalize_datetime(value)
    except ValueError:
        return value
    return norm + "T00:00:00Z" if len(norm) == 10 else norm


def _coerce_loose(attr: Attr, value: Any) -> Any:
    """An In value (JSON strings allowed for every type, as Microsoft's SDK sends them) in comparable form."""
    if value is None:
        return None
    t = attr.type
    try:
        if attr.is_lookup or t == S.UNIQUEID:
            return str(uuid.UUID(str(value)))
        if t in _STRING_TYPES:
            return str(value).casefold()
        if t in _INT_TYPES and not isinstance(value, bool):
            return int(value)
        if t in (S.DECIMAL, S.MONEY) and not isinstance(value, bool):
            return float(value)
        if t == S.BOOLEAN:
            return value if isinstance(value, bool) else {"true": True, "false": False}[str(value).lower()]
        if t == S.DATETIME:
            return _dt_key(str(value))
    except (ValueError, KeyError, TypeError):
        pass
    raise bad_request(f"Cannot convert the literal '{value}' to the expected type "
                      f"'{EDM_TYPES.get(t, 'Edm.String')}' (property '{attr.name}').")


def _coerce_literal(attr: Attr, node: ast._Node, op: str) -> Any:
    """A filter literal compared with `attr`, type-checked as the service would."""
    if isinstance(node, ast.Null):
        return None
    t = attr.type
    ok = (
        (t in _STRING_TYPES and isinstance(node, ast.String))
        or ((t in _INT_TYPES or t in (S.DECIMAL, S.MONEY)) and isinstance(node, ast.Integer | ast.Float))
        or (t == S.BOOLEAN and isinstance(node, ast.Boolean))
        or (t == S.DATETIME and isinstance(node, ast.DateTime | ast.Date))
        or ((attr.is_lookup or t == S.UNIQUEID) and isinstance(node, ast.GUID | ast.String))
    )
    if not ok:
        found = _LITERAL_EDM.get(type(node), type(node).__name__)
        raise bad_request(f"A binary operator with incompatible types was detected. Found operand types "
                          f"'{EDM_TYPES.get(t, 'Edm.String')}' and '{found}' for operator kind '{op}'.")
    if isinstance(node, ast.Integer | ast.Float):
        return node.py_val
    return _coerce_loose(attr, node.val if isinstance(node, ast.GUID | ast.DateTime | ast.Date) else node.py_val)


# -- compiler --------------------------------------------------------------------------------------------------
_OPS: dict[type, tuple[str, Callable[[Any, Any], bool]]] = {
    ast.Eq: ("Equal", lambda a, b: a == b), ast.NotEq: ("NotEqual", lambda a, b: a != b),
    ast.Lt: ("LessThan", lambda a, b: a < b), ast.LtE: ("LessThanOrEqual", lambda a, b: a <= b),
    ast.Gt: ("GreaterThan", lambda a, b: a > b), ast.GtE: ("GreaterThanOrEqual", lambda a, b: a >= b),
}
_MIRROR = {ast.Lt: ast.Gt(), ast.Gt: ast.Lt(), ast.LtE: ast.GtE(), ast.GtE: ast.LtE()}
_STRING_FUNCS: dict[str, Callable[[str, str], bool]] = {
    "contains": lambda v, s: s in v, "startswith": lambda v, s: v.startswith(s), "endswith": lambda v, s: v.endswith(s),
}


class _Compiler:
    def __init__(self, meta: Entity, in_calls: list[tuple[Attr, set[Any], bool]]) -> None:
        self.meta = meta
        self.in_calls = in_calls

    def compile(self, node: ast._Node) -> Filter:
        return Filter(self.bool_expr(node), self.ids(node))

    def column(self, node: ast._Node) -> Attr:
        if isinstance(node, ast.Identifier) and not node.namespace:
            return resolve_column(self.meta, node.name)
        if isinstance(node, ast.Attribute):
            raise bad_request("Navigation paths (a/b) in $filter are not supported by the emulator.")
        if isinstance(node, ast.Call):
            raise _unsupported_function(node.func.full_name())
        if isinstance(node, ast.BinOp):
            raise bad_request("Arithmetic operators (add, sub, mul, div, mod) are not supported in $filter.")
        raise bad_request(f"Expected a property of '{self.meta.name}' in $filter, found {type(node).__name__}.")

    def bool_expr(self, node: ast._Node) -> Pred:
        if isinstance(node, ast.BoolOp):
            left, right = self.bool_expr(node.left), self.bool_expr(node.right)
            return _and(left, right) if isinstance(node.op, ast.And) else _or(left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self.bool_expr(node.operand)
            return lambda r: None if (v := inner(r)) is None else not v
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Identifier) and placeholder_index(node.name) is not None:
            return self.in_call(placeholder_index(node.name))
        if isinstance(node, ast.Boolean):
            return lambda r, v=node.py_val: v
        if isinstance(node, ast.Identifier):
            attr = self.column(node)
            if attr.type == S.BOOLEAN:
                return lambda r, n=attr.name: None if r.get(n) is None else bool(r.get(n))
        raise bad_request(f"The $filter expression must be a boolean condition; '{type(node).__name__}' is not "
                          "supported here.")

    def compare(self, node: ast.Compare) -> Pred:
        left, right, op = node.left, node.right, node.comparator
        if isinstance(left, ast._Literal) and not isinstance(right, ast._Literal):
            left, right, op = right, left, _MIRROR.get(type(op), op)
        attr = self.column(left)
        name = attr.name
        if isinstance(op, ast.In):
            if not isinstance(right, ast.List):
                raise bad_request("The right side of 'in' must be a list of literals.")
            values = {_coerce_literal(attr, v, "In") for v in right.val}
            return lambda r: None if (k := value_key(attr, r.get(name))) is None else k in values
        if not isinstance(right, ast._Literal) or type(op) not in _OPS:
            raise bad_request("Only comparisons of a property with a literal are supported in $filter.")
        label, fn = _OPS[type(op)]
        lit = _coerce_literal(attr, right, label)
        if lit is None:
            if label not in ("Equal", "NotEqual"):
                return lambda r: None
            want_null = label == "Equal"
            return lambda r: (r.get(name) is None) == want_null
        if is_guid(attr) and label not in ("Equal", "NotEqual"):
            lit_key = sql_guid_key(lit)
            return lambda r: None if (k := order_key(attr, r.get(name))) is None else fn(k, lit_key)
        return lambda r: None if (k := value_key(attr, r.get(name))) is None else fn(k, lit)

    def call(self, node: ast.Call) -> Pred:
        fname = node.func.full_name()
        fn = _STRING_FUNCS.get(fname) if not node.func.namespace else None
        if fn is None:
            raise _unsupported_function(fname)
        attr = self.column(node.args[0])
        if attr.type not in _STRING_TYPES or not isinstance(node.args[1], ast.String):
            raise bad_request(f"The function '{fname}' needs a string property and a string literal.")
        needle, name = node.args[1].val.casefold(), attr.name
        return lambda r: None if (v := r.get(name)) is None else fn(str(v).casefold(), needle)

    def in_call(self, index: int) -> Pred:
        attr, values, negate = self.in_calls[index]
        name = attr.name
        if negate:
            return lambda r: None if (k := value_key(attr, r.get(name))) is None else k not in values
        return lambda r: None if (k := value_key(attr, r.get(name))) is None else k in values

    def ids(self, node: ast._Node) -> set[str] | None:
        """Primary ids the filter is limited to (so a lookup by id does not scan the table), or None."""
        pid = self.meta.primary_id
        if isinstance(node, ast.BoolOp):
            left, right = self.ids(node.left), self.ids(node.right)
            if isinstance(node.op, ast.And):
                return left & right if left is not None and right is not None else (left if right is None else right)
            return left | right if left is not None and right is not None else None
        if isinstance(node, ast.Identifier) and (index := placeholder_index(node.name)) is not None:
            attr, values, negate = self.in_calls[index]
            return {v for v in values if v} if attr.name == pid and not negate else None
        if (isinstance(node, ast.Compare) and isinstance(node.comparator, ast.Eq)
                and isinstance(node.left, ast.Identifier) and node.left.name == pid
                and isinstance(node.right, ast.GUID | ast.String)):
            try:
                return {str(uuid.UUID(node.right.val))}
            except ValueError:
                return None
        return None


def _unsupported_function(name: str) -> ServiceError:
    return bad_request(f"The function '{name}' is not supported in $filter. Dataverse supports contains, "
                       "startswith and endswith, and Microsoft.Dynamics.CRM query functions (In, NotIn here).")


def _and(left: Pred, right: Pred) -> Pred:
    def pred(r: Row) -> bool | None:
        a = left(r)
        if a is False:
            return False
        b = right(r)
        return False if b is False else (None if a is None or b is None else True)
    return pred


def _or(left: Pred, right: Pred) -> Pred:
    def pred(r: Row) -> bool | None:
        a = left(r)
        if a is True:
            return True
        b = right(r)
        return True if b is True else (None if a is None or b is None else False)
    return pred


