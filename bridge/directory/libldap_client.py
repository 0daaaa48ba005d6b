"""The python-ldap directory client: OpenLDAP's C libldap behind the same seam as ldap3.

Chosen with ``BRIDGE_LDAP_CLIENT=libldap`` (``pip install scim-ldap-bridge[libldap]``).  It has the
semantics of :class:`~bridge.directory.ldap3_client.Ldap3Directory` — the behaviour suites run
against both — at a fraction of the client CPU: BER encoding, socket I/O and result parsing
happen in C with the GIL released, where ldap3 spends about a millisecond of Python per search.

* A bounded LIFO pool: an ``LDAPObject`` is used by one borrower at a time (python-ldap serialises
  calls per object, so sharing one would serialise the whole bridge).  A connection that fails
  at the transport level is discarded and replaced on next use, so the bridge recovers by itself
  when the directory restarts; reads are retried once on a fresh connection.
* Failover: :class:`~bridge.directory.pooled.Failover`, shared with the ldap3 client (so are
  the start-up checks of the settings: :func:`bridge.directory.pooled.check_settings`).
* Timeouts: ``OPT_NETWORK_TIMEOUT`` bounds the TCP connect, every result wait is bounded by the
  operation timeout (the connection is then discarded: its state is unknown).
* TLS: ``ldaps://`` or StartTLS, per-connection context (``OPT_X_TLS_NEWCTX``) with the CA file
  and ``OPT_X_TLS_REQUIRE_CERT`` DEMAND (or NEVER when verification is off).  libldap says
  "unknown error code" for every failed handshake: :func:`~bridge.directory.pooled.tls_failure`
  says why.
* Controls: paged results (libldap's C encoder), server-side sort, VLV, dereference, post-read
  and matched values (the BER values from :mod:`bridge.directory.controls`, shared with the
  ldap3 client), assertion (C encoder).
* Active Directory range retrieval: an attribute returned as ``member;range=0-1499`` is completed
  with base searches for ``member;range=1500-*`` until the server answers ``...-*``.

python-ldap exceptions become :class:`DirectoryError` in :meth:`LibldapDirectory._run` only, with
the names of :mod:`bridge.directory.results`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import ldap
from ldap.controls import DecodeControlTuples, RequestControl, ResponseControl
from ldap.controls.libldap import AssertionControl, SimplePagedResultsControl
from ldap.ldapobject import SimpleLDAPObject

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
    Capabilities,
    Change,
    Deref,
    Entry,
    Scope,
    SearchResult,
    SortKey,
    Window,
)
from bridge.directory.connections import (
    EXTENDED_DN_ATTRS,
    ConnectionSettings,
    PoolTimeout,
    plain_dn,
    reusable,
    split_extended,
)
from bridge.directory.pooled import PooledDirectory, connect_failure, scheme, uses_start_tls
from bridge.directory.results import result_name
from bridge.directory.syntax import parent_dn
from bridge.errors import DirectoryError

log = logging.getLogger("bridge.ldap")
T = TypeVar("T")

_SCOPES = {"base": ldap.SCOPE_BASE, "one": ldap.SCOPE_ONELEVEL, "sub": ldap.SCOPE_SUBTREE}
_OPS = {"add": ldap.MOD_ADD, "delete": ldap.MOD_DELETE, "replace": ldap.MOD_REPLACE}
_NO_ATTRS = ["1.1"]  # RFC 4511 §4.5.1.8: no attributes
_SPENT = "_bridge_spent"  # marks a connection that must not go back to the pool
_WATCH = "_bridge_watch"  # its greenio.Watch, once it has waited on the event loop


class _RawControl(ResponseControl):
    """A response control kept as its BER value (decoded by :mod:`controls` when needed)."""

    encodedControlValue: bytes = b""


#: the only response controls decoded; anything else is ignored (or refused when critical)
_RESPONSE_CONTROLS: dict[str, type[ResponseControl]] = {
    OID_PAGED: SimplePagedResultsControl,
    controls.OID_VLV_RESPONSE: _RawControl,
    controls.OID_SORT_RESPONSE: _RawControl,
    OID_POST_READ: _RawControl,
}
#: one search entry as received: (dn, attributes, its own controls as raw tuples)
_Found = tuple[str, dict[str, list[bytes]], list[tuple[str, int, bytes | None]]]


class LibldapDirectory(PooledDirectory[SimpleLDAPObject]):
    name = "libldap"
    #: results are polled without blocking inside greenio.run (see bridge/greenio.py)
    cooperative = greenio.AVAILABLE

    def __init__(self, settings: ConnectionSettings):
        super().__init__(settings)  # the shared start-up checks (pooled.check_settings)
        self._caps: Capabilities | None = None
        self._timeout = float(settings.operation_timeout)
        if settings.tls_hostname:
            log.warning(
                "libldap verifies the TLS name of the host in the LDAP URL; "
                "BRIDGE_LDAP_TLS_HOSTNAME"
                " (%s) is not used by this client: put that name in the URL",
                settings.tls_hostname,
            )

    # ------------------------------------------------------------------ connections
    def _connect(self) -> SimpleLDAPObject:
        """Open and bind a connection to the first server that answers (pooled.Failover)."""
        return self._failover.connect(self._open)

    def _open(self, url: str) -> SimpleLDAPObject:
        """A bound connection to ``url``; every failure a DirectoryError: the server's result
        (wrong password: not transient), or connectError when no LDAP answer came (TCP, TLS,
        timeout; as the ldap3 client reports), with TLS failures in words."""
        try:
            return self._bind(url)
        except ldap.LDAPError as exc:
            err = _error(exc, "bind", "")
            if _is_result(exc):
                raise err from None
            reason = connect_failure(url, self.settings, err.message, handshake=True)
            raise DirectoryError("connectError", reason, operation="connect") from None
        except ValueError as exc:  # python-ldap: "option error" building the TLS context
            reason = connect_failure(url, self.settings, f"cannot set up TLS: {exc}")
            raise DirectoryError("connectError", reason, operation="connect") from None

    def _bind(self, url: str) -> SimpleLDAPObject:
        s = self.settings
        conn = ldap.initialize(url)  # no I/O yet: libldap connects on the first operation
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, ldap.VERSION3)
        conn.set_option(ldap.OPT_REFERRALS, 0)  # AD returns referrals; never chase them
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, float(s.connect_timeout))
        conn.set_option(ldap.OPT_TIMEOUT, self._timeout)
        if scheme(url) == "ldaps" or uses_start_tls(url, s):
            if s.ca_file:
                conn.set_option(ldap.OPT_X_TLS_CACERTFILE, s.ca_file)
            conn.set_option(
                ldap.OPT_X_TLS_REQUIRE_CERT,
                ldap.OPT_X_TLS_DEMAND if s.verify else ldap.OPT_X_TLS_NEVER,
            )
            conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)  # must come last: builds the context
        try:
            if uses_start_tls(url, s):
                conn.start_tls_s()
            conn.simple_bind_s(s.bind_dn or "", s.bind_password or "")
        except BaseException:
            _close(conn)
            raise
        return conn

    def _take(self) -> tuple[SimpleLDAPObject, float] | None:
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
    def _connection(self) -> Iterator[SimpleLDAPObject]:
        idle = self._take()
        conn: SimpleLDAPObject | None = None
        while idle is not None:  # checked before reuse: a restarted server closed it
            if _reusable(idle, self.settings.idle_timeout):
                conn = idle[0]
                break
            _close(idle[0])
            idle = self._slots.pop_idle()
        try:
            if conn is None:
                # connecting and binding block (up to connect_timeout on a dead server): in the
                # threadpool when the caller runs on the event loop
                conn = greenio.offload(self._connect) if greenio.active() else self._connect()
            yield conn
        except DirectoryError as exc:
            if exc.transient and conn is not None:
                _close(conn)
                conn = None
            raise
        finally:
            if conn is not None and conn.__dict__.get(_SPENT):
                _close(conn)
                conn = None
            self._slots.give((conn, time.monotonic()) if conn is not None else None)

    def _run(
        self, operation: str, dn: str, fn: Callable[[SimpleLDAPObject], T], *, retry: bool = False
    ) -> T:
        """Run ``fn`` on a pooled connection; the ONE place python-ldap errors become bridge
        errors.  Reads are retried once on a fresh connection after a transport failure (a
        restarted directory closes every pooled connection)."""
        attempts = 2 if retry else 1
        for attempt in range(attempts):
            try:
                with self._connection() as conn:
                    try:
                        return fn(conn)
                    except ldap.LDAPError as exc:
                        raise _error(exc, operation, dn) from None
            except DirectoryError as exc:
                if exc.transient and attempt + 1 < attempts:
                    continue
                raise
        raise AssertionError("unreachable")

    def _result(self, conn: SimpleLDAPObject, msgid: int, all_: int, first: bool = True) -> Any:
        """``(type, data, msgid, controls)`` for ``msgid``, each search entry as ``(dn, attrs,
        its raw control tuples)``: blocking in a thread, or — inside :func:`greenio.run` —
        polled without blocking, the event loop serving other requests until the socket is
        readable (libldap consumes whatever it has buffered before it reports "not yet")."""
        if not greenio.active():
            return _result4(conn, msgid, all_, self._timeout)
        deadline = time.monotonic() + self._timeout
        try:
            if not first:  # libldap may hold the next messages already: look before waiting
                res = _result4(conn, msgid, all_, 0)
                if res[0] is not None:
                    return res
            while True:
                # a first answer cannot be there microseconds after the request left (and
                # libldap holds nothing unread on a connection only this request uses): wait
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ldap.TIMEOUT({"desc": "Timed out", "info": "no answer in time"})
                greenio.await_(_watch(conn).wait(left))
                res = _result4(conn, msgid, all_, 0)
                if res[0] is not None:
                    return res
        except BaseException as exc:
            if not isinstance(exc, ldap.LDAPError) or isinstance(exc, ldap.TIMEOUT):
                # an answer may still come: this connection must not serve anyone else
                conn.__dict__[_SPENT] = True
                with suppress(ldap.LDAPError):
                    conn.abandon_ext(msgid)
            raise

    def _read_controls(self, extra: list[RequestControl] | None = None) -> list[RequestControl]:
        """Controls for a read: AD's extended-DN control when the server has it, so DN values
        carry their objectGUIDs (as the ldap3 client asks)."""
        out = list(extra or [])
        if OID_EXTENDED_DN in self.capabilities.controls:
            out.append(RequestControl(OID_EXTENDED_DN, False, None))
        return out

    # ------------------------------------------------------------------ capabilities
    @property
    def capabilities(self) -> Capabilities:
        # no lock: two first callers may both read the root DSE, which is harmless, whereas a
        # lock held across an LDAP wait would deadlock two greenlets on the loop thread
        if self._caps is None:
            self._caps = self._read_capabilities()
        return self._caps

    def _read_capabilities(self) -> Capabilities:
        def fn(conn: SimpleLDAPObject) -> Capabilities:
            found, _ = self._search(conn, "", "base", "(objectClass=*)", ["supportedControl"])
            ctrls = {
                v.decode("ascii", "replace")
                for _dn, attrs, _c in found
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
            lambda c: self._search(c, "", "base", "(objectClass=*)", _NO_ATTRS),
            retry=True,
        )

    # ------------------------------------------------------------------ reads
    def _search(
        self,
        conn: SimpleLDAPObject,
        base: str,
        scope: Scope,
        filter: str,
        attrs: list[str],
        ctrls: list[RequestControl] | None = None,
        size_limit: int = 0,
        partial: bool = True,
    ) -> tuple[list[_Found], list[ResponseControl]]:
        """One search operation: (dn, attributes, entry controls) per entry (references
        dropped) and the response controls.  With ``size_limit`` the entries received before
        sizeLimitExceeded are kept (``partial``; else sizeLimitExceeded is raised).

        The answer is taken whole (one poll when it has all arrived).  The bridge bounds the
        searches it expects to fit (an id, a batch of ids, a uniqueness check), so the limit
        is rarely exceeded; when it is, libldap has dropped the entries with the error, and
        the search is sent again and read one message at a time to keep them."""
        msgid = conn.search_ext(
            base, _SCOPES[scope], filter, attrs, 0, ctrls, None, self._timeout, size_limit
        )
        try:
            _t, data, _m, rctrls = self._result(conn, msgid, 1)
            return [d for d in data if d[0] is not None], rctrls
        except ldap.SIZELIMIT_EXCEEDED:
            if not size_limit or not partial:  # the server's own limit, or nothing to keep
                raise
        msgid = conn.search_ext(
            base, _SCOPES[scope], filter, attrs, 0, ctrls, None, self._timeout, size_limit
        )
        out: list[_Found] = []
        first = True
        while True:
            try:
                rtype, data, _m, rctrls = self._result(conn, msgid, 0, first)
                first = False
            except ldap.SIZELIMIT_EXCEEDED:
                return out, []
            if rtype == ldap.RES_SEARCH_ENTRY:
                out.extend(d for d in data if d[0] is not None)
            elif rtype == ldap.RES_SEARCH_RESULT:
                return out, rctrls

    def _entries(self, conn: SimpleLDAPObject, found: list[_Found]) -> list[Entry]:
        """Entries with lower-cased keys; ranged attributes (AD's ``member;range=0-1499``) read
        to the end on the same connection (:mod:`ranges`, shared with the ldap3 client); AD's
        extended-DN values split into DN + objectGUID (as the ldap3 client does); the entries
        its DN values name, when a dereference control brought them (``Entry.linked``)."""
        out = []
        for dn, attrs, ectrls in found:
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
            linked = _linked(ectrls) if ectrls else {}
            out.append(Entry(dn, entry, guids, linked))
        return out

    def _read_range(self, conn: SimpleLDAPObject, dn: str, attr: str) -> dict[str, list[bytes]]:
        found, _ = self._search(
            conn, dn, "base", "(objectClass=*)", [attr], self._read_controls() or None
        )
        if not found:
            raise DirectoryError(
                "noSuchObject", "entry vanished during range retrieval", dn=dn, operation="search"
            )
        return found[0][1]

    def search(
        self,
        base: str,
        filter: str,
        attributes: Sequence[str],
        *,
        scope: Scope = "sub",
        size_limit: int = 0,
        sort: Sequence[SortKey] = (),
        window: Window | None = None,
        deref: Sequence[Deref] = (),
        matched_values: Mapping[str, Sequence[bytes]] | None = None,
    ) -> SearchResult:
        attrs = list(attributes) or _NO_ATTRS
        extra: list[RequestControl] = []
        if matched_values:  # first: it shapes the entries the other controls see (RFC 3876 §4)
            attrs = controls.with_matched(attrs, matched_values)
            value = controls.matched_values_value(attrs, matched_values)
            extra.append(RequestControl(OID_MATCHED_VALUES, True, value))
        if deref and self.capabilities.deref:
            extra += _deref(deref)
        if window is not None:
            small = self._run(
                "search",
                base,
                lambda c: self._probe(c, base, filter, attrs, scope, window, extra),
                retry=True,
            )
            if small is not None:
                return small
            return self._run(
                "search",
                base,
                lambda c: self._vlv(c, base, filter, attrs, scope, sort, window, extra),
                retry=True,
            )
        if scope == "base" or size_limit:

            def once(conn: SimpleLDAPObject) -> SearchResult:
                ctrls = self._read_controls(([_sort(sort)] if sort else []) + extra) or None
                found, _ = self._search(conn, base, scope, filter, attrs, ctrls, size_limit)
                return SearchResult(self._entries(conn, found))

            return self._run("search", base, once, retry=True)
        return SearchResult(list(self._iter(base, filter, attrs, scope, 0, sort, extra)))

    def iter_search(
        self,
        base: str,
        filter: str,
        attributes: Sequence[str],
        *,
        scope: Scope = "sub",
        page_size: int = 0,
        sort: Sequence[SortKey] = (),
    ) -> Iterator[Entry]:
        """RFC 2696 paged search on one connection (cookies are bound to it), pages in order."""
        return self._iter(base, filter, list(attributes) or _NO_ATTRS, scope, page_size, sort, [])

    def _iter(
        self,
        base: str,
        filter: str,
        attrs: list[str],
        scope: Scope,
        page_size: int,
        sort: Sequence[SortKey],
        extra: list[RequestControl],
    ) -> Iterator[Entry]:
        size = page_size or self.settings.page_size

        def walk(conn: SimpleLDAPObject) -> list[Entry]:
            out: list[Entry] = []
            paged = SimplePagedResultsControl(True, size=size, cookie=b"")
            while True:
                ctrls = self._read_controls([paged, *([_sort(sort)] if sort else []), *extra])
                found, rctrls = self._search(conn, base, scope, filter, attrs, ctrls)
                out.extend(self._entries(conn, found))
                cookie = next(
                    (c.cookie for c in rctrls if c.controlType == OID_PAGED),
                    None,
                )
                if not cookie:
                    return out
                paged.cookie = cookie

        yield from self._run("search", base, walk, retry=True)

    def _probe(
        self,
        conn: SimpleLDAPObject,
        base: str,
        filter: str,
        attrs: list[str],
        scope: Scope,
        window: Window,
        extra: list[RequestControl],
    ) -> SearchResult | None:
        """The answer to a VLV request over at most one match, without the VLV.

        Most filtered lists are IdP lookups (``userName eq "x"``, ``externalId eq "y"``) that
        match one entry or none.  A sort + VLV search makes slapd build and keep a sorted result
        set for it (and costs the connection, see :meth:`_vlv`); a plain search bounded to two
        entries answers the same question exactly: zero or one match needs no sorting, and the
        window holds that entry only if it starts at 1.  None means "more than one match".

        A third match makes the directory stop with sizeLimitExceeded; the entries it sent
        before are not needed, so the search is not sent again to keep them."""
        ctrls = self._read_controls(extra) or None
        try:
            found, _ = self._search(conn, base, scope, filter, attrs, ctrls, 2, partial=False)
        except ldap.SIZELIMIT_EXCEEDED:
            return None
        if len(found) > 1:
            return None
        entries = self._entries(conn, found) if window.offset <= 1 else []
        return SearchResult(entries, len(found))

    def _vlv(
        self,
        conn: SimpleLDAPObject,
        base: str,
        filter: str,
        attrs: list[str],
        scope: Scope,
        sort: Sequence[SortKey],
        window: Window,
        extra: list[RequestControl],
    ) -> SearchResult:
        ctrls = self._read_controls(
            [
                _sort(sort or (SortKey("cn"),)),
                RequestControl(OID_VLV, True, controls.vlv_value(window.offset, window.count)),
                *extra,
            ]
        )
        # OpenLDAP's sssvlv keeps every VLV result set (the whole sorted list) as a session of
        # the connection until it is closed; a pooled connection would pile them up until slapd
        # answers busy ("Other sort requests already in progress").  Sending the context ID
        # back would page through the OLD sorted list, a stale result.  So the connection is
        # closed after a VLV search instead of returning to the pool.
        conn.__dict__[_SPENT] = True
        try:
            found, rctrls = self._search(conn, base, scope, filter, attrs, ctrls)
        except ldap.VLV_ERROR as exc:
            # slapd: offsetRangeError (76) for an offset past the end; the count is still exact
            info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
            for oid, _crit, value in info.get("ctrls") or ():
                if oid == controls.OID_VLV_RESPONSE and value:
                    return SearchResult([], controls.decode_vlv(value)[1])
            raise
        total = None
        for c in rctrls:
            if c.controlType == controls.OID_VLV_RESPONSE:
                _pos, count, result = controls.decode_vlv(c.encodedControlValue)
                total = count if result == 0 else None
        return SearchResult(self._entries(conn, found), total)

    # ------------------------------------------------------------------ writes
    def _wait(self, conn: SimpleLDAPObject, msgid: int) -> list[ResponseControl]:
        """The response controls of the write ``msgid``, once it succeeded."""
        return list(self._result(conn, msgid, 1)[3])

    def add(
        self,
        dn: str,
        attributes: Mapping[str, Sequence[bytes]],
        *,
        post_read: Sequence[str] | None = None,
    ) -> Entry | None:
        modlist = [(k, list(v)) for k, v in attributes.items() if v]
        ctrls = _post_read(post_read) if post_read is not None else None

        def fn(c: SimpleLDAPObject) -> Entry | None:
            rctrls = self._wait(c, c.add_ext(dn, modlist, ctrls))
            return _post_read_entry(rctrls) if post_read is not None else None

        return self._run("add", dn, fn)

    def modify(
        self,
        dn: str,
        changes: Sequence[Change],
        *,
        assertion: str | None = None,
        post_read: Sequence[str] | None = None,
    ) -> Entry | None:
        if not changes:
            return None
        modlist = [(_OPS[ch.op], ch.attr, list(ch.values) or None) for ch in changes]
        ctrls: list[RequestControl] = [AssertionControl(True, assertion)] if assertion else []
        if post_read is not None:
            ctrls += _post_read(post_read)

        def fn(c: SimpleLDAPObject) -> Entry | None:
            rctrls = self._wait(c, c.modify_ext(dn, modlist, ctrls or None))
            return _post_read_entry(rctrls) if post_read is not None else None

        return self._run("modify", dn, fn)

    def rename(
        self,
        dn: str,
        new_rdn: str,
        new_superior: str | None = None,
        *,
        assertion: str | None = None,
    ) -> str:
        ctrls = [AssertionControl(True, assertion)] if assertion else None

        def fn(c: SimpleLDAPObject) -> str:
            self._wait(c, c.rename(dn, new_rdn, new_superior, 1, ctrls))
            parent = new_superior or parent_dn(dn)
            return f"{new_rdn},{parent}" if parent else new_rdn

        return self._run("rename", dn, fn)

    def delete(self, dn: str, *, assertion: str | None = None) -> None:
        ctrls = [AssertionControl(True, assertion)] if assertion else None
        self._run("delete", dn, lambda c: self._wait(c, c.delete_ext(dn, ctrls)))

    def close(self) -> None:
        while (idle := self._slots.pop_idle()) is not None:
            _close(idle[0])


def _reusable(idle: tuple[SimpleLDAPObject, float], idle_timeout: float) -> bool:
    try:
        fd = idle[0].fileno()
    except (ldap.LDAPError, AttributeError):
        return False
    return reusable(fd, idle[1], idle_timeout)


def _result4(conn: SimpleLDAPObject, msgid: int, all_: int, timeout: float) -> Any:
    """python-ldap's ``result4(add_ctrls=1)`` without its wrapper, which fails on a poll that
    finds nothing yet (timeout 0) and decodes every entry control we do not use: entries come
    as ``(dn, attrs, [(oid, critical, value)])``, the result's controls decoded."""
    res = conn._ldap_call(conn._l.result4, msgid, all_, timeout, 1, 0, 0)
    if res is None or res[0] is None:
        return None, None, None, []
    rtype, data, rmsgid, rctrls = res[:4]
    return rtype, data, rmsgid, DecodeControlTuples(rctrls, _RESPONSE_CONTROLS) if rctrls else []


def _linked(ectrls: list[tuple[str, int, bytes | None]]) -> dict[str, dict[str, list[bytes]]]:
    """normalized DN -> attributes of the entries a dereference control brought along."""
    return controls.linked_entries(
        value for oid, _critical, value in ectrls if oid == controls.OID_DEREF and value
    )


def _deref(specs: Sequence[Deref]) -> list[RequestControl]:
    """The dereference request control (not critical: a server without it answers plainly)."""
    return [RequestControl(controls.OID_DEREF, False, controls.deref_value(specs))]


def _post_read(attributes: Sequence[str]) -> list[RequestControl]:
    """The post-read request control (RFC 4527; not critical: the write goes through on a
    server without it, and the caller reads the entry instead)."""
    return [RequestControl(OID_POST_READ, False, controls.post_read_value(attributes))]


def _post_read_entry(rctrls: Sequence[ResponseControl]) -> Entry | None:
    """The entry of a write's post-read response control, or None when there is none."""
    raw = next((r.encodedControlValue for r in rctrls if r.controlType == OID_POST_READ), b"")
    return controls.read_entry(raw) if raw else None


def _sort(keys: Sequence[SortKey]) -> RequestControl:
    return RequestControl(OID_SORT, True, controls.sort_value(keys))


def _is_result(exc: ldap.LDAPError) -> bool:
    """True for an LDAP result from the server (a non-negative code), not a local failure."""
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    code = info.get("result")
    return isinstance(code, int) and code >= 0


def _error(exc: ldap.LDAPError, operation: str, dn: str) -> DirectoryError:
    """python-ldap exception -> DirectoryError with the RFC 4511 result name."""
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    code = info.get("result")
    if not isinstance(code, int):
        code = getattr(exc, "errnum", None)
    message = str(info.get("info") or info.get("desc") or type(exc).__name__)
    return DirectoryError(result_name(code), message, dn=dn, operation=operation)


def _watch(conn: SimpleLDAPObject) -> greenio.Watch:
    """The connection's socket readiness on the event loop, registered once (greenio.Watch)."""
    watch = conn.__dict__.get(_WATCH)
    if watch is None:
        watch = conn.__dict__[_WATCH] = greenio.Watch(conn.fileno())
    return watch


def _close(conn: SimpleLDAPObject) -> None:
    watch = conn.__dict__.get(_WATCH)
    if watch is not None:  # unregistered before the descriptor is closed (and maybe reused)
        watch.close()
    with suppress(Exception):
        conn.unbind_ext()
