"""The LDAP side of a SCIM filter (RFC 4515): one comparison on one mapped attribute as an LDAP
assertion, the algebra that combines them (constants folded, ``&``/``|``/``!`` flattened), and
the ONE place assertion values are escaped (:func:`_value`).

:mod:`bridge.translate.filter` walks the SCIM filter AST and calls :class:`Assertions` for each
comparison; the rules both follow are in that module's docstring.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from bridge.directory.syntax import escape_filter
from bridge.errors import InvalidFilter, InvalidValue, ScimError
from bridge.mapping.model import AttributeMap, MappingConfig, ResourceMap
from bridge.scim.filter import AttrPath, Value, render_attr_path

TRUE = "(objectClass=*)"
FALSE = "(!(objectClass=*))"


class Resolver(Protocol):
    """``(target resource names, SCIM id) -> DN`` or None when no such resource exists; with
    a value attribute (the uid a memberUid holds), that resource's value of it instead."""

    def __call__(
        self, targets: Sequence[str], rid: str, value_attr: str | None = None, /
    ) -> str | None: ...


#: ``(target resource names, SCIM id, member attribute) -> the member DNs`` of that resource,
#: or None when no such resource exists (``from_member`` attributes: a user's groups read from
#: the group side)
Members: TypeAlias = Callable[[Sequence[str], str, str], list[str] | None]

#: a translated clause: an LDAP filter, or a constant known without asking the directory
Expr: TypeAlias = str | bool

_ORDERED_OPS = ("gt", "ge", "lt", "le")
_SUBSTRING_OPS = ("co", "sw", "ew")


def final(expr: Expr) -> str:
    if expr is True:
        return TRUE
    if expr is False:
        return FALSE
    assert isinstance(expr, str)
    return expr


# ---------------------------------------------------------------------------- combinators
def and_(parts: Sequence[Expr]) -> Expr:
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


def or_(parts: Sequence[Expr]) -> Expr:
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


def not_(part: Expr) -> Expr:
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


def implies_presence(expr: Expr) -> bool:
    """Whether ``expr`` (built from leaves on one element's attributes) can only be true when
    at least one of those attributes is present: positive leaves do, negations do not."""
    if isinstance(expr, bool):
        return expr is False
    if expr.startswith("(&"):
        return any(implies_presence(c) for c in _children(expr, "&"))
    if expr.startswith("(|"):
        return all(implies_presence(c) for c in _children(expr, "|"))
    return not expr.startswith("(!")


def _simplify(flt: str) -> Expr:
    return {TRUE: True, FALSE: False}.get(flt, flt)


def constant(
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


# ---------------------------------------------------------------------------- one comparison
@dataclass(frozen=True)
class Assertions:
    """The LDAP assertion for one comparison on ``rmap``: references resolved through
    ``resolver`` / ``members`` (without them, ``<DN of ...>`` placeholders are rendered, for
    ``translate-filter``)."""

    rmap: ResourceMap
    mapping: MappingConfig
    resolver: Resolver | None = None
    members: Members | None = None

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
        return eq if op == "eq" else not_(eq)

    def meta_leaf(self, path: AttrPath, op: str, value: Value) -> Expr:
        name = render_attr_path(path)
        sub = (path.sub or "").lower()
        if sub == "resourcetype":
            return constant(self.rmap.name, op, value, name)
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
                return not_(present) if op == "eq" else present  # RFC 7643 §2.5
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
            return and_([present, not_(eq)])
        if op in _ORDERED_OPS:
            return self.ordered(ldap, codec, op, v, eq, present, shown)
        raise InvalidFilter(f"unknown operator {op!r}")

    def ordered(
        self, ldap: str, codec: object, op: str, v: str, eq: str, present: str, shown: str
    ) -> Expr:
        from bridge.mapping.codecs import Codec

        assert isinstance(codec, Codec)
        rule = self.mapping.dialect.ordering_rule
        if codec.name == "string" and rule:
            ordering = self.mapping.dialect.ordering_attributes
            if ordering is not None and ldap.lower() not in ordering:
                raise InvalidFilter(
                    f"operator {op!r} is not supported on {shown}: OpenLDAP has no ordering "
                    f"rule for {ldap}"
                )
            # OpenLDAP: no ORDERING rule on uid/cn/...; the extensible ordering match is
            # "attribute value < assertion value" (X.501 ordering rule semantics)
            lt = f"({ldap}:{rule}:={v})"
            return {
                "lt": lt,
                "le": or_([lt, eq]),
                "ge": and_([present, not_(lt)]),
                "gt": and_([present, not_(lt), not_(eq)]),
            }[op]
        ge, le = f"({ldap}>={v})", f"({ldap}<={v})"
        return {
            "ge": ge,
            "le": le,
            "gt": and_([ge, not_(eq)]),
            "lt": and_([le, not_(eq)]),
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
            return not_(present) if op == "eq" else present
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise InvalidFilter(f"{shown}: expected a resource id, got {value!r}")
        rid = str(value)
        if self.resolver is None:
            eq = f"({m.ldap}=<DN of {_value(rid)}>)"
        else:
            # a value member attribute (memberUid) holds the member's uid, not its DN
            resolve = self.resolver
            dn = resolve(m.to, rid, m.member_value) if m.by_value else resolve(m.to, rid)
            if dn is None:
                return op == "ne" and present  # no such resource: nobody refers to it
            eq = f"({m.ldap}={_value(dn)})"
        return eq if op == "eq" else and_([present, not_(eq)])

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
            # held by value (memberUid): the entries whose member_value (uid) is among them
            key = m.member_value if m.by_value else dn_attr
            eq = or_([f"({key}={_value(d)})" for d in dns]) if dns else False
        return eq if op == "eq" else not_(eq)


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
