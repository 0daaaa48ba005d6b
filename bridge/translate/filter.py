"""SCIM filter AST -> RFC 4515 LDAP filter, through the mapping (RFC 7644 §3.4.2.2).

The result is a fragment the service ANDs with the resource's ``base_filter``.  Rules:

* Every clause is translated or the whole filter is refused with 400 ``invalidFilter`` naming the
  attribute: a dropped clause would widen the search, and an IdP that wrongly sees "no such user"
  creates a duplicate.  A clause that can never match (``id eq "not-a-uuid"``, a ``type`` that
  is not mapped) becomes the always-false ``(!(objectClass=*))``, never an error.
* Every assertion value is escaped in this module, via ``syntax.escape_filter``: a client's
  filter in ONE place, :func:`_value`; the service's own filters by the builders at the end.
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

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from bridge.directory.base import SortKey
from bridge.directory.syntax import escape_filter
from bridge.errors import InvalidFilter, InvalidValue, NotFound, ScimError
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
    parse,
    render_attr_path,
)

__all__ = [
    "FALSE",
    "TRUE",
    "Members",
    "Resolver",
    "sort_attribute",
    "sort_keys",
    "to_ldap",
    "to_ldap_lenient",
]

TRUE = "(objectClass=*)"
FALSE = "(!(objectClass=*))"

#: ``(target resource names, SCIM id) -> DN`` or None when no such resource exists
Resolver: TypeAlias = Callable[[Sequence[str], str], str | None]

#: ``(target resource names, SCIM id, member attribute) -> the member DNs`` of that resource,
#: or None when no such resource exists (``from_member`` attributes: a user's groups read from
#: the group side)
Members: TypeAlias = Callable[[Sequence[str], str, str], list[str] | None]

#: a translated clause: an LDAP filter, or a constant known without asking the directory
Expr: TypeAlias = str | bool

_ORDERED_OPS = ("gt", "ge", "lt", "le")
_SUBSTRING_OPS = ("co", "sw", "ew")


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
    return _final(expr)


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
    return _final(expr), absent


def _final(expr: Expr) -> str:
    if expr is True:
        return TRUE
    if expr is False:
        return FALSE
    assert isinstance(expr, str)
    return expr


# ---------------------------------------------------------------------------- combinators
def _and(parts: Sequence[Expr]) -> Expr:
    """AND with constants folded, nested ANDs flattened and repeated operands dropped."""
    out: list[str] = []
    for p in parts:
        if p is False:
            return False
        if p is not True:
            assert isinstance(p, str)
            out.extend(_children(p, "&"))
    if not out:
        return True
    uniq = list(dict.fromkeys(out))
    return uniq[0] if len(uniq) == 1 else "(&" + "".join(uniq) + ")"


def _or(parts: Sequence[Expr]) -> Expr:
    """OR with constants folded, nested ORs flattened and repeated operands dropped."""
    out: list[str] = []
    for p in parts:
        if p is True:
            return True
        if p is not False:
            assert isinstance(p, str)
            out.extend(_children(p, "|"))
    if not out:
        return False
    uniq = list(dict.fromkeys(out))
    return uniq[0] if len(uniq) == 1 else "(|" + "".join(uniq) + ")"


def _not(part: Expr) -> Expr:
    if isinstance(part, bool):
        return not part
    if part.startswith("(!"):
        return part[2:-1]  # (!(!x)) -> x: every filter built here is one balanced node
    return f"(!{part})"


def _children(flt: str, op: str) -> list[str]:
    """The operands of ``flt`` if it is an ``op`` (``&``/``|``) node we built, else [flt]."""
    if not flt.startswith("(" + op):
        return [flt]
    items, i = [], 2
    while i < len(flt) - 1:
        end = _balanced_at(flt, i)
        items.append(flt[i : end + 1])
        i = end + 1
    return items


def _balanced_at(flt: str, start: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``start`` (values are escaped, so parentheses
    inside a filter are always structural)."""
    depth = 0
    for i in range(start, len(flt)):
        depth += (flt[i] == "(") - (flt[i] == ")")
        if depth == 0:
            return i
    raise AssertionError(f"unbalanced filter {flt!r}")


def _value(raw: str | bytes) -> str:
    """THE place assertion values are escaped (RFC 4515 §3).  A text value holding NUL is
    refused, whatever built the filter (the parser already refuses ``\\u0000``): AD and Samba
    compare only up to it, so ``alice\\00x`` would match ``alice`` - a widened search."""
    if isinstance(raw, str) and "\x00" in raw:
        raise InvalidFilter("a filter value must not contain NUL (\\u0000)")
    return escape_filter(raw)


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
        self.mapping = mapping
        self.resolver = resolver
        self.members = members
        self.absent = absent
        self.ordering_rule = mapping.dialect.ordering_rule

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
                return _and([self.node(x) for x in _flatten(f, And)])
            case Or():
                return _or([self.node(x) for x in _flatten(f, Or)])
            case Not(inner):
                return _not(self.node(inner))
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
            return self.id_leaf(op, value)
        if core and path.attr.lower() == "meta":
            return self.meta_leaf(path, op, value)
        maps = self._maps(path)
        if not maps:
            return self.unmapped(name, op, value)
        parent = maps[0].parent
        if parent.type == "complex":
            if parent.multi_valued or path.sub is None:
                # `emails.value eq x` == `emails[value eq x]` (any element matches);
                # `emails eq x` compares the elements' value (RFC 7643 §2.4)
                if path.sub is None and op == "pr":
                    return _or([self.exists(e) for e in _elements(maps)])
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
            return self.compare(found[0], op, value, name)
        if path.sub is not None:
            raise InvalidFilter(f"{parent.name} has no sub-attribute {path.sub!r} (in {name})")
        return _or([self.compare(m, op, value, name) for m in maps])

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
            out.append(clause if _implies_presence(clause) else _and([self.exists(e), clause]))
        return _or(out)

    def exists(self, element: _Element) -> Expr:
        shown = [m for m in element.maps if m.returned != "never" and not m.codec.write_only]
        return _or([self.compare(m, "pr", None, m.path) for m in shown])

    def in_element(self, el: _Element, f: Filter, every: Sequence[_Element]) -> Expr:
        """``f`` (paths relative to the element) for one kind of element."""
        match f:
            case And():
                return _and([self.in_element(el, x, every) for x in _flatten(f, And)])
            case Or():
                return _or([self.in_element(el, x, every) for x in _flatten(f, Or)])
            case Not(inner):
                return _not(self.in_element(el, inner, every))
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
            return self.compare(m, op, value, shown)
        if sub.lower() == "type" and not any(x.is_reference for x in el.maps):
            return _constant(el.type_value, op, value, shown)
        if sub.lower() == "primary" and parent.sub("primary") is not None:
            return _constant(el.primary if el.primary else None, op, value, shown, boolean=True)
        if not any(e.sub(sub) for e in every):
            return self.unmapped(shown, op, value)
        # mapped for other kinds of element only: absent on this one
        return value is None and op == "eq"

    # ------------------------------------------------------------------ special attributes
    def id_leaf(self, op: str, value: Value) -> Expr:
        ldap, codec = self.rmap.id.ldap, self.rmap.id.codec
        if op == "pr":
            return True  # every resource has an id
        if op not in ("eq", "ne"):
            raise InvalidFilter(f"operator {op!r} is not supported on id (use eq, ne or pr)")
        if value is None:
            return op == "ne"
        try:
            assertion = codec.assertion(value if isinstance(value, str) else str(value))
        except ScimError:
            return op == "ne"  # not the shape of an id: no resource has it
        eq = f"({ldap}={_value(assertion)})"
        return eq if op == "eq" else _not(eq)

    def meta_leaf(self, path: AttrPath, op: str, value: Value) -> Expr:
        name = render_attr_path(path)
        sub = (path.sub or "").lower()
        if sub == "resourcetype":
            return _constant(self.rmap.name, op, value, name)
        ldap = {"lastmodified": self.rmap.last_modified, "created": self.rmap.created}.get(sub)
        if ldap is None:
            raise InvalidFilter(
                f"filter attribute {name} is not supported (meta.created, meta.lastModified "
                "and meta.resourceType are)"
            )
        from bridge.mapping.codecs import CODECS

        return self.plain(ldap, CODECS["datetime"], op, value, name, single=True)

    # ------------------------------------------------------------------ one mapping
    def compare(self, m: AttributeMap, op: str, value: Value, shown: str) -> Expr:
        if m.returned == "never" or m.codec.write_only:
            # RFC 7643 §7 returned=never: a filter on it (``password pr``, ``password eq x``)
            # would read it one bit per request
            raise InvalidFilter(
                f"filter attribute {shown} is never returned: it cannot be filtered"
            )
        if m.is_reference:
            return self.reference(m, op, value, shown)
        try:
            special = m.codec.filter_for(m.ldap, op, value)
        except InvalidFilter as exc:
            raise InvalidFilter(f"{shown}: {exc.detail}") from None
        except InvalidValue as exc:
            raise InvalidFilter(f"{shown}: {exc.detail}") from None
        if special is not None:
            return _simplify(special)
        return self.plain(m.ldap, m.codec, op, value, shown, single=not m.multi)

    def plain(
        self, ldap: str, codec: object, op: str, value: Value, shown: str, *, single: bool
    ) -> Expr:
        from bridge.mapping.codecs import Codec

        assert isinstance(codec, Codec)
        present = f"({ldap}=*)"
        if op == "pr":
            return present
        if value is None:
            if op in ("eq", "ne"):
                return _not(present) if op == "eq" else present  # RFC 7643 §2.5
            raise InvalidFilter(f"{shown}: null can only be compared with eq or ne")
        if codec.scim_type == "boolean" and op not in ("eq", "ne"):
            raise InvalidFilter(f"operator {op!r} is not supported on boolean {shown}")
        if op in _SUBSTRING_OPS:
            return self.substring(ldap, codec, op, value, shown)
        if op in _ORDERED_OPS and (not codec.ordered or codec.binary):
            raise InvalidFilter(f"operator {op!r} is not supported on {shown}")
        if isinstance(value, bool) and codec.scim_type not in ("boolean", "string"):
            raise InvalidFilter(f"{shown}: cannot compare with {str(value).lower()}")
        if isinstance(value, str) and value == "":
            if op == "eq":
                return False  # no LDAP value is empty
            if op == "ne":
                return present
        try:
            raw = codec.assertion(value)
        except (InvalidValue, InvalidFilter) as exc:
            raise InvalidFilter(f"{shown}: {exc.detail}") from None
        v = _value(raw)
        eq = f"({ldap}={v})"
        if op == "eq":
            return eq
        if op == "ne":
            return _and([present, _not(eq)])
        if op in _ORDERED_OPS:
            return self.ordered(ldap, codec, op, v, eq, present, shown)
        raise InvalidFilter(f"unknown operator {op!r}")

    def ordered(
        self, ldap: str, codec: object, op: str, v: str, eq: str, present: str, shown: str
    ) -> Expr:
        from bridge.mapping.codecs import Codec

        assert isinstance(codec, Codec)
        if codec.name == "string" and self.ordering_rule:
            ordering = self.mapping.dialect.ordering_attributes
            if ordering is not None and ldap.lower() not in ordering:
                raise InvalidFilter(
                    f"operator {op!r} is not supported on {shown}: OpenLDAP has no ordering "
                    f"rule for {ldap}"
                )
            # OpenLDAP: no ORDERING rule on uid/cn/...; the extensible ordering match is
            # "attribute value < assertion value" (X.501 ordering rule semantics)
            lt = f"({ldap}:{self.ordering_rule}:={v})"
            return {
                "lt": lt,
                "le": _or([lt, eq]),
                "ge": _and([present, _not(lt)]),
                "gt": _and([present, _not(lt), _not(eq)]),
            }[op]
        ge, le = f"({ldap}>={v})", f"({ldap}<={v})"
        return {
            "ge": ge,
            "le": le,
            "gt": _and([ge, _not(eq)]),
            "lt": _and([le, _not(eq)]),
        }[op]

    def substring(self, ldap: str, codec: object, op: str, value: Value, shown: str) -> Expr:
        from bridge.mapping.codecs import Codec

        assert isinstance(codec, Codec)
        if not _substring_capable(codec):
            raise InvalidFilter(
                f"operator {op!r} is only supported on string values; {shown} is stored as "
                f"{codec.name} (use eq or ne)"
            )
        if not isinstance(value, str):
            raise InvalidFilter(f"{shown}: operator {op!r} needs a string value")
        if value == "":
            return f"({ldap}=*)"
        v = _value(value)
        pattern = {"co": f"*{v}*", "sw": f"{v}*", "ew": f"*{v}"}[op]
        return f"({ldap}={pattern})"

    def reference(self, m: AttributeMap, op: str, value: Value, shown: str) -> Expr:
        if m.from_member:
            return self.member_side(m, op, value, shown)
        present = f"({m.ldap}=*)"
        placeholder = self.rmap.empty_member
        if placeholder and self.rmap.member_map is m:
            # a groupOfNames "empty" group holds only the placeholder DN: not a member
            present = f"(&{present}(!({m.ldap}={_value(placeholder)})))"
        if op == "pr":
            return present
        if op not in ("eq", "ne"):
            raise InvalidFilter(f"operator {op!r} is not supported on {shown} (use eq, ne or pr)")
        if value is None:
            return _not(present) if op == "eq" else present
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise InvalidFilter(f"{shown}: expected a resource id, got {value!r}")
        rid = str(value)
        if self.resolver is None:
            eq = f"({m.ldap}=<DN of {_value(rid)}>)"
        else:
            dn = self.resolver(m.to, rid)
            if dn is None:
                return op == "ne" and present  # no such resource: nobody refers to it
            eq = f"({m.ldap}={_value(dn)})"
        return eq if op == "eq" else _and([present, _not(eq)])

    def member_side(self, m: AttributeMap, op: str, value: Value, shown: str) -> Expr:
        """``groups.value eq "<id>"`` where groups is read from the group side: the entries
        among that group's members (by DN, one OR), none if there is no such group."""
        if op not in ("eq", "ne") or value is None:
            raise InvalidFilter(
                f"{shown} is read from the groups' {m.ldap}: only eq with a group id (or "
                f"not (... eq ...)) can filter on it"
            )
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise InvalidFilter(f"{shown}: expected a resource id, got {value!r}")
        rid, dn_attr = str(value), self.mapping.dialect.dn_attribute
        if self.members is None:
            eq: Expr = f"({dn_attr}=<{m.ldap} of {_value(rid)}>)"
        else:
            dns = self.members(m.to, rid, m.ldap) or []
            eq = _or([f"({dn_attr}={_value(d)})" for d in dns]) if dns else False
        return eq if op == "eq" else _not(eq)


def _substring_capable(codec: object) -> bool:
    """Whether ``co``/``sw``/``ew`` can run on the LDAP side: the codec maps strings to
    strings (``string``, AD's ``ad-samaccountname``...), so the directory's substring rule
    applies to the very text the client sees.  Not for booleans, numbers, dates, ids (UUID,
    GUID: no substring rule), binary or write-only values."""
    from bridge.mapping.codecs import Codec

    assert isinstance(codec, Codec)
    return (
        codec.scim_type == "string"
        and not codec.binary
        and not codec.write_only
        and codec.name not in ("uuid", "guid", "reference", "name-and-optional-uid")
    )


def _implies_presence(expr: Expr) -> bool:
    """Whether ``expr`` (built from leaves on one element's attributes) can only be true when
    at least one of those attributes is present: positive leaves do, negations do not."""
    if isinstance(expr, bool):
        return expr is False
    if expr.startswith("(&"):
        return any(_implies_presence(c) for c in _children(expr, "&"))
    if expr.startswith("(|"):
        return all(_implies_presence(c) for c in _children(expr, "|"))
    return not expr.startswith("(!")


def _simplify(flt: str) -> Expr:
    return {TRUE: True, FALSE: False}.get(flt, flt)


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


def _constant(
    have: str | bool | None, op: str, value: Value, shown: str, *, boolean: bool = False
) -> bool:
    """Evaluate a comparison whose attribute value is known statically (the ``type`` of a
    typed mapping, ``primary``, ``meta.resourceType``); ``have`` None = absent."""
    if op == "pr":
        return have is not None
    if boolean:
        if op not in ("eq", "ne"):
            raise InvalidFilter(f"operator {op!r} is not supported on boolean {shown}")
        if value is None:
            return (have is None) == (op == "eq")
        if not isinstance(value, bool):
            raise InvalidFilter(f"{shown}: expected true or false, got {value!r}")
        if have is None:
            return False
        return (bool(have) == value) == (op == "eq")
    if value is None:
        return (have is None) == (op == "eq")
    if have is None:
        return False
    if not isinstance(value, str):
        raise InvalidFilter(f"{shown}: expected a string, got {value!r}")
    a, b = str(have).lower(), value.lower()
    result = {
        "eq": a == b,
        "ne": a != b,
        "co": b in a,
        "sw": a.startswith(b),
        "ew": a.endswith(b),
        "gt": a > b,
        "ge": a >= b,
        "lt": a < b,
        "le": a <= b,
    }.get(op)
    if result is None:
        raise InvalidFilter(f"unknown operator {op!r}")
    return result


# ---------------------------------------------------------------------------- sorting
def _sort_path(text: str) -> AttrPath:
    text = text.strip()
    schema, colon, rest = text.rpartition(":")
    attr, dot, sub = rest.partition(".")
    if not attr or (dot and not sub):
        raise InvalidValue(f"sortBy {text!r} is not an attribute path")
    return AttrPath(schema if colon else None, attr, sub if dot else None)


def sort_attribute(rmap: ResourceMap, sort_by: str) -> str:
    """The LDAP attribute to sort by for ``sortBy`` (RFC 7644 §3.4.2.3).  A multi-valued
    attribute sorts by its primary value (``emails`` -> the primary email mapping) as the RFC
    says; an unmapped or unsortable attribute is a 400 invalidValue naming it."""
    path = _sort_path(sort_by)
    core = path.schema is None or path.schema.lower() == rmap.schema.lower()
    if core and path.attr.lower() == "id" and path.sub is None:
        return rmap.id.ldap
    if core and path.attr.lower() == "meta":
        found = {"lastmodified": rmap.last_modified, "created": rmap.created}.get(
            (path.sub or "").lower()
        )
        if found is None:
            raise InvalidValue(f"sortBy {sort_by}: only meta.created and meta.lastModified sort")
        return found
    schema = None
    if path.schema is not None:
        schema = next((s for s in rmap.schemas if s.lower() == path.schema.lower()), None)
        if schema is None:
            raise InvalidValue(f"sortBy {sort_by}: unknown schema {path.schema}")
    maps = rmap.maps_for(path.attr, schema)
    if maps and maps[0].parent.type == "complex":
        want = (path.sub or ("value" if maps[0].parent.multi_valued else "")).lower()
        maps = tuple(m for m in maps if (m.sub or "").lower() == want)
        maps = tuple(sorted(maps, key=lambda m: not m.primary))  # primary first
    elif path.sub is not None:
        maps = ()
    if not maps:
        raise InvalidValue(f"sortBy {sort_by} is not a mapped attribute of {rmap.name}")
    m = maps[0]
    if m.returned == "never" or m.codec.write_only:
        raise InvalidValue(f"sortBy {sort_by}: {m.path} is never returned: it cannot sort")
    if (
        m.is_reference
        or m.codec.name in ("password", "ppolicy-lock", "nsaccountlock")
        or (m.codec.binary)
    ):
        raise InvalidValue(f"sortBy {sort_by}: {m.attr} cannot be sorted by the directory")
    return m.ldap


def sort_keys(
    rmap: ResourceMap, mapping: MappingConfig, sort_by: str | None, descending: bool
) -> tuple[SortKey, ...]:
    """Server-side sort keys (RFC 2891) for a list.  Without ``sortBy`` the order is by the RDN
    attribute; the id is appended as a tie-breaker so pages are stable even when many entries
    share a value (OpenLDAP only: AD accepts a single sort key)."""
    attr = sort_attribute(rmap, sort_by) if sort_by else rmap.rdn.ldap
    keys = [SortKey(attr, descending, _ordering_rule(rmap, mapping, attr))]
    if mapping.dialect.sort_tie_breaker and attr.lower() != rmap.id.ldap.lower():
        keys.append(SortKey(rmap.id.ldap, descending))
    return tuple(keys)


def _ordering_rule(rmap: ResourceMap, mapping: MappingConfig, attr: str) -> str | None:
    rule = mapping.dialect.ordering_rule
    own_order = {rmap.created.lower(), rmap.last_modified.lower()}  # generalizedTimeOrdering
    if rmap.id.codec.name in ("uuid", "guid"):
        own_order.add(rmap.id.ldap.lower())  # entryUUID: UUIDOrderingMatch
    if rule is None or attr.lower() in own_order:
        return None
    codecs = {m.codec.name for m in rmap.maps_for_ldap(attr)}
    return rule if not codecs or codecs <= {"string"} else None


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
