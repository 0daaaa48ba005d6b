"""Where a PATCH path points and what a value filter selects (RFC 7644 §3.5.2), pure: a parsed
path resolved against the resource's schemas (:func:`resolve_target`), and a value filter
evaluated against one element of a multi-valued attribute (:func:`matches`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.errors import BadRequest, InvalidPath
from bridge.scim import schema as sch
from bridge.scim.filter import And, AttrPath, Compare, Filter, Not, Or, Present, ValuePath
from bridge.scim.path import PatchPath
from bridge.scim.values import parse_bool


# ---------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class Target:
    """A resolved PATCH target: one top-level attribute of one schema, maybe narrowed."""

    schema: str
    defn: sch.AttrDef
    sub: str | None = None
    filter: Filter | None = None

    @property
    def name(self) -> str:
        return self.defn.name

    @property
    def sub_def(self) -> sch.AttrDef | None:
        return self.defn.sub(self.sub) if self.sub else None


def resolve_target(
    schemas: tuple[str, ...], path: PatchPath, resource: str = "the resource"
) -> Target:
    """The attribute ``path`` addresses in a resource of ``schemas`` (core schema first)."""
    attr = path.attr
    schema: str | None = None
    if attr.schema is not None:
        schema = sch.canonical_schema(attr.schema)
        if schema is None or schema not in schemas:
            raise InvalidPath(f"schema {attr.schema} is not used by {resource}")
    defn, schema = _lookup(schemas, schema, attr.attr, resource)
    sub = attr.sub or path.sub
    if sub is not None:
        sd = defn.sub(sub) if defn.type == "complex" else None
        if sd is None:
            raise InvalidPath(f"{defn.name} has no sub-attribute {sub!r}")
        sub = sd.name
    if path.filter is not None:
        if not defn.multi_valued:
            raise InvalidPath(f"a value filter needs a multi-valued attribute, not {defn.name}")
        for p in filter_paths(path.filter):
            if p.sub is not None or defn.sub(p.attr) is None:
                raise InvalidPath(f"{defn.name} has no sub-attribute {p.attr!r} to filter on")
    return Target(schema, defn, sub, path.filter)


def _lookup(
    schemas: tuple[str, ...], schema: str | None, name: str, resource: str
) -> tuple[sch.AttrDef, str]:
    """An attribute by name; unqualified names belong to the core schema (RFC 7644 §3.10),
    falling back to an extension that alone defines the name."""
    for urn in (schema,) if schema else schemas:
        defn = sch.attr_def(urn, name)
        if defn is not None:
            return defn, urn
    raise InvalidPath(f"{name!r} is not an attribute of {resource}")


def filter_paths(f: Filter) -> Iterator[AttrPath]:
    match f:
        case Compare(path=p) | Present(path=p):
            yield p
        case And(left=a, right=b) | Or(left=a, right=b):
            yield from filter_paths(a)
            yield from filter_paths(b)
        case Not(inner=i):
            yield from filter_paths(i)
        case ValuePath(path=p):
            yield p


# ---------------------------------------------------------------------------- value filters
def matches(f: Filter, element: Mapping[str, Any], defn: sch.AttrDef) -> bool:
    """Evaluate a value filter (RFC 7644 §3.4.2.2, relative paths) against one element of the
    multi-valued attribute ``defn``; strings compare case-insensitively unless caseExact."""
    match f:
        case And(left=a, right=b):
            return matches(a, element, defn) and matches(b, element, defn)
        case Or(left=a, right=b):
            return matches(a, element, defn) or matches(b, element, defn)
        case Not(inner=i):
            return not matches(i, element, defn)
        case Present(path=p):
            v = sch.ci_get(element, p.attr)
            return v not in (None, "", [], {})
        case Compare(path=p, op=op, value=want):
            sd = defn.sub(p.attr)
            return _compare(sch.ci_get(element, p.attr), op, want, bool(sd and sd.case_exact))
    return False


def _compare(have: Any, op: str, want: Any, case_exact: bool) -> bool:
    if op == "eq" and want is None:
        return have is None
    if have is None:
        return op == "ne"
    if isinstance(want, bool) or isinstance(have, bool):
        try:
            equal = parse_bool(have) == parse_bool(want)
        except BadRequest:
            equal = False
        return equal if op == "eq" else (not equal if op == "ne" else False)
    a, b = have, want
    if isinstance(a, str) and isinstance(b, str) and not case_exact:
        a, b = a.lower(), b.lower()
    if isinstance(a, str) != isinstance(b, str):
        a, b = str(a), str(b)
    tests: dict[str, Callable[[Any, Any], bool]] = {
        "eq": lambda x, y: x == y,
        "ne": lambda x, y: x != y,
        "co": lambda x, y: isinstance(x, str) and y in x,
        "sw": lambda x, y: isinstance(x, str) and x.startswith(y),
        "ew": lambda x, y: isinstance(x, str) and x.endswith(y),
        "gt": lambda x, y: x > y,
        "ge": lambda x, y: x >= y,
        "lt": lambda x, y: x < y,
        "le": lambda x, y: x <= y,
    }
    try:
        return tests[op](a, b)
    except TypeError:
        return False


def constructive(f: Filter | None) -> dict[str, Any] | None:
    """The element a filter describes when it is only ``eq`` tests joined by ``and``
    (``phoneNumbers[type eq "mobile"]``), else None."""
    match f:
        case Compare(path=p, op="eq", value=v) if v is not None:
            return {p.attr: v}
        case And(left=a, right=b):
            left, right = constructive(a), constructive(b)
            if left is None or right is None:
                return None
            return {**left, **right}
    return None
