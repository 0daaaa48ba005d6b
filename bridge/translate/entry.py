"""SCIM resource <-> LDAP entry, pure.

Directions are in the names: ``to_resource`` (LDAP -> SCIM), ``to_attributes`` (SCIM -> LDAP),
``dn_for`` (SCIM -> DN).  References (members, groups, manager) are DNs on one side and SCIM ids
on the other; the service resolves them in bulk and passes the mapping in, so nothing here does
I/O.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.directory.base import Entry
from bridge.directory.syntax import normalize_dn, rdn_of
from bridge.errors import InvalidValue
from bridge.mapping.codecs import ReferenceCodec
from bridge.mapping.model import AttributeMap, ResourceMap
from bridge.scim import schema as sch
from bridge.scim.patch import check_count
from bridge.scim.projection import DEFAULT, Projection


@dataclass(frozen=True)
class Ref:
    """A resolved reference: the target's SCIM id, resource type and display name."""

    id: str
    resource: str
    display: str | None = None


def ci_get(obj: Mapping[str, Any], key: str) -> Any:
    """Case-insensitive key lookup (attribute names are case-insensitive, RFC 7643 §2.1)."""
    if key in obj:
        return obj[key]
    low = key.lower()
    for k, v in obj.items():
        if isinstance(k, str) and k.lower() == low:
            return v
    return None


# ---------------------------------------------------------------------------- LDAP -> SCIM
def ldap_attributes(rmap: ResourceMap, projection: Projection = DEFAULT) -> list[str]:
    """The LDAP attributes a response needs — nothing more (``excludedAttributes=members`` must
    not read ``member`` at all)."""
    out = [rmap.id.ldap, rmap.created, rmap.last_modified, rmap.version]
    for a in rendered(rmap, projection):
        # a user's groups read from the group side by value: the user's own value is needed
        out.append(a.member_value if a.from_member and a.by_value else a.ldap)
    return [x for x in dict.fromkeys(out) if x != "dn"]


def readable(a: AttributeMap) -> bool:
    """Whether the bridge ever reads ``a`` from the directory: not a write-only codec (a
    password) nor an attribute the mapping declares ``returned: never`` (RFC 7643 §7) — those
    are never asked for, filtered on or sorted by."""
    return not a.codec.write_only and a.returned != "never"


_RENDERED: dict[tuple[int, Projection], tuple[ResourceMap, tuple[AttributeMap, ...]]] = {}


def rendered(rmap: ResourceMap, projection: Projection = DEFAULT) -> tuple[AttributeMap, ...]:
    """The mappings a response shows for ``projection`` (RFC 7644 §3.9), in mapping order.

    Decided once per (mapping, projection) instead of per attribute per entry: a page of 100
    users would otherwise ask the projection a few thousand times.  Keyed by the projection's
    value; bounded, since ``attributes=`` is client input."""
    key = (id(rmap), projection)
    hit = _RENDERED.get(key)
    if hit is not None and hit[0] is rmap:
        return hit[1]
    out = tuple(
        a
        for a in rmap.attributes
        if a.returned != "never" and projection.wants(a.attr, a.sub, a.returned)
    )
    if len(_RENDERED) >= 512:
        _RENDERED.clear()
    _RENDERED[key] = (rmap, out)
    return out


def id_of(rmap: ResourceMap, entry: Entry) -> str:
    raw = entry.first(rmap.id.ldap)
    if raw is None:
        raise InvalidValue(f"entry {entry.dn} has no {rmap.id.ldap}")
    return str(rmap.id.codec.decode(raw))


def ref_dn(a: AttributeMap, value: bytes | str) -> str:
    """The DN a stored value of reference attribute ``a`` names (uniqueMember's optional
    ``#'…'B`` UID dropped, per the mapping's codec)."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return a.codec.dn(text) if isinstance(a.codec, ReferenceCodec) else text


def value_key(attr: str, value: str) -> str:
    """The key of a member value (a memberUid's uid) among resolved references: never equal
    to a normalized DN; case-folded, as the uid it names matches (caseIgnoreMatch)."""
    return f"\x00{attr.lower()}\x00{value.lower()}"


def ref_key(a: AttributeMap, value: bytes | str) -> str:
    """The key under which a stored value of reference attribute ``a`` is resolved: the
    normalized DN, or for a value member attribute (memberUid) :func:`value_key`."""
    if a.by_value and not a.from_member:  # from_member values are the groups' DNs
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        return value_key(a.member_value, text)
    return normalize_dn(ref_dn(a, value))


def reference_dns(rmap: ResourceMap, entry: Entry, projection: Projection = DEFAULT) -> list[str]:
    """The DNs the entry's rendered reference attributes hold (not the values of a value
    member attribute: :func:`reference_values`)."""
    out: list[str] = []
    for a in rendered(rmap, projection):
        if a.is_reference and (a.from_member or not a.by_value):
            out.extend(ref_dn(a, v) for v in entry.get(a.ldap))
    return out


def value_references(rmap: ResourceMap, projection: Projection = DEFAULT) -> list[AttributeMap]:
    """The rendered attributes that hold members by value (memberUid), read from the entry."""
    return [
        a for a in rendered(rmap, projection) if a.is_reference and a.by_value and not a.from_member
    ]


def version_of(rmap: ResourceMap, entry: Entry) -> str | None:
    raw = entry.first(rmap.version)
    return f'W/"{raw.decode("ascii", "replace")}"' if raw is not None else None


def to_resource(
    rmap: ResourceMap,
    entry: Entry,
    refs: Mapping[str, Ref],
    base_url: str,
    projection: Projection = DEFAULT,
) -> dict[str, Any]:
    """Build the SCIM resource for ``entry``; ``refs`` maps normalized DNs to resolved targets
    (DNs missing from it — dangling references, placeholders — are left out)."""
    rid = id_of(rmap, entry)
    res: dict[str, Any] = {"schemas": [rmap.schema], "id": rid}
    used_ext: set[str] = set()
    attrs = entry.attrs
    for a in rendered(rmap, projection):
        raw = attrs.get(a.key)
        if not raw:
            if a.is_reference or a.codec.absent is None:
                continue  # most mapped attributes are absent on any one entry
            raw = ()
        if a.is_reference:
            values = _ref_values(a, raw, refs, base_url, rmap)
        else:
            values = a.codec.decode_all(list(raw))
        if not values:
            continue
        target = res
        if a.extension:
            target = res.setdefault(a.schema, {})
            used_ext.add(a.schema)
        _put(target, a, values)
    res["schemas"] += [s for s in rmap.extensions if s in used_ext]
    meta: dict[str, Any] = {"resourceType": rmap.name}
    created, modified = entry.first(rmap.created), entry.first(rmap.last_modified)
    if created:
        meta["created"] = _iso(created)
    if modified:
        meta["lastModified"] = _iso(modified)
    meta["location"] = f"{base_url}{rmap.endpoint}/{rid}"
    version = version_of(rmap, entry)
    if version:
        meta["version"] = version
    if projection.wants("meta"):
        res["meta"] = meta
    return res


def _iso(raw: bytes) -> str:
    from bridge.mapping.codecs import generalized_to_iso

    return generalized_to_iso(raw.decode("ascii", "replace"))


def _ref_values(
    a: AttributeMap, raw: Sequence[bytes], refs: Mapping[str, Ref], base_url: str, rmap: ResourceMap
) -> list[Any]:
    out: list[Any] = []
    for value in raw:
        ref = refs.get(ref_key(a, value))
        if ref is None:
            continue
        if a.attr == "manager":
            out.append(
                {
                    "value": ref.id,
                    **({"displayName": ref.display} if ref.display else {}),
                    "$ref": f"{base_url}/{ref.resource}s/{ref.id}",
                }
            )
            continue
        item: dict[str, Any] = {"value": ref.id, "$ref": _location(base_url, ref)}
        if ref.display:
            item["display"] = ref.display
        item["type"] = ref.resource if a.attr == "members" else "direct"
        out.append(item)
    return out


def _location(base_url: str, ref: Ref) -> str:
    return f"{base_url}/{ref.resource}s/{ref.id}"


def _put(target: dict[str, Any], a: AttributeMap, values: list[Any]) -> None:
    parent = a.parent
    if a.attr == "manager":
        target["manager"] = values[0]
        return
    if a.is_reference and parent.multi_valued:
        target.setdefault(parent.name, []).extend(values)
        return
    if parent.multi_valued:
        items = target.setdefault(parent.name, [])
        for i, v in enumerate(values):
            sub = a.sub or "value"
            if sub != "value" and a.type_value:
                # addresses[type eq "work"].streetAddress / .locality / ... form ONE element
                same = [e for e in items if e.get("type") == a.type_value and sub not in e]
                if same:
                    same[0][sub] = v
                    continue
            item: dict[str, Any] = {sub: v}
            if a.type_value:
                item["type"] = a.type_value
            if a.primary and i == 0:
                item["primary"] = True
            items.append(item)
        return
    if a.sub:
        target.setdefault(parent.name, {})[a.sub] = values[0]
        return
    target[parent.name] = values if parent.multi_valued else values[0]


# ---------------------------------------------------------------------------- SCIM -> LDAP
def scim_values(rmap: ResourceMap, a: AttributeMap, resource: Mapping[str, Any]) -> list[Any]:
    """The SCIM values of mapping ``a`` found in a request body (case-insensitive names)."""
    container: Any = resource
    if a.extension:
        container = ci_get(resource, a.schema)
        if not isinstance(container, Mapping):
            return []
    value = ci_get(container, a.attr)
    if value is None:
        return []
    parent = a.parent
    if parent.multi_valued:
        if not isinstance(value, list):
            value = [value]
        out = []
        for item in value:
            if not isinstance(item, Mapping):
                if (a.sub == "value" and not a.type_value) or _claims_untyped(rmap, a):
                    out.append(item)  # bare values, e.g. members: ["id"] from some clients
                continue
            if not _type_matches(rmap, a, item):
                continue
            v = ci_get(item, a.sub or "value")
            if v is not None:
                out.append(v)
        return out
    if parent.type == "complex":
        if not isinstance(value, Mapping):
            if a.attr == "manager" and isinstance(value, str):
                # Entra and Okta send the enterprise manager as a bare id string
                # ("manager": "id"), and clear it with ""
                return [value] if a.sub == "value" and value != "" else []
            raise InvalidValue(f"{a.attr} must be a complex value (a JSON object)")
        v = ci_get(value, a.sub or "value")
        return [] if v is None or v == "" else [v]
    if isinstance(value, list | dict):
        raise InvalidValue(f"{a.attr} must be a single {a.definition.type} value")
    return [value]


def _type_matches(rmap: ResourceMap, a: AttributeMap, item: Mapping[str, Any]) -> bool:
    typ = ci_get(item, "type")
    if a.type_value is None:
        return True
    if isinstance(typ, str) and typ:
        return typ.lower() == a.type_value.lower()
    return _claims_untyped(rmap, a)


def _claims_untyped(rmap: ResourceMap, a: AttributeMap) -> bool:
    """An element without ``type`` goes to the attribute's primary mapping (or its first)."""
    siblings = [s for s in rmap.maps_for(a.attr, a.schema) if (s.sub or "") == (a.sub or "")]
    owner = next((s for s in siblings if s.primary), siblings[0] if siblings else None)
    return owner is a


def reference_ids(rmap: ResourceMap, resource: Mapping[str, Any]) -> dict[str, list[str]]:
    """Per reference mapping path, the SCIM ids a request body refers to."""
    out: dict[str, list[str]] = {}
    for a in rmap.attributes:
        if a.is_reference and a.writable:
            ids = [str(v) for v in scim_values(rmap, a, resource)]
            if ids:
                out[a.path] = ids
    return out


#: identifier-like core attributes (RFC 7643 §4.1.1 userName, the displayName a group is named
#: by and a user shown as): no control or invisible format characters, which would let a value
#: look like another one or break a log line or an LDIF export
IDENTIFIER_ATTRIBUTES = frozenset({"userName", "displayName"})


def check_identifier(path: str, value: str) -> None:
    """400 invalidValue naming ``path`` when ``value`` holds a C0/C1 control character, DEL
    (Unicode category Cc) or a format character such as a zero-width space or a bidi override
    (Cf)."""
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf"):
            raise InvalidValue(
                f"{path}: control or invisible character U+{ord(ch):04X} is not allowed"
            )


def encode(
    a: AttributeMap,
    values: Iterable[Any],
    ref_dns: Mapping[str, str],
    current: list[bytes] | None = None,
) -> list[bytes]:
    """SCIM values of mapping ``a`` -> LDAP values (deduplicated, order kept)."""
    out: list[bytes] = []
    seen: set[bytes] = set()
    identifier = not a.extension and a.attr in IDENTIFIER_ATTRIBUTES
    for v in values:
        if identifier and isinstance(v, str):
            check_identifier(a.path, v)
        if a.is_reference:
            dn = ref_dns.get(str(v))
            if dn is None:
                raise InvalidValue(f"{a.attr}: no resource with id {v!r}")
            encoded = [dn.encode("utf-8")]
        else:
            try:
                encoded = a.codec.encode(v, current)
            except InvalidValue as exc:
                raise InvalidValue(f"{a.path}: {exc.detail}") from None
        for e in encoded:
            key = e.lower() if not a.codec.binary else e
            if key not in seen:
                seen.add(key)
                out.append(e)
    if len(out) > 1 and not a.multi and not a.is_reference:
        raise InvalidValue(f"{a.path} takes a single value")
    return out


def to_attributes(
    rmap: ResourceMap,
    resource: Mapping[str, Any],
    ref_dns: Mapping[str, str],
    *,
    writable_only: bool = True,
    current: Entry | None = None,
) -> dict[str, list[bytes]]:
    """All mapped LDAP attributes for a full resource (create / PUT).  ``current`` is the entry
    a PUT replaces: codecs such as ``ad-enabled`` keep the parts of a value they do not own."""
    out: dict[str, list[bytes]] = {}
    for a in rmap.attributes:
        if writable_only and not a.writable:
            continue
        values = scim_values(rmap, a, resource)
        for fb in a.fallback if not values else ():
            source = next(m for m in rmap.attributes if m.path.lower() == fb.lower())
            values = scim_values(rmap, source, resource)[:1]
            if values:
                break
        if a.codec.absent is not None and not values:
            continue
        check_count(a.path, len(values))
        encoded = encode(a, values, ref_dns, list(current.get(a.ldap)) if current else None)
        if encoded:
            out.setdefault(a.ldap, [])
            have = set(out[a.ldap])  # a set: a list scan per value was quadratic
            out[a.ldap] += [e for e in encoded if e not in have]
    return out


def rdn_value(rmap: ResourceMap, resource: Mapping[str, Any]) -> str:
    src = next(a for a in rmap.attributes if a.path.lower() == rmap.rdn.source.lower())
    values = scim_values(rmap, src, resource)
    if not values or not isinstance(values[0], str | int) or str(values[0]).strip() == "":
        raise InvalidValue(f"{src.path} is required: it names the directory entry")
    return str(values[0])


def dn_for(rmap: ResourceMap, resource: Mapping[str, Any]) -> str:
    """The DN of a new entry: the RDN from the mapped attribute, escaped once, here."""
    return f"{rdn_of(rmap.rdn.ldap, rdn_value(rmap, resource))},{rmap.base_dn}"


def check_required(rmap: ResourceMap, resource: Mapping[str, Any]) -> None:
    for a in rmap.attributes:
        if a.required and a.writable and not scim_values(rmap, a, resource):
            raise InvalidValue(f"{a.path} is required")


def schemas_of(resource: Mapping[str, Any]) -> list[str]:
    s = ci_get(resource, "schemas")
    return [x for x in s if isinstance(x, str)] if isinstance(s, list) else []


def validate_schemas(rmap: ResourceMap, resource: Mapping[str, Any]) -> None:
    """RFC 7643 §3: ``schemas`` must name the resource's core schema (tolerated when absent:
    several IdPs omit it on PUT) and known extensions.  An unknown URI that carries no
    attributes is ignored: Entra ID's group create lists
    ``http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group`` with nothing
    under it.  One whose attributes the body carries is a 400: they could not be stored."""
    given = schemas_of(resource)
    known = {s.lower() for s in rmap.schemas}
    for urn in given:
        if urn.lower() in known or sch.canonical_schema(urn) is not None:
            continue
        if _carries(resource, urn):
            raise InvalidValue(f"unknown schema {urn}: its attributes cannot be stored")


def _carries(resource: Mapping[str, Any], urn: str) -> bool:
    """Whether ``resource`` holds attributes of schema ``urn``: a non-empty ``urn`` object or
    a URN-qualified ``urn:attr`` key (RFC 7644 §3.10)."""
    low = urn.lower()
    for key, value in resource.items():
        if not isinstance(key, str) or value in (None, {}, [], ""):
            continue
        if key.lower() == low or key.lower().startswith(low + ":"):
            return True
    return False
