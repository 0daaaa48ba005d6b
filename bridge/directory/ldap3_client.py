"""The ldap3 directory client: a bounded pool of synchronous connections with failover.

ldap3's SYNC connections are not thread-safe, so each operation borrows one connection from a
bounded pool (at most ``pool_size`` exist at once).  Connections and servers are managed here
rather than by ldap3's ServerPool, which keeps a reference to every Connection ever made (a leak
when connections are recycled for months), sleeps ``POOLING_LOOP_TIMEOUT`` (10 s) inside a
request when every server is down, and only switches servers when a connection is opened.

* The pool, failover, retries, search dispatch and entry building are the shared
  :class:`~bridge.directory.pooled.PooledDirectory`'s; this driver only connects, sends one
  operation and reads its result the ldap3 way.
* Recovery: a pooled connection is checked before use and discarded when the server closed it
  (restart, idle timeout, Notice of Disconnection: the socket is readable while no request is
  outstanding), when it has been idle longer than ``idle_timeout`` (firewalls drop idle TCP
  silently; AD closes idle LDAP connections after 900 s), or after a transport error.  So a
  directory restart costs no failed request, and the bridge never needs a restart.
* TLS: ``ldaps://`` URLs or StartTLS; the certificate chain is verified against ``ca_file``
  (system store when unset) and the certificate must name the host (or ``tls_hostname``).
  Turning verification off needs ``verify=False`` and is logged as a warning (the start-up
  checks of both clients: :func:`bridge.directory.transport.check_settings`).

ldap3 exceptions become :class:`DirectoryError` in :meth:`Ldap3Directory._error` (called by the
pool's one retry loop), result codes in :meth:`Ldap3Directory._check`, connection failures in
:meth:`Ldap3Directory._open` — nowhere else.
"""

from __future__ import annotations

import logging
import math
import ssl
from contextlib import suppress
from typing import Any

import ldap3
from ldap3.core import exceptions as lx
from ldap3.core.results import RESULT_CODES

from bridge.directory import controls
from bridge.directory.base import OID_PAGED, OID_POST_READ
from bridge.directory.connections import (
    ConnectionSettings as ConnectionSettings,  # re-exported: the settings of this client
)
from bridge.directory.connections import reusable
from bridge.directory.operations import Answer, SearchOp, Write
from bridge.directory.pooled import PooledDirectory
from bridge.directory.transport import connect_failure, scheme, uses_start_tls
from bridge.errors import DirectoryError

log = logging.getLogger("bridge.ldap")

# ldap3 2.9.1 has no name for result 76 and crashes (KeyError) decoding it; slapd's sssvlv
# returns it for a VLV offset beyond the end of the list.
RESULT_CODES.setdefault(76, "virtualListViewError")

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


class Ldap3Directory(PooledDirectory[ldap3.Connection]):
    name = "ldap3"
    library_errors = (lx.LDAPException,)

    def __init__(self, settings: ConnectionSettings):
        super().__init__(settings)  # the shared start-up checks (transport.check_settings)
        self._servers = {url: self._make_server(url) for url in settings.urls}

    # ------------------------------------------------------------------ TLS
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
        use_ssl = scheme(url) == "ldaps"
        return ldap3.Server(
            url,
            use_ssl=use_ssl,
            get_info=ldap3.NONE,
            connect_timeout=self.settings.connect_timeout,
            tls=self._tls() if use_ssl or uses_start_tls(url, self.settings) else None,
        )

    # ------------------------------------------------------------------ connections
    def _open(self, url: str) -> ldap3.Connection:
        """A bound connection to ``url``; every failure a DirectoryError (transient when the
        server did not answer as LDAP: TCP, TLS, timeout)."""
        server = self._servers[url]
        # ldap3 remembers a failed address for RESET_AVAILABILITY_TIMEOUT (5 s) and then
        # refuses to even try it ("invalid server address"): the backoff is ours to decide
        server.reset_availability()
        try:
            return self._bind(url, server)
        except DirectoryError:
            raise
        except Exception as exc:  # ldap3 raises socket, ssl, struct errors here too
            reason = connect_failure(url, self.settings, f"{type(exc).__name__}: {exc}")
            raise DirectoryError("connectError", reason, operation="connect") from None

    def _bind(self, url: str, server: ldap3.Server) -> ldap3.Connection:
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

        def start() -> None:
            conn.open()
            if uses_start_tls(url, s):
                conn.start_tls()  # raises LDAPStartTLSError (e.g. certificate mismatch)
                if not conn.tls_started:
                    raise DirectoryError("connectError", "StartTLS failed", operation="starttls")
            if not conn.bind():
                result = conn.result or {}
                code = result.get("description") or "invalidCredentials"
                raise DirectoryError(code, result.get("message", ""), operation="bind")

        return self._started(conn, start)

    def _discard(self, conn: ldap3.Connection) -> None:
        _close(conn)

    def _usable(self, conn: ldap3.Connection, idle_since: float) -> bool:
        """After a failback, connections to the other (live) server stay in use until they
        idle out."""
        if conn.closed or conn.socket is None:
            return False
        return reusable(conn.socket, idle_since, self.settings.idle_timeout)

    def _error(self, exc: BaseException, operation: str, dn: str) -> DirectoryError:
        if isinstance(exc, _TRANSPORT):
            return DirectoryError("serverDown", type(exc).__name__, dn=dn, operation=operation)
        if isinstance(exc, lx.LDAPResponseTimeoutError):
            return DirectoryError("timeout", "no answer in time", dn=dn, operation=operation)
        if isinstance(exc, _CLIENT_SIDE):  # refused by ldap3 before anything was sent
            code = _client_side_code(exc)
            return DirectoryError(code, str(exc)[:200], dn=dn, operation=operation)
        return DirectoryError("other", type(exc).__name__, dn=dn, operation=operation)

    @staticmethod
    def _check(conn: ldap3.Connection, ok: bool, operation: str, dn: str) -> None:
        if ok:
            return
        result = conn.result or {}
        code = result.get("description") or "other"
        raise DirectoryError(code, result.get("message", ""), dn=dn, operation=operation)

    # ------------------------------------------------------------------ one operation
    def _search(self, conn: ldap3.Connection, op: SearchOp) -> Answer:
        """One search; its entries are taken off ``conn`` at once (a range read reuses it).
        ldap3 keeps the entries received before sizeLimitExceeded, whatever ``partial``."""
        paged = op.paged
        ok = conn.search(
            op.base,
            op.filter,
            _SCOPES[op.scope],
            attributes=op.attrs,
            size_limit=op.size_limit,
            controls=op.ctrls or None,
            paged_size=paged[0] if paged else None,
            paged_cookie=paged[1] if paged else None,
        )
        result = conn.result or {}
        rctrls = result.get("controls") or {}
        vlv = (rctrls.get(controls.OID_VLV_RESPONSE) or {}).get("value")
        vlv = bytes(vlv) if isinstance(vlv, bytes | bytearray) else None
        status = "success"
        # ldap3's ``ok`` is True whenever entries came, whatever the result: a page that ends
        # in adminLimitExceeded (389 DS's look-through limit) carries entries and no cookie,
        # and would end a paged walk early as if complete.  The result code decides.
        if result.get("result", 0 if ok else None) != 0:
            if op.size_limit and result.get("description") == "sizeLimitExceeded":
                status = "sizeLimitExceeded"
            elif result.get("result") == 76 and vlv is not None:
                status = "virtualListViewError"
            else:
                self._check(conn, False, "search", op.base)
        cookie = rctrls.get(OID_PAGED, {}).get("value", {}).get("cookie") if paged else None
        found = [
            (i["dn"], i.get("raw_attributes", {}), _deref_value(i))
            for i in conn.response or []
            if i.get("type") == "searchResEntry"
        ]
        return Answer(found, cookie, vlv, status)

    def _add(self, conn: ldap3.Connection, w: Write) -> Any:
        ok = conn.add(w.dn, attributes=dict(w.attrs), controls=w.ctrls or None)
        self._check(conn, ok, "add", w.dn)
        return _post_read_raw(conn)

    def _modify(self, conn: ldap3.Connection, w: Write) -> Any:
        spec: dict[str, list[tuple[Any, list[bytes]]]] = {}
        for ch in w.changes:
            spec.setdefault(ch.attr, []).append((_OPS[ch.op], list(ch.values)))
        sent = [*_assertion(w), *w.ctrls]
        self._check(conn, conn.modify(w.dn, spec, controls=sent or None), "modify", w.dn)
        return _post_read_raw(conn)

    def _rename(self, conn: ldap3.Connection, w: Write) -> None:
        ok = conn.modify_dn(
            w.dn,
            w.new_rdn,
            delete_old_dn=True,
            new_superior=w.new_superior,
            controls=_assertion(w) or None,
        )
        self._check(conn, ok, "rename", w.dn)

    def _delete(self, conn: ldap3.Connection, w: Write) -> None:
        ok = conn.delete(w.dn, controls=_assertion(w) or None)
        self._check(conn, ok, "delete", w.dn)


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


def _assertion(w: Write) -> list[Any]:
    """The assertion control (RFC 4528, critical) of a write, when it has one."""
    return [controls.assertion_control(w.assertion)] if w.assertion else []


def _post_read_raw(conn: ldap3.Connection) -> Any:
    """The post-read response control's value of the write just done on ``conn`` (kept raw by
    :func:`_keep_post_read_raw`, for add and modify responses alike), or None."""
    ctrl = (conn.result or {}).get("controls", {}).get(OID_POST_READ) or {}
    return ctrl.get("value")


def _deref_value(item: dict[str, Any]) -> Any:
    """The value of an entry's dereference response control, as ldap3 hands it on."""
    deref = (item.get("controls") or {}).get(controls.OID_DEREF)
    return deref.get("value") if deref else None


def _close(conn: ldap3.Connection) -> None:
    with suppress(Exception):
        conn.unbind()
