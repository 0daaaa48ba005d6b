"""The one pooled network client: everything the ldap3 and python-ldap drivers do the same way.

:class:`PooledDirectory` holds the checked settings, the slots of the pool, failover (with its
backoff and count), the retry loop, capability detection from the root DSE, the search dispatch
(one-match probe, VLV window, bounded search, RFC 2696 paged walk), the request controls (as
``(oid, critical, value)`` triples), entry building (AD range retrieval, extended DNs,
dereferenced entries) and the writes.  A driver (``ldap3_client``, ``libldap_client``) adds only
what differs between the two libraries: opening and binding a connection, sending one operation
and reading its result (the requests and answers of :mod:`bridge.directory.operations`), and
turning the library's errors into :class:`DirectoryError`.

So the two clients cannot drift apart again (python-ldap once lacked the TLS warnings and the
CA-file check, never counted a failover, and raised another error without a URL): the checks
(:mod:`bridge.directory.transport`) run here, for both.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from bridge import concurrency as greenio  # the event-loop adapter (bridge/concurrency.py)
from bridge.directory import controls, ranges
from bridge.directory.base import (
    OID_ASSERTION,
    OID_EXTENDED_DN,
    OID_MATCHED_VALUES,
    OID_PAGED,
    OID_POST_READ,
    OID_SORT,
    OID_VLV,
    Add,
    Capabilities,
    Delete,
    Directory,
    Entry,
    Modify,
    PoolStats,
    Rename,
    Search,
    SearchResult,
    SortKey,
)
from bridge.directory.connections import (
    EXTENDED_DN_ATTRS,
    ConnectionSettings,
    PoolTimeout,
    Slots,
    plain_dn,
    split_extended,
)
from bridge.directory.operations import SPENT, Answer, Ctrl, Found, SearchOp, Write, spend
from bridge.directory.syntax import parent_dn
from bridge.directory.transport import (
    Failover,
    check_settings,
    may_carry_secrets,
)
from bridge.errors import DirectoryError

C = TypeVar("C")
T = TypeVar("T")

_NO_ATTRS = ["1.1"]  # RFC 4511 §4.5.1.8: no attributes
_EXTENDED_DN: Ctrl = (OID_EXTENDED_DN, False, None)


class PooledDirectory(Directory, Generic[C]):
    """A bounded pool of connections of one LDAP library (``C``) behind the Directory seam."""

    #: the library's exception base classes, turned into DirectoryError by :meth:`_error`
    library_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, settings: ConnectionSettings):
        check_settings(settings)
        self.settings = settings
        #: idle connections with the monotonic time they were returned
        self._slots: Slots[tuple[C, float]] = Slots(settings.pool_size)
        self._failover = Failover(settings.urls, settings.server_backoff)
        self._caps: Capabilities | None = None

    # ------------------------------------------------------------------ the driver's part
    @abstractmethod
    def _open(self, url: str) -> C:
        """A bound connection to ``url``; every failure a DirectoryError (transient when the
        server did not answer as LDAP: TCP, TLS, timeout)."""

    @abstractmethod
    def _discard(self, conn: C) -> None:
        """Close ``conn``, whatever its state (never raises)."""

    @abstractmethod
    def _usable(self, conn: C, idle_since: float) -> bool:
        """False when a pooled connection must not be reused (closed by the server, idle too
        long: :func:`bridge.directory.connections.reusable`)."""

    @abstractmethod
    def _error(self, exc: BaseException, operation: str, dn: str) -> DirectoryError:
        """One of :attr:`library_errors` as a DirectoryError: the ONE place it is mapped."""

    @abstractmethod
    def _search(self, conn: C, op: SearchOp) -> Answer:
        """One search operation.  With ``op.size_limit`` a sizeLimitExceeded answer keeps the
        entries received before it (``op.partial``) and says so in ``Answer.status``; any
        other failure raises."""

    @abstractmethod
    def _add(self, conn: C, w: Write) -> Any:
        """Add ``w.attrs``; the post-read response control's value (bytes) or None."""

    @abstractmethod
    def _modify(self, conn: C, w: Write) -> Any:
        """Apply ``w.changes``; the post-read response control's value (bytes) or None."""

    @abstractmethod
    def _rename(self, conn: C, w: Write) -> None:
        """modify_dn to ``w.new_rdn`` (under ``w.new_superior``) with deleteoldrdn."""

    @abstractmethod
    def _delete(self, conn: C, w: Write) -> None:
        """Delete ``w.dn``."""

    # ------------------------------------------------------------------ pool
    @property
    def secure(self) -> bool:
        """Passwords may be sent: see :func:`bridge.directory.transport.may_carry_secrets`."""
        return may_carry_secrets(self.settings)

    def pool_stats(self) -> PoolStats:
        return PoolStats(
            size=self.settings.pool_size,
            in_use=self._slots.in_use,
            idle=self._slots.idle,
            failovers=self._failover.failovers,
            current_url=self._failover.current,
        )

    def _started(self, conn: C, start: Callable[[], None]) -> C:
        """``conn`` once ``start()`` (StartTLS, bind) succeeded; closed when it failed."""
        try:
            start()
        except BaseException:
            self._discard(conn)
            raise
        return conn

    def _connect(self) -> C:
        """Open and bind a connection to the first server that answers (transport.Failover)."""
        return self._failover.connect(self._open)

    def _take(self) -> tuple[C, float] | None:
        """A pool slot (and an idle connection, if any).  A cooperative call that finds every
        slot taken waits for one on the event loop (:meth:`Slots.wait`): its greenlet is
        suspended, no thread is held, and the connects of the requests holding the slots
        (in the loop's default executor) are never queued behind waiters."""
        timeout = self.settings.operation_timeout
        try:
            if not greenio.active():
                return self._slots.take(timeout)
            return greenio.await_(self._slots.wait(timeout))
        except PoolTimeout:
            raise DirectoryError("busy", "no free directory connection", operation="pool") from None

    @contextmanager
    def _connection(self) -> Iterator[C]:
        """A connection for one operation: an idle one checked before reuse (a restarted
        server closed it), else a new one.  It goes back to the pool afterwards unless it
        failed at the transport level, an unexpected error left it in doubt, or it was
        :func:`spend`-t."""
        idle = self._take()
        conn: C | None = None
        try:
            while idle is not None:
                if self._usable(*idle):
                    conn = idle[0]
                    break
                self._discard(idle[0])
                idle = self._slots.pop_idle()
            if conn is None:
                # connecting and binding block (up to connect_timeout on a dead server): in the
                # threadpool when the caller runs on the event loop
                conn = greenio.offload(self._connect) if greenio.active() else self._connect()
            yield conn
        except DirectoryError as exc:
            if exc.transient and conn is not None:
                self._discard(conn)
                conn = None
            raise
        except BaseException:
            if conn is not None:  # an unexpected error leaves the connection in doubt
                self._discard(conn)
                conn = None
            raise
        finally:
            if conn is not None and conn.__dict__.get(SPENT):
                self._discard(conn)
                conn = None
            self._slots.give((conn, time.monotonic()) if conn is not None else None)

    def _run(self, operation: str, dn: str, fn: Callable[[C], T], *, retry: bool = False) -> T:
        """Run ``fn`` on a pooled connection; library errors become DirectoryError here.

        Reads (``retry``) are retried once on a fresh connection after a transport failure (a
        restarted directory closes every pooled connection).  Writes are not: once a request
        may have reached the server, re-sending it could apply it twice.  Connection failures
        happen before anything is sent, and :meth:`_connect` has already tried every server,
        so they are not retried either."""
        attempts = 2 if retry else 1
        for attempt in range(attempts):  # timing and logging: directory/instrumented.py
            try:
                with self._connection() as conn:
                    try:
                        return fn(conn)
                    except self.library_errors as exc:
                        raise self._error(exc, operation, dn) from None
            except DirectoryError as exc:
                if exc.transient and exc.operation != "connect" and attempt + 1 < attempts:
                    continue
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        while (idle := self._slots.pop_idle()) is not None:
            self._discard(idle[0])

    # ------------------------------------------------------------------ capabilities
    @property
    def capabilities(self) -> Capabilities:
        # no lock: two first callers may both read the root DSE, which is harmless, whereas a
        # lock held across an LDAP wait would deadlock two greenlets on the loop thread
        caps = self._caps
        if caps is None:
            caps = self._caps = self._read_capabilities()
        return caps

    def _read_capabilities(self) -> Capabilities:
        def fn(conn: C) -> Capabilities:
            op = SearchOp("", "base", "(objectClass=*)", ["supportedControl"], [])
            found = self._search(conn, op)
            ctrls = {
                v.decode("ascii", "replace") if isinstance(v, bytes) else str(v)
                for _dn, attrs, _d in found.found
                for name, vals in attrs.items()
                if name.lower() == "supportedcontrol"
                for v in vals
            }
            return Capabilities(
                sort=OID_SORT in ctrls,
                vlv=OID_VLV in ctrls and OID_SORT in ctrls,
                paged=OID_PAGED in ctrls,
                assertion=OID_ASSERTION in ctrls,
                deref=controls.OID_DEREF in ctrls,
                post_read=OID_POST_READ in ctrls,
                matched_values=OID_MATCHED_VALUES in ctrls,
                controls=frozenset(ctrls),
            )

        return self._run("rootdse", "", fn, retry=True)

    def check(self) -> None:
        self._run(
            "whoami",
            "",
            lambda c: self._search(c, SearchOp("", "base", "(objectClass=*)", _NO_ATTRS, [])),
            retry=True,
        )

    # ------------------------------------------------------------------ reads
    def _read_controls(self, caps: Capabilities, extra: list[Ctrl]) -> list[Ctrl]:
        """Controls for a read: AD's extended-DN control when the server has it, so DN values
        (member, memberOf) carry their objectGUIDs (no lookup per member of a large group)."""
        if OID_EXTENDED_DN in caps.controls:
            return [*extra, _EXTENDED_DN]
        return extra

    def run(self, search: Search) -> SearchResult:
        caps = self.capabilities  # read the root DSE now, not while holding a connection
        attrs = list(search.attributes) or _NO_ATTRS
        extra: list[Ctrl] = []
        only = search.matched_values
        if only:  # first: it shapes the entries the other controls see (RFC 3876 §4)
            attrs = controls.with_matched(attrs, only)
            extra.append((OID_MATCHED_VALUES, True, controls.matched_values_value(attrs, only)))
        if search.deref and caps.deref:  # not critical: a server without it answers plainly
            extra.append((controls.OID_DEREF, False, controls.deref_value(search.deref)))
        base = search.base
        if search.window is not None:
            small = self._run(
                "search", base, lambda c: self._probe(c, caps, search, attrs, extra), retry=True
            )
            if small is not None:
                return small
            return self._run(
                "search", base, lambda c: self._vlv(c, caps, search, attrs, extra), retry=True
            )
        if search.scope == "base" or search.size_limit:
            ctrls = self._read_controls(caps, _sorted(search.sort) + extra)

            def once(conn: C) -> SearchResult:
                answer = self._search(conn, _op(search, attrs, ctrls, size_limit=search.size_limit))
                return SearchResult(self._entries(conn, answer.found))

            return self._run("search", base, once, retry=True)
        return SearchResult(self._walk(caps, search, attrs, extra))

    def stream(self, search: Search) -> Iterator[Entry]:
        """RFC 2696 paged search on one connection (cookies are bound to it), pages in order."""
        caps = self.capabilities
        yield from self._walk(caps, search, list(search.attributes) or _NO_ATTRS, [])

    def _walk(
        self, caps: Capabilities, search: Search, attrs: list[str], extra: list[Ctrl]
    ) -> list[Entry]:
        size = search.page_size or self.settings.page_size
        ctrls = self._read_controls(caps, _sorted(search.sort) + extra)

        def walk(conn: C) -> list[Entry]:
            out: list[Entry] = []
            cookie: bytes | None = None
            while True:
                answer = self._search(conn, _op(search, attrs, ctrls, paged=(size, cookie)))
                out.extend(self._entries(conn, answer.found))  # may read ranges on conn
                cookie = answer.cookie
                if not cookie:
                    return out

        return self._run("search", search.base, walk, retry=True)

    def _probe(
        self, conn: C, caps: Capabilities, search: Search, attrs: list[str], extra: list[Ctrl]
    ) -> SearchResult | None:
        """The answer to a VLV request over at most one match, without the VLV.

        Most filtered lists are IdP lookups (``userName eq "x"``, ``externalId eq "y"``) that
        match one entry or none.  A sort + VLV search makes slapd build and keep a sorted result
        set for it (and costs the connection, see :meth:`_vlv`); a plain search bounded to two
        entries answers the same question exactly: zero or one match needs no sorting, and the
        window holds that entry only if it starts at 1.  None means "more than one match".

        A third match makes the directory stop with sizeLimitExceeded; the entries it sent
        before are not needed, so the search is not sent again to keep them."""
        ctrls = self._read_controls(caps, extra)
        answer = self._search(conn, _op(search, attrs, ctrls, size_limit=2, partial=False))
        found = answer.found
        if answer.status == "sizeLimitExceeded" or len(found) > 1:
            return None
        window = search.window
        entries = self._entries(conn, found) if window is None or window.offset <= 1 else []
        return SearchResult(entries, len(found))

    def _vlv(
        self, conn: C, caps: Capabilities, search: Search, attrs: list[str], extra: list[Ctrl]
    ) -> SearchResult:
        window = search.window
        assert window is not None
        vlv: Ctrl = (OID_VLV, True, controls.vlv_value(window.offset, window.count))
        ctrls = self._read_controls(caps, [*_sorted(search.sort or (SortKey("cn"),)), vlv, *extra])
        # OpenLDAP's sssvlv keeps every VLV result set (the whole sorted list) as a session of
        # the connection until it is closed; a pooled connection would pile them up until slapd
        # answers busy ("Other sort requests already in progress").  Sending the context ID
        # back would page through the OLD sorted list, a stale result.  So the connection is
        # closed after a VLV search instead of returning to the pool.
        spend(conn)
        answer = self._search(conn, _op(search, attrs, ctrls))
        response = controls.decode_vlv(answer.vlv) if answer.vlv else None
        if answer.status == "virtualListViewError" and response is not None:
            # slapd: offsetRangeError (76) for an offset past the end; the count is still exact
            return SearchResult([], response[1])
        total = response[1] if response is not None and response[2] == 0 else None
        return SearchResult(self._entries(conn, answer.found), total)

    def _entries(self, conn: C, found: list[Found]) -> list[Entry]:
        """Entries with lower-cased keys; ranged attributes (AD's ``member;range=0-1499``) read
        to the end on the same connection (:mod:`ranges`); AD's extended-DN values split into
        DN + objectGUID; the entries its DN values name, when a dereference control brought
        them (``Entry.linked``)."""
        out = []
        for dn, attrs, deref in found:
            dn = plain_dn(dn) if dn.startswith("<") else dn
            if any(";range=" in name.lower() for name in attrs):
                entry = ranges.complete_ranges(
                    dn, attrs, lambda dn, attr: self._read_range(conn, dn, attr)
                )
            else:
                entry = {}
                for name, vals in attrs.items():
                    key = name.lower()
                    entry[key] = entry[key] + vals if key in entry else vals
            guids: dict[str, bytes] = {}
            for name in EXTENDED_DN_ATTRS.intersection(entry):
                vals = entry[name]
                if vals and vals[0][:6] == b"<GUID=":
                    entry[name] = [split_extended(v, guids) for v in vals]
            linked = controls.linked_entries([deref]) if isinstance(deref, bytes) else {}
            out.append(Entry(dn, entry, guids, linked))
        return out

    def _read_range(self, conn: C, dn: str, attr: str) -> Mapping[str, list[bytes]]:
        ctrls = self._read_controls(self.capabilities, [])
        found = self._search(conn, SearchOp(dn, "base", "(objectClass=*)", [attr], ctrls)).found
        if not found:
            raise DirectoryError(
                "noSuchObject", "entry vanished during range retrieval", dn=dn, operation="search"
            )
        return found[0][1]

    # ------------------------------------------------------------------ writes
    def run_add(self, op: Add) -> Entry | None:
        attrs = {k: list(v) for k, v in op.attributes.items() if v}
        w = Write(op.dn, _post_read(op.post_read), attrs=attrs)
        raw = self._run("add", op.dn, lambda c: self._add(c, w))
        return _post_read_entry(raw) if op.post_read is not None else None

    def run_modify(self, op: Modify) -> Entry | None:
        if not op.changes:
            return None
        w = Write(op.dn, _post_read(op.post_read), op.assertion, changes=op.changes)
        raw = self._run("modify", op.dn, lambda c: self._modify(c, w))
        return _post_read_entry(raw) if op.post_read is not None else None

    def run_rename(self, op: Rename) -> str:
        w = Write(op.dn, assertion=op.assertion, new_rdn=op.new_rdn, new_superior=op.new_superior)
        self._run("rename", op.dn, lambda c: self._rename(c, w))
        parent = op.new_superior or parent_dn(op.dn)
        return f"{op.new_rdn},{parent}" if parent else op.new_rdn

    def run_delete(self, op: Delete) -> None:
        w = Write(op.dn, assertion=op.assertion)
        self._run("delete", op.dn, lambda c: self._delete(c, w))


def _op(search: Search, attrs: list[str], ctrls: list[Ctrl], **kw: Any) -> SearchOp:
    return SearchOp(search.base, search.scope, search.filter, attrs, ctrls, **kw)


def _sorted(keys: Sequence[SortKey]) -> list[Ctrl]:
    """The server-side sort request control (RFC 2891, critical), when ``keys`` are given."""
    return [(OID_SORT, True, controls.sort_value(keys))] if keys else []


def _post_read(attributes: Sequence[str] | None) -> list[Ctrl]:
    """The post-read request control (RFC 4527; not critical: the write goes through on a
    server without it, and the caller reads the entry instead), when asked."""
    if attributes is None:
        return []
    return [(OID_POST_READ, False, controls.post_read_value(attributes))]


def _post_read_entry(raw: Any) -> Entry | None:
    """The entry of a write's post-read response control value, or None when there is none."""
    return controls.read_entry(raw) if isinstance(raw, bytes | bytearray) and raw else None
