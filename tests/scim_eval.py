"""A reference evaluator: a SCIM filter AST over SCIM resources (JSON), in plain Python, with the
semantics the bridge documents (RFC 7644 §3.4.2.2): every comparison is "some value matches"
(so ``ne`` and ``gt`` are false on an absent attribute), ``not`` is the boolean complement,
``eq null`` means absent, strings compare case-insensitively (the attributes used are
caseExact=false), dateTimes chronologically."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bridge.scim.filter import And, AttrPath, Compare, Filter, Not, Or, Present, ValuePath

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def _get(obj: Any, key: str) -> Any:
    if not isinstance(obj, dict):
        return None
    for k, v in obj.items():
        if k.lower() == key.lower():
            return v
    return None


def _container(resource: dict[str, Any], path: AttrPath) -> Any:
    if path.schema and path.schema.lower() == ENTERPRISE.lower():
        return _get(resource, ENTERPRISE) or {}
    return resource


def values(resource: dict[str, Any], path: AttrPath) -> list[Any]:
    top = _get(_container(resource, path), path.attr)
    if top is None:
        return []
    items = top if isinstance(top, list) else [top]
    out = []
    for item in items:
        if isinstance(item, dict):
            v = _get(item, path.sub or "value")
        else:
            v = item if path.sub is None else None
        if v is not None and v != "":
            out.append(v)
    return out


def _cmp(have: Any, op: str, want: Any, is_date: bool) -> bool:
    if isinstance(have, bool) or isinstance(want, bool):
        return op in ("eq", "ne") and ((have == want) == (op == "eq"))
    if is_date:
        a: Any = datetime.fromisoformat(str(have).replace("Z", "+00:00"))
        b: Any = datetime.fromisoformat(str(want).replace("Z", "+00:00"))
    else:
        a, b = str(have).lower(), str(want).lower()
    return {
        "eq": a == b,
        "ne": a != b,
        "gt": a > b,
        "ge": a >= b,
        "lt": a < b,
        "le": a <= b,
        "co": isinstance(a, str) and b in a,
        "sw": isinstance(a, str) and a.startswith(b),
        "ew": isinstance(a, str) and a.endswith(b),
    }[op]


def matches(resource: dict[str, Any], f: Filter) -> bool:
    match f:
        case And(left, right):
            return matches(resource, left) and matches(resource, right)
        case Or(left, right):
            return matches(resource, left) or matches(resource, right)
        case Not(inner):
            return not matches(resource, inner)
        case Present(path):
            return bool(values(resource, path))
        case Compare(path, op, value):
            vals = values(resource, path)
            if value is None:
                return (not vals) == (op == "eq")
            is_date = path.attr.lower() == "meta"
            return any(_cmp(v, op, value, is_date) for v in vals)
        case ValuePath(path, inner):
            items = _get(_container(resource, path), path.attr) or []
            return any(matches(item, inner) for item in items if isinstance(item, dict))
    raise AssertionError(f)
