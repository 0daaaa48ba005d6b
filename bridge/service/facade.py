"""Use cases: list / get / create / replace / patch / delete.  No HTTP here.

Every write is the smallest correct set of LDAP operations: only attributes that change, member
changes as MODIFY_ADD/MODIFY_DELETE of the affected DNs (never a rewrite of a member list), a
rename before a modify when the RDN source changes.  References (members, groups, manager) are
resolved DN <-> id in batched searches.  Where the directory offers them, a PATCH of a group
learns whether the empty-group placeholder is there with the find (matched values, RFC 3876),
and a write that is one modify, like a create's last write (the add, or its last staged
modify), gets the entry for the response back with it (post-read, RFC 4527) instead of
reading it again.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bridge import concurrency
from bridge.directory.base import (
    OID_EXTENDED_DN,
    Change,
    Deref,
    Directory,
    Entry,
    SortKey,
    Window,
)
from bridge.directory.syntax import (
    escape_filter,
    in_scope,
    is_under,
    normalize_dn,
    rdn_of,
    split_rdn,
)
from bridge.errors import (
    BadGateway,
    BadRequest,
    DirectoryError,
    InvalidFilter,
    InvalidSyntax,
    InvalidValue,
    Mutability,
    NotFound,
    PreconditionFailed,
    ScimError,
    TooMany,
    Uniqueness,
)
from bridge.mapping.model import AttributeMap, MappingConfig, ResourceMap
from bridge.scim.cursor import Cursors, derive_key, fingerprint
from bridge.scim.projection import DEFAULT, Projection
from bridge.service import create, deprovision, nested
from bridge.translate import entry as tr

log = logging.getLogger("bridge.service")
REF_BATCH = 200
#: entries per VLV request: slapd applies the bind account's size limit (often 500) to a window
VLV_CHUNK = 500
#: VLV failures that mean "not for this request" rather than "the directory is broken"
VLV_REFUSED = frozenset(
    {"unavailableCriticalExtension", "unwillingToPerform", "adminLimitExceeded"}
)
#: how a directory refuses a critical control it advertises (for this account or request)
CONTROL_REFUSED = frozenset({"unavailableCriticalExtension", "unwillingToPerform"})
#: path segments no id (nor the RDN value an id may be) can take: ``.search`` is the search
#: endpoint (RFC 7644 §3.4.3), ``.`` and ``..`` vanish in URL normalisation
RESERVED_IDS = (".search", ".", "..")
#: a PATCH with more operations + values than this is planned off the event loop (concurrency)
OFFLOAD_SIZE = 256
#: the largest offset a VLV request carries (an INTEGER 0..maxInt, RFC 4511 §4.1.10 bounds);
#: a larger startIndex is past the end of any result set anyway
VLV_MAX_OFFSET = 2**31 - 1
NOOP_PROBES = 20  # above this many values, a no-op retry reads the attribute once instead


@dataclass(frozen=True)
class ListQuery:
    filter: str | None = None
    start_index: int = 1
    count: int | None = None
    sort_by: str | None = None
    sort_order: str = "ascending"
    projection: Projection = DEFAULT
    cursor: str | None = None


@dataclass
class ListResult:
    resources: list[dict[str, Any]]
    total: int
    start_index: int
    next_cursor: str | None = None
    previous_cursor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Found:
    rmap: ResourceMap
    entry: Entry

    @property
    def dn(self) -> str:
        return self.entry.dn


@dataclass(frozen=True)
class Modified:
    """What :meth:`Service.modify` did: the changes the directory applied (what an undo must
    invert) and, when asked for with ``post_read`` and returned, the entry they left."""

    applied: list[Change]
    entry: Entry | None = None


@dataclass(frozen=True)
class Written:
    """What :meth:`Service.write` did: the entry's DN afterwards and, when the write was one
    modify asked for a post-read, the entry it left (None: read it for the response)."""

    dn: str
    entry: Entry | None = None


class Service:
    def __init__(
        self,
        mapping: MappingConfig,
        directory: Directory,
        *,
        max_results: int = 1000,
        default_count: int = 100,
        cursor_key: bytes = b"",
    ):
        self.mapping = mapping
        self.directory = directory
        self.max_results = max_results
        self.default_count = default_count
        #: signs RFC 9865 cursors (bridge.scim.cursor.derive_key); equal on every replica
        self.cursor_key = cursor_key
        #: per-mapping work memoised across requests (:meth:`_memo`): dereference specs by
        #: projection, sort keys by sortBy and order
        self._memos: dict[tuple[Any, ...], tuple[ResourceMap, Any]] = {}
        #: the directory advertised matched values but refused them once: not sent again
        self._matched_values_refused = False

    # ------------------------------------------------------------------ lookups
    def rmap(self, name: str) -> ResourceMap:
        return self.mapping.resource(name)

    def id_filter(self, rmap: ResourceMap, rid: str) -> str:
        if "\x00" in rid:  # AD compares only up to a NUL: "<id>\0x" would find <id>
            raise NotFound(f"{rmap.name} {rid!r} not found")
        try:
            value = rmap.id.codec.assertion(rid)
        except ScimError:
            raise NotFound(f"{rmap.name} {rid} not found") from None
        return f"(&{rmap.base_filter}({rmap.id.ldap}={escape_filter(value)}))"

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
            self.id_filter(rmap, rid),
            attributes,
            scope=rmap.scope,
            size_limit=2,
            deref=deref,
            matched_values=matched_values,
        )
        if not res.entries:
            raise NotFound(f"{rmap.name} {rid} not found")
        return Found(rmap, res.entries[0])

    def _read_dn(
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
            display = _display_attr(rmap)
            attrs = [rmap.id.ldap, dn_attr] + ([display] if display else [])
            for i in range(0, len(mine), REF_BATCH):
                chunk = mine[i : i + REF_BATCH]
                ors = "".join(f"({dn_attr}={escape_filter(d)})" for d in chunk)
                flt = f"(&{rmap.base_filter}(|{ors}))"
                # each DN names at most one entry: a bounded plain search, no paging needed
                found = self.directory.search(
                    rmap.base_dn, flt, attrs, scope=rmap.scope, size_limit=len(chunk)
                )
                for e in found.entries:
                    disp = e.text(display) if display else None
                    out[normalize_dn(e.dn)] = tr.Ref(tr.id_of(rmap, e), name, disp)
        return out

    def derefs(self, rmap: ResourceMap, projection: Projection = DEFAULT) -> tuple[Deref, ...]:
        """What to ask the directory to dereference with a read of ``rmap`` (its reference
        attributes the response shows), so rendering needs no second search — only where the
        directory has the dereference control and the mapping allows checking the result."""
        if not self.directory.capabilities.deref:
            return ()

        def specs() -> tuple[Deref, ...]:
            out = []
            for a in tr.rendered(rmap, projection):
                if not a.is_reference or a.from_member:
                    continue
                wanted = ["objectClass"]
                for name in a.to:
                    target = self.rmap(name)
                    display = _display_attr(target)
                    wanted += [target.id.ldap] + ([display] if display else [])
                out.append(Deref(a.ldap, tuple(dict.fromkeys(wanted))))
            return tuple(out)

        result: tuple[Deref, ...] = self._memo(rmap, ("deref", projection), specs)
        return result

    def _memo(self, rmap: ResourceMap, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
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

    def _linked_refs(
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
                kinds.append((name, rmap, need, _display_attr(rmap)))
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

    def resolve_ids(
        self, ids: Iterable[str], targets: Sequence[str], what: str, *, missing_ok: bool = False
    ) -> dict[str, str]:
        """SCIM id -> DN; unknown ids are a 400 that names them (never silently dropped), or
        with ``missing_ok`` left out (removing a member that no longer exists is a no-op)."""
        wanted = list(dict.fromkeys(str(i) for i in ids))
        out: dict[str, str] = {}
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
            for i in range(0, len(todo), REF_BATCH):
                chunk = todo[i : i + REF_BATCH]
                ors = "".join(f"({rmap.id.ldap}={escape_filter(v)})" for _, v in chunk)
                flt = f"(&{rmap.base_filter}(|{ors}))"
                found = self.directory.search(  # one entry per id at most: no paging
                    rmap.base_dn, flt, [rmap.id.ldap], scope=rmap.scope, size_limit=len(chunk)
                )
                for e in found.entries:
                    out[tr.id_of(rmap, e)] = e.dn
        missing = [i for i in wanted if i not in out]
        if missing and not missing_ok:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise InvalidValue(f"{what}: no {' or '.join(targets)} with id {shown}")
        return out

    def _ref_dns_for(self, rmap: ResourceMap, body: Mapping[str, Any]) -> dict[str, str]:
        out: dict[str, str] = {}
        for path, ids in tr.reference_ids(rmap, body).items():
            amap = next(a for a in rmap.attributes if a.path == path)
            out.update(self.resolve_ids(ids, amap.to, amap.attr))
        return out

    def render(
        self,
        rmap: ResourceMap,
        entries: Sequence[Entry],
        base_url: str,
        projection: Projection = DEFAULT,
    ) -> list[dict[str, Any]]:
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
                        self.mapping, [e for e, _ in big], [d for _, f in big for d in f], targets
                    )
                )
            refs.update(self._linked_refs(entries, per_entry, targets))
            rest = [d for d in dns if normalize_dn(d) not in refs]
            refs.update(self.resolve_dns(rest, targets))
        out = [tr.to_resource(rmap, e, refs, base_url, projection) for e in entries]
        nested.add_indirect_groups(self, rmap, entries, out, base_url, projection)
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
                for group, members in self._groups_holding(self.rmap(name), a, entries, refs):
                    for m in members:
                        held.get(m, {}).setdefault(a.key, []).append(group)
        return [_with_values(e, held[normalize_dn(e.dn)]) for e in entries]

    def _groups_holding(
        self, gmap: ResourceMap, a: AttributeMap, entries: Sequence[Entry], refs: dict[str, tr.Ref]
    ) -> Iterable[tuple[str, list[str]]]:
        """(group DN, normalized member DNs among ``entries``) of each ``gmap`` group holding
        one of them in ``a.ldap``; REF_BATCH entries per search."""
        display = _display_attr(gmap)
        for i in range(0, len(entries), REF_BATCH):
            chunk = entries[i : i + REF_BATCH]
            mine = {normalize_dn(e.dn) for e in chunk}
            ors = "".join(f"({a.ldap}={escape_filter(e.dn)})" for e in chunk)
            attrs = [gmap.id.ldap] + ([display] if display else [])
            kw: dict[str, Any] = {}
            if len(chunk) > 1:
                attrs.append(a.ldap)
                if self.directory.capabilities.matched_values:
                    kw["matched_values"] = {a.ldap: [e.dn.encode() for e in chunk]}
            found = self.directory.search(
                gmap.base_dn, f"(&{gmap.base_filter}(|{ors}))", attrs, scope=gmap.scope, **kw
            )
            for g in found.entries:
                refs[normalize_dn(g.dn)] = tr.Ref(
                    tr.id_of(gmap, g), gmap.name, g.text(display) if display else None
                )
                if len(chunk) == 1:
                    members = list(mine)
                else:
                    have = {normalize_dn(v.decode("utf-8", "replace")) for v in g.get(a.ldap)}
                    members = sorted(have & mine)
                yield g.dn, members

    # ------------------------------------------------------------------ reads
    def get(
        self, name: str, rid: str, base_url: str, projection: Projection = DEFAULT
    ) -> dict[str, Any]:
        rmap = self.rmap(name)
        found = self.find(
            rmap, rid, tr.ldap_attributes(rmap, projection), self.derefs(rmap, projection)
        )
        return self.render(rmap, [found.entry], base_url, projection)[0]

    def version(self, name: str, rid: str) -> str | None:
        rmap = self.rmap(name)
        found = self.find(rmap, rid, [rmap.id.ldap, rmap.version])
        return tr.version_of(rmap, found.entry)

    def search(self, name: str, query: ListQuery, base_url: str) -> ListResult:
        """List / filter / sort / page (RFC 7644 §3.4.2, RFC 9865), pushed down to the directory.

        The page is a VLV window (one search whose cost does not grow with ``startIndex``) when
        the directory offers VLV + server-side sort, else an RFC 2696 paged walk that counts the
        matches reading no attributes and then reads only the page's entries.  ``count`` is
        capped at ``max_results`` (``filter.maxResults``: the most a response returns, RFC 7644
        §5); ``count=0`` returns only ``totalResults``.  ``cursor`` pages are signed offsets
        (:mod:`bridge.scim.cursor`)."""
        from bridge.translate.filter import to_ldap

        rmap = self.rmap(name)
        flt = rmap.base_filter
        if query.filter:
            fragment = to_ldap(rmap, query.filter, self.mapping, self.reference_dn, self.member_dns)
            flt = f"(&{rmap.base_filter}{fragment})"
        return self._list([(rmap, flt)], query, base_url)

    def search_all(self, query: ListQuery, base_url: str) -> ListResult:
        """``POST /.search`` (RFC 7644 §3.4.3): every resource type, Users then Groups, paged as
        one list.  An attribute a type does not map is absent on it (``userName`` on a Group);
        one that no type maps is a 400 naming it."""
        from bridge.scim.filter_parser import parse
        from bridge.translate.filter import to_ldap_lenient

        plans: list[tuple[ResourceMap, str]] = []
        missing: set[str] | None = None
        ast = parse(query.filter) if query.filter else None
        for rmap in self.mapping.resources.values():
            if ast is None:
                plans.append((rmap, rmap.base_filter))
                continue
            fragment, absent = to_ldap_lenient(
                rmap, ast, self.mapping, self.reference_dn, self.member_dns
            )
            missing = absent if missing is None else missing & absent
            plans.append((rmap, f"(&{rmap.base_filter}{fragment})"))
        if missing:
            raise InvalidFilter(
                f"filter attribute {sorted(missing)[0]} is not mapped for any resource type"
            )
        return self._list(plans, query, base_url)

    def _list(
        self, plans: Sequence[tuple[ResourceMap, str]], query: ListQuery, base_url: str
    ) -> ListResult:
        count = self.default_count if query.count is None else max(query.count, 0)
        count = min(count, self.max_results)
        fp = ""
        if query.cursor is not None:  # cursors are bound to the query they page (RFC 9865)
            names = ",".join(r.name for r, _ in plans)
            fp = fingerprint(names, query.filter, query.sort_by, query.sort_order.lower())
            if query.start_index > 1:
                raise InvalidValue("use either startIndex or cursor, not both (RFC 9865 §2)")
            start = self.cursors.decode(query.cursor, fp) if query.cursor else 1
        else:
            start = max(query.start_index, 1)
        sorts = self._plan_sorts([rmap for rmap, _ in plans], query)
        resources: list[dict[str, Any]] = []
        before = 0  # matches of the resource types already walked
        for (rmap, flt), sort in zip(plans, sorts, strict=True):
            local = max(start - before, 1)
            want = max(count - len(resources), 0)
            entries, total = self._page(rmap, flt, query, sort, local, want)
            resources += self.render(rmap, entries, base_url, query.projection)
            before += total
        result = ListResult(resources, before, start)
        if query.cursor is not None:
            if count and start + len(resources) <= before:
                result.next_cursor = self.cursors.encode(start + len(resources), fp)
            if start > 1:
                result.previous_cursor = self.cursors.encode(max(start - max(count, 1), 1), fp)
        return result

    def _plan_sorts(
        self, rmaps: Sequence[ResourceMap], query: ListQuery
    ) -> list[tuple[SortKey, ...]]:
        """Sort keys per resource type; across types (``POST /.search``) a ``sortBy`` that one
        type does not map sorts that type in its default order, unless no type maps it."""
        out: list[tuple[SortKey, ...] | None] = []
        refused: InvalidValue | None = None
        for rmap in rmaps:
            try:
                out.append(self._sort_keys(rmap, query))
            except InvalidValue as exc:
                if len(rmaps) == 1:
                    raise
                refused = refused or exc
                out.append(None)
        if refused is not None and all(keys is None for keys in out):
            raise refused
        if refused is None:
            return [k for k in out if k is not None]
        default = replace(query, sort_by=None)
        return [
            k if k is not None else self._sort_keys(r, default)
            for k, r in zip(out, rmaps, strict=True)
        ]

    def _page(
        self,
        rmap: ResourceMap,
        flt: str,
        query: ListQuery,
        sort: tuple[SortKey, ...],
        start: int,
        count: int,
    ) -> tuple[list[Entry], int]:
        """Entries ``start .. start+count-1`` (1-based) of the sorted matches, and their total."""
        attrs = tr.ldap_attributes(rmap, query.projection)
        try:
            if self.directory.capabilities.vlv:
                try:
                    return self._vlv_page(rmap, flt, attrs, sort, start, count, query.projection)
                except DirectoryError as exc:
                    if exc.code not in VLV_REFUSED:
                        raise
                    # advertised but refused for this account or query: page without it
                    log.warning("VLV refused (%s), paging with RFC 2696 instead", exc.code)
            if query.sort_by and count and not self.directory.capabilities.sort:
                return self._bridge_sorted_page(rmap, flt, attrs, sort, start, count)
            return self._paged_page(rmap, flt, attrs, sort, start, count)
        except DirectoryError as exc:
            if exc.code == "inappropriateMatching" and query.sort_by:
                # slapd: "serverSort control: No ordering rule" for the sort attribute (a
                # mapping typing a directoryString as integer): the bridge sorts instead
                log.info("the directory cannot order %s: sorting in the bridge", sort[0].attr)
                return self._bridge_sorted_page(rmap, flt, attrs, sort, start, count)
            if exc.code == "inappropriateMatching":
                raise InvalidValue(
                    f"sortBy {query.sort_by or sort[0].attr}: the directory cannot order "
                    f"{sort[0].attr} ({exc.message or exc.code})"
                ) from None
            raise

    def _vlv_page(
        self,
        rmap: ResourceMap,
        flt: str,
        attrs: list[str],
        sort: tuple[SortKey, ...],
        start: int,
        count: int,
        projection: Projection = DEFAULT,
    ) -> tuple[list[Entry], int]:
        """VLV windows of at most VLV_CHUNK entries (slapd applies the account's size limit,
        typically 500, to a window)."""
        entries: list[Entry] = []
        total: int | None = None
        offset, left = min(start, VLV_MAX_OFFSET), max(count, 1)
        while left > 0:
            size = min(left, VLV_CHUNK)
            res = self.directory.search(
                rmap.base_dn,
                flt,
                attrs if count else ["1.1"],
                scope=rmap.scope,
                sort=sort,
                window=Window(offset, size),
                deref=self.derefs(rmap, projection) if count else (),
            )
            if res.total is None:
                raise TooMany("the directory refused the page (size or admin limit)")
            total = res.total
            if offset > total:
                # past the end: slapd answers an empty window, but AD's VLV answers an offset
                # beyond the content count with the last entry; the page is empty everywhere
                break
            entries.extend(res.entries[:size])
            if len(res.entries) < size or offset + size > total:
                break
            offset, left = offset + size, left - size
        return (entries if count else []), total or 0

    def _paged_page(
        self,
        rmap: ResourceMap,
        flt: str,
        attrs: list[str],
        sort: tuple[SortKey, ...],
        start: int,
        count: int,
    ) -> tuple[list[Entry], int]:
        """Without VLV: one RFC 2696 paged walk reading no attributes counts the matches and
        notes the page's DNs (nothing else is held), then the page's entries are read."""
        caps = self.directory.capabilities
        dns: list[str] = []
        total = 0
        for e in self.directory.iter_search(
            rmap.base_dn, flt, ["1.1"], scope=rmap.scope, sort=sort if caps.sort else ()
        ):
            total += 1
            if start <= total < start + count:
                dns.append(e.dn)
        return self._read_many(rmap, dns, attrs), total

    def _bridge_sorted_page(
        self,
        rmap: ResourceMap,
        flt: str,
        attrs: list[str],
        sort: tuple[SortKey, ...],
        start: int,
        count: int,
    ) -> tuple[list[Entry], int]:
        """``sortBy`` on a directory without the sort control (a bare slapd: no sssvlv): one
        paged walk reads only the sort attributes, the bridge orders the matches
        (:mod:`bridge.translate.sort`) and reads the page's entries.  Bounded by
        ``max_results`` (``filter.maxResults``): a larger result set is a 400 tooMany."""
        from bridge.translate.sort import sort_entries

        keys: list[Entry] = []
        for e in self.directory.iter_search(
            rmap.base_dn, flt, sorted({k.attr for k in sort}), scope=rmap.scope
        ):
            keys.append(e)
            if len(keys) > self.max_results:
                raise TooMany(
                    f"sortBy: this directory cannot sort (no server-side sort control), so the "
                    f"bridge sorts result sets of at most {self.max_results} resources "
                    f"(filter.maxResults); narrow the filter or leave out sortBy"
                )
        ordered = sort_entries(rmap, keys, sort)
        page = [e.dn for e in ordered[start - 1 : start - 1 + count]]
        return self._read_many(rmap, page, attrs), len(ordered)

    def _read_many(self, rmap: ResourceMap, dns: list[str], attrs: list[str]) -> list[Entry]:
        dn_attr = self.mapping.dialect.dn_attribute
        found: dict[str, Entry] = {}
        for i in range(0, len(dns), REF_BATCH):
            ors = "".join(f"({dn_attr}={escape_filter(d)})" for d in dns[i : i + REF_BATCH])
            for e in self.directory.search(
                rmap.base_dn, f"(|{ors})", attrs, scope=rmap.scope
            ).entries:
                found[normalize_dn(e.dn)] = e
        return [found[k] for k in (normalize_dn(d) for d in dns) if k in found]

    def reference_dn(self, targets: Sequence[str], rid: str) -> str | None:
        """The DN of the resource with SCIM id ``rid`` among ``targets`` (filter resolver)."""
        for name in targets:
            rmap = self.rmap(name)
            try:
                flt = self.id_filter(rmap, rid)
            except NotFound:
                continue
            res = self.directory.search(rmap.base_dn, flt, ["1.1"], scope=rmap.scope, size_limit=2)
            if res.entries:
                return res.entries[0].dn
        return None

    def member_dns(self, targets: Sequence[str], rid: str, attr: str) -> list[str] | None:
        """The DNs in ``attr`` of the resource with SCIM id ``rid`` among ``targets`` (filter
        resolver for ``from_member`` attributes), the empty-group placeholder left out."""
        for name in targets:
            rmap = self.rmap(name)
            try:
                flt = self.id_filter(rmap, rid)
            except NotFound:
                continue
            res = self.directory.search(rmap.base_dn, flt, [attr], scope=rmap.scope, size_limit=2)
            if res.entries:
                skip = normalize_dn(rmap.empty_member) if rmap.empty_member else None
                values = (v.decode("utf-8", "replace") for v in res.entries[0].get(attr))
                return [d for d in values if normalize_dn(d) != skip]
        return None

    @property
    def cursors(self) -> Cursors:
        """RFC 9865 cursor signer; an unset key (a Service built without app settings, as in
        tests and tools) falls back to the derivation from an empty configuration."""
        return Cursors(self.cursor_key or derive_key(""))

    def _sort_keys(self, rmap: ResourceMap, query: ListQuery) -> tuple[SortKey, ...]:
        """The sort keys of a list, worked out once per (type, sortBy, order)."""
        from bridge.translate.sort import sort_keys

        reverse = query.sort_order.lower() == "descending"
        keys: tuple[SortKey, ...] = self._memo(
            rmap,
            ("sort", query.sort_by, reverse),
            lambda: sort_keys(rmap, self.mapping, query.sort_by, reverse),
        )
        return keys

    # ------------------------------------------------------------------ writes
    def _body(self, body: Any) -> Mapping[str, Any]:
        if not isinstance(body, Mapping):
            raise InvalidSyntax("the request body must be a JSON object")
        return body

    def _unique_check(
        self, rmap: ResourceMap, attrs: Mapping[str, list[bytes]], exclude_dn: str | None = None
    ) -> None:
        for a in rmap.attributes:
            if not a.unique or not attrs.get(a.ldap):
                continue
            value = attrs[a.ldap][0]
            flt = f"(&{rmap.base_filter}({a.ldap}={escape_filter(value.decode('utf-8'))}))"
            for e in self.directory.search(
                rmap.base_dn, flt, ["1.1"], scope=rmap.scope, size_limit=2
            ).entries:
                if exclude_dn is None or normalize_dn(e.dn) != normalize_dn(exclude_dn):
                    raise Uniqueness(f"{a.path} {value.decode('utf-8')!r} is already in use")

    def _missing_on_add(self, rmap: ResourceMap, exc: DirectoryError) -> ScimError:
        if self.directory.read(rmap.base_dn, ["1.1"]) is None:
            log.error("the mapped base DN %s does not exist", rmap.base_dn)
            return BadGateway(f"the directory has no {rmap.base_dn} (check the mapping)")
        return InvalidValue(f"a referenced entry does not exist ({exc.message or exc.code})")

    def _unique_recheck(self, rmap: ResourceMap, dn: str, attrs: Mapping[str, list[bytes]]) -> None:
        """Uniqueness of a non-RDN attribute under races (the RDN is unique by the directory's
        own entryAlreadyExists): re-check after the add; the later duplicate removes itself."""
        from bridge.service import integrity

        for a in rmap.attributes:
            if not a.unique or not attrs.get(a.ldap) or a.ldap.lower() == rmap.rdn.ldap.lower():
                continue
            value = attrs[a.ldap][0]
            flt = f"(&{rmap.base_filter}({a.ldap}={escape_filter(value.decode('utf-8'))}))"
            if integrity.duplicates_after_create(
                self.directory, rmap.base_dn, flt, rmap.scope, dn, rmap.created, rmap.version
            ):
                self.directory.delete(dn)
                raise Uniqueness(f"{a.path} {value.decode('utf-8')!r} is already in use")

    @staticmethod
    def _refuse_reserved(rmap: ResourceMap, value: str) -> None:
        """An RDN value that is a reserved path segment could never be addressed as an id."""
        if value in RESERVED_IDS:
            raise InvalidValue(f"{rmap.rdn.source} {value!r} is a reserved name (RFC 7644 §3.4.3)")

    def create(self, name: str, body: Any, base_url: str) -> dict[str, Any]:
        rmap = self.rmap(name)
        body = create.active_by_default(rmap, self._body(body))
        tr.validate_schemas(rmap, body)
        tr.check_required(rmap, body)
        ref_dns = self._ref_dns_for(rmap, body)
        attrs = tr.to_attributes(rmap, body, ref_dns)
        dn = tr.dn_for(rmap, body)
        rdn_attr, rdn_val, _ = split_rdn(dn)
        self._refuse_reserved(rmap, rdn_val)
        existing = attrs.get(rdn_attr, [])
        if rdn_val.encode() not in existing:
            attrs[rdn_attr] = [rdn_val.encode()] + [
                v for v in existing if v.lower() != rdn_val.encode().lower()
            ]
        attrs["objectClass"] = [oc.encode() for oc in rmap.object_classes]
        member = rmap.member_map
        if member is not None and rmap.empty_member and not attrs.get(member.ldap):
            attrs[member.ldap] = [rmap.empty_member.encode()]
        bases = create.add_extras(rmap, body, attrs)
        self._unique_check(rmap, attrs)
        try:
            created = self._add(rmap, dn, attrs, bases)
        except DirectoryError as exc:
            if exc.code == "constraintViolation" and exc.operation == "add":
                # AD refuses a userPrincipalName taken meanwhile so (0000202F): a 409
                self._unique_check(rmap, attrs)
            if exc.code == "entryAlreadyExists":
                raise Uniqueness(f"{rmap.rdn.source} {rdn_val!r} is already in use") from None
            if exc.code == "noSuchObject":
                raise self._missing_on_add(rmap, exc) from None
            raise
        self._unique_recheck(rmap, dn, attrs)
        entry = created  # the entry as the create's last write left it (post-read)
        if entry is None:  # not asked for, or the directory sent none: read it back
            entry = self._read_dn(rmap, dn, tr.ldap_attributes(rmap))
        return self.render(rmap, [entry], base_url)[0]

    def _add(
        self,
        rmap: ResourceMap,
        dn: str,
        attrs: dict[str, list[bytes]],
        bases: Mapping[str, str],
    ) -> Entry | None:
        """The staged create, with each ``unique:`` derived value (AD's sAMAccountName) given
        the first free suffix; when a concurrent create took it between the search and the
        add, tried again with the next free one (a bounded number of times)."""
        # references are resolved by render from either entry: the create's read-back never
        # used the dereference control, so it does not rule the post-read out here
        post_read = self._post_read(rmap, carried=True)
        for attempt in range(1, create.DERIVE_ATTEMPTS + 1):
            create.settle_unique(self, rmap, bases, attrs)
            try:
                return create.create(self, rmap, dn, attrs, post_read)
            except DirectoryError as exc:
                if attempt == create.DERIVE_ATTEMPTS or not create.lost_race(
                    self, rmap, bases, attrs, exc
                ):
                    raise
                log.info("create of %s: derived name taken meanwhile, trying the next", dn)
        raise AssertionError("unreachable")

    def _check_version(self, rmap: ResourceMap, entry: Entry, if_match: str | None) -> str | None:
        """RFC 7644 §3.14: If-Match must name the current version; returns an LDAP assertion
        filter so the directory re-checks it atomically where supported (RFC 4528)."""
        if not if_match or if_match.strip() == "*":
            return None
        current = tr.version_of(rmap, entry)
        wanted = {t.strip() for t in if_match.split(",")}
        norm = {w[2:] if w.startswith("W/") else w for w in wanted}
        if current is None or current[2:] not in norm:
            raise PreconditionFailed(f"{rmap.name} has changed: current version is {current}")
        raw = entry.first(rmap.version)
        if raw is None or not self.directory.capabilities.assertion:
            return None
        return f"({rmap.version}={escape_filter(raw.decode('utf-8'))})"

    def replace(
        self, name: str, rid: str, body: Any, base_url: str, if_match: str | None = None
    ) -> dict[str, Any]:
        """PUT (RFC 7644 §3.5.1): every mutable mapped attribute takes the body's value; absent
        ones are cleared; readOnly ones (groups, meta, id) are ignored; immutable ones may only be
        set if unset or to the same value."""
        rmap = self.rmap(name)
        body = self._body(body)
        tr.validate_schemas(rmap, body)
        read = tr.ldap_attributes(rmap, Projection()) + [
            a.ldap
            for a in rmap.attributes
            if tr.readable(a)  # never a password hash
        ]
        linked = self._find_deref(rmap)
        found = self.find(rmap, rid, list(dict.fromkeys(read)), linked)
        assertion = self._check_version(rmap, found.entry, if_match)
        tr.check_required(rmap, body)
        ref_dns = self._ref_dns_for(rmap, body)
        new = tr.to_attributes(rmap, body, ref_dns, current=found.entry)
        changes: list[Change] = []
        for ldap_attr, maps in _writable_by_ldap(rmap).items():
            want = new.get(ldap_attr, [])
            have = list(found.entry.get(ldap_attr))
            a = maps[0]
            if not tr.readable(a):  # a password: set when given, never read nor compared
                if want:
                    changes.append(Change("replace", ldap_attr, tuple(want)))
                continue
            if a.codec.keep_when_absent and not want:
                continue  # e.g. AD's userAccountControl: a PUT without active leaves it
            if a.attr == "members":
                changes += self._member_delta(rmap, a, have, want)
                continue
            if a.is_reference and (a.multi or not want):
                want = want + self._hidden_refs(a, have)
            if _same(have, want, a):
                continue
            if a.mutability == "immutable" and have:
                raise Mutability(f"{a.path} is immutable")
            changes.append(Change("replace", ldap_attr, tuple(want)))
        new_rdn = tr.rdn_value(rmap, body)
        _attr, old_rdn, _parent = split_rdn(found.dn)
        written = self.write(
            rmap,
            found,
            changes,
            new_rdn if new_rdn != old_rdn else None,
            assertion,
            post_read=self._post_read(rmap, carried=bool(linked)),
        )
        return self._respond(rmap, found, written, base_url)

    def _member_delta(
        self, rmap: ResourceMap, a: AttributeMap, have: list[bytes], want: list[bytes]
    ) -> list[Change]:
        """A PUT's member changes: the visible members become exactly ``want``; a value SCIM
        does not show (a member outside the mapped bases, scope or filters, the directory's
        own refint placeholder) is kept, since the client could not have listed it."""
        placeholder = rmap.empty_member
        have_k = {normalize_dn(v.decode()): v for v in have}
        want_k = {normalize_dn(v.decode()): v for v in want}
        if placeholder:
            have_k.pop(normalize_dn(placeholder), None)
        adds = [v for k, v in want_k.items() if k not in have_k]
        gone = [v.decode() for k, v in have_k.items() if k not in want_k]
        visible = self.resolve_dns(gone, a.to)
        dels = [d.encode() for d in gone if normalize_dn(d) in visible]
        return self.member_changes(
            rmap,
            a,
            adds,
            dels,
            len(have_k) - len(dels) + len(adds),
            had_placeholder=any(
                normalize_dn(v.decode()) == normalize_dn(placeholder or "") for v in have
            ),
        )

    def _hidden_refs(self, a: AttributeMap, have: list[bytes]) -> list[bytes]:
        """The values of reference attribute ``a`` that SCIM does not show (a manager outside
        the mapped User base): a PUT keeps them — when the attribute is single-valued, only if
        the body gives none."""
        if not have:
            return []
        shown = self.resolve_dns([v.decode("utf-8", "replace") for v in have], a.to)
        return [v for v in have if normalize_dn(v.decode("utf-8", "replace")) not in shown]

    def member_changes(
        self,
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

    def rename(
        self, rmap: ResourceMap, dn: str, new_value: str, assertion: str | None = None
    ) -> str:
        try:
            if assertion:
                return self.directory.rename(
                    dn, rdn_of(rmap.rdn.ldap, new_value), assertion=assertion
                )
            return self.directory.rename(dn, rdn_of(rmap.rdn.ldap, new_value))
        except DirectoryError as exc:
            if exc.code == "entryAlreadyExists":
                raise Uniqueness(f"{rmap.rdn.source} {new_value!r} is already in use") from None
            raise

    def modify(
        self,
        dn: str,
        changes: list[Change],
        assertion: str | None = None,
        post_read: Sequence[str] | None = None,
    ) -> Modified:
        """Apply changes; a retry of an add of a present value or a delete of an absent one is
        a successful no-op (IdPs retry), so those values are dropped and the rest re-applied.
        Returns the changes the directory actually applied (what an undo must invert) and,
        with ``post_read``, the entry the modify that went through left (none when the retry
        found nothing left to apply: no modify carried the control)."""
        try:
            try:
                entry = self.directory.modify(dn, changes, assertion=assertion, post_read=post_read)
                return Modified(changes, entry)
            except DirectoryError as exc:
                if not exc.value_noop:
                    raise
                retry = self._drop_noops(dn, changes)
                if retry == changes:
                    raise
                entry = None
                if retry:
                    entry = self.directory.modify(
                        dn, retry, assertion=assertion, post_read=post_read
                    )
                return Modified(retry, entry)
        except DirectoryError as exc:
            if exc.code == "noSuchObject":
                raise self._missing(dn, exc) from None
            raise

    def _missing(self, dn: str, exc: DirectoryError) -> ScimError:
        """noSuchObject names either the target (404) or an entry a value refers to, e.g. a
        member or manager DN on directories that check references (400; RFC 7644 §3.12)."""
        if self.directory.read(dn, ["1.1"]) is None:
            return NotFound(f"the entry {dn} no longer exists")
        return InvalidValue(f"a referenced entry does not exist ({exc.message or exc.code})")

    def _drop_noops(self, dn: str, changes: list[Change]) -> list[Change]:
        out: list[Change] = []
        for ch in changes:
            if ch.op == "replace" or not ch.values:
                out.append(ch)
                continue
            keep = []
            current = self._dn_values(dn, ch) if len(ch.values) > NOOP_PROBES else None
            for v in ch.values:
                if current is not None:
                    present = normalize_dn(v.decode("utf-8", "replace")) in current
                else:
                    flt = f"({ch.attr}={escape_filter(v.decode('utf-8', 'replace'))})"
                    present = bool(self.directory.search(dn, flt, ["1.1"], scope="base").entries)
                if present != (ch.op == "add"):
                    keep.append(v)
            if keep:
                out.append(Change(ch.op, ch.attr, tuple(keep)))
        return out

    def _dn_values(self, dn: str, ch: Change) -> set[str] | None:
        """For a retry of many DN values (an IdP re-sending 5,000 members): the attribute's
        current values, read once, instead of one probe per value; None if not DN-valued."""
        if not any(
            a.is_reference and a.ldap.lower() == ch.attr.lower()
            for r in self.mapping.resources.values()
            for a in r.attributes
        ):
            return None
        entry = self.directory.read(dn, [ch.attr])
        values = entry.get(ch.attr) if entry else ()
        return {normalize_dn(v.decode("utf-8", "replace")) for v in values}

    def delete(self, name: str, rid: str, if_match: str | None = None) -> None:
        rmap = self.rmap(name)
        found = self.find(rmap, rid, [rmap.id.ldap, rmap.version])
        assertion = self._check_version(rmap, found.entry, if_match)
        # delete, or disable/strip groups/move: the mapping's deprovisioning policy says
        deprovision.delete(self, rmap, found, assertion)

    def patch(
        self,
        name: str,
        rid: str,
        body: Any,
        base_url: str,
        if_match: str | None = None,
        projection: Projection = DEFAULT,
    ) -> dict[str, Any]:
        """PATCH (RFC 7644 §3.5.2) answered with the resource: every operation is validated
        and planned before anything is written (translate.patch); the member list is read only
        for a replace or a remove of all members, or a general member filter, and then once.

        With a directory that offers them, adding a member to a group is three operations:
        the find (which also says, through matched values, whether the empty-group
        placeholder is there), the member id's lookup, and the modify, whose post-read gives
        the response."""
        if self._offload(body):
            return concurrency.offload(self.patch, name, rid, body, base_url, if_match, projection)
        rmap = self.rmap(name)
        linked = self._find_deref(rmap, projection)
        post_read = self._post_read(rmap, projection, carried=bool(linked))
        found, written = self._patch(rmap, rid, body, base_url, if_match, linked, post_read)
        return self._respond(rmap, found, written, base_url, projection)

    def patch_no_content(
        self, name: str, rid: str, body: Any, base_url: str, if_match: str | None = None
    ) -> str | None:
        """PATCH answered with 204 No Content (RFC 7644 §3.5.2): the same writes as
        :meth:`patch`, but nothing of the resource is read back or rendered, so a membership
        change costs the same for a 10- and a 50,000-member group.  Returns the new version
        (the ETag): from the modify's post-read of that one attribute where the directory
        offers it, else one base read of it; None when the mapping has no version."""
        if self._offload(body):
            return concurrency.offload(self.patch_no_content, name, rid, body, base_url, if_match)
        rmap = self.rmap(name)
        post_read = [rmap.version] if self.directory.capabilities.post_read else None
        found, written = self._patch(rmap, rid, body, base_url, if_match, (), post_read)
        moved = deprovision.after_update(self, rmap, written.dn, found.entry)
        entry = written.entry if moved is None else None
        if entry is None or not entry.get(rmap.version):
            entry = self.directory.read(moved or written.dn, [rmap.version])
        return tr.version_of(rmap, entry) if entry is not None else None

    @staticmethod
    def _offload(body: Any) -> bool:
        """On the event loop (python-ldap, bridge/concurrency.py) a large body is CPU for a while
        (planning, encoding, rendering): such a PATCH runs whole in the threadpool, where the
        client's LDAP calls block that thread only, so the loop keeps answering (/healthz,
        other requests); the common small PATCH stays on the loop."""
        from bridge.translate.patch import patch_size

        return concurrency.active() and patch_size(body) > OFFLOAD_SIZE

    def _patch(
        self,
        rmap: ResourceMap,
        rid: str,
        body: Any,
        base_url: str,
        if_match: str | None,
        linked: Sequence[Deref],
        post_read: Sequence[str] | None,
    ) -> tuple[Found, Written]:
        """Find, plan and write one PATCH; ``linked``: what the find dereferences for the
        response, ``post_read``: what the modify returns of the entry it leaves."""
        from bridge.translate.patch import may_add_members, plan_patch, read_attributes

        body = self._body(body)
        probe = self._placeholder_probe(rmap) if may_add_members(body) else None
        try:
            found = self.find(rmap, rid, read_attributes(rmap), linked, matched_values=probe)
        except DirectoryError as exc:
            if probe is None or exc.code not in CONTROL_REFUSED:
                raise
            # advertised in the root DSE but refused (an ACL, a proxy, a limit): find without
            # it, and plan_patch asks for the placeholder with a search of its own
            log.warning("matched values refused (%s): not asked again", exc.code)
            self._matched_values_refused = True
            probe = None
            found = self.find(rmap, rid, read_attributes(rmap), linked)
        assertion = self._check_version(rmap, found.entry, if_match)
        plan = plan_patch(
            self,
            rmap,
            found.entry,
            body,
            base_url,
            has_placeholder=_holds_placeholder(rmap, found.entry) if probe else None,
        )
        written = self.write(
            rmap,
            found,
            list(plan.changes),
            plan.new_rdn_value,
            assertion,
            list(plan.when_emptied) if plan.when_emptied is not None else None,
            post_read=post_read,
        )
        return found, written

    def _placeholder_probe(self, rmap: ResourceMap) -> dict[str, list[bytes]] | None:
        """For the find of a group whose mapping has an ``empty_member`` placeholder, where the
        directory offers matched values (RFC 3876): the member attribute, read with just the
        placeholder value (present or not), so planning needs no search of its own for it.
        None otherwise (:mod:`bridge.translate.patch` then asks the directory)."""
        member = rmap.member_map
        if member is None or not rmap.empty_member:
            return None
        if not self.directory.capabilities.matched_values or self._matched_values_refused:
            return None
        return {member.ldap: [rmap.empty_member.encode()]}

    def _post_read(
        self, rmap: ResourceMap, projection: Projection = DEFAULT, carried: bool = False
    ) -> list[str] | None:
        """The attributes a write asks back with its modify (RFC 4527 post-read) for the
        response, or None (read it back afterwards): where the directory has no post-read, and
        where the read-back brings more than the entry itself (the entries its references
        name, through the dereference control; AD's member GUIDs, through the extended-DN
        control), which the response would otherwise have to look up with searches — unless
        the find ``carried`` that dereference already (:meth:`_find_deref`)."""
        if not self._post_read_usable():
            return None
        if self.derefs(rmap, projection) and not carried:
            return None
        return tr.ldap_attributes(rmap, projection)

    def _post_read_usable(self) -> bool:
        """The directory offers post-read, and its entry is all a response needs: not with
        AD's extended-DN control, whose read-back brings the GUIDs of DN values."""
        caps = self.directory.capabilities
        return caps.post_read and OID_EXTENDED_DN not in caps.controls

    def _find_deref(self, rmap: ResourceMap, projection: Projection = DEFAULT) -> tuple[Deref, ...]:
        """The dereference a PUT/PATCH's find carries, so the response can come from the
        modify's post-read with no read-back: the entries a user's ``groups`` and ``manager``
        name (their ids and display names) come with the find.  Which groups the user is in
        is still taken from the post-read; a group the find did not bring (joined meanwhile)
        is looked up by :meth:`render` as usual.  Not for a group's ``members`` (the member
        list may be huge, and the find of a PATCH never reads it)."""
        if not self._post_read_usable():
            return ()
        specs = self.derefs(rmap, projection)
        member = rmap.member_map
        if member is not None and any(d.attr.lower() == member.ldap.lower() for d in specs):
            return ()
        return specs

    def _respond(
        self,
        rmap: ResourceMap,
        found: Found,
        written: Written,
        base_url: str,
        projection: Projection = DEFAULT,
    ) -> dict[str, Any]:
        """The resource after a PUT/PATCH: rendered from the entry the modify returned, unless
        the deprovisioning policy then changed it (or there is no such entry: read back)."""
        moved = deprovision.after_update(self, rmap, written.dn, found.entry)
        if moved is not None or written.entry is None:
            return self._read_back(rmap, moved or written.dn, base_url, projection)
        entry = written.entry
        if found.entry.linked:  # what the find dereferenced (_find_deref)
            entry = replace(entry, linked=found.entry.linked)
        return self.render(rmap, [entry], base_url, projection)[0]

    def write(
        self,
        rmap: ResourceMap,
        found: Found,
        changes: list[Change],
        new_rdn_value: str | None,
        assertion: str | None,
        when_emptied: list[Change] | None = None,
        *,
        post_read: Sequence[str] | None = None,
    ) -> Written:
        """One modify and, when the naming attribute changed, one rename; returns the DN (and,
        see ``post_read``, the entry).

        The modify goes first, carrying the If-Match assertion (RFC 4528) so a concurrent
        change fails it atomically; the rename follows (asserted itself when there is nothing to
        modify).  When the rename fails (the new name is taken) the modify is undone, so a
        request never leaves the entry half-written.  ``when_emptied`` is sent instead of
        ``changes`` if the directory refuses to leave a groupOfNames without members.

        ``post_read``: when the write is one modify (no rename after it), the modify asks for
        these attributes of the entry it leaves (``Written.entry``; RFC 4527)."""
        from bridge.service import integrity

        dn = found.dn
        if changes:
            changes = create.with_password_policy(self.mapping.dialect, rmap, changes)
            create.check_transport(self.directory, rmap, (c.attr for c in changes))
        if new_rdn_value is not None:
            changes = [c for c in changes if c.attr.lower() != rmap.rdn.ldap.lower()]
            self._check_free(rmap, dn, new_rdn_value)
        before = None
        secret = _write_only(rmap)
        if new_rdn_value is not None:
            post_read = None  # the rename changes the entry after the modify
            if changes:
                before = integrity.before_image(self.directory, dn, _readable(changes, secret))
        done = Modified([])
        if changes:
            try:
                done = self.modify(dn, changes, assertion, post_read)
            except DirectoryError as exc:
                if exc.code != "objectClassViolation" or when_emptied is None:
                    raise
                changes = when_emptied
                if new_rdn_value is not None:
                    before = integrity.before_image(self.directory, dn, _readable(changes, secret))
                done = self.modify(dn, changes, assertion, post_read)
        if new_rdn_value is None:
            return Written(dn, done.entry)
        try:
            return Written(self.rename(rmap, dn, new_rdn_value, None if changes else assertion))
        except (ScimError, DirectoryError) as exc:
            # a write-only attribute (a password) cannot be read into the before-image, so its
            # undo would be ``replace attr ()``, deleting it: it is left out of the undo, and
            # stays set as the request asked (the detail of a failed undo names it)
            undo = _readable(done.applied, secret)
            if undo and before is not None:
                self._undo(dn, undo, before, exc)
            raise

    def _check_free(self, rmap: ResourceMap, dn: str, new_rdn_value: str) -> None:
        """A rename onto a taken name is refused before anything is written (409); the undo
        in :meth:`write` only covers a name taken in between."""
        self._refuse_reserved(rmap, new_rdn_value)
        new_dn = f"{rdn_of(rmap.rdn.ldap, new_rdn_value)},{split_rdn(dn)[2]}"
        if normalize_dn(new_dn) == normalize_dn(dn):
            return  # a case-only rename
        if self.directory.read(new_dn, ["1.1"]) is not None:
            raise Uniqueness(f"{rmap.rdn.source} {new_rdn_value!r} is already in use")

    def _undo(
        self,
        dn: str,
        applied: list[Change],
        before: Entry,
        cause: ScimError | DirectoryError,
    ) -> None:
        """Compensate a modify whose follow-up rename failed; when that fails too, the error
        the client gets says exactly what was left (integrity.left_behind)."""
        from bridge.service import integrity

        try:
            self.directory.modify(dn, integrity.inverse(applied, before))
        except DirectoryError as undo_error:
            raise integrity.left_behind(cause, dn, applied, undo_error) from None

    def _read_back(
        self, rmap: ResourceMap, dn: str, base_url: str, projection: Projection = DEFAULT
    ) -> dict[str, Any]:
        attrs = tr.ldap_attributes(rmap, projection)
        entry = self._read_dn(rmap, dn, attrs, self.derefs(rmap, projection))
        return self.render(rmap, [entry], base_url, projection)[0]


def _with_values(entry: Entry, extra: Mapping[str, list[str]]) -> Entry:
    """``entry`` with attributes (lower-cased keys) it was not read with."""
    if not extra:
        return entry
    added = {k: [v.encode() for v in vs] for k, vs in extra.items()}
    return replace(entry, attrs={**entry.attrs, **added})


def _write_only(rmap: ResourceMap) -> frozenset[str]:
    """The LDAP attributes of ``rmap`` that are written but never read back (password codecs,
    ``returned: never``), lower-cased."""
    return frozenset(a.ldap.lower() for a in rmap.attributes if not tr.readable(a))


def _readable(changes: Sequence[Change], secret: frozenset[str]) -> list[Change]:
    """``changes`` without those of the write-only attributes ``secret``."""
    return [c for c in changes if c.attr.lower() not in secret]


def _holds_placeholder(rmap: ResourceMap, entry: Entry) -> bool:
    """Whether ``entry`` (found with :meth:`Service._placeholder_probe`) holds the group's
    ``empty_member`` placeholder.  Compared here too, so the answer holds even from a
    directory that returned every value."""
    member, placeholder = rmap.member_map, rmap.empty_member
    assert member is not None and placeholder
    key = normalize_dn(placeholder)
    return any(normalize_dn(v.decode("utf-8", "replace")) == key for v in entry.get(member.ldap))


def _display_attr(rmap: ResourceMap) -> str | None:
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


def _writable_by_ldap(rmap: ResourceMap) -> dict[str, list[AttributeMap]]:
    out: dict[str, list[AttributeMap]] = {}
    for a in rmap.attributes:
        if a.writable:
            out.setdefault(a.ldap, []).append(a)
    return out


def _same(have: Sequence[bytes], want: Sequence[bytes], a: AttributeMap) -> bool:
    if a.codec.binary:
        return list(have) == list(want)
    if a.is_reference:
        return {normalize_dn(v.decode()) for v in have} == {normalize_dn(v.decode()) for v in want}
    return sorted(have) == sorted(want)  # a case-only change is a change the client asked for


__all__ = ["BadRequest", "Found", "ListQuery", "ListResult", "Service"]
