"""PATCH operations on a SCIM resource, pure (RFC 7644 §3.5.2): no mapping, no LDAP.

``parse_ops`` validates a PatchOp body; ``resolve_target`` resolves a parsed path against the
resource's schemas; ``apply`` performs one operation on a resource held as a dict (core
attributes at the top, extension attributes under their schema URN).  ``matches`` evaluates a
value filter against one element of a multi-valued attribute.  The mapping-aware planning that
turns the result into an LDAP modify lives in :mod:`bridge.translate.patch`.

Tolerated IdP shapes are commented where they are handled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.errors import BadRequest, InvalidPath, InvalidSyntax, InvalidValue, NoTarget, ScimError
from bridge.scim import schema as sch
from bridge.scim.filter import And, AttrPath, Compare, Filter, Not, Or, Present, ValuePath
from bridge.scim.path import PatchPath, parse_path
from bridge.scim.values import parse_bool

__all__ = [
    "MAX_OPERATIONS",
    "MAX_VALUES",
    "OPS",
    "Op",
    "Target",
    "apply",
    "check_count",
    "constructive",
    "elements",
    "filter_paths",
    "is_empty",
    "matches",
    "named",
    "parse_ops",
    "resolve_target",
]

MAX_OPERATIONS = 1000
#: values one request may give one multi-valued attribute (documented in docs/limits; RFC 7644
#: ServiceProviderConfig has no field for it)
MAX_VALUES = 10_000
OPS = ("add", "replace", "remove")


def _ci_get(obj: Mapping[str, Any], key: str) -> Any:
    """Case-insensitive key lookup (attribute names are case-insensitive, RFC 7643 §2.1)."""
    if key in obj:
        return obj[key]
    low = key.lower()
    return next((v for k, v in obj.items() if isinstance(k, str) and k.lower() == low), None)


# ---------------------------------------------------------------------------- operations
@dataclass(frozen=True)
class Op:
    index: int
    op: str
    path_text: str | None
    path: PatchPath | None
    value: Any
    has_value: bool

    def label(self) -> str:
        text = self.path_text
        if text is not None and len(text) > 80:
            text = text[:77] + "..."
        where = f" {text!r}" if text is not None else ""
        return f"Operations[{self.index}] ({self.op}{where})"


def parse_ops(body: Mapping[str, Any]) -> list[Op]:
    """RFC 7644 §3.5.2: ``schemas`` names PatchOp and ``Operations`` is a non-empty array."""
    schemas = _ci_get(body, "schemas")
    if not isinstance(schemas, list) or not any(
        isinstance(s, str) and s.lower() == sch.PATCH_OP.lower() for s in schemas
    ):
        raise InvalidSyntax(f"a PATCH body must have schemas [{sch.PATCH_OP!r}]")
    raw_ops = _ci_get(body, "Operations")
    if not isinstance(raw_ops, list) or not raw_ops:
        raise InvalidSyntax("a PATCH body needs a non-empty 'Operations' array")
    if len(raw_ops) > MAX_OPERATIONS:
        raise InvalidSyntax(f"at most {MAX_OPERATIONS} operations per PATCH")
    return [_parse_op(i, raw) for i, raw in enumerate(raw_ops)]


def _parse_op(index: int, raw: Any) -> Op:
    if not isinstance(raw, Mapping):
        raise InvalidSyntax(f"Operations[{index}] must be an object with 'op'")
    name = _ci_get(raw, "op")
    # Entra ID (apps without the aadOptscim062020 flag) sends "Add"/"Replace"/"Remove".
    op = name.strip().lower() if isinstance(name, str) else None
    if op not in OPS:
        raise InvalidSyntax(
            f"Operations[{index}]: unknown op {name!r} (expected add, replace or remove)"
        )
    path_text = _ci_get(raw, "path")
    if path_text is not None and not isinstance(path_text, str):
        raise InvalidPath(f"Operations[{index}] ({op}): path must be a string")
    if isinstance(path_text, str) and not path_text.strip():
        path_text = None  # some clients send "path": "" for the resource itself
    has_value = any(isinstance(k, str) and k.lower() == "value" for k in raw)
    value = _ci_get(raw, "value")
    o = Op(index, op, path_text, None, value, has_value)
    path: PatchPath | None = None
    if path_text is not None:
        try:
            path = parse_path(path_text)
        except ScimError as exc:
            raise named(o, exc) from None
    o = Op(index, op, path_text, path, value, has_value)
    if op != "remove" and not has_value:
        raise InvalidValue(f"{o.label()}: a 'value' is required")
    # "value": null is kept (RFC 7643 §2.5: null is unassigned): with a path, a replace removes
    # the attribute and an add adds nothing (translate.patch); Entra ID's validator sends it.
    if op == "remove" and path is None:
        raise NoTarget(f"{o.label()}: remove needs a 'path'")
    if path is None and not isinstance(value, Mapping):
        raise InvalidValue(f"{o.label()}: without a path the value must be an object")
    return o


def named(op: Op, exc: ScimError) -> ScimError:
    """The same error, its detail prefixed with the operation it belongs to."""
    if not exc.detail.startswith("Operations["):
        exc.detail = f"{op.label()}: {exc.detail}"
        exc.args = (exc.detail,)
    return exc


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
            v = _ci_get(element, p.attr)
            return v not in (None, "", [], {})
        case Compare(path=p, op=op, value=want):
            sd = defn.sub(p.attr)
            return _compare(_ci_get(element, p.attr), op, want, bool(sd and sd.case_exact))
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


# ---------------------------------------------------------------------------- value shapes
def _scalar(defn: sch.AttrDef, value: Any) -> Any:
    if isinstance(value, list):
        # IdP tolerance: some clients send a single-valued attribute as a one-element array
        # ("value": ["x"], seen in recorded IdP PATCH traffic); an empty array clears it.
        if len(value) > 1:
            raise InvalidValue(f"{defn.name} takes a single value, got {len(value)}")
        value = value[0] if value else None
    if isinstance(value, Mapping):
        inner = _ci_get(value, "value")
        if len(value) == 1 and inner is not None and not isinstance(inner, Mapping | list):
            value = inner  # {"value": x} wrapping a simple value: unwrapped (client tolerance)
        else:
            raise InvalidValue(f"{defn.name} takes a single {defn.type} value, not an object")
    if defn.type == "boolean" and value is not None:
        # Entra ID (without aadOptscim062020) sends booleans as "True"/"False" strings.
        return parse_bool(value)
    return value


def _complex(defn: sch.AttrDef, value: Any) -> dict[str, Any]:
    """A complex value with canonical sub-attribute names (unknown ones dropped)."""
    if isinstance(value, list) and not defn.multi_valued and len(value) <= 1:
        value = value[0] if value else {}  # one-element array for a single-valued attribute
    if not isinstance(value, Mapping):
        if isinstance(value, str | int) and not isinstance(value, bool) and defn.sub("value"):
            # Entra ID and Okta send the enterprise manager as a bare id string.
            return {"value": value}
        raise InvalidValue(f"{defn.name} takes an object of sub-attributes")
    out: dict[str, Any] = {}
    for key, v in value.items():
        sd = defn.sub(key) if isinstance(key, str) else None
        if sd is not None:
            out[sd.name] = _scalar(sd, v)
    return out


def elements(defn: sch.AttrDef, value: Any) -> list[dict[str, Any]]:
    """Elements for a multi-valued attribute; a lone element or bare values are accepted
    (at most MAX_VALUES of them)."""
    items = value if isinstance(value, list) else [value]
    check_count(defn.name, len(items))
    out = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, Mapping):
            out.append(_complex(defn, item))
        elif isinstance(item, list):
            raise InvalidValue(f"{defn.name}: nested arrays are not allowed")
        else:
            out.append({"value": item})  # bare values, e.g. "members": ["id"] or "emails": "x"
    return out


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _key(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


def check_count(name: str, count: int) -> None:
    """400 when one request gives an attribute more than MAX_VALUES values (RFC 7644 §3.12
    invalidValue, naming the limit): no directory entry needs that many, and each value costs
    planning and LDAP work."""
    if count > MAX_VALUES:
        raise InvalidValue(
            f"{name}: {count} values; at most {MAX_VALUES} values per attribute in one request"
        )


def _identity(e: Mapping[str, Any]) -> Any:
    """What :func:`_same_element` compares, as a hashable key (None: not hashable), so a
    list of n elements is searched in O(1) per value instead of O(n)."""
    if "value" in e:
        key: Any = ("v", _key(e["value"]))
    else:
        key = ("f", frozenset((k, _key(v)) for k, v in e.items() if k not in ("primary", "type")))
    try:
        hash(key)
    except TypeError:
        return None
    return key


class _Index:
    """The elements of a multi-valued attribute by :func:`_identity`; :meth:`find` returns the
    one :func:`_same_element` matches (the same answer as a scan of the list)."""

    def __init__(self, items: list[dict[str, Any]]):
        self.buckets: dict[Any, list[dict[str, Any]]] = {}
        self.loose: list[dict[str, Any]] = []  # unhashable identities: compared one by one
        self.stale = False  # an indexed element changed what identifies it
        for e in items:
            self.add(e)

    def add(self, e: dict[str, Any]) -> None:
        key = _identity(e)
        if key is None:
            self.loose.append(e)
        else:
            self.buckets.setdefault(key, []).append(e)

    def find(self, e: Mapping[str, Any]) -> dict[str, Any] | None:
        key = _identity(e)
        near = self.buckets.get(key, []) if key is not None else []
        for x in (*near, *self.loose):
            if _same_element(x, e):
                return x
        if key is None:
            return next((x for b in self.buckets.values() for x in b if _same_element(x, e)), None)
        return None


def _same_element(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Two elements are the same value when their ``value`` (or, for value-less complex
    attributes such as addresses, all their fields) and ``type`` (when both have one) agree."""
    ta, tb = a.get("type"), b.get("type")
    if ta is not None and tb is not None and _key(ta) != _key(tb):
        return False
    if "value" in a or "value" in b:
        return _key(a.get("value")) == _key(b.get("value"))
    skip = {"primary", "type"}
    return {k: _key(v) for k, v in a.items() if k not in skip} == {
        k: _key(v) for k, v in b.items() if k not in skip
    }


def _one_primary(items: list[dict[str, Any]], preferred: dict[str, Any] | None = None) -> None:
    """RFC 7643 §2.4: ``primary: true`` appears at most once; the newest one wins and the
    primary element goes first (its LDAP value is written first)."""
    primaries = [e for e in items if e.get("primary") is True]
    if not primaries:
        return
    keep = preferred if preferred is not None and preferred in primaries else primaries[-1]
    for e in items:
        if e is not keep:
            e.pop("primary", None)
    items.remove(keep)
    items.insert(0, keep)


# ---------------------------------------------------------------------------- applying
def apply(
    resource: dict[str, Any],
    core_schema: str,
    t: Target,
    op: str,
    value: Any,
    has_value: bool,
    indexes: dict[tuple[str, str], tuple[list[dict[str, Any]], _Index]] | None = None,
) -> None:
    """One operation on the resource dict (RFC 7644 §3.5.2.1-3).  ``indexes``: kept by the
    caller across the operations of one PATCH, so that many ``add`` operations on one
    attribute cost time linear in the values, not the list's length per operation."""
    cont = _container(resource, core_schema, t.schema, create=op != "remove")
    if cont is None:
        return
    if not t.defn.multi_valued:
        _apply_single(cont, t, op, value)
        return
    key = (t.schema, t.name)
    held = (indexes or {}).get(key)
    if held is not None and cont.get(t.name) is held[0]:
        items, index = held
    else:
        items = [
            dict(e) if isinstance(e, Mapping) else {"value": e} for e in cont.get(t.name) or []
        ]
        index = _Index(items)
    plain_add = op == "add" and t.filter is None and t.sub is None
    preferred = _apply_multi(items, t, op, value, has_value, index if plain_add else None)
    if preferred is not None or not plain_add:
        _one_primary(items, preferred)  # an add without primary keeps the one primary first
    if items:
        cont[t.name] = items
    else:
        cont.pop(t.name, None)
    if indexes is not None:
        # only a plain add of valued elements keeps the index in step with the list
        if plain_add and items and not index.stale:
            indexes[key] = (items, index)
        else:
            indexes.pop(key, None)


def _container(
    resource: dict[str, Any], core_schema: str, schema: str, create: bool
) -> dict[str, Any] | None:
    if schema == core_schema:
        return resource
    for k, v in resource.items():
        if k.lower() == schema.lower() and isinstance(v, dict):
            return v
    if not create:
        return None
    resource[schema] = {}
    return resource[schema]


def _apply_single(cont: dict[str, Any], t: Target, op: str, value: Any) -> None:
    name = t.name
    if t.defn.type != "complex":
        v = None if op == "remove" else _scalar(t.defn, value)
        if is_empty(v):
            cont.pop(name, None)
        else:
            cont[name] = v
        return
    current = dict(cont.get(name) or {})
    if t.sub is not None:
        sd = t.sub_def
        assert sd is not None
        v = None if op == "remove" else _scalar(sd, value)
        if is_empty(v):
            current.pop(t.sub, None)
        else:
            current[t.sub] = v
    elif op == "remove" or is_empty(value):
        # Entra ID clears the enterprise manager with "value": "" (or null).
        current = {}
    else:
        # RFC 7644 §3.5.2.1/.3: sub-attributes not in the value are left unchanged.
        for k, v in _complex(t.defn, value).items():
            if is_empty(v):
                current.pop(k, None)
            else:
                current[k] = v
    if current:
        cont[name] = current
    else:
        cont.pop(name, None)


def _apply_multi(
    items: list[dict[str, Any]],
    t: Target,
    op: str,
    value: Any,
    has_value: bool,
    index: _Index | None = None,
) -> dict[str, Any] | None:
    """Returns the element that should be primary if the operation set ``primary: true``."""
    defn = t.defn
    if t.filter is not None:
        return _apply_filtered(items, t, op, value)
    if t.sub is not None:  # attr.sub on a multi-valued attribute: every element's sub
        sd = t.sub_def
        assert sd is not None
        v = None if op == "remove" else _scalar(sd, value)
        if not items and op != "remove" and not is_empty(v):
            items.append({t.sub: v})
        for e in items:
            if is_empty(v):
                e.pop(t.sub, None)
            else:
                e[t.sub] = v
        items[:] = [e for e in items if e]
        return None
    if op == "remove":
        if has_value and not is_empty(value):
            # Entra ID removes members (and other values) with path "members" and a value
            # list: exactly those values go (RFC 7644 leaves a remove value undefined).
            drop = _Index(elements(defn, value))
            items[:] = [e for e in items if drop.find(e) is None]
        else:
            items.clear()
        return None
    new = elements(defn, value)
    if sum(1 for e in new if e.get("primary") is True) > 1:
        raise InvalidValue(f"{defn.name}: 'primary' may be true for one value only (RFC 7643 §2.4)")
    preferred = None
    if op == "replace":
        items.clear()
        index = None
    index = index if index is not None else _Index(items)
    for e in new:
        existing = index.find(e)
        if existing is not None:
            # RFC 7644 §3.5.2.1: a value already present (compared as its caseExact says) is
            # not added again; its other sub-attributes (primary, display) are updated.
            index.stale |= "value" not in existing  # its identity is its fields: changed
            existing.update({k: v for k, v in e.items() if k != "value"})
            e = existing
        else:
            items.append(e)
            index.add(e)
        if e.get("primary") is True:
            preferred = e
    check_count(defn.name, len(items))
    return preferred


def _apply_filtered(
    items: list[dict[str, Any]], t: Target, op: str, value: Any
) -> dict[str, Any] | None:
    assert t.filter is not None
    hit = [e for e in items if matches(t.filter, e, t.defn)]
    if op == "remove":
        if t.sub is None:
            items[:] = [e for e in items if e not in hit]
        else:
            for e in hit:
                e.pop(t.sub, None)
            items[:] = [e for e in items if e]
        return None  # removing what is not there is a no-op: retries are safe
    if t.sub is not None:
        sd = t.sub_def
        assert sd is not None
        new: dict[str, Any] = {t.sub: _scalar(sd, value)}
    else:
        new = _complex(t.defn, value)
    if not hit:
        seed = constructive(t.filter)
        # Entra ID sends add and replace to 'phoneNumbers[type eq "mobile"].value' and
        # 'emails[type eq "work"].value' for a user who has no such value yet: create the
        # element the filter describes.  Other filters without a match are noTarget.
        if seed is None or (op == "replace" and t.sub is None):
            raise NoTarget(f"no {t.name} value matches the filter")
        element = {_sub_name(t.defn, k): v for k, v in seed.items()}
        element.update(new)
        if not is_empty(element.get(t.sub or "value")) or t.sub is None:
            items.append(element)
        return element if element.get("primary") is True else None
    preferred = None
    for e in hit:
        if op == "replace" and t.sub is None:
            keep = {k: v for k, v in e.items() if k == "type"}
            e.clear()
            e.update(keep)
        for k, v in new.items():
            if is_empty(v):
                e.pop(k, None)
            else:
                e[k] = v
        if e.get("primary") is True:
            preferred = e
    items[:] = [e for e in items if e.get("value") not in (None, "") or "value" not in _subs(t)]
    return preferred


def _sub_name(defn: sch.AttrDef, name: str) -> str:
    sd = defn.sub(name)
    return sd.name if sd is not None else name


def _subs(t: Target) -> set[str]:
    return {s.name for s in t.defn.sub_attributes}
