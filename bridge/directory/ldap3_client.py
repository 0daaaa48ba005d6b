"""The ldap3 directory client: a bounded pool of synchronous connections with failover.

ldap3's SYNC connections are not thread-safe, so each operation borrows one connection from a
bounded pool (at most ``pool_size`` exist at once).  Connections and servers are managed here
rather than by ldap3's ServerPool, which keeps a reference to every Connection ever made (a leak
when connections are recycled for months), sleeps ``POOLING_LOOP_TIMEOUT`` (10 s) inside a
request when every server is down, and only switches servers when a connection is opened.

* Failover: ``urls`` are tried in order; a server that fails to connect is moved to the back of
  the order for ``server_backoff`` seconds (never skipped: when all are down all are tried, so
  the bridge recovers as soon as any comes back).  Each switch to another server is counted
  (``failovers``) and logged.
* Recovery: a pooled connection is checked before use and discarded when the server closed it
  (restart, idle timeout, Notice of Disconnection: the socket is readable while no request is
  outstanding), when it has been idle longer than ``idle_timeout`` (firewalls drop idle TCP
  silently; AD closes idle LDAP connections after 900 s), or after a transport error.  So a
  directory restart costs no failed request, and the bridge never needs a restart.
* TLS: ``ldaps://`` URLs or StartTLS; the certificate chain is verified against ``ca_file``
  (system store when unset) and the certificate must name the host (or ``tls_hostname``).
  Turning verification off needs ``verify=False`` and is logged as a warning.

All ldap3 exceptions and result codes are translated to :class:`DirectoryError` in
:meth:`Ldap3Directory._run` and :meth:`Ldap3Directory._connect` — nowhere else.
"""

from __future__ import annotations

import logging
import math
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ldap3
from ldap3.core import exceptions as lx
from ldap3.core.results import RESULT_CODES

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
    Directory,
    Entry,
    PoolStats,
    Scope,
    SearchResult,
    SortKey,
    Window,
)
from bridge.directory.connections import (
    EXTENDED_DN_ATTRS,
    PoolTimeout,
    Slots,
    plain_dn,
    reusable,
    split_extended,
)
from bridge.directory.connections import (
    ConnectionSettings as ConnectionSettings,  # re-exported: the settings of this client
)
from bridge.directory.syntax import parent_dn
from bridge.errors import ConfigError, DirectoryError, Problem

log = logging.getLogger("bridge.ldap")

# ldap3 2.9.1 has no name for result 76 and crashes (KeyError) decoding it; slapd's sssvlv
# returns it for a VLV offset beyond the end of the list.
RESULT_CODES.setdefault(76, "virtualListViewError")
T = TypeVar("T")

_SCOPES = {"base": ldap3.BASE, "one": ldap3.LEVEL, "sub": ldap3.SUBTREE}
_OPS = {"add": ldap3.MODIFY_ADD, "delete": ldap3.MODIFY_DELETE, "replace": ldap3.MODIFY_REPLACE}


_TRANSPORT = (
    lx.LDAPSocketOpenError,
    lx.LDAPSocketReceiveError,
    lx.LDAPSocketSendError,
    lx.LDAPSessionTerminatedByServerError,
    lx.LDAPSocketCloseError,
    lx.LDAPCommunicationError,
)


@dataclass
class _Server:
    """One directory server and its failover state."""

    url: str
    server: ldap3.Server
    down_until: float = 0.0
    last_error: str = ""


class Ldap3Directory(Directory):
    name = "ldap3"

    def __init__(self, settings: ConnectionSettings):
        if not settings.urls:
            raise ConfigError([Problem("BRIDGE_LDAP_URL", "no directory URL given")])
        self.settings = settings
        self._check_tls_settings()
        #: idle connections with the monotonic time they were returned
        self._slots: Slots[tuple[ldap3.Connection, float]] = Slots(settings.pool_size)
        self._servers = [_Server(url, self._make_server(url)) for url in settings.urls]
        self._state_lock = threading.Lock()
        self._failovers = 0
        self._current: str | None = None
        self._caps: Capabilities | None = None
        self._caps_lock = threading.Lock()

    # ------------------------------------------------------------------ TLS
    def _check_tls_settings(self) -> None:
        s = self.settings
        tls_used = s.start_tls or any(u.lower().startswith("ldaps://") for u in s.urls)
        if s.ca_file and not os.access(s.ca_file, os.R_OK):
            raise ConfigError([Problem("BRIDGE_LDAP_CA_FILE", f"cannot read {s.ca_file}")])
        if tls_used and not s.verify:
            log.warning(
                "TLS certificate verification is OFF (BRIDGE_LDAP_TLS_VERIFY=false): the bind "
                "password can be sent to anyone who intercepts the connection",
                extra={"urls": list(s.urls)},
            )
        plain = [u for u in s.urls if not u.lower().startswith(("ldaps://", "ldapi://"))]
        if s.bind_password and plain and not s.start_tls:
            remote = [u for u in plain if not _loopback(u)]
            if remote:
                log.warning(
                    "the bind password is sent in clear text: use ldaps:// or "
                    "BRIDGE_LDAP_STARTTLS=true",
                    extra={"urls": remote},
                )

    def _tls(self) -> ldap3.Tls:
        s = self.settings
        valid_names = [s.tls_hostname] if s.tls_hostname else None
        return ldap3.Tls(
            validate=ssl.CERT_REQUIRED if s.verify else ssl.CERT_NONE,
            ca_certs_file=s.ca_file,
            valid_names=valid_names,
            version=ssl.PROTOCOL_TLS_CLIENT if s.verify else None,
        )

    def _make_server(self, url: str) -> ldap3.Server:
        use_ssl = url.lower().startswith("ldaps://")
        return ldap3.Server(
            url,
            use_ssl=use_ssl,
            get_info=ldap3.NONE,
            connect_timeout=self.settings.connect_timeout,
            tls=self._tls() if use_ssl or self.settings.start_tls else None,
        )

    # ------------------------------------------------------------------ connections
    def _open(self, server: ldap3.Server) -> ldap3.Connection:
        s = self.settings
        conn = ldap3.Connection(
            server,
            user=s.bind_dn or None,
            password=s.bind_password or None,
            client_strategy=ldap3.SYNC,
            raise_exceptions=False,
            read_only=False,
            # ldap3 packs it with struct "LL" (SO_RCVTIMEO): a float raises struct.error
            receive_timeout=max(1, math.ceil(s.operation_timeout)),
            # Range retrieval is ours (directory/ranges.py): ldap3's loop truncates silently when
            # a follow-up read fails.  return_empty_attributes=False: ldap3 2.9.1 raises
            # KeyError on ";range=" answers otherwise (tests/integration/SAMBA.md).
            auto_range=False,
            return_empty_attributes=False,
        )
        _keep_post_read_raw(conn)
        try:
            conn.open()
            if s.start_tls and not server.ssl:
                conn.start_tls()  # raises LDAPStartTLSError (e.g. certificate mismatch)
                if not conn.tls_started:
                    raise DirectoryError("connectError", "StartTLS failed", operation="starttls")
            if not conn.bind():
                result = conn.result or {}
                code = result.get("description") or "invalidCredentials"
                raise DirectoryError(code, result.get("message", ""), operation="bind")
        except BaseException:
            _close(conn)
            raise
        return conn

    def _connect(self) -> ldap3.Connection:
        """Open and bind a connection to the first server that answers (see module doc)."""
        now = time.monotonic()
        with self._state_lock:
            order = sorted(self._servers, key=lambda srv: srv.down_until > now)  # stable
        errors: list[str] = []
        for srv in order:
            # ldap3 remembers a failed address for RESET_AVAILABILITY_TIMEOUT (5 s) and then
            # refuses to even try it ("invalid server address"): the backoff is ours to decide
            srv.server.reset_availability()
            try:
                conn = self._open(srv.server)
            except DirectoryError as exc:
                # a refused bind (wrong credentials) is wrong on every replica: no failover
                if not exc.transient or exc.operation == "bind":
                    raise
                reason = exc.message or exc.code
            except Exception as exc:  # ldap3 raises socket, ssl, struct errors here too
                reason = f"{type(exc).__name__}: {exc}"
            else:
                self._connected(srv)
                return conn
            with self._state_lock:
                srv.down_until = time.monotonic() + self.settings.server_backoff
                srv.last_error = reason
            errors.append(f"{srv.url}: {reason}")
            log.warning("directory server unreachable", extra={"url": srv.url, "error": reason})
        raise DirectoryError("connectError", "; ".join(errors), operation="connect")

    def _connected(self, srv: _Server) -> None:
        with self._state_lock:
            srv.down_until = 0.0
            srv.last_error = ""
            # the first connection counts too when it is not to the first URL (the preferred
            # server was down from the start)
            previous = self._current or self._servers[0].url
            self._current = srv.url
            if previous == srv.url:
                return
            self._failovers += 1
        log.warning("directory failover", extra={"from_url": previous, "to_url": srv.url})

    def _usable(self, conn: ldap3.Connection, idle_since: float) -> bool:
        """False when a pooled connection must not be reused (closed by the server or idle
        too long).  After a failback, connections to the other (live) server stay in use until
        they idle out."""
        if conn.closed or conn.socket is None:
            return False
        return reusable(conn.socket, idle_since, self.settings.idle_timeout)

    def _borrow(self, idle: tuple[ldap3.Connection, float] | None) -> ldap3.Connection:
        while idle is not None:
            conn, idle_since = idle
            if self._usable(conn, idle_since):
                return conn
            _close(conn)
            idle = self._slots.pop_idle()
        return self._connect()

    @contextmanager
    def _connection(self) -> Iterator[ldap3.Connection]:
        try:
            idle = self._slots.take(self.settings.operation_timeout)
        except PoolTimeout:
            raise DirectoryError("busy", "no free directory connection", operation="pool") from None
        conn: ldap3.Connection | None = None
        try:
            conn = self._borrow(idle)
            yield conn
        except DirectoryError as exc:
            if exc.transient and conn is not None:
                _close(conn)
                conn = None
            raise
        except BaseException:
            if conn is not None:  # an unexpected error leaves the connection in doubt
                _close(conn)
                conn = None
            raise
        finally:
            self._slots.give((conn, time.monotonic()) if conn is not None else None)

    def pool_stats(self) -> PoolStats:
        with self._state_lock:
            return PoolStats(
                size=self.settings.pool_size,
                in_use=self._slots.in_use,
                idle=self._slots.idle,
                failovers=self._failovers,
                current_url=self._current,
            )

    def _run(
        self, operation: str, dn: str, fn: Callable[[ldap3.Connection], T], *, retry: bool = False
    ) -> T:
        """Run ``fn`` on a pooled connection; the ONE place ldap3 errors become bridge errors.

        Reads (``retry``) are retried once on a fresh connection after a transport failure.
        Writes are not: once a request may have reached the server, re-sending it could apply
        it twice.  Connection failures happen before anything is sent, and ``_connect`` has
        already tried every server, so they are not retried either."""
        attempts = 2 if retry else 1
        for attempt in range(attempts):  # timing and logging: directory/instrumented.py
            try:
                with self._connection() as conn:
                    try:
                        return fn(conn)
                    except _TRANSPORT as exc:
                        raise DirectoryError(
                            "serverDown", type(exc).__name__, dn=dn, operation=operation
                        ) from None
                    except lx.LDAPResponseTimeoutError:
                        raise DirectoryError(
                            "timeout", "no answer in time", dn=dn, operation=operation
                        ) from None
                    except _CLIENT_SIDE as exc:  # refused by ldap3 before anything was sent
                        raise DirectoryError(
                            _client_side_code(exc), str(exc)[:200], dn=dn, operation=operation
                        ) from None
                    except lx.LDAPException as exc:
                        raise DirectoryError(
                            "other", type(exc).__name__, dn=dn, operation=operation
                        ) from None
            except DirectoryError as exc:
                if exc.transient and exc.operation != "connect" and attempt + 1 < attempts:
                    continue
                raise
        raise AssertionError("unreachable")

    @staticmethod
    def _check(conn: ldap3.Connection, ok: bool, operation: str, dn: str) -> None:
        if ok:
            return
        result = conn.result or {}
        code = result.get("description") or "other"
        raise DirectoryError(code, result.get("message", ""), dn=dn, operation=operation)

    @property
    def secure(self) -> bool:
        """Every URL is ldaps://, or StartTLS is required on each connection."""
        s = self.settings
        return bool(s.urls) and (
            s.start_tls or all(u.lower().startswith("ldaps://") for u in s.urls)
        )

    # ------------------------------------------------------------------ capabilities
    @property
    def capabilities(self) -> Capabilities:
        if self._caps is None:
            with self._caps_lock:
                if self._caps is None:
                    self._caps = self._read_capabilities()
        return self._caps

    def _read_capabilities(self) -> Capabilities:
        def fn(conn: ldap3.Connection) -> Capabilities:
            ok = conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["supportedControl"])
            self._check(conn, ok or conn.result.get("result") == 0, "rootdse", "")
            ctrls = {
                v.decode() if isinstance(v, bytes) else str(v)
                for e in conn.response or []
                if e.get("type") == "searchResEntry"
                for v in e.get("raw_attributes", {}).get("supportedControl", [])
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
            lambda conn: conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["1.1"]),
            retry=True,
        )

    # ------------------------------------------------------------------ reads
    def _entries(self, conn: ldap3.Connection) -> list[Entry]:
        """The entries of the last search on ``conn``; ranged attributes (AD's
        ``member;range=0-1499``) are read to the end on the same connection."""
        items = [i for i in conn.response or [] if i.get("type") == "searchResEntry"]
        out = []
        for item in items:
            raw = item.get("raw_attributes", {})
            dn = plain_dn(item["dn"])
            if any(";range=" in name.lower() for name in raw):
                attrs = ranges.complete_ranges(
                    dn, raw, lambda dn, attr: self._read_range(conn, dn, attr)
                )
            else:
                attrs = {}
                for name, vals in raw.items():
                    attrs.setdefault(name.lower(), []).extend(vals)
            guids: dict[str, bytes] = {}
            for name in EXTENDED_DN_ATTRS.intersection(attrs):
                attrs[name] = [split_extended(v, guids) for v in attrs[name]]
            deref = (item.get("controls") or {}).get(controls.OID_DEREF)
            value = deref.get("value") if deref else None
            linked = controls.linked_entries([value]) if isinstance(value, bytes) else {}
            out.append(Entry(dn, attrs, guids, linked))
        return out

    def _read_controls(self, extra: list[Any] | None = None) -> list[Any] | None:
        """Controls for a read: AD's extended-DN control when the server has it, so member and
        memberOf values carry their objectGUIDs (no lookup per member for a large group)."""
        out = list(extra or [])
        if OID_EXTENDED_DN in self.capabilities.controls:
            out.append((OID_EXTENDED_DN, False, None))
        return out or None

    def _read_range(self, conn: ldap3.Connection, dn: str, attr: str) -> dict[str, list[bytes]]:
        ok = conn.search(
            dn, "(objectClass=*)", ldap3.BASE, attributes=[attr], controls=self._read_controls()
        )
        self._check(conn, ok or conn.result.get("result") == 0, "search", dn)
        for item in conn.response or []:
            if item.get("type") == "searchResEntry":
                return dict(item.get("raw_attributes", {}))
        raise DirectoryError(
            "noSuchObject", "entry vanished during range retrieval", dn=dn, operation="search"
        )

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
        attrs = list(attributes) or ["1.1"]
        caps = self.capabilities  # read the root DSE now, not while holding a connection
        extra: list[Any] = []
        if matched_values:  # first: it shapes the entries the other controls see (RFC 3876 §4)
            attrs = controls.with_matched(attrs, matched_values)
            extra.append(controls.matched_values_control(attrs, matched_values))
        if deref and caps.deref:
            extra.append(_deref(deref))
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

            def once(conn: ldap3.Connection) -> SearchResult:
                ctrls = self._read_controls(([controls.sort_control(sort)] if sort else []) + extra)
                self._bounded(conn, base, filter, attrs, scope, size_limit, ctrls)
                return SearchResult(self._entries(conn))

            return self._run("search", base, once, retry=True)
        return SearchResult(list(self._walk(base, filter, attrs, scope, 0, sort, extra)))

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
        """RFC 2696 paged search.  One connection is held for the whole walk (cookies are bound
        to it); each page is fetched in order (ldap3's paged_search helper reverses pages)."""
        return self._walk(base, filter, list(attributes) or ["1.1"], scope, page_size, sort, [])

    def _walk(
        self,
        base: str,
        filter: str,
        attrs: list[str],
        scope: Scope,
        page_size: int,
        sort: Sequence[SortKey],
        extra: list[Any],
    ) -> Iterator[Entry]:
        size = page_size or self.settings.page_size
        self.capabilities  # noqa: B018 - read the root DSE now, not while holding a connection

        def walk(conn: ldap3.Connection) -> list[Entry]:
            out: list[Entry] = []
            cookie: bytes | None = None
            while True:
                ctrls = self._read_controls(([controls.sort_control(sort)] if sort else []) + extra)
                ok = conn.search(
                    base,
                    filter,
                    _SCOPES[scope],
                    attributes=attrs,
                    paged_size=size,
                    paged_cookie=cookie,
                    controls=ctrls,
                )
                self._check(conn, ok or conn.result.get("result") == 0, "search", base)
                cookie = (
                    conn.result.get("controls", {})
                    .get(OID_PAGED, {})
                    .get("value", {})
                    .get("cookie")
                )
                out.extend(self._entries(conn))  # may read ranges: after taking the cookie
                if not cookie:
                    return out

        yield from self._run("search", base, walk, retry=True)

    def _bounded(
        self,
        conn: ldap3.Connection,
        base: str,
        filter: str,
        attrs: list[str],
        scope: Scope,
        size_limit: int,
        ctrls: list[Any] | None,
    ) -> str:
        """One search whose entries stay on ``conn``; hitting ``size_limit`` is not an error
        (the entries before it are kept).  Returns the result's description."""
        ok = conn.search(
            base, filter, _SCOPES[scope], attributes=attrs, size_limit=size_limit, controls=ctrls
        )
        desc = str(conn.result.get("description"))
        if not ok and desc not in ("success", "sizeLimitExceeded"):
            self._check(conn, False, "search", base)
        return desc

    def _probe(
        self,
        conn: ldap3.Connection,
        base: str,
        filter: str,
        attrs: list[str],
        scope: Scope,
        window: Window,
        extra: list[Any],
    ) -> SearchResult | None:
        """The answer to a VLV request over at most one match, without the VLV (as the
        python-ldap client does): most filtered lists are IdP lookups matching one entry or
        none, and a VLV search costs slapd a sorted result set and this client its connection
        (see :meth:`_vlv`).  None means "more than one match"."""
        desc = self._bounded(conn, base, filter, attrs, scope, 2, self._read_controls(extra))
        found = sum(1 for i in conn.response or [] if i.get("type") == "searchResEntry")
        if desc == "sizeLimitExceeded" or found > 1:
            return None
        return SearchResult(self._entries(conn) if window.offset <= 1 else [], found)

    def _vlv(
        self,
        conn: ldap3.Connection,
        base: str,
        filter: str,
        attrs: list[str],
        scope: Scope,
        sort: Sequence[SortKey],
        window: Window,
        extra: list[Any],
    ) -> SearchResult:
        ctrls = self._read_controls(
            [
                controls.sort_control(sort or (SortKey("cn"),)),
                controls.vlv_control(window.offset, window.count),
                *extra,
            ]
        )
        # OpenLDAP's sssvlv keeps each VLV result set as state of the connection until it
        # closes; a pooled connection reused for more VLV searches gets `busy` under load.  So a
        # connection that ran one is closed afterwards (the pool discards closed connections).
        try:
            ok = conn.search(base, filter, _SCOPES[scope], attributes=attrs, controls=ctrls)
            response = controls.vlv_response(conn.result.get("controls", {}))
            if conn.result.get("result") == 76 and response is not None:
                # slapd: offsetRangeError for an offset past the end; the count is still exact
                return SearchResult([], response[1])
            self._check(conn, ok or conn.result.get("result") == 0, "search", base)
            total = controls.vlv_total(conn.result.get("controls", {}))
            return SearchResult(self._entries(conn), total)  # total first: ranges reuse conn
        finally:
            _close(conn)

    # ------------------------------------------------------------------ writes
    def add(
        self,
        dn: str,
        attributes: Mapping[str, Sequence[bytes]],
        *,
        post_read: Sequence[str] | None = None,
    ) -> Entry | None:
        attrs = {k: list(v) for k, v in attributes.items() if v}
        ctrls = [controls.post_read_control(post_read)] if post_read is not None else None

        def fn(c: ldap3.Connection) -> Entry | None:
            self._check(c, c.add(dn, attributes=attrs, controls=ctrls), "add", dn)
            return _post_read_entry(c) if post_read is not None else None

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
        spec: dict[str, list[tuple[Any, list[bytes]]]] = {}
        for ch in changes:
            spec.setdefault(ch.attr, []).append((_OPS[ch.op], list(ch.values)))
        ctrls = [controls.assertion_control(assertion)] if assertion else []
        if post_read is not None:
            ctrls.append(controls.post_read_control(post_read))

        def fn(c: ldap3.Connection) -> Entry | None:
            self._check(c, c.modify(dn, spec, controls=ctrls or None), "modify", dn)
            return _post_read_entry(c) if post_read is not None else None

        return self._run("modify", dn, fn)

    def rename(
        self,
        dn: str,
        new_rdn: str,
        new_superior: str | None = None,
        *,
        assertion: str | None = None,
    ) -> str:
        ctrls = [controls.assertion_control(assertion)] if assertion else None

        def fn(c: ldap3.Connection) -> str:
            ok = c.modify_dn(
                dn, new_rdn, delete_old_dn=True, new_superior=new_superior, controls=ctrls
            )
            self._check(c, ok, "rename", dn)
            return _child(new_rdn, new_superior or parent_dn(dn))

        return self._run("rename", dn, fn)

    def delete(self, dn: str, *, assertion: str | None = None) -> None:
        ctrls = [controls.assertion_control(assertion)] if assertion else None
        self._run(
            "delete", dn, lambda c: self._check(c, c.delete(dn, controls=ctrls), "delete", dn)
        )

    def close(self) -> None:
        while (idle := self._slots.pop_idle()) is not None:
            _close(idle[0])


# ldap3 validates DNs, filters and values client-side; those failures are the request's (400 via
# the one table), not an unreachable directory (503).
_CLIENT_SIDE = (
    lx.LDAPInvalidDnError,
    lx.LDAPInvalidFilterError,
    lx.LDAPInvalidValueError,
    lx.LDAPAttributeError,
    lx.LDAPObjectClassError,
)


def _client_side_code(exc: Exception) -> str:
    if isinstance(exc, lx.LDAPInvalidDnError):
        return "invalidDNSyntax"
    if isinstance(exc, lx.LDAPInvalidFilterError):
        return "filterError"
    if isinstance(exc, lx.LDAPAttributeError):
        return "undefinedAttributeType"
    if isinstance(exc, lx.LDAPObjectClassError):
        return "objectClassViolation"
    return "invalidAttributeSyntax"


def _keep_post_read_raw(conn: ldap3.Connection) -> None:
    """Have ``conn`` hand on a post-read response control as its BER value.

    ldap3 2.9.1 decodes that control itself: it drops the entry's DN and turns every value
    into text, a value that is not UTF-8 through latin-1, so the bytes cannot be told back.
    Its decoder is a static method the strategy calls through ``self``; this connection's
    strategy gets one that keeps the raw value of that control (decoded by
    :func:`controls.read_entry`, as the python-ldap client does) and leaves all others to
    ldap3.  The strategy decodes the controls of every response through it, whatever the
    operation (an addResponse's as a modifyResponse's).  ``control`` is ldap3's fast-decoder
    form: ``[(class, form, tag, value), ...]``, the controlType first; an unexpected shape is
    left to ldap3 too, and then the service finds no entry and reads it back."""
    decode = conn.strategy.decode_control_fast

    def decode_control_fast(control: Any, from_server: bool = True) -> Any:
        try:
            oid = bytes(control[0][3])
            value = next((bytes(r[3]) for r in control[1:] if r[2] == 4), None)
        except (TypeError, IndexError, ValueError):
            return decode(control, from_server)
        if oid != OID_POST_READ.encode():
            return decode(control, from_server)
        return OID_POST_READ, {"description": "", "criticality": False, "value": value}

    conn.strategy.decode_control_fast = decode_control_fast


def _post_read_entry(conn: ldap3.Connection) -> Entry | None:
    """The entry of the post-read response control of the write just done on ``conn`` (kept
    raw by :func:`_keep_post_read_raw`, for add and modify responses alike), or None."""
    ctrl = (conn.result or {}).get("controls", {}).get(OID_POST_READ) or {}
    raw = ctrl.get("value")
    return controls.read_entry(raw) if isinstance(raw, bytes | bytearray) else None


def _child(rdn: str, parent: str) -> str:
    return f"{rdn},{parent}" if parent else rdn


def _close(conn: ldap3.Connection) -> None:
    with suppress(Exception):
        conn.unbind()


def _loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def _deref(specs: Sequence[Deref]) -> tuple[str, bool, bytes]:
    """The dereference request control (not critical: a server without it answers plainly)."""
    return (controls.OID_DEREF, False, controls.deref_value(specs))
