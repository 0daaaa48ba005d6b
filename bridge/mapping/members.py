"""Value-based membership across resources (RFC 2307 ``memberUid``, RFC 2307bis's mirror):
the checks that need more than one resource, made once every resource is loaded.

* ``members: {ldap: memberUid, member_value: uid, to: [User]}``: every ``to`` resource is
  user-like (holds no members itself: a memberUid cannot name a group) and maps the
  ``member_value`` attribute on a single-valued SCIM attribute (typically userName).
* ``members: {ldap: member, to: [User, Group], mirror: {ldap: memberUid, member_value: uid}}``:
  the user-like ``to`` resources (at least one) map ``member_value``; they are the mirror's
  targets (a nested group goes to the DN attribute only).
* ``groups: {from_member: memberUid, member_value: uid, to: [Group]}``: the user maps
  ``member_value``, and each ``to`` group holds members by that value in that attribute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from bridge.mapping.model import AttributeMap, ResourceMap
from bridge.mapping.problems import Collector, at


def value_map(rmap: ResourceMap, ldap: str) -> AttributeMap | None:
    """The single-valued, non-reference SCIM attribute of ``rmap`` mapped on ``ldap``."""
    return next(
        (
            a
            for a in rmap.maps_for_ldap(ldap)
            if not a.is_reference and not a.multi and not a.from_member
        ),
        None,
    )


def check(resources: Mapping[str, ResourceMap], c: Collector) -> dict[str, ResourceMap]:
    """``resources`` with each mirror's targets filled in; problems reported to ``c``."""
    out = dict(resources)
    for name, rmap in resources.items():
        attrs = []
        for a in rmap.attributes:
            here = at("resources", name, "attributes", a.path)
            if a.attr == "members" and a.by_value:
                _check_value_members(resources, a, here, c)
            elif a.mirror is not None:
                a = _with_mirror_targets(resources, a, here, c)
            elif a.from_member and a.by_value:
                _check_groups_by_value(resources, rmap, a, here, c)
            attrs.append(a)
        if tuple(attrs) != rmap.attributes:
            out[name] = replace(rmap, attributes=tuple(attrs), _by_attr={}, _by_ldap={})
    return out


def _user_like(resources: Mapping[str, ResourceMap], name: str) -> bool:
    target = resources.get(name)
    return target is not None and target.member_map is None


def _check_value_members(
    resources: Mapping[str, ResourceMap], a: AttributeMap, here: str, c: Collector
) -> None:
    for t in a.to:
        if not _user_like(resources, t):
            c.add(
                at(here, "to"),
                f"{a.ldap} holds the {a.member_value} of users: {t} holds members itself, and a "
                f"value cannot name a group (for nested groups use a DN member attribute with "
                f"a mirror: {{ldap: {a.ldap}, member_value: {a.member_value}}})",
            )
        elif value_map(resources[t], a.member_value) is None:
            c.add(
                at(here, "member_value"),
                f"{t} maps no single-valued attribute to {a.member_value} "
                f"(e.g. userName: {{ldap: {a.member_value}}})",
            )


def _with_mirror_targets(
    resources: Mapping[str, ResourceMap], a: AttributeMap, here: str, c: Collector
) -> AttributeMap:
    mirror = a.mirror
    assert mirror is not None
    targets = tuple(t for t in a.to if _user_like(resources, t))
    if not targets:
        c.add(at(here, "mirror"), f"none of {list(a.to)} is user-like: nothing to mirror")
    for t in targets:
        if value_map(resources[t], mirror.member_value) is None:
            c.add(
                at(here, "mirror", "member_value"),
                f"{t} maps no single-valued attribute to {mirror.member_value} "
                f"(e.g. userName: {{ldap: {mirror.member_value}}})",
            )
    return replace(a, mirror=replace(mirror, targets=targets))


def _check_groups_by_value(
    resources: Mapping[str, ResourceMap],
    rmap: ResourceMap,
    a: AttributeMap,
    here: str,
    c: Collector,
) -> None:
    if value_map(rmap, a.member_value) is None:
        c.add(
            at(here, "member_value"),
            f"{rmap.name} maps no single-valued attribute to {a.member_value}",
        )
    for t in a.to:
        target = resources.get(t)
        member = target.member_map if target is not None else None
        holds = member is not None and (
            (member.by_value and _same(member.ldap, member.member_value, a))
            or (
                member.mirror is not None
                and _same(member.mirror.ldap, member.mirror.member_value, a)
            )
        )
        if not holds:
            c.add(
                at(here, "from_member"),
                f"{t}'s members are not held as {a.member_value} values in {a.ldap}",
            )


def _same(ldap: str, value: str, a: AttributeMap) -> bool:
    return ldap.lower() == a.ldap.lower() and value.lower() == a.member_value.lower()
