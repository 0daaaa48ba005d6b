"""The ldap3 directory client: a bounded pool of synchronous connections.

ldap3's SYNC connections are not thread-safe, so each operation borrows one connection from a
queue.  A connection that fails at the transport level is discarded and re-created on next use, so
the bridge recovers by itself when the directory restarts.  All ldap3 exceptions and result codes
are translated to :class:`DirectoryError` in :meth:`Ldap3Directory._run` — nowhere else.
"""

from __future__ import annotations

import logging
import math
import queue
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ldap3
from ldap3.core import exceptions as lx
from ldap3.core.results import RESULT_CODES

from bridge.directory import controls
from bridge.directory.base import (
    OID_ASSERTION,
    OID_PAGED,
    OID_SORT,
    OID_VLV,
    Capabilities,
    Change,
    Directory,
    Entry,
    Scope,
    SearchResult,
    SortKey,
    Window,
)
from bridge.directory.syntax import parent_dn
from bridge.errors import DirectoryError

log = logging.getLogger("bridge.ldap")

# ldap3 2.9.1 has no name for result 76 and crashes (KeyError) decoding it; slapd's sssvlv
# returns it for a VLV offset beyond the end of the list.
RESULT_CODES.setdefault(76, "virtualListViewError")
T = TypeVar("T")

_SCOPES = {"base": ldap3.BASE, "one": ldap3.LEVEL, "sub": ldap3.SUBTREE}
_OPS = {"add": ldap3.MODIFY_ADD, "delete": ldap3.MODIFY_DELETE, "replace": ldap3.MODIFY_REPLACE}


@dataclass(frozen=True)
class ConnectionSettings:
    urls: tuple[str, ...]
    bind_dn: str = ""
    bind_password: str = field(default="", repr=False)
    start_tls: bool = False
    ca_file: str | None = None
    verify: bool = True
    tls_hostname: str | None = None
    connect_timeout: float = 5.0
    operation_timeout: float = 30.0
    pool_size: int = 8
    page_size: int = 500


class Ldap3Directory(Directory):
    name = "ldap3"

    def __init__(self, settings: ConnectionSettings):
        self.settings = settings
        self._pool: queue.LifoQueue[ldap3.Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(settings.pool_size)
        self._server = self._make_server()
        self._caps: Capabilities | None = None
        self._caps_lock = threading.Lock()

    # ------------------------------------------------------------------ connections
    def _tls(self) -> ldap3.Tls:
        s = self.settings
        valid_names = [s.tls_hostname] if s.tls_hostname else None
        return ldap3.Tls(
            validate=ssl.CERT_REQUIRED if s.verify else ssl.CERT_NONE,
            ca_certs_file=s.ca_file,
            valid_names=valid_names,
            version=ssl.PROTOCOL_TLS_CLIENT if s.verify else None,
        )

    def _make_server(self) -> ldap3.Server | ldap3.ServerPool:
        servers = []
        for url in self.settings.urls:
            use_ssl = url.lower().startswith("ldaps://")
            servers.append(
                ldap3.Server(
                    url,
                    use_ssl=use_ssl,
                    get_info=ldap3.NONE,
                    connect_timeout=self.settings.connect_timeout,
                    tls=self._tls() if use_ssl or self.settings.start_tls else None,
                )
            )
        if len(servers) == 1:
            return servers[0]
        return ldap3.ServerPool(servers, ldap3.FIRST, active=1, exhaust=10)

    def _connect(self) -> ldap3.Connection:
        s = self.settings
        conn = ldap3.Connection(
            self._server,
            user=s.bind_dn or None,
            password=s.bind_password or None,
            client_strategy=ldap3.SYNC,
            raise_exceptions=False,
            read_only=False,
            # ldap3 packs SO_RCVTIMEO with struct 'LL': a float raises struct.error
            receive_timeout=max(1, math.ceil(s.operation_timeout)),
            auto_range=True,
            return_empty_attributes=False,
        )
        conn.open()
        if s.start_tls and not conn.start_tls():
            raise DirectoryError("connectError", "StartTLS failed", operation="starttls")
        if not conn.bind():
            code = conn.result.get("description", "invalidCredentials")
            raise DirectoryError(code, conn.result.get("message", ""), operation="bind")
        return conn

    @contextmanager
    def _connection(self) -> Iterator[ldap3.Connection]:
        if not self._slots.acquire(timeout=self.settings.operation_timeout):
            raise DirectoryError("busy", "no free directory connection", operation="pool")
        conn: ldap3.Connection | None = None
        try:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                conn = self._connect()
            yield conn
        except DirectoryError as exc:
            if exc.transient and conn is not None:
                _close(conn)
                conn = None
            raise
        finally:
            if conn is not None:
                self._pool.put(conn)
            self._slots.release()

    def _run(
        self, operation: str, dn: str, fn: Callable[[ldap3.Connection], T], *, retry: bool = False
    ) -> T:
        """Run ``fn`` on a pooled connection; the ONE place ldap3 errors become bridge errors.
        Reads are retried once on a fresh connection after a transport failure (a restarted
        directory closes every pooled connection)."""
        attempts = 2 if retry else 1
        for attempt in range(attempts):
            started = time.perf_counter()
            try:
                with self._connection() as conn:
                    try:
                        return fn(conn)
                    except (
                        lx.LDAPSocketOpenError,
                        lx.LDAPSocketReceiveError,
                        lx.LDAPSocketSendError,
                        lx.LDAPSessionTerminatedByServerError,
                        lx.LDAPSocketCloseError,
                        lx.LDAPCommunicationError,
                    ) as exc:
                        raise DirectoryError(
                            "serverDown", type(exc).__name__, dn=dn, operation=operation
                        ) from None
                    except lx.LDAPResponseTimeoutError:
                        raise DirectoryError(
                            "timeout", "no answer in time", dn=dn, operation=operation
                        ) from None
            except lx.LDAPException as exc:  # connect/bind failures raised by ldap3 itself
                err = DirectoryError("connectError", type(exc).__name__, dn=dn, operation=operation)
                if attempt + 1 < attempts:
                    continue
                raise err from None
            except DirectoryError as exc:
                if exc.transient and attempt + 1 < attempts:
                    continue
                raise
            finally:
                log.debug("ldap %s %s %.1fms", operation, dn, (time.perf_counter() - started) * 1e3)
        raise AssertionError("unreachable")

    @staticmethod
    def _check(conn: ldap3.Connection, ok: bool, operation: str, dn: str) -> None:
        if ok:
            return
        result = conn.result or {}
        code = result.get("description") or "other"
        raise DirectoryError(code, result.get("message", ""), dn=dn, operation=operation)

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
    @staticmethod
    def _entries(conn: ldap3.Connection) -> list[Entry]:
        out = []
        for item in conn.response or []:
            if item.get("type") != "searchResEntry":
                continue
            attrs: dict[str, list[bytes]] = {}
            for name, vals in item.get("raw_attributes", {}).items():
                key = name.split(";", 1)[0].lower()  # "member;range=0-*" after auto_range
                attrs.setdefault(key, []).extend(vals)
            out.append(Entry(item["dn"], attrs))
        return out

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
    ) -> SearchResult:
        attrs = list(attributes) or ["1.1"]
        if window is not None:
            return self._run(
                "search",
                base,
                lambda c: self._vlv(c, base, filter, attrs, scope, sort, window),
                retry=True,
            )
        if scope == "base" or size_limit:

            def once(conn: ldap3.Connection) -> SearchResult:
                ctrls = [controls.sort_control(sort)] if sort else None
                ok = conn.search(
                    base,
                    filter,
                    _SCOPES[scope],
                    attributes=attrs,
                    size_limit=size_limit,
                    controls=ctrls,
                )
                desc = conn.result.get("description")
                if not ok and desc not in ("success", "sizeLimitExceeded"):
                    self._check(conn, False, "search", base)
                return SearchResult(self._entries(conn))

            return self._run("search", base, once, retry=True)
        return SearchResult(list(self.iter_search(base, filter, attrs, scope=scope, sort=sort)))

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
        attrs = list(attributes) or ["1.1"]
        size = page_size or self.settings.page_size

        def walk(conn: ldap3.Connection) -> list[Entry]:
            out: list[Entry] = []
            cookie: bytes | None = None
            while True:
                ctrls = [controls.sort_control(sort)] if sort else None
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
                out.extend(self._entries(conn))
                cookie = (
                    conn.result.get("controls", {})
                    .get(OID_PAGED, {})
                    .get("value", {})
                    .get("cookie")
                )
                if not cookie:
                    return out

        yield from self._run("search", base, walk, retry=True)

    def _vlv(
        self,
        conn: ldap3.Connection,
        base: str,
        filter: str,
        attrs: list[str],
        scope: Scope,
        sort: Sequence[SortKey],
        window: Window,
    ) -> SearchResult:
        ctrls = [
            controls.sort_control(sort or (SortKey("cn"),)),
            controls.vlv_control(window.offset, window.count),
        ]
        ok = conn.search(base, filter, _SCOPES[scope], attributes=attrs, controls=ctrls)
        response = controls.vlv_response(conn.result.get("controls", {}))
        if conn.result.get("result") == 76 and response is not None:
            # slapd: offsetRangeError for an offset past the end; the count is still exact
            return SearchResult([], response[1])
        self._check(conn, ok or conn.result.get("result") == 0, "search", base)
        total = controls.vlv_total(conn.result.get("controls", {}))
        return SearchResult(self._entries(conn), total)

    # ------------------------------------------------------------------ writes
    def add(self, dn: str, attributes: Mapping[str, Sequence[bytes]]) -> None:
        attrs = {k: list(v) for k, v in attributes.items() if v}
        self._run("add", dn, lambda c: self._check(c, c.add(dn, attributes=attrs), "add", dn))

    def modify(self, dn: str, changes: Sequence[Change], *, assertion: str | None = None) -> None:
        if not changes:
            return
        spec: dict[str, list[tuple[Any, list[bytes]]]] = {}
        for ch in changes:
            spec.setdefault(ch.attr, []).append((_OPS[ch.op], list(ch.values)))
        ctrls = [controls.assertion_control(assertion)] if assertion else None
        self._run(
            "modify", dn, lambda c: self._check(c, c.modify(dn, spec, controls=ctrls), "modify", dn)
        )

    def rename(self, dn: str, new_rdn: str, new_superior: str | None = None) -> str:
        def fn(c: ldap3.Connection) -> str:
            ok = c.modify_dn(dn, new_rdn, delete_old_dn=True, new_superior=new_superior)
            self._check(c, ok, "rename", dn)
            return _child(new_rdn, new_superior or parent_dn(dn))

        return self._run("rename", dn, fn)

    def delete(self, dn: str) -> None:
        self._run("delete", dn, lambda c: self._check(c, c.delete(dn), "delete", dn))

    def close(self) -> None:
        while True:
            try:
                _close(self._pool.get_nowait())
            except queue.Empty:
                return


def _child(rdn: str, parent: str) -> str:
    return f"{rdn},{parent}" if parent else rdn


def _close(conn: ldap3.Connection) -> None:
    with suppress(Exception):
        conn.unbind()
