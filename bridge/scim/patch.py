"""PATCH operations on a SCIM resource, pure (RFC 7644 §3.5.2): no mapping, no LDAP.

``apply`` performs one operation on a resource held as a dict (core attributes at the top,
extension attributes under their schema URN).  The PatchOp body is parsed into operations by
:mod:`bridge.scim.messages`; their paths are resolved, and value filters evaluated, by
:mod:`bridge.scim.valuepath`.  The mapping-aware planning that
turns the result into an LDAP modify lives in :mod:`bridge.translate.patch`.

Tolerated IdP shapes are commented where they are handled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.errors import InvalidValue, NoTarget
from bridge.scim import schema as sch
from bridge.scim.valuepath import Target, constructive, matches
from bridge.scim.values import parse_bool

__all__ = ["MAX_VALUES", "apply", "check_count", "elements", "is_empty"]

#: values one request may give one multi-valued attribute (documented in docs/limits; RFC 7644
#: ServiceProviderConfig has no field for it)
MAX_VALUES = 10_000


# ---------------------------------------------------------------------------- value shapes
def _scalar(defn: sch.AttrDef, value: Any) -> Any:
    if isinstance(value, list):
        # IdP tolerance: some clients send a single-valued attribute as a one-element array
        # ("value": ["x"], seen in recorded IdP PATCH traffic); an empty array clears it.
        if len(value) > 1:
            raise InvalidValue(f"{defn.name} takes a single value, got {len(value)}")
        value = value[0] if value else None
    if isinstance(value, Mapping):
        inner = sch.ci_get(value, "value")
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
