"""`$select`, `$filter` and `$expand` over metadata definitions (dicts), as query-metadata-web-api.md
describes them: `$filter` on primitive and enumeration properties (`LogicalName eq 'contact'`, `IsPrivate eq
false`, `OwnershipType eq Microsoft.Dynamics.CRM.OwnershipTypes'UserOwned'`) and on one-level complex paths
(`CanCreateAttributes/Value eq true`, `RequiredLevel/Value eq ...`), with eq, ne, gt, ge, lt, le, and, or,
not, in, contains, startswith, endswith; no paging and no other options. Labels cannot be filtered (as in
Dataverse); an unknown property is a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from odata_query import ast
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser

from .errors import bad_request
from .qoptions import split_top

Pred = Callable[[dict[str, Any]], bool]
_ENUM = re.compile(r"Microsoft\.Dynamics\.CRM\.[A-Za-z]+'([^']*)'")
_OPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
}
_FUNCS: dict[str, Callable[[str, str], bool]] = {
    "contains": lambda v, s: s in v, "startswith": lambda v, s: v.startswith(s), "endswith": lambda v, s: v.endswith(s),
}


def compile_dict_filter(text: str, sample: dict[str, Any], type_name: str) -> Pred:
    """A predicate over definitions shaped like `sample` (used to check property names)."""
    try:
        node = ODataParser().parse(ODataLexer().tokenize(_ENUM.sub(lambda m: f"'{m.group(1)}'", text)))
    except ODataException as exc:
        raise bad_request(f"Syntax error in $filter '{text}': {exc}") from None
    return _Compiler(sample, type_name).bool_expr(node)


class _Compiler:
    def __init__(self, sample: dict[str, Any], type_name: str) -> None:
        self.sample = sample
        self.type_name = type_name

    def getter(self, node: ast._Node) -> Callable[[dict[str, Any]], Any]:
        if isinstance(node, ast.Identifier) and not node.namespace:
            name = node.name
            value = self._known(name)
            if isinstance(value, dict | list):
                raise bad_request(f"The property '{name}' is not a primitive or enumeration value; filter on a "
                                  f"property path such as {name}/Value.")
            return lambda d: d.get(name)
        if isinstance(node, ast.Attribute) and isinstance(node.owner, ast.Identifier):
            outer, inner = node.owner.name, node.attr
            value = self._known(outer)
            if not isinstance(value, dict) or inner not in value or "LocalizedLabels" in value:
                raise bad_request(f"Could not filter on '{outer}/{inner}' of type '{self.type_name}'.")
            return lambda d: (d.get(outer) or {}).get(inner)
        raise bad_request(f"Unsupported expression in a metadata $filter ({type(node).__name__}).")

    def _known(self, name: str) -> Any:
        if name not in self.sample:
            raise bad_request(f"Could not find a property named '{name}' on type "
                              f"'Microsoft.Dynamics.CRM.{self.type_name}'.")
        return self.sample[name]

    def bool_expr(self, node: ast._Node) -> Pred:
        if isinstance(node, ast.BoolOp):
            left, right = self.bool_expr(node.left), self.bool_expr(node.right)
            if isinstance(node.op, ast.And):
                return lambda d: left(d) and right(d)
            return lambda d: left(d) or right(d)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self.bool_expr(node.operand)
            return lambda d: not inner(d)
        if isinstance(node, ast.Compare):
            get = self.getter(node.left)
            if isinstance(node.comparator, ast.In) and isinstance(node.right, ast.List):
                values = [_literal(v) for v in node.right.val]
                return lambda d: _norm(get(d)) in [_norm(v) for v in values]
            if not isinstance(node.right, ast._Literal) or type(node.comparator) not in _OPS:
                raise bad_request("Only comparisons of a property with a literal are supported in a metadata $filter.")
            fn, lit = _OPS[type(node.comparator)], _norm(_literal(node.right))
            return lambda d: _safe(fn, _norm(get(d)), lit)
        if isinstance(node, ast.Call) and not node.func.namespace and node.func.name in _FUNCS:
            get, needle = self.getter(node.args[0]), node.args[1]
            if not isinstance(needle, ast.String):
                raise bad_request(f"{node.func.name} needs a string literal.")
            fn = _FUNCS[node.func.name]
            return lambda d: isinstance(v := get(d), str) and fn(v.lower(), needle.val.lower())
        raise bad_request(f"Unsupported expression in a metadata $filter ({type(node).__name__}).")


def _literal(node: ast._Node) -> Any:
    if isinstance(node, ast.Null):
        return None
    if isinstance(node, ast.GUID):
        return node.val.lower()
    return node.py_val if hasattr(node, "py_val") else node.val


def _norm(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _safe(fn: Callable[[Any, Any], bool], a: Any, b: Any) -> bool:
    try:
        return bool(fn(a, b))
    except TypeError:
        return False


def select(record: dict[str, Any], names: list[str] | None, type_name: str,
           navigation: tuple[str, ...] = ()) -> dict[str, Any]:
    """`$select` on one definition. `MetadataId` always stays; `@odata.type` stays when the definition is of a
    type derived from the one the URL names (OData minimal metadata), e.g. in an uncast Attributes collection."""
    declared = f"#Microsoft.Dynamics.CRM.{type_name}"
    if names is None:
        return {k: v for k, v in record.items() if not (k == "@odata.type" and v == declared)}
    out = {k: v for k, v in record.items() if k.startswith("@") and not (k == "@odata.type" and v == declared)}
    for name in names:
        if name in navigation:
            raise bad_request(f"'{name}' is a navigation property; use $expand={name}.")
        if name not in record:
            raise bad_request(f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{type_name}'.")
        out[name] = record[name]
    out["MetadataId"] = record.get("MetadataId")
    return out


def parse_select(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise bad_request(f"Syntax error in $select: '{text}'.")
    return names


def expand_items(text: str) -> list[tuple[str, dict[str, str]]]:
    """`Attributes($select=a;$filter=b),Keys` -> [("Attributes", {"$select": "a", "$filter": "b"}), ("Keys", {})]."""
    out = []
    for part in split_top(text):
        name, _, rest = part.partition("(")
        options: dict[str, str] = {}
        if rest:
            if not rest.endswith(")"):
                raise bad_request(f"Syntax error in $expand: '{part}'.")
            for opt in split_top(rest[:-1], ";"):
                key, eq, value = opt.partition("=")
                if not eq:
                    raise bad_request(f"Syntax error in the $expand options of '{name}': '{opt}'.")
                options[key.strip()] = value
        out.append((name.strip(), options))
    return out
