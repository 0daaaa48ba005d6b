"""Discovery documents generated from the mapping (RFC 7644 §4, RFC 7643 §5-§7, RFC 9865 §4).

Everything here describes what this deployment actually does: ``/Schemas`` lists only attributes
the mapping maps (with the mapping's mutability/returned/uniqueness, not the RFC defaults), typed
multi-valued attributes list only the ``type`` values that are mapped (as ``canonicalValues``),
and ``/ServiceProviderConfig`` advertises only features the bridge implements.  Pure functions
of (mapping, settings, base URL): no HTTP and no LDAP here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.mapping.model import AttributeMap, MappingConfig, ResourceMap
from bridge.scim import schema as sch
from bridge.settings import Settings

SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
DOCS = "https://github.com/scim-ldap-bridge/scim-ldap-bridge#readme"

#: RFC 7643 §3.1: id, externalId and meta are common attributes, not part of any schema
_COMMON = {"id", "externalid", "meta"}

_SCHEMA_DESCRIPTIONS = {
    sch.USER: "User Account",
    sch.GROUP: "Group",
    sch.ENTERPRISE_USER: "Enterprise User",
}


def service_provider_config(settings: Settings, base_url: str) -> dict[str, Any]:
    """RFC 7643 §5, with the RFC 9865 §4 ``pagination`` block."""
    return {
        "schemas": [SPC_SCHEMA],
        "documentationUri": DOCS,
        "patch": {"supported": True},
        "bulk": {
            "supported": True,
            "maxOperations": settings.bulk_max_operations,
            "maxPayloadSize": settings.bulk_max_payload_bytes,
        },
        "filter": {"supported": True, "maxResults": settings.max_results},
        "changePassword": {"supported": True},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "pagination": {
            "cursor": True,
            "index": True,
            "defaultPaginationMethod": "index",
            "defaultPageSize": settings.default_count,
            "maxPageSize": settings.max_results,
            "cursorTimeout": None,  # cursors are stateless and signed: they do not expire
        },
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A static bearer token (RFC 6750 §2.1) configured on the "
                "bridge with BRIDGE_TOKEN or BRIDGE_TOKEN_<NAME>.",
                "specUri": "https://www.rfc-editor.org/info/rfc6750",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base_url}/ServiceProviderConfig",
        },
    }


def resource_type(rmap: ResourceMap, base_url: str) -> dict[str, Any]:
    """RFC 7643 §6."""
    doc: dict[str, Any] = {
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": rmap.name,
        "name": rmap.name,
        "endpoint": rmap.endpoint,
        "description": rmap.description or _SCHEMA_DESCRIPTIONS.get(rmap.schema, rmap.name),
        "schema": rmap.schema,
        "meta": {
            "resourceType": "ResourceType",
            "location": f"{base_url}/ResourceTypes/{rmap.name}",
        },
    }
    if rmap.extensions:
        doc["schemaExtensions"] = [{"schema": ext, "required": False} for ext in rmap.extensions]
    return doc


def resource_types(mapping: MappingConfig, base_url: str) -> list[dict[str, Any]]:
    return [resource_type(r, base_url) for r in mapping.resources.values()]


def schema_ids(mapping: MappingConfig) -> list[str]:
    """Every schema URN a mapped resource uses, core schemas first."""
    out: dict[str, None] = {}
    for rmap in mapping.resources.values():
        out[rmap.schema] = None
    for rmap in mapping.resources.values():
        for ext in rmap.extensions:
            out[ext] = None
    return list(out)


def schemas(mapping: MappingConfig, base_url: str) -> list[dict[str, Any]]:
    return [schema(mapping, urn, base_url) for urn in schema_ids(mapping)]


def schema(mapping: MappingConfig, urn: str, base_url: str) -> dict[str, Any]:
    """RFC 7643 §7: one schema, restricted to the attributes some resource maps."""
    maps = [
        a
        for rmap in mapping.resources.values()
        for a in rmap.attributes
        if a.schema == urn and a.attr.lower() not in _COMMON
    ]
    by_attr: dict[str, list[AttributeMap]] = {}
    for a in maps:
        by_attr.setdefault(a.attr, []).append(a)
    return {
        "schemas": [SCHEMA_SCHEMA],
        "id": urn,
        "name": sch.SCHEMA_NAMES.get(urn, urn.rsplit(":", 1)[-1]),
        "description": _SCHEMA_DESCRIPTIONS.get(urn, ""),
        "attributes": [_attribute(group) for group in by_attr.values()],
        "meta": {"resourceType": "Schema", "location": f"{base_url}/Schemas/{urn}"},
    }


def _characteristics(
    d: sch.AttrDef, *, multi: bool, required: bool, mutability: str, returned: str, unique: bool
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": d.name,
        "type": d.type,
        "multiValued": multi,
        "description": d.description or d.name,
        "required": required,
        "caseExact": d.case_exact,
        "mutability": mutability,
        "returned": returned,
        "uniqueness": "server" if unique else "none",
    }
    if d.type == "reference":
        doc["referenceTypes"] = list(d.reference_types) or ["external"]
    if d.canonical_values:
        doc["canonicalValues"] = list(d.canonical_values)
    return doc


def _attribute(group: Sequence[AttributeMap]) -> dict[str, Any]:
    """The schema entry of one top-level SCIM attribute from all its mappings."""
    first = group[0]
    parent = first.parent
    mutability = _widest(a.mutability for a in group)
    returned = _first(a.returned for a in group)
    doc = _characteristics(
        parent,
        multi=parent.multi_valued,
        required=any(a.required for a in group),
        mutability=mutability,
        returned=returned,
        unique=any(a.unique for a in group),
    )
    if parent.type != "complex":
        return doc
    subs: list[dict[str, Any]] = []
    seen: set[str] = set()
    for a in group:
        name = a.sub or "value"
        if name in seen:
            continue
        seen.add(name)
        sd = parent.sub(name) or a.definition
        subs.append(
            _characteristics(
                sd,
                multi=False,
                required=a.required,
                mutability=a.mutability,
                returned=a.returned,
                unique=a.unique,
            )
        )
    for extra in _implied_subs(group):
        if extra.name not in seen:
            seen.add(extra.name)
            subs.append(
                _characteristics(
                    extra,
                    multi=False,
                    required=False,
                    mutability=_implied_mutability(extra, mutability),
                    returned="default",
                    unique=False,
                )
                | ({"canonicalValues": _types(group)} if extra.name == "type" else {})
            )
    doc["subAttributes"] = subs
    if "canonicalValues" in doc:
        del doc["canonicalValues"]
    return doc


def _implied_subs(group: Sequence[AttributeMap]) -> list[sch.AttrDef]:
    """Sub-attributes the bridge emits without a mapping of their own: ``type``/``primary`` of
    typed multi-valued attributes, ``$ref``/``display``/``type`` of references."""
    parent = group[0].parent
    names: list[str] = []
    if any(a.is_reference for a in group):
        names += ["$ref", "display", "type"]
    elif parent.multi_valued and any(a.type_value for a in group):
        names += ["type", "primary"]
    return [d for d in (parent.sub(n) for n in names) if d is not None]


def _implied_mutability(sub: sch.AttrDef, parent_mutability: str) -> str:
    if sub.name in ("$ref", "display") or parent_mutability == "readOnly":
        return "readOnly"
    return parent_mutability


def _types(group: Sequence[AttributeMap]) -> list[str]:
    """The ``type`` values a client may send: the mapped ones (or the reference targets)."""
    if any(a.is_reference for a in group):
        if group[0].attr == "groups":
            return ["direct"]
        return list(dict.fromkeys(t for a in group for t in a.to))
    return list(dict.fromkeys(a.type_value for a in group if a.type_value))


def _widest(values: Any) -> str:
    """readWrite if any mapping of the attribute is writable, else the first one's value."""
    vals = list(values)
    for v in ("readWrite", "immutable", "writeOnly"):
        if v in vals:
            return v
    return vals[0]


def _first(values: Any) -> str:
    vals = list(values)
    return "always" if "always" in vals else vals[0]
