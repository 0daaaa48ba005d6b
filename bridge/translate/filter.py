"""SCIM filter AST -> RFC 4515 LDAP filter, through the mapping (RFC 7644 §3.4.2.2).

The result is a fragment the service ANDs with the resource's ``base_filter``.  Rules:

* Every clause is translated or the whole filter is refused with 400 ``invalidFilter`` naming the
  attribute: a dropped clause would widen the search, and an IdP that wrongly sees "no such user"
  creates a duplicate.  A clause that can never match (``id eq "not-a-uuid"``, a ``type`` that
  is not mapped) becomes the always-false ``(!(objectClass=*))``, never an error.
* Every assertion value is escaped via ``syntax.escape_filter``: a client's filter in ONE place,
  ``_value`` in :mod:`bridge.translate.assertion` (which builds the LDAP side of each
  comparison); the service's own filters by the builders at the end of this module.
* Attribute names are case-insensitive and may be URN-qualified (RFC 7643 §2.1, RFC 7644
  §3.10).  ``emails.value eq x`` over several typed mappings is an OR over them;
  ``emails[type eq "work" and value co "@x"]`` is evaluated per element: the ``type`` is known
  statically per mapping, so it selects mappings and the ``value`` clause goes to those.
* Semantics (RFC 7644 §3.4.2.2).  A comparison matches when *some* value of the attribute
  matches ("the filter matches if any of the values of the attribute match"), so every
  comparison, ``ne`` included, is false for an absent attribute: ``title ne "x"`` is
  ``(&(title=*)(!(title=x)))``, while ``not (title eq "x")`` is the boolean complement
  ``(!(title=x))`` and does match users without a title.  ``eq null`` means "not present"
  (RFC 7643 §2.5: null is equivalent to unassigned).  Deviation: for an attribute that holds
  several LDAP values, ``ne`` and ``gt`` mean "has values and none equals v" (LDAP cannot say
  "some value differs"); IdPs compare single values.
* LDAP has only ``>=`` and ``<=``: ``gt`` is ``(&(a>=v)(!(a=v)))``.  OpenLDAP's stock schema gives
  ``uid``, ``cn``, ``sn``... no ORDERING rule (``>=`` evaluates to Undefined, i.e. never matches),
  so for the ``openldap`` dialect string orderings use the extensible form
  ``(a:caseIgnoreOrderingMatch:=v)`` (true when the value sorts *before* v).  Booleans, ids
  and references refuse gt/ge/lt/le with 400 ``invalidFilter`` (RFC 7644 §3.4.2.2).
* ``co``/``sw``/``ew`` work on every attribute whose codec maps strings to strings, whatever
  the codec (AD's ``ad-samaccountname`` included); where the LDAP value is not a string
  (booleans, numbers, dates, UUID/GUID ids, binary, passwords) they are 400 ``invalidFilter``.
* A value containing NUL is refused (400 ``invalidFilter``): AD compares only up to it.
* Case: the directory's matching rule decides.  ``userName`` (caseExact=false) maps to
  case-ignoring ``uid``; a caseExact SCIM attribute mapped to a case-ignoring LDAP attribute
  (``externalId`` -> ``employeeType``) also matches case-insensitively (documented deviation).
* References (``members.value``, ``groups.value``, ``manager.value``) compare DNs: the SCIM id
  is resolved by the ``resolver`` hook the service passes in; an unknown id matches nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bridge.directory.syntax import escape_filter
from bridge.errors import InvalidFilter, NotFound, ScimError
from bridge.mapping.model import AttributeMap, MappingConfig, ResourceMap
from bridge.scim import schema as sch
from bridge.scim.filter import (
    And,
    AttrPath,
    Compare,
    Filter,
    Not,
    Or,
    Present,
    Value,
    ValuePath,
    render_attr_path,
)
from bridge.scim.filter_parser import parse
from bridge.translate.assertion import (
    Assertions,
    Expr,
    Members,
    Resolver,
    and_,
    constant,
    final,
    implies_presence,
    not_,
    or_,
)

__all__ = ["to_ldap", "to_ldap_lenient"]


def to_ldap(
    rmap: ResourceMap,
    text: str | Filter,
    mapping: MappingConfig,
    resolver: Resolver | None = None,
    members: Members | None = None,
) -> str:
    """The LDAP filter for a SCIM ``filter`` on ``rmap`` (400 invalidFilter if it cannot be
    expressed).  Without ``resolver`` a reference comparison renders a ``<DN of ...>``
    placeholder (for ``translate-filter``)."""
    ast = parse(text) if isinstance(text, str) else text
    expr = _Translator(rmap, mapping, resolver, members=members).node(ast)
    return final(expr)


def to_ldap_lenient(
    rmap: ResourceMap,
    ast: Filter,
    mapping: MappingConfig,
    resolver: Resolver | None = None,
    members: Members | None = None,
) -> tuple[str, set[str]]:
    """For a search across resource types (RFC 7644 §3.4.3 ``POST /.search``): attributes this
    type does not map are treated as absent on it; returns the filter and their names (the
    caller refuses a name that no resource type maps)."""
    absent: set[str] = set()
    expr = _Translator(rmap, mapping, resolver, absent, members).node(ast)
    return final(expr), absent


# ---------------------------------------------------------------------------- elements
@dataclass(frozen=True)
class _Element:
    """The mappings that together form one kind of element of a complex attribute, e.g. the
    ``type: work`` address (street, locality, postalCode) or the work email."""

    type_value: str | None
    maps: tuple[AttributeMap, ...]

    @property
    def primary(self) -> bool:
        return any(m.primary for m in self.maps)

    def sub(self, name: str) -> AttributeMap | None:
        return next((m for m in self.maps if (m.sub or "value").lower() == name.lower()), None)


def _elements(maps: Sequence[AttributeMap]) -> list[_Element]:
    groups: dict[str | None, list[AttributeMap]] = {}
    for m in maps:
        groups.setdefault(m.type_value.lower() if m.type_value else None, []).append(m)
    return [_Element(maps[0].type_value, tuple(maps)) for maps in groups.values()]


# ---------------------------------------------------------------------------- translator
class _Translator:
    def __init__(
        self,
        rmap: ResourceMap,
        mapping: MappingConfig,
        resolver: Resolver | None,
        absent: set[str] | None = None,
        members: Members | None = None,
    ):
        self.rmap = rmap
        self.absent = absent
        self.assertions = Assertions(rmap, mapping, resolver, members)

    def unmapped(self, name: str, op: str, value: Value) -> Expr:
        """An attribute this resource type does not map: a 400 naming it, or - for a search
        across resource types (``absent`` collects the names) - an attribute it cannot have."""
        if self.absent is None:
            raise InvalidFilter(f"filter attribute {name} is not mapped for {self.rmap.name}")
        self.absent.add(name)
        return value is None and op == "eq"

    def node(self, f: Filter) -> Expr:
        match f:
            case And():
                return and_([self.node(x) for x in _flatten(f, And)])
            case Or():
                return or_([self.node(x) for x in _flatten(f, Or)])
            case Not(inner):
                return not_(self.node(inner))
            case ValuePath(path, inner):
                return self.value_path(path, inner)
            case Present(path):
                return self.leaf(path, "pr", None)
            case Compare(path, op, value):
                return self.leaf(path, op, value)
        raise InvalidFilter(f"unsupported filter node {f!r}")

    # ------------------------------------------------------------------ paths
    def _schema(self, path: AttrPath) -> str | None:
        if path.schema is None:
            return None
        for urn in (*self.rmap.schemas, sch.USER, sch.GROUP):
            if urn.lower() == path.schema.lower():
                return urn
        raise InvalidFilter(
            f"unknown schema {path.schema} in filter attribute {render_attr_path(path)} "
            f"({self.rmap.name} uses {', '.join(self.rmap.schemas)})"
        )

    def _maps(self, path: AttrPath) -> tuple[AttributeMap, ...]:
        schema = self._schema(path)
        if schema is not None and schema not in self.rmap.schemas:
            return ()
        return self.rmap.maps_for(path.attr, schema)

    def leaf(self, path: AttrPath, op: str, value: Value) -> Expr:
        name = render_attr_path(path)
        core = path.schema is None or path.schema.lower() == self.rmap.schema.lower()
        if core and path.attr.lower() == "id" and path.sub is None:
            return self.assertions.id_leaf(op, value)
        if core and path.attr.lower() == "meta":
            return self.assertions.meta_leaf(path, op, value)
        maps = self._maps(path)
        if not maps:
            return self.unmapped(name, op, value)
        parent = maps[0].parent
        if parent.type == "complex":
            if parent.multi_valued or path.sub is None:
                # `emails.value eq x` == `emails[value eq x]` (any element matches);
                # `emails eq x` compares the elements' value (RFC 7643 §2.4)
                if path.sub is None and op == "pr":
                    return or_([self.exists(e) for e in _elements(maps)])
                sub = path.sub or "value"
                inner: Filter = (
                    Present(AttrPath(None, sub))
                    if op == "pr"
                    else Compare(AttrPath(None, sub), op, value)
                )
                return self.value_path(AttrPath(path.schema, path.attr), inner, name)
            found = [m for m in maps if (m.sub or "").lower() == path.sub.lower()]
            if not found:
                return self.unmapped(name, op, value)
            return self.assertions.compare(found[0], op, value, name)
        if path.sub is not None:
            raise InvalidFilter(f"{parent.name} has no sub-attribute {path.sub!r} (in {name})")
        return or_([self.assertions.compare(m, op, value, name) for m in maps])

    def value_path(self, path: AttrPath, inner: Filter, shown: str | None = None) -> Expr:
        shown = shown or render_attr_path(path)
        if path.sub is not None:
            raise InvalidFilter(f"a value filter needs a multi-valued attribute, not {shown}")
        maps = self._maps(path)
        if not maps:
            return self.unmapped(shown, "pr", None)
        if maps[0].parent.type != "complex":
            raise InvalidFilter(f"{maps[0].parent.name} is not complex: {shown}[...] is invalid")
        elements = _elements(maps)
        out: list[Expr] = []
        for e in elements:
            clause = self.in_element(e, inner, elements)
            # a clause that holds only when one of the element's attributes is present needs
            # no separate "the element exists" test
            out.append(clause if implies_presence(clause) else and_([self.exists(e), clause]))
        return or_(out)

    def exists(self, element: _Element) -> Expr:
        shown = [m for m in element.maps if m.returned != "never" and not m.codec.write_only]
        return or_([self.assertions.compare(m, "pr", None, m.path) for m in shown])

    def in_element(self, el: _Element, f: Filter, every: Sequence[_Element]) -> Expr:
        """``f`` (paths relative to the element) for one kind of element."""
        match f:
            case And():
                return and_([self.in_element(el, x, every) for x in _flatten(f, And)])
            case Or():
                return or_([self.in_element(el, x, every) for x in _flatten(f, Or)])
            case Not(inner):
                return not_(self.in_element(el, inner, every))
            case Present(path):
                return self.element_leaf(el, path, "pr", None, every)
            case Compare(path, op, value):
                return self.element_leaf(el, path, op, value, every)
        raise InvalidFilter("a value filter cannot contain another value filter")

    def element_leaf(
        self, el: _Element, path: AttrPath, op: str, value: Value, every: Sequence[_Element]
    ) -> Expr:
        parent = el.maps[0].parent
        sub = path.attr if path.sub is None else f"{path.attr}.{path.sub}"
        shown = f"{parent.name}.{sub}"
        m = el.sub(sub)
        if m is not None:
            return self.assertions.compare(m, op, value, shown)
        if sub.lower() == "type" and not any(x.is_reference for x in el.maps):
            return constant(el.type_value, op, value, shown)
        if sub.lower() == "primary" and parent.sub("primary") is not None:
            return constant(el.primary if el.primary else None, op, value, shown, boolean=True)
        if not any(e.sub(sub) for e in every):
            return self.unmapped(shown, op, value)
        # mapped for other kinds of element only: absent on this one
        return value is None and op == "eq"


def _flatten(f: Filter, kind: type) -> list[Filter]:
    """Operands of a chain of the same binary operator (left-associative in the AST)."""
    out: list[Filter] = []
    stack = [f]
    while stack:
        x = stack.pop()
        if isinstance(x, And | Or) and isinstance(x, kind):
            stack.append(x.right)
            stack.append(x.left)
        else:
            out.append(x)
    return out


# ---------------------------------------------------------------------------- service filters
# The filters the service searches with besides a client's: built here, so every value an
# LDAP filter carries is escaped in this module (RFC 4515).

#: AD's LDAP_MATCHING_RULE_IN_CHAIN (MS-ADTS §3.1.1.3.4.4.3): walks a DN chain on the server
IN_CHAIN = "1.2.840.113556.1.4.1941"


def equals(attr: str, value: str | bytes) -> str:
    """``(attr=value)``, the value escaped."""
    return f"({attr}={escape_filter(value)})"


def any_of(attr: str, values: Iterable[str | bytes]) -> str:
    """``(|(attr=v1)(attr=v2)...)``, each value escaped (an OR of one term keeps its ``|``)."""
    return "(|" + "".join(f"({attr}={escape_filter(v)})" for v in values) + ")"


def of_type(rmap: ResourceMap, fragment: str) -> str:
    """``fragment`` limited to the entries of ``rmap`` (its ``base_filter``)."""
    return f"(&{rmap.base_filter}{fragment})"


def in_chain(rmap: ResourceMap, attr: str, dn: str) -> str:
    """The ``rmap`` entries whose ``attr`` reaches ``dn`` through any chain (AD only)."""
    return of_type(rmap, f"({attr}:{IN_CHAIN}:={escape_filter(dn)})")


def id_filter(rmap: ResourceMap, rid: str) -> str:
    """The entry of ``rmap`` with SCIM id ``rid``; an id its codec cannot take is a 404."""
    if "\x00" in rid:  # AD compares only up to a NUL: "<id>\0x" would find <id>
        raise NotFound(f"{rmap.name} {rid!r} not found")
    try:
        value = rmap.id.codec.assertion(rid)
    except ScimError:
        raise NotFound(f"{rmap.name} {rid} not found") from None
    return of_type(rmap, equals(rmap.id.ldap, value))
