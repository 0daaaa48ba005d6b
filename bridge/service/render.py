"""Entries -> SCIM resources: references (members, groups, manager) from whichever source is
cheapest (AD's extended-DN GUIDs, what the directory dereferenced with the read, else one
batched search), a user's groups from the group side where nothing maintains memberOf, and
nested groups (:mod:`bridge.service.nested`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from bridge.directory.base import Entry
from bridge.directory.syntax import normalize_dn
from bridge.mapping.model import AttributeMap, ResourceMap
from bridge.scim.projection import DEFAULT, Projection
from bridge.service import nested
from bridge.service.lookup import REF_BATCH, Lookup, display_attr
from bridge.translate import entry as tr
from bridge.translate.filter import any_of, of_type


class Renderer:
    """Renders entries of one mapping, looking references up through a :class:`Lookup`."""

    def __init__(self, lookup: Lookup):
        self.lookup = lookup

    def render(
        self,
        rmap: ResourceMap,
        entries: Sequence[Entry],
        base_url: str,
        projection: Projection = DEFAULT,
    ) -> list[dict[str, Any]]:
        lookup = self.lookup
        refs: dict[str, tr.Ref] = {}
        entries = self._with_member_side(rmap, entries, projection, refs)
        per_entry = [tr.reference_dns(rmap, e, projection) for e in entries]
        dns = [d for found in per_entry for d in found if normalize_dn(d) not in refs]
        if dns:
            targets = sorted({t for a in rmap.attributes if a.is_reference for t in a.to})
            # a large group: member ids from the values themselves (AD's extended DN)
            big = [
                (e, found)
                for e, found in zip(entries, per_entry, strict=True)
                if len(found) > REF_BATCH
            ]
            if big:
                refs.update(
                    nested.known_refs(
                        lookup.mapping, [e for e, _ in big], [d for _, f in big for d in f], targets
                    )
                )
            refs.update(lookup.linked_refs(entries, per_entry, targets))
            rest = [d for d in dns if normalize_dn(d) not in refs]
            refs.update(lookup.resolve_dns(rest, targets))
        for a in tr.value_references(rmap, projection):  # memberUid: batched value searches
            values = [v.decode("utf-8", "replace") for e in entries for v in e.get(a.key)]
            if values:
                refs.update(lookup.resolve_values(values, a.to, a.member_value))
        out = [tr.to_resource(rmap, e, refs, base_url, projection) for e in entries]
        nested.add_indirect_groups(lookup, rmap, entries, out, base_url, projection)
        return out

    def _with_member_side(
        self,
        rmap: ResourceMap,
        entries: Sequence[Entry],
        projection: Projection,
        refs: dict[str, tr.Ref],
    ) -> list[Entry]:
        """``entries`` with each ``from_member`` attribute (a user's groups where nothing
        maintains memberOf) filled in from the group side: per target type ONE search for the
        groups whose member attribute holds one of the entries' DNs (an OR of the page's DNs),
        the found groups' refs added to ``refs``.  With several entries the member values tell
        which group holds whom: only the matching ones where the directory offers matched
        values (RFC 3876), else all of them."""
        wanted = [a for a in tr.rendered(rmap, projection) if a.from_member]
        if not wanted or not entries:
            return list(entries)
        held: dict[str, dict[str, list[str]]] = {normalize_dn(e.dn): {} for e in entries}
        for a in wanted:
            for name in a.to:
                gmap = self.lookup.rmap(name)
                for group, members in self._groups_holding(gmap, a, entries, refs):
                    for m in members:
                        held.get(m, {}).setdefault(a.key, []).append(group)
        return [_with_values(e, held[normalize_dn(e.dn)]) for e in entries]

    def _groups_holding(
        self, gmap: ResourceMap, a: AttributeMap, entries: Sequence[Entry], refs: dict[str, tr.Ref]
    ) -> Iterable[tuple[str, list[str]]]:
        """(group DN, normalized member DNs among ``entries``) of each ``gmap`` group holding
        one of them in ``a.ldap`` (their DN, or with ``member_value`` their value of that
        attribute: memberUid's uid); REF_BATCH entries per search."""
        directory = self.lookup.directory
        display = display_attr(gmap)
        for i in range(0, len(entries), REF_BATCH):
            chunk = entries[i : i + REF_BATCH]
            # what a group holds of each entry (its comparison key) -> that entry's DN
            mine: dict[str, str] = {}
            for e in chunk:
                if a.by_value:
                    for v in e.get(a.member_value):
                        mine[v.decode("utf-8", "replace").lower()] = normalize_dn(e.dn)
                else:
                    mine[normalize_dn(e.dn)] = normalize_dn(e.dn)
            held = list(dict.fromkeys(mine.values()))
            if not mine:
                continue
            wanted = (
                [v.decode("utf-8", "replace") for e in chunk for v in e.get(a.member_value)]
                if a.by_value
                else [e.dn for e in chunk]
            )
            attrs = [gmap.id.ldap] + ([display] if display else [])
            kw: dict[str, Any] = {}
            if len(held) > 1:
                attrs.append(a.ldap)
                if directory.capabilities.matched_values:
                    kw["matched_values"] = {a.ldap: [w.encode() for w in wanted]}
            flt = of_type(gmap, any_of(a.ldap, wanted))
            found = directory.search(gmap.base_dn, flt, attrs, scope=gmap.scope, **kw)
            for g in found.entries:
                refs[normalize_dn(g.dn)] = tr.Ref(
                    tr.id_of(gmap, g), gmap.name, g.text(display) if display else None
                )
                if len(held) == 1:
                    members = held
                else:
                    have = {_key(a, v) for v in g.get(a.ldap)}
                    members = sorted({dn for k, dn in mine.items() if k in have})
                yield g.dn, members


def _key(a: AttributeMap, raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return text.lower() if a.by_value else normalize_dn(text)


def _with_values(entry: Entry, extra: Mapping[str, list[str]]) -> Entry:
    """``entry`` with attributes (lower-cased keys) it was not read with."""
    if not extra:
        return entry
    added = {k: [v.encode() for v in vs] for k, vs in extra.items()}
    return replace(entry, attrs={**entry.attrs, **added})
