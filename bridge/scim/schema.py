"""What the bridge knows about the standard SCIM schemas (RFC 7643 §4, §4.3, §8.7.1).

Only shapes are described here (type, multiValued, sub-attributes, mutability, caseExact); which of
them a deployment supports is decided by the mapping file.  Lookups are case-insensitive, since
attribute names are (RFC 7643 §2.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"


@dataclass(frozen=True)
class AttrDef:
    name: str
    type: str = "string"  # string boolean decimal integer dateTime binary reference complex
    multi_valued: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"  # readOnly readWrite immutable writeOnly
    returned: str = "default"  # always never default request
    uniqueness: str = "none"  # none server global
    required: bool = False
    reference_types: tuple[str, ...] = ()
    canonical_values: tuple[str, ...] = ()
    sub_attributes: tuple[AttrDef, ...] = ()
    description: str = ""
    _subs: dict[str, AttrDef] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._subs.update({s.name.lower(): s for s in self.sub_attributes})

    def sub(self, name: str) -> AttrDef | None:
        return self._subs.get(name.lower())


def _s(name: str, **kw: object) -> AttrDef:
    return AttrDef(name, **kw)  # type: ignore[arg-type]


def _multi(
    name: str,
    *,
    types: tuple[str, ...] = ("work", "home", "other"),
    value_type: str = "string",
    ref: tuple[str, ...] = (),
    value_mut: str = "readWrite",
    mutability: str = "readWrite",
) -> AttrDef:
    """The common multi-valued complex shape: value/display/type/primary (RFC 7643 §2.4)."""
    subs: list[AttrDef] = [
        _s("value", type=value_type, mutability=value_mut),
        _s("display", mutability=value_mut),
        _s("type", canonical_values=types, mutability=value_mut),
        _s("primary", type="boolean", mutability=value_mut),
    ]
    if ref:
        subs.append(_s("$ref", type="reference", reference_types=ref, mutability=value_mut))
    return AttrDef(
        name, type="complex", multi_valued=True, mutability=mutability, sub_attributes=tuple(subs)
    )


_ADDRESS_SUBS = (
    *(_s(n) for n in ("formatted", "streetAddress", "locality", "region", "postalCode")),
    *(_s(n) for n in ("country", "type")),
    _s("primary", type="boolean"),
)

USER_ATTRS: tuple[AttrDef, ...] = (
    _s("userName", required=True, uniqueness="server"),
    AttrDef(
        "name",
        type="complex",
        sub_attributes=tuple(
            _s(n)
            for n in (
                "formatted",
                "familyName",
                "givenName",
                "middleName",
                "honorificPrefix",
                "honorificSuffix",
            )
        ),
    ),
    _s("displayName"),
    _s("nickName"),
    _s("profileUrl", type="reference"),
    _s("title"),
    _s("userType"),
    _s("preferredLanguage"),
    _s("locale"),
    _s("timezone"),
    _s("active", type="boolean"),
    _s("password", mutability="writeOnly", returned="never"),
    _multi("emails"),
    _multi("phoneNumbers", types=("work", "home", "mobile", "fax", "pager", "other")),
    _multi("ims"),
    _multi("photos", value_type="reference"),
    AttrDef("addresses", type="complex", multi_valued=True, sub_attributes=_ADDRESS_SUBS),
    _multi(
        "groups",
        types=("direct", "indirect"),
        value_mut="readOnly",
        mutability="readOnly",
        ref=("User", "Group"),
    ),
    _multi("entitlements"),
    _multi("roles"),
    _multi("x509Certificates", value_type="binary"),
)

GROUP_ATTRS: tuple[AttrDef, ...] = (
    _s("displayName", required=True, uniqueness="server"),
    _multi("members", types=("User", "Group"), ref=("User", "Group")),
)

ENTERPRISE_ATTRS: tuple[AttrDef, ...] = (
    _s("employeeNumber"),
    _s("costCenter"),
    _s("organization"),
    _s("division"),
    _s("department"),
    AttrDef(
        "manager",
        type="complex",
        sub_attributes=(
            _s("value"),
            _s("$ref", type="reference", reference_types=("User",)),
            _s("displayName", mutability="readOnly"),
        ),
    ),
)

COMMON_ATTRS: tuple[AttrDef, ...] = (
    _s("id", mutability="readOnly", returned="always", case_exact=True, uniqueness="server"),
    _s("externalId", case_exact=True),
    AttrDef(
        "meta",
        type="complex",
        mutability="readOnly",
        sub_attributes=(
            _s("resourceType", mutability="readOnly"),
            _s("created", type="dateTime", mutability="readOnly"),
            _s("lastModified", type="dateTime", mutability="readOnly"),
            _s("location", type="reference", mutability="readOnly"),
            _s("version", mutability="readOnly", case_exact=True),
        ),
    ),
)

SCHEMAS: dict[str, tuple[AttrDef, ...]] = {
    USER: USER_ATTRS,
    GROUP: GROUP_ATTRS,
    ENTERPRISE_USER: ENTERPRISE_ATTRS,
}
SCHEMA_NAMES = {USER: "User", GROUP: "Group", ENTERPRISE_USER: "EnterpriseUser"}

_INDEX: dict[str, dict[str, AttrDef]] = {
    urn.lower(): {a.name.lower(): a for a in attrs + COMMON_ATTRS} for urn, attrs in SCHEMAS.items()
}


def attr_def(schema: str, name: str) -> AttrDef | None:
    """The definition of ``name`` in ``schema`` (both case-insensitive), or None."""
    return _INDEX.get(schema.lower(), {}).get(name.lower())


def canonical_schema(urn: str) -> str | None:
    """The canonical spelling of a known schema URN (clients vary its case), or None."""
    for known in SCHEMAS:
        if known.lower() == urn.lower():
            return known
    return None


def ci_get(obj: Mapping[str, Any], key: str) -> Any:
    """Case-insensitive key lookup (attribute names are case-insensitive, RFC 7643 §2.1)."""
    if key in obj:
        return obj[key]
    low = key.lower()
    return next((v for k, v in obj.items() if isinstance(k, str) and k.lower() == low), None)
