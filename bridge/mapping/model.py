"""The mapping as typed, frozen objects: one ResourceMap per SCIM resource type, one AttributeMap
per SCIM path <-> LDAP attribute, and the reverse index built once.  mapping/load.py builds them
from YAML; everything after it reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge.directory.base import Scope
from bridge.mapping import policy as dp
from bridge.mapping.codecs import Codec, ReferenceCodec
from bridge.mapping.dialects import Dialect
from bridge.mapping.posix import NONE as NO_POSIX
from bridge.mapping.posix import PosixSpec
from bridge.scim import schema as sch


@dataclass(frozen=True)
class Mirror:
    """RFC 2307bis: besides the DN member attribute, ``ldap`` (memberUid) holds the
    ``member_value`` attribute (uid) of each member of a ``targets`` type (the user-like ones
    among the members' ``to``; groups go to the DN attribute only)."""

    ldap: str
    member_value: str
    targets: tuple[str, ...] = ()


@dataclass(frozen=True)
class AttributeMap:
    """One SCIM path <-> one LDAP attribute."""

    path: str  # the YAML key, e.g. 'emails[type eq "work"].value'
    schema: str  # URN of the schema the attribute belongs to
    attr: str  # top-level SCIM attribute (canonical case), e.g. "emails"
    sub: str | None  # sub-attribute (canonical case), e.g. "value", "givenName"
    type_value: str | None  # "work" for emails[type eq "work"].value
    ldap: str
    codec: Codec
    definition: sch.AttrDef  # the SCIM attribute (sub-attribute if sub is set)
    parent: sch.AttrDef  # the top-level SCIM attribute
    required: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    unique: bool = False
    primary: bool = False
    to: tuple[str, ...] = ()  # reference targets (resource names)
    fallback: tuple[str, ...] = ()  # SCIM paths whose value is written when this one is absent
    #: ``from_member``: read from the other side -- the values are the ``to`` entries whose
    #: ``ldap`` attribute holds this entry's ``member_value`` (a user's groups where nothing
    #: maintains memberOf); never requested from this entry, never written
    from_member: bool = False
    #: what the member attribute holds of a member: ``dn`` (member, uniqueMember), or the name
    #: of an LDAP attribute of the member whose value it holds (RFC 2307 memberUid: ``uid``)
    member_value: str = "dn"
    #: ``members`` only (RFC 2307bis): a second member attribute holding the member_value of
    #: every user-like member, kept in step with the DN attribute on every write
    mirror: Mirror | None = None
    # derived once (read for every attribute of every rendered entry)
    is_reference: bool = field(init=False, repr=False, compare=False)
    extension: bool = field(init=False, repr=False, compare=False)
    key: str = field(init=False, repr=False, compare=False)  # ``ldap`` lower-cased: Entry keys

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_reference", isinstance(self.codec, ReferenceCodec))
        object.__setattr__(self, "extension", self.schema not in (sch.USER, sch.GROUP))
        object.__setattr__(self, "key", self.ldap.lower())

    @property
    def multi(self) -> bool:
        return self.parent.multi_valued

    @property
    def by_value(self) -> bool:
        """The attribute holds an attribute value of each member (memberUid), not its DN."""
        return self.member_value != "dn"

    @property
    def writable(self) -> bool:
        return self.mutability in ("readWrite", "writeOnly", "immutable")


@dataclass(frozen=True)
class IdMap:
    ldap: str
    codec: Codec


@dataclass(frozen=True)
class RdnMap:
    ldap: str
    source: str  # SCIM path key of the attribute the RDN value comes from


#: where a ``derived`` value must be unique: within the resource's base_dn, or among every
#: object of the naming context holding it (AD's sAMAccountName is unique in the domain)
DERIVED_UNIQUE = ("base", "domain")


@dataclass(frozen=True)
class DerivedMap:
    """An LDAP attribute computed from a SCIM value (``derived:``) on create.  Without
    ``unique`` it follows its source: a PUT/PATCH changing the source rewrites it in the same
    modify (service/create.follow_derived).  ``unique``: made unique with a numeric suffix
    found by search on create, and then kept (a rename keeps AD's sAMAccountName)."""

    ldap: str
    source: str  # SCIM path key of the attribute the value comes from
    codec: Codec
    unique: str | None = None  # one of DERIVED_UNIQUE


@dataclass(frozen=True)
class ResourceMap:
    name: str
    endpoint: str
    schema: str
    extensions: tuple[str, ...]
    base_dn: str
    scope: Scope
    object_classes: tuple[str, ...]
    base_filter: str
    id: IdMap
    rdn: RdnMap
    created: str
    last_modified: str
    version: str
    attributes: tuple[AttributeMap, ...]
    empty_member: str | None = None
    description: str = ""
    #: LDAP values written on every create and never read (e.g. AD groupType)
    constants: tuple[tuple[str, tuple[bytes, ...]], ...] = ()
    #: LDAP attributes computed from a SCIM value (on create; non-unique ones also on update)
    derived: tuple[DerivedMap, ...] = ()
    #: see Dialect.create_steps
    create_steps: tuple[tuple[str, ...], ...] = ()
    password_must_change: bool = False
    #: a create without a password gets a random one nobody knows (AD refuses to enable an
    #: account without a password; Entra sends none for SSO-only users)
    generate_missing_password: bool = False
    #: users' ``groups`` also lists groups reached through nested groups (AD only)
    transitive_groups: bool = False
    deprovision: dp.Policy = dp.DEFAULT
    #: numbers allocated and attributes built from templates on create (mapping/posix.py)
    posix: PosixSpec = NO_POSIX
    _by_attr: dict[str, tuple[AttributeMap, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )
    _by_ldap: dict[str, tuple[AttributeMap, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        by_attr: dict[str, list[AttributeMap]] = {}
        by_ldap: dict[str, list[AttributeMap]] = {}
        for a in self.attributes:
            by_attr.setdefault(a.attr.lower(), []).append(a)
            if not a.from_member:  # an attribute of the other side, not of this entry
                by_ldap.setdefault(a.ldap.lower(), []).append(a)
        self._by_attr.update({k: tuple(v) for k, v in by_attr.items()})
        self._by_ldap.update({k: tuple(v) for k, v in by_ldap.items()})

    @property
    def schemas(self) -> tuple[str, ...]:
        return (self.schema, *self.extensions)

    def maps_for(self, attr: str, schema: str | None = None) -> tuple[AttributeMap, ...]:
        """Mappings of a top-level SCIM attribute (case-insensitive), optionally schema-bound."""
        found = self._by_attr.get(attr.lower(), ())
        if schema is not None:
            found = tuple(a for a in found if a.schema.lower() == schema.lower())
        return found

    def maps_for_ldap(self, ldap: str) -> tuple[AttributeMap, ...]:
        return self._by_ldap.get(ldap.lower(), ())

    def find(
        self, attr: str, sub: str | None, schema: str | None = None
    ) -> tuple[AttributeMap, ...]:
        """Mappings for attr[.sub]; for multi-valued complex attributes all typed variants."""
        return tuple(
            a
            for a in self.maps_for(attr, schema)
            if (sub or "").lower() == (a.sub or "").lower() or (sub is None and a.sub is not None)
        )

    @property
    def member_map(self) -> AttributeMap | None:
        found = self.maps_for("members")
        return found[0] if found else None

    def attribute_ldap_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.ldap for a in self.attributes))


@dataclass(frozen=True)
class Mapping_:
    dialect: Dialect
    resources: Mapping[str, ResourceMap]
    source: str = ""

    def resource(self, name: str) -> ResourceMap:
        return self.resources[name]

    def by_endpoint(self, endpoint: str) -> ResourceMap | None:
        for r in self.resources.values():
            if r.endpoint.lower() == endpoint.lower():
                return r
        return None


MappingConfig = Mapping_
