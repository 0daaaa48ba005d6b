"""The ``attributes:`` of a mapped resource: each key a SCIM path (``emails[type eq "work"].value``,
``urn:...:manager.value``), validated against the SCIM schemas, with its LDAP attribute, codec
and overrides (RFC 7643 §2.2 characteristics: mutability, returned, uniqueness...).
"""

from __future__ import annotations

import re
from typing import Any

from bridge.mapping.codecs import CODECS, ReferenceCodec
from bridge.mapping.model import AttributeMap, Mirror
from bridge.mapping.problems import Collector, at, codec_of
from bridge.scim import schema as sch

_KEY = re.compile(
    r"""^(?:(?P<urn>urn:[^\s\[\]]+):)?          # optional schema URN
        (?P<attr>[A-Za-z$][\w$-]*)               # attribute
        (?:\[\s*type\s+eq\s+"(?P<type>[^"]*)"\s*\])?   # optional [type eq "x"]
        (?:\.(?P<sub>[A-Za-z$][\w$-]*))?$        # optional .sub
    """,
    re.X | re.I,
)
ATTR_KEYS = {
    "ldap",
    "type",
    "required",
    "mutability",
    "returned",
    "unique",
    "primary",
    "to",
    "case_exact",
    "fallback",
    "from_member",
    "member_value",
    "mirror",
}
#: ``member_value``: ``dn``, or the LDAP attribute of the member whose value the member
#: attribute holds (RFC 2307 memberUid holds the uid)
_LDAP_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
MUTABILITY = {"readWrite", "readOnly", "immutable", "writeOnly"}
RETURNED = {"default", "always", "never", "request"}


def attribute_maps(
    data: Any, path: str, schemas: tuple[str, ...], names: set[str], c: Collector
) -> list[AttributeMap]:
    if not isinstance(data, dict) or not data:
        c.add(path, "expected a mapping of SCIM path -> {ldap: ...}")
        return []
    out: list[AttributeMap] = []
    writers: dict[str, str] = {}
    for key, spec in data.items():
        here = at(path, str(key))
        amap = _attribute(str(key), spec, here, schemas, names, c)
        if amap is None:
            continue
        if (amap.writable and not amap.is_reference) or amap.attr.lower() == "members":
            prev = writers.get(amap.ldap.lower())
            if prev is not None:
                c.add(
                    at(here, "ldap"), f"LDAP attribute {amap.ldap} is already written by {prev!r}"
                )
            writers[amap.ldap.lower()] = amap.path
        out.append(amap)
    _check_duplicates(out, path, c)
    known = {a.path.lower() for a in out}
    for a in out:
        for i, fb in enumerate(a.fallback):
            if fb.lower() not in known:
                c.add(at(path, a.path, "fallback", i), f"{fb!r} is not a mapped attribute")
    return out


def _check_duplicates(maps: list[AttributeMap], path: str, c: Collector) -> None:
    seen: dict[tuple[str, str, str, str], str] = {}
    for a in maps:
        k = (a.schema.lower(), a.attr.lower(), (a.sub or "").lower(), (a.type_value or "").lower())
        if k in seen:
            c.add(at(path, a.path), f"maps the same SCIM attribute as {seen[k]!r}")
        seen[k] = a.path


def _attribute(
    key: str, spec: Any, here: str, schemas: tuple[str, ...], names: set[str], c: Collector
) -> AttributeMap | None:
    m = _KEY.match(key)
    if not m:
        c.add(
            here,
            'not a SCIM path of the form attr, attr.sub, attr[type eq "x"].sub or urn:...:attr',
        )
        return None
    if isinstance(spec, dict) and "from_member" in spec:
        spec = _from_member(spec, here, c)
        if spec is None:
            return None
    if not isinstance(spec, dict) or not isinstance(spec.get("ldap"), str):
        c.add(here, "expected {ldap: <attribute>, ...}")
        return None
    c.unknown(spec, ATTR_KEYS, here)
    if spec.get("from_member") and m["attr"] != "groups":
        c.add(at(here, "from_member"), "only groups can be read from the group side")
        return None
    member_value = _member_value(spec, m["attr"], here, c)
    mirror = _mirror(spec.get("mirror"), m["attr"], member_value, at(here, "mirror"), c)
    if member_value is None or isinstance(mirror, bool):
        return None
    urn = m["urn"]
    if urn is not None:
        schema = sch.canonical_schema(urn)
        if schema is None or schema not in schemas:
            c.add(here, f"schema {urn} is not this resource's schema or one of its extensions")
            return None
    else:
        schema = schemas[0]
    parent = sch.attr_def(schema, m["attr"])
    if parent is None or parent.name in ("id", "meta"):
        c.add(
            here,
            f"{m['attr']!r} is not an attribute of {schema}"
            if parent is None
            else f"{parent.name} is managed by the bridge (see id:/meta:)",
        )
        return None
    definition = parent
    sub = m["sub"]
    if sub is not None:
        sd = parent.sub(sub)
        if sd is None:
            c.add(here, f"{parent.name} has no sub-attribute {sub!r}")
            return None
        definition, sub = sd, sd.name
    elif parent.type == "complex":
        if parent.multi_valued:
            sub, definition = "value", parent.sub("value") or parent
        else:
            c.add(
                here,
                f"{parent.name} is complex: map its sub-attributes (e.g. {parent.name}."
                f"{parent.sub_attributes[0].name})",
            )
            return None
    if m["type"] is not None and not parent.multi_valued:
        c.add(here, f"[type eq ...] only applies to multi-valued attributes, not {parent.name}")
    default_codec = {"boolean": "boolean", "integer": "integer", "dateTime": "datetime"}.get(
        definition.type, "string"
    )
    if parent.name in ("members", "groups") or (parent.name == "manager" and sub == "value"):
        default_codec = "reference"
    codec = codec_of(spec.get("type"), at(here, "type"), c, default_codec)
    if parent.name == "password" and spec.get("type") is None:
        codec = CODECS["password"]
    mutability = spec.get(
        "mutability", definition.mutability if parent.name != "groups" else "readOnly"
    )
    if mutability not in MUTABILITY:
        c.add(at(here, "mutability"), f"expected one of {sorted(MUTABILITY)}, got {mutability!r}")
        mutability = "readWrite"
    returned = spec.get("returned", definition.returned if parent.name != "password" else "never")
    if returned not in RETURNED:
        c.add(at(here, "returned"), f"expected one of {sorted(RETURNED)}, got {returned!r}")
        returned = "default"
    to = spec.get(
        "to",
        ["User", "Group"]
        if parent.name in ("members", "groups")
        else ["User"]
        if parent.name == "manager"
        else [],
    )
    if not isinstance(to, list) or any(t not in names for t in to):
        c.add(at(here, "to"), f"expected a list of resource names from {sorted(names)}, got {to!r}")
        to = []
    if isinstance(codec, ReferenceCodec) and not to:
        c.add(at(here, "to"), "a reference needs 'to: [User, Group]'")
    for flag in ("required", "unique", "primary", "case_exact"):
        if flag in spec and not isinstance(spec[flag], bool):
            c.add(at(here, flag), f"expected true or false, got {spec[flag]!r}")
    fallback = spec.get("fallback", [])
    if not isinstance(fallback, list) or not all(isinstance(f, str) for f in fallback):
        c.add(at(here, "fallback"), f"expected a list of SCIM paths, got {fallback!r}")
        fallback = []
    if codec is None:
        return None
    return AttributeMap(
        path=key,
        schema=schema,
        attr=parent.name,
        sub=sub,
        type_value=m["type"],
        ldap=spec["ldap"],
        codec=codec,
        definition=definition,
        parent=parent,
        required=spec.get("required", parent.required) is True,
        mutability=mutability,
        returned=returned,
        unique=spec.get("unique", parent.uniqueness != "none") is True,
        primary=spec.get("primary", False) is True,
        to=tuple(to),
        fallback=tuple(fallback),
        from_member=bool(spec.get("from_member")),
        member_value=member_value,
        mirror=mirror,
    )


def _member_value(spec: dict[str, Any], attr: str, here: str, c: Collector) -> str | None:
    """``member_value``: ``dn`` (the default), or the LDAP attribute of the member (``uid``)
    whose value the member attribute holds: on ``members`` (RFC 2307 memberUid) and on
    ``groups`` read ``from_member`` such an attribute.  Checked against the target
    resources by :func:`bridge.mapping.members.check`."""
    value = spec.get("member_value", "dn")
    if "member_value" in spec and attr not in ("members", "groups"):
        c.add(at(here, "member_value"), "only members and groups hold members by value")
        return None
    if attr == "groups" and "member_value" in spec and not spec.get("from_member"):
        c.add(at(here, "member_value"), "member_value on groups goes with from_member")
        return None
    if not isinstance(value, str) or not (value == "dn" or _LDAP_NAME.match(value)):
        c.add(
            at(here, "member_value"),
            f"expected dn or the LDAP attribute of the member whose value is held (uid), "
            f"got {value!r}",
        )
        return None
    return value


def _mirror(
    data: Any, attr: str, member_value: str | None, here: str, c: Collector
) -> Mirror | bool | None:
    """``mirror: {ldap: memberUid, member_value: uid}`` (RFC 2307bis): None when absent, False
    when refused (the problem is reported)."""
    if data is None:
        return None
    if attr != "members":
        c.add(here, "only members can have a mirror")
        return False
    if member_value != "dn":
        c.add(here, "the mirror goes with a DN member attribute (member_value: dn)")
        return False
    if not isinstance(data, dict):
        c.add(here, "expected {ldap: memberUid, member_value: uid}")
        return False
    c.unknown(data, {"ldap", "member_value"}, here)
    ldap, value = data.get("ldap"), data.get("member_value")
    ok = True
    if not isinstance(ldap, str) or not _LDAP_NAME.match(ldap):
        c.add(at(here, "ldap"), f"expected the value member attribute (memberUid), got {ldap!r}")
        ok = False
    if not isinstance(value, str) or value == "dn" or not _LDAP_NAME.match(value):
        c.add(
            at(here, "member_value"),
            f"expected the LDAP attribute of the member whose value is held (uid), got {value!r}",
        )
        ok = False
    return Mirror(str(ldap), str(value)) if ok else False


def _from_member(spec: dict[str, Any], here: str, c: Collector) -> dict[str, Any] | None:
    """``groups: {from_member: member, to: [Group]}``: a user's groups are the groups whose
    ``member`` holds the user's DN (a directory without the memberof overlay); with
    ``member_value: uid``, the groups whose ``memberUid`` holds the user's uid.  Normalised to
    an attribute spec whose ``ldap`` is the member attribute, flagged ``from_member``."""
    attr = spec["from_member"]
    if "ldap" in spec:
        c.add(here, "give either ldap (read from this entry) or from_member, not both")
        return None
    if not isinstance(attr, str) or not attr:
        c.add(at(here, "from_member"), f"expected the groups' member attribute, got {attr!r}")
        return None
    if "to" not in spec:
        c.add(at(here, "to"), "from_member needs 'to: [Group]': the resources holding the member")
        return None
    return {**spec, "ldap": attr, "from_member": True}
