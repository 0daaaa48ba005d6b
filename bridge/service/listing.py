"""Listing: list / filter / sort / page (RFC 7644 §3.4.2, RFC 9865 cursors), pushed down to the
directory: a VLV window where the directory offers VLV + server-side sort, else an RFC 2696 paged
walk, and a sort in the bridge where the directory has no sort control."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bridge.directory.base import Directory, Entry, SortKey, Window
from bridge.directory.syntax import normalize_dn
from bridge.errors import DirectoryError, InvalidFilter, InvalidValue, TooMany
from bridge.mapping.model import MappingConfig, ResourceMap
from bridge.scim.cursor import Cursors, derive_key, fingerprint
from bridge.scim.filter_parser import parse
from bridge.scim.projection import DEFAULT, Projection
from bridge.service.lookup import REF_BATCH, Lookup
from bridge.service.render import Renderer
from bridge.translate import entry as tr
from bridge.translate.filter import any_of, of_type, to_ldap, to_ldap_lenient
from bridge.translate.sort import sort_entries, sort_keys

log = logging.getLogger("bridge.service")
#: entries per VLV request: slapd applies the bind account's size limit (often 500) to a window
VLV_CHUNK = 500
#: VLV failures that mean "not for this request" rather than "the directory is broken"
VLV_REFUSED = frozenset(
    {"unavailableCriticalExtension", "unwillingToPerform", "adminLimitExceeded"}
)
#: the largest offset a VLV request carries (an INTEGER 0..maxInt, RFC 4511 §4.1.10 bounds);
#: a larger startIndex is past the end of any result set anyway
VLV_MAX_OFFSET = 2**31 - 1


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


class Lister:
    """The list use cases, reading through a :class:`Lookup` and rendering with a
    :class:`Renderer`."""

    def __init__(
        self,
        lookup: Lookup,
        renderer: Renderer,
        *,
        max_results: int = 1000,
        default_count: int = 100,
        cursor_key: bytes = b"",
    ):
        self.lookup = lookup
        self.renderer = renderer
        self.max_results = max_results
        self.default_count = default_count
        #: signs RFC 9865 cursors (bridge.scim.cursor.derive_key); equal on every replica
        self.cursor_key = cursor_key

    @property
    def directory(self) -> Directory:
        return self.lookup.directory

    @property
    def mapping(self) -> MappingConfig:
        return self.lookup.mapping

    def search(self, name: str, query: ListQuery, base_url: str) -> ListResult:
        """List / filter / sort / page (RFC 7644 §3.4.2, RFC 9865), pushed down to the directory.

        The page is a VLV window (one search whose cost does not grow with ``startIndex``) when
        the directory offers VLV + server-side sort, else an RFC 2696 paged walk that counts the
        matches reading no attributes and then reads only the page's entries.  ``count`` is
        capped at ``max_results`` (``filter.maxResults``: the most a response returns, RFC 7644
        §5); ``count=0`` returns only ``totalResults``.  ``cursor`` pages are signed offsets
        (:mod:`bridge.scim.cursor`)."""
        rmap = self.lookup.rmap(name)
        flt = rmap.base_filter
        if query.filter:
            fragment = to_ldap(
                rmap, query.filter, self.mapping, self.lookup.reference_dn, self.lookup.member_dns
            )
            flt = of_type(rmap, fragment)
        return self._list([(rmap, flt)], query, base_url)

    def search_all(self, query: ListQuery, base_url: str) -> ListResult:
        """``POST /.search`` (RFC 7644 §3.4.3): every resource type, Users then Groups, paged as
        one list.  An attribute a type does not map is absent on it (``userName`` on a Group);
        one that no type maps is a 400 naming it."""
        plans: list[tuple[ResourceMap, str]] = []
        missing: set[str] | None = None
        ast = parse(query.filter) if query.filter else None
        for rmap in self.mapping.resources.values():
            if ast is None:
                plans.append((rmap, rmap.base_filter))
                continue
            fragment, absent = to_ldap_lenient(
                rmap, ast, self.mapping, self.lookup.reference_dn, self.lookup.member_dns
            )
            missing = absent if missing is None else missing & absent
            plans.append((rmap, of_type(rmap, fragment)))
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
            resources += self.renderer.render(rmap, entries, base_url, query.projection)
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
                deref=self.lookup.derefs(rmap, projection) if count else (),
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
        return self.read_many(rmap, dns, attrs), total

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
        return self.read_many(rmap, page, attrs), len(ordered)

    def read_many(self, rmap: ResourceMap, dns: list[str], attrs: list[str]) -> list[Entry]:
        dn_attr = self.mapping.dialect.dn_attribute
        found: dict[str, Entry] = {}
        for i in range(0, len(dns), REF_BATCH):
            flt = any_of(dn_attr, dns[i : i + REF_BATCH])
            for e in self.directory.search(rmap.base_dn, flt, attrs, scope=rmap.scope).entries:
                found[normalize_dn(e.dn)] = e
        return [found[k] for k in (normalize_dn(d) for d in dns) if k in found]

    @property
    def cursors(self) -> Cursors:
        """RFC 9865 cursor signer; an unset key (a Service built without app settings, as in
        tests and tools) falls back to the derivation from an empty configuration."""
        return Cursors(self.cursor_key or derive_key(""))

    def _sort_keys(self, rmap: ResourceMap, query: ListQuery) -> tuple[SortKey, ...]:
        """The sort keys of a list, worked out once per (type, sortBy, order)."""
        reverse = query.sort_order.lower() == "descending"
        keys: tuple[SortKey, ...] = self.lookup.memo(
            rmap,
            ("sort", query.sort_by, reverse),
            lambda: sort_keys(rmap, self.mapping, query.sort_by, reverse),
        )
        return keys
