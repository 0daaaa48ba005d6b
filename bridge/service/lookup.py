"""Finding entries and resolving references: id -> entry, id <-> DN in batched searches, and
what to dereference with a read (RFC 4511 searches; the dereference control where offered).

:class:`Lookup` is the small collaborator the other service modules share: it holds the
mapping and the directory, and implements :class:`bridge.translate.lookups.Lookups`, so the
PATCH planner can resolve references and read a member list without knowing the service.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.directory.base import Deref, Directory, Entry
from bridge.directory.syntax import in_scope, is_under, normalize_dn
from bridge.errors import DirectoryError, InvalidValue, NotFound, ScimError
from bridge.mapping.model import MappingConfig, ResourceMap
from bridge.scim.projection import DEFAULT, Projection
from bridge.translate import entry as tr
from bridge.translate.filter import any_of, equals, id_filter, of_type
from bridge.translate.lookups import Member

REF_BATCH = 200
#: path segments no id (nor the RDN value an id may be) can take: ``.search`` is the search
#: endpoint (RFC 7644 §3.4.3), ``.`` and ``..`` vanish in URL normalisation
RESERVED_IDS = (".search", ".", "..")


@dataclass(frozen=True)
class Found:
    rmap: ResourceMap
    entry: Entry

    @property
    def dn(self) -> str:
        return self.entry.dn


class Lookup:
    """Reads by id and DN, and reference resolution, against one mapping and directory."""

    def __init__(self, mapping: MappingConfig, directory: Directory):
        self.mapping = mapping
        self.directory = directory
        #: per-mapping work memoised across requests (:meth:`memo`): dereference specs by
        #: projection, sort keys by sortBy and order, the naming context
        self._memos: dict[tuple[Any, ...], tuple[ResourceMap, Any]] = {}

    def rmap(self, name: str) -> ResourceMap:
        return self.mapping.resource(name)

    def find(
        self,
        rmap: ResourceMap,
        rid: str,
        attributes: Sequence[str],
        deref: Sequence[Deref] = (),
        matched_values: Mapping[str, Sequence[bytes]] | None = None,
    ) -> Found:
        if not rid or len(rid) > 256 or rid in RESERVED_IDS:
            # a reserved name (".search") is never an id, whichever path brought it here
            # (the routes refuse it; /Bulk operation paths come through here too)
            raise NotFound(f"{rmap.name} {rid} not found")
        res = self.directory.search(
            rmap.base_dn,
            id_filter(rmap, rid),
            attributes,
            scope=rmap.scope,
            size_limit=2,
            deref=deref,
            matched_values=matched_values,
        )
        if not res.entries:
            raise NotFound(f"{rmap.name} {rid} not found")
        return Found(rmap, res.entries[0])

    def read_dn(
        self,
        rmap: ResourceMap,
        dn: str,
        attributes: Sequence[str],
        deref: Sequence[Deref] = (),
    ) -> Entry:
        entry: Entry | None
        if deref:  # the entry and what it references, in one base search
            try:
                found = self.directory.search(
                    dn, "(objectClass=*)", attributes, scope="base", deref=deref
                )
                entry = found.entries[0] if found.entries else None
            except DirectoryError as exc:
                if exc.code != "noSuchObject":
                    raise
                entry = None
        else:
            entry = self.directory.read(dn, attributes)
        if entry is None:
            raise NotFound(f"{rmap.name} at {dn} vanished")
        return entry

    def values_of(self, dn: str, attr: str) -> list[str]:
        """The values of ``attr`` of the entry ``dn`` as text (none if it is gone)."""
        entry = self.directory.read(dn, [attr])
        return [v.decode("utf-8", "replace") for v in (entry.get(attr) if entry else ())]

    def has_value(self, dn: str, attr: str, value: str) -> bool:
        """Whether the entry ``dn`` holds ``value`` in ``attr`` (a base search)."""
        return bool(self.directory.search(dn, equals(attr, value), ["1.1"], scope="base").entries)

    # ------------------------------------------------------------------ references
    def resolve_dns(self, dns: Iterable[str], targets: Sequence[str]) -> dict[str, tr.Ref]:
        """normalized DN -> Ref for every DN that is a mapped resource of a ``targets`` type."""
        pending = {normalize_dn(d): d for d in dns}
        out: dict[str, tr.Ref] = {}
        if not pending:
            return out
        dn_attr = self.mapping.dialect.dn_attribute
        for name in targets:
            rmap = self.rmap(name)
            mine = [d for k, d in pending.items() if k not in out and is_under(d, rmap.base_dn)]
            display = display_attr(rmap)
            attrs = [rmap.id.ldap, dn_attr] + ([display] if display else [])
            for i in range(0, len(mine), REF_BATCH):
                chunk = mine[i : i + REF_BATCH]
                flt = of_type(rmap, any_of(dn_attr, chunk))
                # each DN names at most one entry: a bounded plain search, no paging needed
                found = self.directory.search(
                    rmap.base_dn, flt, attrs, scope=rmap.scope, size_limit=len(chunk)
                )
                for e in found.entries:
                    disp = e.text(display) if display else None
                    out[normalize_dn(e.dn)] = tr.Ref(tr.id_of(rmap, e), name, disp)
        return out

    def resolve_ids(
        self, ids: Iterable[str], targets: Sequence[str], what: str, *, missing_ok: bool = False
    ) -> dict[str, str]:
        """SCIM id -> DN; unknown ids are a 400 that names them (never silently dropped), or
        with ``missing_ok`` left out (removing a member that no longer exists is a no-op)."""
        found = self._resolve(ids, targets, what, None, missing_ok)
        return {rid: r.dn for rid, r in found.items()}

    def resolve_members(
        self,
        ids: Iterable[str],
        targets: Sequence[str],
        what: str,
        value_attr: str,
        *,
        missing_ok: bool = False,
    ) -> dict[str, Member]:
        """SCIM id -> the member's DN, resource type and value of ``value_attr`` (its uid, for
        a memberUid), in the same batched searches as :meth:`resolve_ids`."""
        return self._resolve(ids, targets, what, value_attr, missing_ok)

    def _resolve(
        self,
        ids: Iterable[str],
        targets: Sequence[str],
        what: str,
        value_attr: str | None,
        missing_ok: bool,
    ) -> dict[str, Member]:
        wanted = list(dict.fromkeys(str(i) for i in ids))
        out: dict[str, Member] = {}
        for name in targets:
            rmap = self.rmap(name)
            todo = []
            for rid in wanted:
                if rid in out or "\x00" in rid:  # NUL: never an id (see id_filter)
                    continue
                try:
                    todo.append((rid, rmap.id.codec.assertion(rid)))
                except ScimError:
                    continue
            attrs = [rmap.id.ldap] + ([value_attr] if value_attr else [])
            for i in range(0, len(todo), REF_BATCH):
                chunk = todo[i : i + REF_BATCH]
                flt = of_type(rmap, any_of(rmap.id.ldap, (v for _, v in chunk)))
                found = self.directory.search(  # one entry per id at most: no paging
                    rmap.base_dn, flt, attrs, scope=rmap.scope, size_limit=len(chunk)
                )
                for e in found.entries:
                    value = e.text(value_attr) if value_attr else None
                    out[tr.id_of(rmap, e)] = Member(e.dn, name, value or None)
        missing = [i for i in wanted if i not in out]
        if missing and not missing_ok:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise InvalidValue(f"{what}: no {' or '.join(targets)} with id {shown}")
        return out

    def resolve_values(
        self, values: Iterable[str], targets: Sequence[str], attr: str
    ) -> dict[str, tr.Ref]:
        """Member values (memberUid's uids) -> Ref, keyed by :func:`tr.value_key`, for every
        value that names a mapped resource of ``targets`` by its ``attr``: batched equality
        ORs of REF_BATCH values under each target's base and filter (a 50,000-value memberUid
        is 250 searches, never one per value).  A value naming nobody visible is left out."""
        pending = {tr.value_key(attr, v): v for v in values}
        out: dict[str, tr.Ref] = {}
        for name in targets:
            if not pending:
                break
            rmap = self.rmap(name)
            display = display_attr(rmap)
            attrs = [rmap.id.ldap, attr] + ([display] if display else [])
            chunk_all = list(pending.values())
            for i in range(0, len(chunk_all), REF_BATCH):
                chunk = chunk_all[i : i + REF_BATCH]
                flt = of_type(rmap, any_of(attr, chunk))
                found = self.directory.search(rmap.base_dn, flt, attrs, scope=rmap.scope)
                for e in found.entries:
                    ref = tr.Ref(tr.id_of(rmap, e), name, e.text(display) if display else None)
                    for v in e.get(attr):
                        key = tr.value_key(attr, v.decode("utf-8", "replace"))
                        if key in pending:
                            out[key] = ref
            pending = {k: v for k, v in pending.items() if k not in out}
        return out

    def ref_dns_for(self, rmap: ResourceMap, body: Mapping[str, Any]) -> dict[str, str]:
        """The DN of every id a create/replace body references (members, manager); for
        members held by value (memberUid), the member's value (its uid) instead."""
        out: dict[str, str] = {}
        for path, ids in tr.reference_ids(rmap, body).items():
            amap = next(a for a in rmap.attributes if a.path == path)
            if amap.by_value:
                found = self.resolve_members(ids, amap.to, amap.attr, amap.member_value)
                out.update({rid: m.value for rid, m in found.items() if m.value})
            else:
                out.update(self.resolve_ids(ids, amap.to, amap.attr))
        return out

    def mirror_values(self, rmap: ResourceMap, body: Mapping[str, Any]) -> list[bytes] | None:
        """For a group whose DN members are mirrored (RFC 2307bis), the mirror attribute's
        values for a create/replace body: the member_value of each user-like member.  None
        when the mapping has no mirror."""
        a = rmap.member_map
        if a is None or a.mirror is None:
            return None
        ids = [str(v) for v in tr.scim_values(rmap, a, body)]
        if not ids:
            return []
        found = self.resolve_members(ids, a.to, a.attr, a.mirror.member_value)
        mirrored = a.mirror.targets
        values = [m.value for m in found.values() if m.value and m.resource in mirrored]
        return [v.encode() for v in dict.fromkeys(values)]

    def linked_refs(
        self, entries: Sequence[Entry], per_entry: Sequence[list[str]], targets: Sequence[str]
    ) -> dict[str, tr.Ref]:
        """References rendered from what the directory dereferenced with each entry.  A DN is
        used only when exactly one target type holds it: inside that type's base and scope,
        with the object classes its filter demands (a type with any other kind of filter, a
        DN the directory returned nothing for: left to :meth:`resolve_dns`)."""
        out: dict[str, tr.Ref] = {}
        kinds = []  # per target type, once: what an entry must be to be one of it
        for name in targets:
            rmap = self.rmap(name)
            need = _required_classes(rmap.base_filter)
            if need is not None:
                kinds.append((name, rmap, need, display_attr(rmap)))
        for entry, dns in zip(entries, per_entry, strict=True):
            if not entry.linked:
                continue
            for dn in dns:
                key = normalize_dn(dn)
                attrs = entry.linked.get(key)
                if attrs is None or key in out:
                    continue
                classes = {
                    v.decode("utf-8", "replace").lower() for v in attrs.get("objectclass", ())
                }
                holders = [
                    kind
                    for kind in kinds
                    if kind[2] <= classes and in_scope(dn, kind[1].base_dn, kind[1].scope)
                ]
                if len(holders) != 1:
                    continue
                name, rmap, _need, display = holders[0]
                found = Entry(dn, attrs)
                if not found.get(rmap.id.ldap):
                    continue
                out[key] = tr.Ref(
                    tr.id_of(rmap, found), name, found.text(display) if display else None
                )
        return out

    def reference_dn(
        self, targets: Sequence[str], rid: str, value_attr: str | None = None
    ) -> str | None:
        """The DN of the resource with SCIM id ``rid`` among ``targets`` (filter resolver);
        with ``value_attr``, its value of that attribute (the uid a memberUid holds)."""
        for name in targets:
            rmap = self.rmap(name)
            try:
                flt = id_filter(rmap, rid)
            except NotFound:
                continue
            attrs = [value_attr] if value_attr else ["1.1"]
            res = self.directory.search(rmap.base_dn, flt, attrs, scope=rmap.scope, size_limit=2)
            if res.entries:
                if value_attr:
                    return res.entries[0].text(value_attr) or None
                return res.entries[0].dn
        return None

    def member_dns(self, targets: Sequence[str], rid: str, attr: str) -> list[str] | None:
        """The DNs in ``attr`` of the resource with SCIM id ``rid`` among ``targets`` (filter
        resolver for ``from_member`` attributes), the empty-group placeholder left out."""
        for name in targets:
            rmap = self.rmap(name)
            try:
                flt = id_filter(rmap, rid)
            except NotFound:
                continue
            res = self.directory.search(rmap.base_dn, flt, [attr], scope=rmap.scope, size_limit=2)
            if res.entries:
                skip = normalize_dn(rmap.empty_member) if rmap.empty_member else None
                values = (v.decode("utf-8", "replace") for v in res.entries[0].get(attr))
                return [d for d in values if normalize_dn(d) != skip]
        return None

    # ------------------------------------------------------------------ read plans
    def derefs(self, rmap: ResourceMap, projection: Projection = DEFAULT) -> tuple[Deref, ...]:
        """What to ask the directory to dereference with a read of ``rmap`` (its reference
        attributes the response shows), so rendering needs no second search — only where the
        directory has the dereference control and the mapping allows checking the result."""
        if not self.directory.capabilities.deref:
            return ()

        def specs() -> tuple[Deref, ...]:
            out = []
            for a in tr.rendered(rmap, projection):
                if not a.is_reference or a.from_member or a.by_value:
                    continue  # the group side, or values (memberUid): nothing to dereference
                wanted = ["objectClass"]
                for name in a.to:
                    target = self.rmap(name)
                    display = display_attr(target)
                    wanted += [target.id.ldap] + ([display] if display else [])
                out.append(Deref(a.ldap, tuple(dict.fromkeys(wanted))))
            return tuple(out)

        result: tuple[Deref, ...] = self.memo(rmap, ("deref", projection), specs)
        return result

    def memo(self, rmap: ResourceMap, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        """``make()`` for ``rmap``, worked out once and kept across requests.  Keyed by the
        mapping's identity (a reloaded mapping is new) and bounded: parts of ``key`` are client
        input (a projection, a sortBy)."""
        full = (id(rmap), *key)
        hit = self._memos.get(full)
        if hit is not None and hit[0] is rmap:
            return hit[1]
        value = make()  # an error (a 400) is not kept
        if len(self._memos) >= 512:
            self._memos.clear()
        self._memos[full] = (rmap, value)
        return value


def display_attr(rmap: ResourceMap) -> str | None:
    """The LDAP attribute behind a resource's displayName (a reference's ``display``)."""
    return next(
        (a.ldap for a in rmap.attributes if a.attr == "displayName" and not a.is_reference),
        None,
    )


_OC_TERM = re.compile(r"\(objectClass=([A-Za-z][A-Za-z0-9-]*)\)", re.IGNORECASE)


@functools.lru_cache(maxsize=64)
def _required_classes(base_filter: str) -> frozenset[str] | None:
    """The object classes a ``base_filter`` demands when it is nothing but objectClass
    equalities (``(objectClass=x)`` or ``(&(objectClass=x)(objectClass=y))``), else None."""
    inner = (
        base_filter[2:-1]
        if base_filter.startswith("(&") and base_filter.endswith(")")
        else base_filter
    )
    terms = _OC_TERM.findall(inner)
    if not terms or "".join(f"(objectClass={t})" for t in terms).lower() != inner.lower():
        return None
    return frozenset(t.lower() for t in terms)
