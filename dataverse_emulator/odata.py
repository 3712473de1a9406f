"""OData `$filter` for entity sets: parsed with odata-query's grammar, evaluated here against store records.

A pre-pass (prepass.py) resolves parameter aliases and replaces each `Microsoft.Dynamics.CRM.In(...)` or
`NotIn(...)` call with a placeholder identifier, bound here to a membership test. The AST is compiled once
into a closure over a record. Comparison is three-valued like SQL (a null column never equals, differs from
or orders against a value), strings compare case-insensitively (Dataverse's collation), and lookups are
named `_x_value`.

Navigation, as Dataverse allows it (webapi/query/filter-rows.md): a single-valued navigation property's
columns (`parentcustomerid_account/name eq 'x'`, also two levels deep), and `any`/`all` over a collection-valued
one (`Contact_Tasks/any(t:t/subject eq 'x')`, `all` true for none). Anything unsupported is a 400 naming the
problem, never a silently wrong answer.
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
from .odata_values import _STRING_TYPES, coerce_literal, coerce_loose, value_key
from .prepass import placeholder_index, rewrite
from .relationships import collection_nav, many_to_many_nav
from .schema import SCHEMA, Attr, Entity
from .serialize import find_nav, resolve_column
from .store import Ref, Store

Row = dict[str, Any]
Pred = Callable[[Row], "bool | None"]
Getter = Callable[[Row], Any]
_local = threading.local()  # SLY parsers keep state on the instance: one per thread
__all__ = ["Filter", "compile_filter", "value_key"]


@dataclass
class Filter:
    """A compiled `$filter`: the predicate, and the primary ids it is limited to when it says so."""

    predicate: Pred
    ids: set[str] | None


def compile_filter(meta: Entity, text: str, aliases: dict[str, str] | None = None,
                   store: Store | None = None) -> Filter:
    rewritten, calls = rewrite(text, aliases or {})
    in_calls = []
    for call in calls:
        attr = resolve_column(meta, call.prop)
        in_calls.append((attr, {coerce_loose(attr, v) for v in call.values}, call.negate))
    node = _parse(rewritten, text)
    return _Compiler(meta, in_calls, store).compile(node)


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


# -- GUID order -------------------------------------------------------------------------------------------------
def is_guid(attr: Attr) -> bool:
    """A uniqueidentifier column: the primary key or a lookup (SQL Server orders these its own way)."""
    return attr.is_lookup or attr.type == S.UNIQUEID


def order_key(attr: Attr, value: Any) -> Any:
    """value_key, with GUIDs in SQL Server's uniqueidentifier order (guids.py): for sorting and gt/ge/lt/le."""
    key = value_key(attr, value)
    return sql_guid_key(key) if key is not None and is_guid(attr) else key


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
    def __init__(self, meta: Entity, in_calls: list[tuple[Attr, set[Any], bool]], store: Store | None,
                 variable: str | None = None) -> None:
        self.meta = meta
        self.in_calls = in_calls
        self.store = store
        self.variable = variable  # the lambda variable naming this scope's row, inside any/all

    def compile(self, node: ast._Node) -> Filter:
        return Filter(self.bool_expr(node), self.ids(node) if self.variable is None else None)

    # -- columns and navigation --------------------------------------------------------------------------------
    def column(self, node: ast._Node) -> tuple[Attr, Getter]:
        """The column a node names and how to read it from a row of this scope."""
        if isinstance(node, ast.Identifier) and not node.namespace:
            if node.name == self.variable:
                raise bad_request(f"The lambda variable '{node.name}' must be followed by a property "
                                  f"('{node.name}/x').")
            attr = resolve_column(self.meta, node.name)
            return attr, lambda r, n=attr.name: r.get(n)
        if isinstance(node, ast.Attribute):
            if isinstance(node.owner, ast.Identifier) and node.owner.name == self.variable:
                attr = resolve_column(self.meta, node.attr)
                return attr, lambda r, n=attr.name: r.get(n)
            target, row_of = self.nav_path(node.owner)
            attr = resolve_column(target, node.attr)
            return attr, lambda r, n=attr.name: None if (x := row_of(r)) is None else x.get(n)
        if isinstance(node, ast.Call):
            raise _unsupported_function(node.func.full_name())
        if isinstance(node, ast.BinOp):
            raise bad_request("Arithmetic operators (add, sub, mul, div, mod) are not supported in $filter.")
        raise bad_request(f"Expected a property of '{self.meta.name}' in $filter, found {type(node).__name__}.")

    def nav_path(self, node: ast._Node) -> tuple[Entity, Callable[[Row], Row | None]]:
        """A single-valued navigation path (`nav` or `nav/nav`) -> its table and the related row of a row."""
        if isinstance(node, ast.Identifier) and not node.namespace:
            if node.name == self.variable:
                return self.meta, lambda r: r
            return self._nav_step(self.meta, node.name, lambda r: r)
        if isinstance(node, ast.Attribute):
            meta, row_of = self.nav_path(node.owner)
            return self._nav_step(meta, node.attr, row_of)
        raise bad_request(f"Unsupported navigation path in $filter ({type(node).__name__}).")

    def _nav_step(self, meta: Entity, nav: str, row_of: Callable[[Row], Row | None]) -> tuple[
            Entity, Callable[[Row], Row | None]]:
        found = find_nav(meta, nav)
        if found is None:
            if collection_nav(meta.name, nav) or many_to_many_nav(meta.name, nav):
                raise bad_request(f"'{nav}' is a collection-valued navigation property; filter on it with "
                                  f"{nav}/any(x:...) or {nav}/all(x:...).")
            raise bad_request(f"Could not find a navigation property named '{nav}' on type "
                              f"'Microsoft.Dynamics.CRM.{meta.name}'.")
        attr, target = found
        store = self._need_store()

        def related(r: Row) -> Row | None:
            base = row_of(r)
            ref = None if base is None else base.get(attr.name)
            if not isinstance(ref, Ref) or ref.entity != target:
                return None
            return store.get(target, ref.id)

        return SCHEMA[target], related

    def _need_store(self) -> Store:
        if self.store is None:
            raise bad_request("Navigation properties are not supported in this $filter.")
        return self.store

    # -- boolean expressions -----------------------------------------------------------------------------------
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
        if isinstance(node, ast.CollectionLambda):
            return self.lambda_(node)
        if isinstance(node, ast.Identifier) and placeholder_index(node.name) is not None:
            return self.in_call(placeholder_index(node.name))
        if isinstance(node, ast.Boolean):
            return lambda r, v=node.py_val: v
        if isinstance(node, ast.Identifier | ast.Attribute):
            attr, get = self.column(node)
            if attr.type == S.BOOLEAN:
                return lambda r: None if (v := get(r)) is None else bool(v)
        raise bad_request(f"The $filter expression must be a boolean condition; '{type(node).__name__}' is not "
                          "supported here.")

    def compare(self, node: ast.Compare) -> Pred:
        left, right, op = node.left, node.right, node.comparator
        if isinstance(left, ast._Literal) and not isinstance(right, ast._Literal):
            left, right, op = right, left, _MIRROR.get(type(op), op)
        attr, get = self.column(left)
        if isinstance(op, ast.In):
            if not isinstance(right, ast.List):
                raise bad_request("The right side of 'in' must be a list of literals.")
            values = {coerce_literal(attr, v, "In") for v in right.val}
            return lambda r: None if (k := value_key(attr, get(r))) is None else k in values
        if not isinstance(right, ast._Literal) or type(op) not in _OPS:
            raise bad_request("Only comparisons of a property with a literal are supported in $filter.")
        label, fn = _OPS[type(op)]
        lit = coerce_literal(attr, right, label)
        if lit is None:
            if label not in ("Equal", "NotEqual"):
                return lambda r: None
            want_null = label == "Equal"
            return lambda r: (get(r) is None) == want_null
        if is_guid(attr) and label not in ("Equal", "NotEqual"):
            lit_key = sql_guid_key(lit)
            return lambda r: None if (k := order_key(attr, get(r))) is None else fn(k, lit_key)
        return lambda r: None if (k := value_key(attr, get(r))) is None else fn(k, lit)

    def call(self, node: ast.Call) -> Pred:
        fname = node.func.full_name()
        fn = _STRING_FUNCS.get(fname) if not node.func.namespace else None
        if fn is None:
            raise _unsupported_function(fname)
        attr, get = self.column(node.args[0])
        if attr.type not in _STRING_TYPES or not isinstance(node.args[1], ast.String):
            raise bad_request(f"The function '{fname}' needs a string property and a string literal.")
        needle = node.args[1].val.casefold()
        return lambda r: None if (v := get(r)) is None else fn(str(v).casefold(), needle)

    def lambda_(self, node: ast.CollectionLambda) -> Pred:
        """`nav/any(x: ...)`, `nav/all(x: ...)` over a 1:N collection-valued navigation property."""
        if not isinstance(node.owner, ast.Identifier) or node.owner.namespace or self.variable is not None:
            raise bad_request("any/all is supported on a collection-valued navigation property of the queried "
                              "table, not nested in another lambda (emulator).")
        nav = node.owner.name
        rel = collection_nav(self.meta.name, nav)
        if rel is None:
            if many_to_many_nav(self.meta.name, nav):
                raise bad_request(f"any/all over the many-to-many navigation property '{nav}' is not supported "
                                  "by the emulator.")
            raise bad_request(f"Could not find a collection-valued navigation property named '{nav}' on type "
                              f"'Microsoft.Dynamics.CRM.{self.meta.name}'.")
        store = self._need_store()
        related_meta, pk = SCHEMA[rel.referencing_entity], self.meta.primary_id
        if node.lambda_ is None:
            inner: Pred = lambda r: True  # noqa: E731 - `nav/any()`: at least one related row
        else:
            var = node.lambda_.identifier.name
            inner = _Compiler(related_meta, [], store, var).bool_expr(node.lambda_.expression)
        table, attr = rel.referencing_entity, rel.referencing_attribute
        is_any = isinstance(node.operator, ast.Any)

        def pred(r: Row) -> bool:
            rows = [store.tables[table][i] for i in store.referencing_ids(table, attr, Ref(self.meta.name, r[pk]))]
            if is_any:
                return any(inner(x) is True for x in rows)
            return all(inner(x) is True for x in rows)

        return pred

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
