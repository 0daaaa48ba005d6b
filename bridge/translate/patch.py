"""PATCH (RFC 7644 §3.5.2) -> the minimal LDAP modify.

How a PATCH is planned, before anything is written (a PATCH is all-or-nothing):

1. Every operation is parsed and validated (op name, ``path`` via :func:`bridge.scim.path.
   parse_path`, value shape); the first bad one is a 400 that names it (index, op and path).
2. Ordinary attributes: the operations are applied, in order, to the current SCIM resource
   (rendered from the entry, ``members``/``groups`` left out), giving the new resource.  Only
   the LDAP attributes of the SCIM attributes the operations touched are re-encoded and compared
   with the entry, so an untouched attribute is never written (LAM#340: send only what changed).
3. ``members`` is never read: add/remove become MODIFY_ADD/MODIFY_DELETE of just the affected
   DNs; a ``replace`` (or a remove of all members) is a MODIFY_REPLACE with the new set.  A
   groupOfNames keeps its ``empty_member`` placeholder when it would become empty
   (``PatchPlan.when_emptied``) and loses it when a real member arrives.
4. A change of the attribute that names the entry is a rename (``new_rdn_value``); the RDN
   attribute itself is then left out of ``changes``.

Tolerated IdP shapes are commented where they are handled.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bridge.config import AttributeMap, ResourceMap
from bridge.directory.base import Change, Entry
from bridge.directory.syntax import escape_filter, normalize_dn, split_rdn
from bridge.errors import (
    BadRequest,
    InvalidPath,
    InvalidSyntax,
    InvalidValue,
    Mutability,
    NoTarget,
    ScimError,
)
from bridge.scim import schema as sch
from bridge.scim.filter import And, AttrPath, Compare, Filter, Not, Or, Present, ValuePath
from bridge.scim.path import PatchPath, parse_path
from bridge.scim.projection import Projection
from bridge.translate import entry as tr
from bridge.translate.values import parse_bool

if TYPE_CHECKING:
    from bridge.service import Service

__all__ = ["MAX_OPERATIONS", "PatchPlan", "matches", "plan_patch", "read_attributes"]

MAX_OPERATIONS = 1000
OPS = ("add", "replace", "remove")
#: the working view of a resource: no member list (never read), no read-only groups
WORKING_VIEW = Projection(exclude=frozenset({("members", None), ("groups", None)}))
_ECHOED = {"schemas", "id", "meta"}  # read-only keys clients echo in value objects: ignored


@dataclass(frozen=True)
class PatchPlan:
    """What a PATCH does to one entry: a rename (first, if any) and one modify."""

    changes: tuple[Change, ...]
    new_rdn_value: str | None = None
    #: the changes to send instead if the directory refuses ``changes`` because they would
    #: leave a groupOfNames without members (objectClassViolation): same, plus the placeholder
    when_emptied: tuple[Change, ...] | None = None


def read_attributes(rmap: ResourceMap) -> list[str]:
    """The LDAP attributes a PATCH reads: everything mapped except the member list and the
    read-only back-links (memberOf), which may be huge and are never needed to plan."""
    skip = {a.ldap.lower() for a in rmap.attributes if a.attr in ("members", "groups")}
    wanted = tr.ldap_attributes(rmap, WORKING_VIEW) + [
        a.ldap for a in rmap.attributes if a.attr not in ("members", "groups")
    ]
    return [x for x in dict.fromkeys(wanted) if x.lower() not in skip]


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
        where = f" {self.path_text!r}" if self.path_text is not None else ""
        return f"Operations[{self.index}] ({self.op}{where})"


def _parse_ops(body: Mapping[str, Any]) -> list[Op]:
    """RFC 7644 §3.5.2: ``schemas`` names PatchOp and ``Operations`` is a non-empty array."""
    schemas = tr.ci_get(body, "schemas")
    if not isinstance(schemas, list) or not any(
        isinstance(s, str) and s.lower() == sch.PATCH_OP.lower() for s in schemas
    ):
        raise InvalidSyntax(f"a PATCH body must have schemas [{sch.PATCH_OP!r}]")
    raw_ops = tr.ci_get(body, "Operations")
    if not isinstance(raw_ops, list) or not raw_ops:
        raise InvalidSyntax("a PATCH body needs a non-empty 'Operations' array")
    if len(raw_ops) > MAX_OPERATIONS:
        raise InvalidSyntax(f"at most {MAX_OPERATIONS} operations per PATCH")
    return [_parse_op(i, raw) for i, raw in enumerate(raw_ops)]


def _parse_op(index: int, raw: Any) -> Op:
    if not isinstance(raw, Mapping):
        raise InvalidSyntax(f"Operations[{index}] must be an object with 'op'")
    name = tr.ci_get(raw, "op")
    # Entra ID (apps without the aadOptscim062020 flag) sends "Add"/"Replace"/"Remove".
    op = name.strip().lower() if isinstance(name, str) else None
    if op not in OPS:
        raise InvalidSyntax(
            f"Operations[{index}]: unknown op {name!r} (expected add, replace or remove)"
        )
    path_text = tr.ci_get(raw, "path")
    if path_text is not None and not isinstance(path_text, str):
        raise InvalidPath(f"Operations[{index}] ({op}): path must be a string")
    if isinstance(path_text, str) and not path_text.strip():
        path_text = None  # some clients send "path": "" for the resource itself
    has_value = any(isinstance(k, str) and k.lower() == "value" for k in raw)
    value = tr.ci_get(raw, "value")
    o = Op(index, op, path_text, None, value, has_value)
    path: PatchPath | None = None
    if path_text is not None:
        try:
            path = parse_path(path_text)
        except ScimError as exc:
            raise _named(o, exc) from None
    o = Op(index, op, path_text, path, value, has_value)
    if op != "remove" and (not has_value or value is None):
        raise InvalidValue(f"{o.label()}: a 'value' is required")
    if op == "remove" and path is None:
        raise NoTarget(f"{o.label()}: remove needs a 'path'")
    if path is None and not isinstance(value, Mapping):
        raise InvalidValue(f"{o.label()}: without a path the value must be an object")
    return o


def _named(op: Op, exc: ScimError) -> ScimError:
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


def _target(rmap: ResourceMap, path: PatchPath) -> Target:
    attr = path.attr
    schema: str | None = None
    if attr.schema is not None:
        schema = sch.canonical_schema(attr.schema)
        if schema is None or schema not in rmap.schemas:
            raise InvalidPath(f"schema {attr.schema} is not used by {rmap.name}")
    defn, schema = _lookup(rmap, schema, attr.attr)
    sub = attr.sub or path.sub
    if sub is not None:
        sd = defn.sub(sub) if defn.type == "complex" else None
        if sd is None:
            raise InvalidPath(f"{defn.name} has no sub-attribute {sub!r}")
        sub = sd.name
    if path.filter is not None:
        if not defn.multi_valued:
            raise InvalidPath(f"a value filter needs a multi-valued attribute, not {defn.name}")
        for p in _filter_paths(path.filter):
            if p.sub is not None or defn.sub(p.attr) is None:
                raise InvalidPath(f"{defn.name} has no sub-attribute {p.attr!r} to filter on")
    return Target(schema, defn, sub, path.filter)


def _lookup(rmap: ResourceMap, schema: str | None, name: str) -> tuple[sch.AttrDef, str]:
    """An attribute by name; unqualified names belong to the core schema (RFC 7644 §3.10),
    falling back to an extension that alone defines the name."""
    for urn in (schema,) if schema else rmap.schemas:
        defn = sch.attr_def(urn, name)
        if defn is not None:
            return defn, urn
    raise InvalidPath(f"{name!r} is not an attribute of {rmap.name}")


def _filter_paths(f: Filter) -> Iterator[AttrPath]:
    match f:
        case Compare(path=p) | Present(path=p):
            yield p
        case And(left=a, right=b) | Or(left=a, right=b):
            yield from _filter_paths(a)
            yield from _filter_paths(b)
        case Not(inner=i):
            yield from _filter_paths(i)
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
            v = tr.ci_get(element, p.attr)
            return v not in (None, "", [], {})
        case Compare(path=p, op=op, value=want):
            sd = defn.sub(p.attr)
            return _compare(tr.ci_get(element, p.attr), op, want, bool(sd and sd.case_exact))
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


def _constructive(f: Filter | None) -> dict[str, Any] | None:
    """The element a filter describes when it is only ``eq`` tests joined by ``and``
    (``phoneNumbers[type eq "mobile"]``), else None."""
    match f:
        case Compare(path=p, op="eq", value=v) if v is not None:
            return {p.attr: v}
        case And(left=a, right=b):
            left, right = _constructive(a), _constructive(b)
            if left is None or right is None:
                return None
            return {**left, **right}
    return None


# ---------------------------------------------------------------------------- value shapes
def _scalar(defn: sch.AttrDef, value: Any) -> Any:
    if isinstance(value, list):
        # Entra ID and some Okta integrations send single-valued attributes as a one-element
        # array ("value": ["x"]); an empty array clears the attribute.
        if len(value) > 1:
            raise InvalidValue(f"{defn.name} takes a single value, got {len(value)}")
        value = value[0] if value else None
    if isinstance(value, Mapping):
        inner = tr.ci_get(value, "value")
        if len(value) == 1 and inner is not None and not isinstance(inner, Mapping | list):
            value = inner  # {"value": x} for a simple attribute (seen from Entra)
        else:
            raise InvalidValue(f"{defn.name} takes a single {defn.type} value, not an object")
    if defn.type == "boolean" and value is not None:
        # Entra ID (without aadOptscim062020) sends booleans as "True"/"False" strings.
        return parse_bool(value)
    return value


def _complex(defn: sch.AttrDef, value: Any) -> dict[str, Any]:
    """A complex value with canonical sub-attribute names (unknown ones dropped)."""
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


def _elements(defn: sch.AttrDef, value: Any) -> list[dict[str, Any]]:
    """Elements for a multi-valued attribute; a lone element or bare values are accepted."""
    items = value if isinstance(value, list) else [value]
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


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _key(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


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


# ---------------------------------------------------------------------------- the resource
@dataclass
class Work:
    """The resource being patched plus what the operations touched."""

    rmap: ResourceMap
    res: dict[str, Any]
    touched: set[tuple[str, str]] = field(default_factory=set)  # (schema, attr name)

    def container(self, schema: str, create: bool) -> dict[str, Any] | None:
        if schema == self.rmap.schema:
            return self.res
        for k, v in self.res.items():
            if k.lower() == schema.lower() and isinstance(v, dict):
                return v
        if not create:
            return None
        self.res[schema] = {}
        return self.res[schema]

    def touch(self, t: Target) -> None:
        self.touched.add((t.schema, t.name))


def _check_writable(rmap: ResourceMap, t: Target, op: str) -> None:
    maps = rmap.maps_for(t.name, t.schema)
    mutability = t.defn.mutability
    if t.sub_def is not None and t.sub_def.mutability == "readOnly":
        mutability = "readOnly"
    if maps and not any(a.writable for a in maps):
        mutability = "readOnly"
    if mutability == "readOnly" or t.name in ("id", "meta"):
        raise Mutability(f"{t.name} is read-only")
    if op == "remove" and t.filter is None:
        required = [a for a in maps if a.required and (t.sub is None or a.sub == t.sub)]
        if required or (t.defn.required and not maps):
            raise Mutability(f"{t.name} is required and cannot be removed")


def _apply(work: Work, t: Target, op: str, value: Any, has_value: bool) -> None:
    """One operation on the resource dict (RFC 7644 §3.5.2.1-3)."""
    _check_writable(work.rmap, t, op)
    work.touch(t)
    cont = work.container(t.schema, create=op != "remove")
    if cont is None:
        return
    if not t.defn.multi_valued:
        _apply_single(cont, t, op, value)
        return
    items: list[dict[str, Any]] = [
        dict(e) if isinstance(e, Mapping) else {"value": e} for e in cont.get(t.name) or []
    ]
    preferred = _apply_multi(items, t, op, value, has_value)
    _one_primary(items, preferred)
    if items:
        cont[t.name] = items
    else:
        cont.pop(t.name, None)


def _apply_single(cont: dict[str, Any], t: Target, op: str, value: Any) -> None:
    name = t.name
    if t.defn.type != "complex":
        v = None if op == "remove" else _scalar(t.defn, value)
        if _empty(v):
            cont.pop(name, None)
        else:
            cont[name] = v
        return
    current = dict(cont.get(name) or {})
    if t.sub is not None:
        sd = t.sub_def
        assert sd is not None
        v = None if op == "remove" else _scalar(sd, value)
        if _empty(v):
            current.pop(t.sub, None)
        else:
            current[t.sub] = v
    elif op == "remove" or _empty(value):
        # Entra ID clears the enterprise manager with "value": "" (or null).
        current = {}
    else:
        # RFC 7644 §3.5.2.1/.3: sub-attributes not in the value are left unchanged.
        for k, v in _complex(t.defn, value).items():
            if _empty(v):
                current.pop(k, None)
            else:
                current[k] = v
    if current:
        cont[name] = current
    else:
        cont.pop(name, None)


def _apply_multi(
    items: list[dict[str, Any]], t: Target, op: str, value: Any, has_value: bool
) -> dict[str, Any] | None:
    """Returns the element that should be primary if the operation set ``primary: true``."""
    defn = t.defn
    if t.filter is not None:
        return _apply_filtered(items, t, op, value)
    if t.sub is not None:  # attr.sub on a multi-valued attribute: every element's sub
        sd = t.sub_def
        assert sd is not None
        v = None if op == "remove" else _scalar(sd, value)
        if not items and op != "remove" and not _empty(v):
            items.append({t.sub: v})
        for e in items:
            if _empty(v):
                e.pop(t.sub, None)
            else:
                e[t.sub] = v
        items[:] = [e for e in items if e]
        return None
    if op == "remove":
        if has_value and not _empty(value):
            # Entra ID removes members (and other values) with path "members" and a value
            # list: exactly those values go (RFC 7644 leaves a remove value undefined).
            drop = _elements(defn, value)
            items[:] = [e for e in items if not any(_same_element(e, d) for d in drop)]
        else:
            items.clear()
        return None
    new = _elements(defn, value)
    preferred = None
    if op == "replace":
        items.clear()
    for e in new:
        existing = next((x for x in items if _same_element(x, e)), None)
        if existing is not None:
            existing.update(e)  # RFC 7644 §3.5.2.1: a value already present is not duplicated
            e = existing
        else:
            items.append(e)
        if e.get("primary") is True:
            preferred = e
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
        seed = _constructive(t.filter)
        # Entra ID sends add and replace to 'phoneNumbers[type eq "mobile"].value' and
        # 'emails[type eq "work"].value' for a user who has no such value yet: create the
        # element the filter describes.  Other filters without a match are noTarget.
        if seed is None or (op == "replace" and t.sub is None):
            raise NoTarget(f"no {t.name} value matches the filter")
        element = {t.defn.sub(k).name if t.defn.sub(k) else k: v for k, v in seed.items()}  # type: ignore[union-attr]
        element.update(new)
        if not _empty(element.get(t.sub or "value")) or t.sub is None:
            items.append(element)
        return element if element.get("primary") is True else None
    preferred = None
    for e in hit:
        if op == "replace" and t.sub is None:
            keep = {k: v for k, v in e.items() if k == "type"}
            e.clear()
            e.update(keep)
        for k, v in new.items():
            if _empty(v):
                e.pop(k, None)
            else:
                e[k] = v
        if e.get("primary") is True:
            preferred = e
    items[:] = [e for e in items if e.get("value") not in (None, "") or "value" not in _subs(t)]
    return preferred


def _subs(t: Target) -> set[str]:
    return {s.name for s in t.defn.sub_attributes}


# ---------------------------------------------------------------------------- members
@dataclass
class Members:
    """Member operations, accumulated in order without reading the member list."""

    final: list[str] | None = None  # the whole new set, after a replace / remove-all
    adds: dict[str, None] = field(default_factory=dict)
    dels: dict[str, None] = field(default_factory=dict)

    def add(self, ids: list[str]) -> None:
        for i in ids:
            if self.final is not None:
                if i not in self.final:
                    self.final.append(i)
            else:
                self.dels.pop(i, None)
                self.adds[i] = None

    def remove(self, ids: list[str]) -> None:
        for i in ids:
            if self.final is not None:
                if i in self.final:
                    self.final.remove(i)
            else:
                self.adds.pop(i, None)
                self.dels[i] = None

    def replace(self, ids: list[str]) -> None:
        self.final = list(dict.fromkeys(ids))
        self.adds.clear()
        self.dels.clear()

    @property
    def empty(self) -> bool:
        return self.final is None and not self.adds and not self.dels


def _member_ids(t: Target, value: Any) -> list[str]:
    out = []
    for e in _elements(t.defn, value):
        v = e.get("value")
        if v is None or isinstance(v, bool) or not isinstance(v, str | int) or str(v) == "":
            raise InvalidValue(f"{t.name}: every member needs a 'value' (the member's id)")
        out.append(str(v))
    return out


def _filter_ids(f: Filter) -> list[str] | None:
    """``value eq "a" or value eq "b"``: the ids named, else None."""
    match f:
        case Compare(path=p, op="eq", value=v) if p.attr.lower() == "value" and v is not None:
            return [str(v)]
        case Or(left=a, right=b):
            left, right = _filter_ids(a), _filter_ids(b)
            return None if left is None or right is None else left + right
    return None


def _apply_members(
    service: Service, rmap: ResourceMap, entry: Entry, m: Members, t: Target, o: Op
) -> None:
    if t.sub is not None and t.sub != "value":
        raise InvalidPath(f"members.{t.sub} cannot be changed (only members themselves)")
    if t.filter is not None:
        if o.op != "remove":
            raise InvalidPath(
                "a filtered members path is only supported with remove; use add with a value"
            )
        # Entra ID removes one member with 'members[value eq "id"]'.
        ids = _filter_ids(t.filter)
        if ids is None:
            ids = _members_matching(service, rmap, entry, t)
        m.remove(ids)
        return
    if o.op == "remove":
        if o.has_value and not _empty(o.value):
            m.remove(_member_ids(t, o.value))  # Entra ID: path "members" + value list
        else:
            m.replace([])
        return
    ids = _member_ids(t, o.value) if not _empty(o.value) else []
    if o.op == "add":
        m.add(ids)
    else:
        m.replace(ids)


def _members_matching(service: Service, rmap: ResourceMap, entry: Entry, t: Target) -> list[str]:
    """A general filter on members (``members[display co "x"]``) must see the members: read
    the list once, render each as {value, type, display} and test the filter."""
    a = rmap.member_map
    assert a is not None and t.filter is not None
    full = service.directory.read(entry.dn, [a.ldap])
    dns = [v.decode("utf-8", "replace") for v in (full.get(a.ldap) if full else ())]
    refs = service.resolve_dns(dns, a.to)
    out = []
    for ref in refs.values():
        element = {"value": ref.id, "type": ref.resource, "display": ref.display}
        if matches(t.filter, element, t.defn):
            out.append(ref.id)
    return out


def _member_changes(
    service: Service, rmap: ResourceMap, entry: Entry, m: Members
) -> tuple[list[Change], list[Change] | None]:
    a = rmap.member_map
    assert a is not None
    placeholder = rmap.empty_member
    if m.final is not None:
        dns = service.resolve_ids(m.final, a.to, a.attr) if m.final else {}
        values = tuple(dns[i].encode() for i in m.final)
        if not values and placeholder:
            values = (placeholder.encode(),)
        return [Change("replace", a.ldap, values)], None
    add_dns = service.resolve_ids(list(m.adds), a.to, a.attr) if m.adds else {}
    # Removing a member that no longer exists (deleted, refint already dropped it) is a no-op.
    del_dns = _resolve_present(service, list(m.dels), a)
    changes: list[Change] = []
    if add_dns:
        changes.append(Change("add", a.ldap, tuple(d.encode() for d in add_dns.values())))
        if placeholder and _has_value(service, entry.dn, a.ldap, placeholder):
            changes.append(Change("delete", a.ldap, (placeholder.encode(),)))
    dels = tuple(d.encode() for d in del_dns.values())
    if dels:
        changes.append(Change("delete", a.ldap, dels))
    when_emptied = None
    if dels and placeholder and not add_dns:
        when_emptied = [Change("add", a.ldap, (placeholder.encode(),)), *changes]
    return changes, when_emptied


def _resolve_present(service: Service, ids: list[str], a: AttributeMap) -> dict[str, str]:
    if not ids:
        return {}
    try:
        return service.resolve_ids(ids, a.to, a.attr)
    except InvalidValue:
        out: dict[str, str] = {}
        for i in ids:
            try:
                out.update(service.resolve_ids([i], a.to, a.attr))
            except InvalidValue:
                continue
        return out


def _has_value(service: Service, dn: str, attr: str, value: str) -> bool:
    flt = f"({attr}={escape_filter(value)})"
    return bool(service.directory.search(dn, flt, ["1.1"], scope="base").entries)


# ---------------------------------------------------------------------------- the plan
def plan_patch(
    service: Service, rmap: ResourceMap, entry: Entry, body: Any, base_url: str
) -> PatchPlan:
    """Validate and plan every operation of a PATCH request against ``entry`` (read with
    :func:`read_attributes`); nothing is written here."""
    if not isinstance(body, Mapping):
        raise InvalidSyntax("the request body must be a JSON object")
    ops = _parse_ops(body)
    current = service.render(rmap, [entry], base_url, WORKING_VIEW)[0]
    work = Work(rmap, copy.deepcopy(current))
    members = Members()
    for o in ops:
        try:
            _run(service, rmap, entry, work, members, o)
        except ScimError as exc:
            raise _named(o, exc) from None
    return _to_plan(service, rmap, entry, work, members)


def _run(
    service: Service, rmap: ResourceMap, entry: Entry, work: Work, members: Members, o: Op
) -> None:
    if o.path is not None:
        if not o.path.attr.attr:  # a bare extension URN: its value is the extension object
            if not isinstance(o.value, Mapping) and o.op != "remove":
                raise InvalidValue("the value of an extension schema path must be an object")
            if o.op == "remove":
                _remove_extension(work, o.path.attr.schema or "")
                return
            _run_object(service, rmap, entry, work, members, o, {o.path.attr.schema or "": o.value})
            return
        _run_target(service, rmap, entry, work, members, o, _target(rmap, o.path), o.value)
        return
    assert isinstance(o.value, Mapping)
    _run_object(service, rmap, entry, work, members, o, o.value)


def _remove_extension(work: Work, urn: str) -> None:
    schema = sch.canonical_schema(urn)
    if schema is None or schema not in work.rmap.schemas:
        raise InvalidPath(f"schema {urn} is not used by {work.rmap.name}")
    for a in work.rmap.attributes:
        if a.schema == schema:
            t = Target(schema, a.parent, None, None)
            _apply(work, t, "remove", None, False)


def _run_object(
    service: Service,
    rmap: ResourceMap,
    entry: Entry,
    work: Work,
    members: Members,
    o: Op,
    value: Mapping[str, Any],
) -> None:
    """A path-less add/replace: each key of the value object is an operation of its own
    (RFC 7644 §3.5.2.1/.3).  Keys may be attribute names, extension URNs with an object,
    URN-qualified names or dotted/filtered paths - Entra ID sends 'name.givenName' and
    'urn:...:enterprise:2.0:User:manager' keys; Okta deactivates with {"active": false}."""
    for key, v in value.items():
        if not isinstance(key, str):
            raise InvalidPath(f"{key!r} is not an attribute name")
        if key.lower() in _ECHOED:
            continue  # Okta echoes id/meta/schemas: read-only, ignored
        ext = sch.canonical_schema(key)
        if ext is not None:
            if ext not in rmap.schemas:
                raise InvalidPath(f"schema {key} is not used by {rmap.name}")
            if not isinstance(v, Mapping):
                raise InvalidValue(f"{key} must be an object of extension attributes")
            for k2, v2 in v.items():
                if not isinstance(k2, str):
                    raise InvalidPath(f"{k2!r} is not an attribute name")
                _run_target(
                    service,
                    rmap,
                    entry,
                    work,
                    members,
                    o,
                    _target(rmap, parse_path(f"{ext}:{k2}")),
                    v2,
                )
            continue
        t = _target(rmap, parse_path(key))
        if t.filter is None and t.sub is None and t.defn.type == "complex" and v is None:
            v = {}
        _run_target(service, rmap, entry, work, members, o, t, v)


def _run_target(
    service: Service,
    rmap: ResourceMap,
    entry: Entry,
    work: Work,
    members: Members,
    o: Op,
    t: Target,
    value: Any,
) -> None:
    if t.name == "members" and t.schema == rmap.schema and rmap.member_map is not None:
        _check_writable(rmap, t, "add")
        _apply_members(
            service, rmap, entry, members, t, Op(o.index, o.op, None, None, value, o.has_value)
        )
        return
    _apply(work, t, o.op, value, o.has_value)


def _to_plan(
    service: Service, rmap: ResourceMap, entry: Entry, work: Work, members: Members
) -> PatchPlan:
    tr.check_required(rmap, work.res)
    touched = _touched_maps(rmap, work.touched)
    refs = {
        path: ids
        for path, ids in tr.reference_ids(rmap, work.res).items()
        if any(a.path == path for a in touched)
    }
    ref_dns: dict[str, str] = {}
    for path, ids in refs.items():
        amap = next(a for a in rmap.attributes if a.path == path)
        ref_dns.update(service.resolve_ids(ids, amap.to, amap.attr))
    new = _encode(rmap, touched, work.res, ref_dns, entry)
    new_rdn: str | None = None
    _attr, old_rdn, _parent = split_rdn(entry.dn)
    if any(a.path.lower() == rmap.rdn.source.lower() for a in touched):
        value = tr.rdn_value(rmap, work.res)
        if value != old_rdn:
            new_rdn = value
    changes: list[Change] = []
    for ldap_attr in dict.fromkeys(a.ldap for a in touched if a.writable):
        if a_is_member(rmap, ldap_attr):
            continue
        if new_rdn is not None and ldap_attr.lower() == rmap.rdn.ldap.lower():
            continue  # the rename writes it
        maps = [a for a in rmap.attributes if a.ldap == ldap_attr and a.writable]
        a = maps[0]
        want = new.get(ldap_attr, [])
        have = list(entry.get(ldap_attr))
        if a.codec.keep_when_absent and not want:
            continue  # AD's userAccountControl cannot be removed: removing active is a no-op
        if a.codec.write_only:
            if want:
                changes.append(Change("replace", ldap_attr, tuple(want)))
            elif have:
                changes.append(Change("replace", ldap_attr, ()))
            continue
        if _same(have, want, a):
            continue
        if a.mutability == "immutable" and have:
            raise Mutability(f"{a.path} is immutable")
        changes.append(Change("replace", ldap_attr, tuple(want)))
    when_emptied = None
    if not members.empty:
        member_changes, emptied = _member_changes(service, rmap, entry, members)
        if emptied is not None:
            when_emptied = tuple(changes + emptied)
        changes += member_changes
    return PatchPlan(tuple(changes), new_rdn, when_emptied)


def _encode(
    rmap: ResourceMap,
    maps: list[AttributeMap],
    resource: Mapping[str, Any],
    ref_dns: Mapping[str, str],
    entry: Entry,
) -> dict[str, list[bytes]]:
    """LDAP values of just ``maps`` for the new resource (as translate.entry.to_attributes,
    fallbacks included, but without encoding untouched references).  ``entry`` gives codecs
    such as ad-enabled the current value whose other bits they keep."""
    out: dict[str, list[bytes]] = {}
    for a in maps:
        if not a.writable:
            continue
        values = tr.scim_values(rmap, a, resource)
        for fb in a.fallback if not values else ():
            source = next(m for m in rmap.attributes if m.path.lower() == fb.lower())
            values = tr.scim_values(rmap, source, resource)[:1]
            if values:
                break
        if a.codec.absent is not None and not values:
            continue
        for e in tr.encode(a, values, ref_dns, list(entry.get(a.ldap))):
            bucket = out.setdefault(a.ldap, [])
            if e not in bucket:
                bucket.append(e)
    return out


def a_is_member(rmap: ResourceMap, ldap_attr: str) -> bool:
    m = rmap.member_map
    return m is not None and m.ldap.lower() == ldap_attr.lower()


def _touched_maps(rmap: ResourceMap, touched: set[tuple[str, str]]) -> list[AttributeMap]:
    """Mappings of the touched SCIM attributes, plus those that fall back to one of them
    (``sn`` is filled from userName when familyName is absent)."""
    direct = [a for a in rmap.attributes if (a.schema, a.attr) in touched]
    paths = {a.path.lower() for a in direct}
    extra = [
        a
        for a in rmap.attributes
        if a not in direct and any(fb.lower() in paths for fb in a.fallback)
    ]
    return [a for a in direct + extra if a.attr not in ("members", "groups")]


def _same(have: list[bytes], want: list[bytes], a: AttributeMap) -> bool:
    if a.codec.binary:
        return have == want
    if a.is_reference:
        return {normalize_dn(v.decode()) for v in have} == {normalize_dn(v.decode()) for v in want}
    return sorted(have) == sorted(want)  # a case-only change is a change the client asked for
