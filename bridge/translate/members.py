"""PATCH of ``members`` (RFC 7644 §3.5.2): the member operations of one PATCH, accumulated in
order (:class:`Members`), then turned into the member attribute's part of the plan
(:func:`plan_members`).

add/remove become MODIFY_ADD/MODIFY_DELETE of just the affected DNs, without reading the member
list.  A ``replace`` (or a remove of all members) reads it once and changes only the members
SCIM shows (the difference, as MODIFY_ADD/MODIFY_DELETE): values outside the mapped bases, scope
or filters and the directory's own refint placeholder are kept, since no client could have
listed them.  A general member filter reads the list at most once per PATCH too.  A groupOfNames
keeps its ``empty_member`` placeholder when it would become empty (``PatchPlan.when_emptied``)
and loses it when a real member arrives (whether it is there comes with the find where the
directory has matched values, else from a base search; :func:`may_add_members` tells the
service when the find should ask).

Pure, as :mod:`bridge.translate.patch` (the planner, whose per-operation dispatch calls
:func:`apply_members`): the directory is reached only through its
:class:`~bridge.translate.lookups.Lookups`.  :func:`member_changes` is also what the service's
writer and deprovisioning use to change a member list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.directory.base import Change, Entry
from bridge.directory.syntax import normalize_dn
from bridge.errors import InvalidPath, InvalidValue, TooMany
from bridge.mapping.model import AttributeMap, ResourceMap
from bridge.scim.filter import Compare, Filter, Or
from bridge.scim.messages import Op
from bridge.scim.patch import elements, is_empty
from bridge.scim.valuepath import Target, matches
from bridge.translate import entry as tr
from bridge.translate import membervalues as mv
from bridge.translate.lookups import Lookups

__all__ = [
    "MAX_MEMBER_FILTERS",
    "Members",
    "apply_members",
    "may_add_members",
    "member_changes",
    "plan_members",
]

#: general member filters (``members[display co "x"]``) per PATCH: each is tested against every
#: member of the group (Entra ID's ``members[value eq "id"]`` is an id lookup, not counted)
MAX_MEMBER_FILTERS = 20


def may_add_members(ops: Sequence[Op]) -> bool:
    """Whether the operations of a PATCH may add members: an add or replace naming
    ``members`` in its path or, path-less, in a key of its value.  Only then is the empty-group
    placeholder worth reading with the find (the matched-values scan of a 50,000-value
    ``member`` costs slapd about a millisecond); a body this misses costs the plan a base
    search, never a wrong plan."""
    for o in ops:
        if o.op == "remove":
            continue
        if o.path_text is not None:
            if "members" in o.path_text.lower():
                return True
        elif any(isinstance(k, str) and "members" in k.lower() for k in o.value):
            return True
    return False


@dataclass
class Members:
    """Member operations, accumulated in order; the member list is read only for a replace,
    a remove-all or a general member filter, and then once per PATCH (:meth:`listed`)."""

    final: dict[str, None] | None = None  # the whole new set, after a replace / remove-all
    adds: dict[str, None] = field(default_factory=dict)
    dels: dict[str, None] = field(default_factory=dict)
    filtered: int = 0  # general member filters so far (MAX_MEMBER_FILTERS)
    #: the member attribute's current values, read once
    _stored: list[str] | None = None
    #: those values and, resolved once, the ones SCIM shows
    _listed: tuple[list[str], dict[str, tr.Ref]] | None = None

    def stored(self, lookups: Lookups, rmap: ResourceMap, entry: Entry) -> list[str]:
        """The member attribute's values as the group stores them: one read, no resolve."""
        if self._stored is None:
            a = rmap.member_map
            assert a is not None
            self._stored = lookups.values_of(entry.dn, a.ldap)
        return self._stored

    def listed(
        self, lookups: Lookups, rmap: ResourceMap, entry: Entry
    ) -> tuple[list[str], dict[str, tr.Ref]]:
        """The group's member DNs and, by normalised DN, the visible ones (members inside a
        mapped target type's base, scope and filter): one read and one batched resolve."""
        if self._listed is None:
            a = rmap.member_map
            assert a is not None
            dns = self.stored(lookups, rmap, entry)
            if a.by_value:  # memberUid: the values, resolved by value
                self._listed = (dns, lookups.resolve_values(dns, a.to, a.member_value))
            else:
                self._listed = (dns, lookups.resolve_dns([tr.ref_dn(a, d) for d in dns], a.to))
        return self._listed

    def add(self, ids: list[str]) -> None:
        for i in ids:
            if self.final is not None:
                self.final[i] = None
            else:
                self.dels.pop(i, None)
                self.adds[i] = None

    def remove(self, ids: list[str]) -> None:
        for i in ids:
            if self.final is not None:
                self.final.pop(i, None)
            else:
                self.adds.pop(i, None)
                self.dels[i] = None

    def replace(self, ids: list[str]) -> None:
        self.final = dict.fromkeys(ids)
        self.adds.clear()
        self.dels.clear()

    @property
    def empty(self) -> bool:
        return self.final is None and not self.adds and not self.dels


def _member_ids(t: Target, value: Any) -> list[str]:
    out = []
    for e in elements(t.defn, value):
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


def apply_members(
    lookups: Lookups, rmap: ResourceMap, entry: Entry, m: Members, t: Target, o: Op
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
            m.filtered += 1
            if m.filtered > MAX_MEMBER_FILTERS:
                raise TooMany(
                    f"at most {MAX_MEMBER_FILTERS} operations with a general members filter "
                    'per PATCH (members[value eq "id"] is not limited)'
                )
            ids = _members_matching(lookups, rmap, entry, m, t)
        m.remove(ids)
        return
    if o.op == "remove":
        if o.has_value and not is_empty(o.value):
            m.remove(_member_ids(t, o.value))  # Entra ID: path "members" + value list
        else:
            m.replace([])
        return
    ids = _member_ids(t, o.value) if not is_empty(o.value) else []
    if o.op == "add":
        m.add(ids)
    else:
        m.replace(ids)


def _members_matching(
    lookups: Lookups, rmap: ResourceMap, entry: Entry, m: Members, t: Target
) -> list[str]:
    """A general filter on members (``members[display co "x"]``) must see the members: the
    list read once per PATCH (:meth:`Members.listed`), each rendered as {value, type, display}
    and tested against the filter."""
    assert t.filter is not None
    _dns, refs = m.listed(lookups, rmap, entry)
    out = []
    for ref in refs.values():
        element = {"value": ref.id, "type": ref.resource, "display": ref.display}
        if matches(t.filter, element, t.defn):
            out.append(ref.id)
    return out


def plan_members(
    lookups: Lookups, rmap: ResourceMap, entry: Entry, m: Members, has_placeholder: bool | None
) -> tuple[list[Change], list[Change] | None]:
    a = rmap.member_map
    assert a is not None
    if a.by_value:
        return _plan_values(lookups, rmap, entry, m), None
    placeholder = rmap.empty_member
    if m.final is not None:
        return _replace_members(lookups, rmap, entry, m), None
    mirror = a.mirror
    if mirror is not None:  # RFC 2307bis: the users' values too, from the same searches
        added = lookups.resolve_members(list(m.adds), a.to, a.attr, mirror.member_value)
        gone = lookups.resolve_members(
            list(m.dels), a.to, a.attr, mirror.member_value, missing_ok=True
        )
        add_dns = {i: r.dn for i, r in added.items()}
        del_dns = {i: r.dn for i, r in gone.items()}
    else:
        add_dns = lookups.resolve_ids(list(m.adds), a.to, a.attr) if m.adds else {}
        # Removing a member that no longer exists (deleted, refint already dropped it): no-op.
        del_dns = lookups.resolve_ids(list(m.dels), a.to, a.attr, missing_ok=True) if m.dels else {}
    changes: list[Change] = []
    if add_dns:
        changes.append(Change("add", a.ldap, tuple(d.encode() for d in add_dns.values())))
        if has_placeholder is None and placeholder:
            has_placeholder = lookups.has_value(entry.dn, a.ldap, placeholder)
        if placeholder and has_placeholder:
            changes.append(Change("delete", a.ldap, (placeholder.encode(),)))
    dels = tuple(d.encode() for d in _as_stored(lookups, rmap, entry, m, del_dns.values()))
    if dels:
        changes.append(Change("delete", a.ldap, dels))
    if mirror is not None:  # in the same modify: both attributes change atomically
        changes += mv.value_changes(mirror.ldap, mv.mirrored(a, added), mv.mirrored(a, gone))
    when_emptied = None
    if dels and placeholder and not add_dns:
        when_emptied = [Change("add", a.ldap, (placeholder.encode(),)), *changes]
    return changes, when_emptied


def _plan_values(lookups: Lookups, rmap: ResourceMap, entry: Entry, m: Members) -> list[Change]:
    """A member attribute holding values (RFC 2307 memberUid): the members' values added or
    deleted, or after a replace / remove-all the visible values made exactly the new set."""
    a = rmap.member_map
    assert a is not None
    if m.final is not None:
        found = lookups.resolve_members(list(m.final), a.to, a.attr, a.member_value)
        want = mv.values_of(a, found, strict=True)
        have = m.listed(lookups, rmap, entry)[0] if m._listed is not None else None
        return mv.replace_values(lookups, entry, a.ldap, a.member_value, a.to, want, have)
    added = lookups.resolve_members(list(m.adds), a.to, a.attr, a.member_value)
    gone = lookups.resolve_members(list(m.dels), a.to, a.attr, a.member_value, missing_ok=True)
    return mv.value_changes(
        a.ldap, mv.values_of(a, added, strict=True), mv.values_of(a, gone, strict=False)
    )


def _replace_members(lookups: Lookups, rmap: ResourceMap, entry: Entry, m: Members) -> list[Change]:
    """``replace members`` or a remove of all members (RFC 7644 §3.5.2.3/.2): the visible
    members become exactly the new set; a value SCIM does not show (a member outside the
    mapped bases, scope or filters — a service account, a group of another OU — or the
    directory's own refint placeholder such as OpenLDAP's ``olcRefintNothing``) is kept, since
    the client could not have listed it.  MODIFY_ADD/MODIFY_DELETE of just the difference;
    a mirror (RFC 2307bis memberUid) is made to match in the same modify."""
    a = rmap.member_map
    assert a is not None and m.final is not None
    mirror = a.mirror
    if mirror is not None:
        found = lookups.resolve_members(list(m.final), a.to, a.attr, mirror.member_value)
        want = {i: r.dn for i, r in found.items()}
    else:
        want = lookups.resolve_ids(list(m.final), a.to, a.attr) if m.final else {}
    dns, visible = m.listed(lookups, rmap, entry)
    have = {normalize_dn(tr.ref_dn(a, d)): d for d in dns}
    want_k = {normalize_dn(d): d for d in want.values()}
    adds = [d.encode() for k, d in want_k.items() if k not in have]
    dels = [d.encode() for k, d in have.items() if k in visible and k not in want_k]
    key = normalize_dn(rmap.empty_member) if rmap.empty_member else None
    had_placeholder = key is not None and key in have
    others = len(have) - (1 if had_placeholder else 0)
    changes = member_changes(rmap, a, adds, dels, others - len(dels) + len(adds), had_placeholder)
    if mirror is not None:
        changes += mv.replace_values(
            lookups, entry, mirror.ldap, mirror.member_value, mirror.targets, mv.mirrored(a, found)
        )
    return changes


def _as_stored(
    lookups: Lookups, rmap: ResourceMap, entry: Entry, m: Members, dns: Iterable[str]
) -> list[str]:
    """The member values to delete, as the group stores them.  Plain DNs, except where the
    member attribute may decorate a DN (uniqueMember's ``#'…'B`` UID, which
    ``uniqueMemberMatch`` does not ignore): then the member list is read once and each DN is
    replaced by its stored value (the values only: which of them SCIM shows does not matter
    here, and resolving every member of a large group would cost a search per batch)."""
    a = rmap.member_map
    assert a is not None
    wanted = list(dns)
    if not wanted or not getattr(a.codec, "decorated", False):
        return wanted
    stored = {normalize_dn(tr.ref_dn(a, d)): d for d in m.stored(lookups, rmap, entry)}
    return [stored.get(normalize_dn(d), d) for d in wanted]


def member_changes(
    rmap: ResourceMap,
    a: AttributeMap,
    adds: Sequence[bytes],
    dels: Sequence[bytes],
    remaining: int,
    had_placeholder: bool,
) -> list[Change]:
    """MODIFY_ADD / MODIFY_DELETE of just the affected DNs; keeps a groupOfNames valid with
    the mapping's ``empty_member`` placeholder when it would become empty."""
    changes: list[Change] = []
    if adds:
        changes.append(Change("add", a.ldap, tuple(adds)))
    if dels:
        changes.append(Change("delete", a.ldap, tuple(dels)))
    placeholder = rmap.empty_member
    if placeholder:
        if remaining <= 0 and not had_placeholder and dels:
            changes.insert(0, Change("add", a.ldap, (placeholder.encode(),)))
        elif remaining > 0 and had_placeholder and adds:
            changes.append(Change("delete", a.ldap, (placeholder.encode(),)))
    return changes
