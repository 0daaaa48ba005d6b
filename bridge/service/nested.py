"""References on the read side: nested groups, and member ids without a lookup per member.

Nested groups: a user's ``groups`` through groups in groups.

With ``transitive_groups: true`` a User's ``groups`` lists, besides the groups that name it
(``type: direct``, from memberOf), every group reached through nested groups (``type: indirect``,
RFC 7643 §4.1.2), found in one search per user with Active Directory's
LDAP_MATCHING_RULE_IN_CHAIN (1.2.840.113556.1.4.1941, MS-ADTS §3.1.1.3.4.4.3), which walks the
``member`` chain on the server.  Off by default: it costs one search per returned user.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bridge.directory.syntax import in_scope, normalize_dn
from bridge.scim.projection import Projection
from bridge.service.lookup import Lookup, display_attr
from bridge.translate import entry as tr
from bridge.translate.filter import in_chain

if TYPE_CHECKING:
    from bridge.directory.base import Entry
    from bridge.mapping.model import MappingConfig, ResourceMap


def add_indirect_groups(
    lookup: Lookup,
    rmap: ResourceMap,
    entries: Sequence[Entry],
    resources: list[dict[str, Any]],
    base_url: str,
    projection: Projection,
) -> None:
    groups = next((a for a in rmap.attributes if a.attr == "groups"), None)
    if not rmap.transitive_groups or groups is None:
        return
    if not projection.wants(groups.attr, groups.sub, groups.returned):
        return
    for entry, resource in zip(entries, resources, strict=True):
        direct = {item["value"] for item in resource.get("groups", [])}
        extra = []
        for name in groups.to:
            gmap = lookup.rmap(name)
            member = gmap.member_map
            if member is None:
                continue
            display = display_attr(gmap)
            flt = in_chain(gmap, member.ldap, entry.dn)
            attrs = [gmap.id.ldap] + ([display] if display else [])
            for g in lookup.directory.search(gmap.base_dn, flt, attrs, scope=gmap.scope).entries:
                gid = tr.id_of(gmap, g)
                if gid in direct:
                    continue
                item: dict[str, Any] = {"value": gid, "$ref": f"{base_url}{gmap.endpoint}/{gid}"}
                if display and g.text(display):
                    item["display"] = g.text(display)
                item["type"] = "indirect"
                extra.append(item)
        if extra:
            resource.setdefault("groups", []).extend(extra)


def known_refs(
    mapping: MappingConfig, entries: Sequence[Entry], dns: Sequence[str], targets: Sequence[str]
) -> dict[str, tr.Ref]:
    """References whose target id came with the value (AD's extended-DN control puts each
    member's objectGUID next to its DN), so a 3,000-member group needs no 3,000 lookups.

    The target type is the one resource whose search scope holds the DN; a DN that two
    resources could hold, or whose resource is not keyed by objectGUID, is left to the normal
    lookup.  ``display`` is not known this way and is left out (RFC 7643 §4.2: optional)."""
    guids: dict[str, bytes] = {}
    for e in entries:
        guids.update(e.guids)
    if not guids:
        return {}
    typed = [
        (name, rmap) for name in targets if (rmap := mapping.resource(name)).id.codec.name == "guid"
    ]
    out: dict[str, tr.Ref] = {}
    for dn in dns:
        key = normalize_dn(dn)
        raw = guids.get(key)
        if raw is None:
            continue
        holders = [
            (name, rmap)
            for name, rmap in typed
            if key != normalize_dn(rmap.base_dn) and in_scope(dn, rmap.base_dn, rmap.scope)
        ]
        if len(holders) == 1:
            name, rmap = holders[0]
            out[key] = tr.Ref(str(rmap.id.codec.decode(raw)), name)
    return out
