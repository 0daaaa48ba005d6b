"""The python-ldap directory client: OpenLDAP's C libldap behind the same seam as ldap3.

Chosen with ``BRIDGE_LDAP_CLIENT=libldap`` (``pip install scim-ldap-bridge[libldap]``).  It has the
semantics of :class:`~bridge.directory.ldap3_client.Ldap3Directory` — the behaviour suites run
against both — at a fraction of the client CPU: BER encoding, socket I/O and result parsing
happen in C with the GIL released, where ldap3 spends about a millisecond of Python per search.

* The pool (an ``LDAPObject`` is used by one borrower at a time: python-ldap serialises calls per
  object), failover, retries, search dispatch and entry building are the shared
  :class:`~bridge.directory.pooled.PooledDirectory`'s (so are the start-up checks of the
  settings: :func:`bridge.directory.transport.check_settings`); this driver only connects,
  sends one operation and reads its result the python-ldap way.
* Timeouts: ``OPT_NETWORK_TIMEOUT`` bounds the TCP connect, every result wait is bounded by the
  operation timeout (the connection is then discarded: its state is unknown).
* TLS: ``ldaps://`` or StartTLS, per-connection context (``OPT_X_TLS_NEWCTX``) with the CA file
  and ``OPT_X_TLS_REQUIRE_CERT`` DEMAND (or NEVER when verification is off).  libldap says
  "unknown error code" for every failed handshake:
  :func:`~bridge.directory.transport.tls_failure` says why.
* Controls: paged results (libldap's C encoder), server-side sort, VLV, dereference, post-read
  and matched values (the BER values from :mod:`bridge.directory.controls`, shared with the
  ldap3 client), assertion (C encoder).

python-ldap exceptions become :class:`DirectoryError` in :meth:`LibldapDirectory._error` only
(called by the pool's one retry loop, and by :meth:`LibldapDirectory._open`), with the names of
:mod:`bridge.directory.results`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import ldap
from ldap.controls import DecodeControlTuples, RequestControl, ResponseControl
from ldap.controls.libldap import AssertionControl, SimplePagedResultsControl
from ldap.ldapobject import SimpleLDAPObject

from bridge import concurrency as greenio  # the event-loop adapter (bridge/concurrency.py)
from bridge.directory import controls
from bridge.directory.base import OID_PAGED, OID_POST_READ
from bridge.directory.connections import ConnectionSettings, reusable
from bridge.directory.operations import SPENT, Answer, Found, SearchOp, Write, spend
from bridge.directory.pooled import PooledDirectory
from bridge.directory.results import result_name
from bridge.directory.transport import connect_failure, scheme, uses_start_tls
from bridge.errors import DirectoryError

log = logging.getLogger("bridge.ldap")

_SCOPES = {"base": ldap.SCOPE_BASE, "one": ldap.SCOPE_ONELEVEL, "sub": ldap.SCOPE_SUBTREE}
_OPS = {"add": ldap.MOD_ADD, "delete": ldap.MOD_DELETE, "replace": ldap.MOD_REPLACE}
_SPENT = SPENT  # marks a connection that must not go back to the pool (pooled.spend)
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


class LibldapDirectory(PooledDirectory[SimpleLDAPObject]):
    name = "libldap"
    library_errors = (ldap.LDAPError,)
    #: results are polled without blocking inside greenio.run (see bridge/concurrency.py)
    cooperative = greenio.AVAILABLE

    def __init__(self, settings: ConnectionSettings):
        super().__init__(settings)  # the shared start-up checks (transport.check_settings)
        self._timeout = float(settings.operation_timeout)
        if settings.tls_hostname:
            log.warning(
                "libldap verifies the TLS name of the host in the LDAP URL; "
                "BRIDGE_LDAP_TLS_HOSTNAME"
                " (%s) is not used by this client: put that name in the URL",
                settings.tls_hostname,
            )

    # ------------------------------------------------------------------ connections
    def _open(self, url: str) -> SimpleLDAPObject:
        """A bound connection to ``url``; every failure a DirectoryError: the server's result
        (wrong password: not transient), or connectError when no LDAP answer came (TCP, TLS,
        timeout; as the ldap3 client reports), with TLS failures in words."""
        try:
            return self._bind(url)
        except ldap.LDAPError as exc:
            err = self._error(exc, "bind", "")
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

        def start() -> None:
            if uses_start_tls(url, s):
                conn.start_tls_s()
            conn.simple_bind_s(s.bind_dn or "", s.bind_password or "")

        return self._started(conn, start)

    def _discard(self, conn: SimpleLDAPObject) -> None:
        _close(conn)

    def _usable(self, conn: SimpleLDAPObject, idle_since: float) -> bool:
        try:
            fd = conn.fileno()
        except (ldap.LDAPError, AttributeError):
            return False
        return reusable(fd, idle_since, self.settings.idle_timeout)

    def _error(self, exc: BaseException, operation: str, dn: str) -> DirectoryError:
        """python-ldap exception -> DirectoryError with the RFC 4511 result name."""
        info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
        code = info.get("result")
        if not isinstance(code, int):
            code = getattr(exc, "errnum", None)
        message = str(info.get("info") or info.get("desc") or type(exc).__name__)
        return DirectoryError(result_name(code), message, dn=dn, operation=operation)

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
                spend(conn)
                with suppress(ldap.LDAPError):
                    conn.abandon_ext(msgid)
            raise

    # ------------------------------------------------------------------ reads
    def _search(self, conn: SimpleLDAPObject, op: SearchOp) -> Answer:
        """One search operation (references dropped).

        The answer is taken whole (one poll when it has all arrived).  The bridge bounds the
        searches it expects to fit (an id, a batch of ids, a uniqueness check), so the limit
        is rarely exceeded; when it is, libldap has dropped the entries with the error, and
        (``partial``) the search is sent again and read one message at a time to keep them."""
        size_limit, paged = op.size_limit, op.paged
        sent = [RequestControl(*c) for c in op.ctrls] if op.ctrls else []
        if paged is not None:
            sent.insert(0, SimplePagedResultsControl(True, size=paged[0], cookie=paged[1] or b""))
        args = (
            op.base,
            _SCOPES[op.scope],
            op.filter,
            op.attrs,
            0,
            sent or None,
            None,
            self._timeout,
        )
        try:
            _t, data, _m, rctrls = self._result(conn, conn.search_ext(*args, size_limit), 1)
        except ldap.SIZELIMIT_EXCEEDED:
            if not size_limit:  # the server's own limit
                raise
            if not op.partial:  # nothing to keep
                return Answer([], status="sizeLimitExceeded")
            return self._search_kept(conn, args, size_limit)
        except ldap.VLV_ERROR as exc:
            # slapd: offsetRangeError (76) for an offset past the end; the count is still exact
            info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
            for oid, _crit, value in info.get("ctrls") or ():
                if oid == controls.OID_VLV_RESPONSE and value:
                    return Answer([], vlv=value, status="virtualListViewError")
            raise
        found = [_found(d) for d in data if d[0] is not None]
        if not rctrls:
            return Answer(found)
        cookie = vlv = None
        for c in rctrls:
            if c.controlType == OID_PAGED:
                cookie = c.cookie
            elif c.controlType == controls.OID_VLV_RESPONSE:
                vlv = c.encodedControlValue
        return Answer(found, cookie, vlv)

    def _search_kept(self, conn: SimpleLDAPObject, args: tuple[Any, ...], limit: int) -> Answer:
        """The search sent again, read one message at a time: the entries before
        sizeLimitExceeded are kept."""
        msgid = conn.search_ext(*args, limit)
        out: list[Found] = []
        first = True
        while True:
            try:
                rtype, data, _m, _rctrls = self._result(conn, msgid, 0, first)
                first = False
            except ldap.SIZELIMIT_EXCEEDED:
                return Answer(out, status="sizeLimitExceeded")
            if rtype == ldap.RES_SEARCH_ENTRY:
                out.extend(_found(d) for d in data if d[0] is not None)
            elif rtype == ldap.RES_SEARCH_RESULT:
                return Answer(out)

    # ------------------------------------------------------------------ writes
    def _wait(self, conn: SimpleLDAPObject, msgid: int) -> list[ResponseControl]:
        """The response controls of the write ``msgid``, once it succeeded."""
        return list(self._result(conn, msgid, 1)[3])

    def _add(self, conn: SimpleLDAPObject, w: Write) -> Any:
        sent = [RequestControl(*c) for c in w.ctrls] or None
        return _post_read_raw(self._wait(conn, conn.add_ext(w.dn, list(w.attrs.items()), sent)))

    def _modify(self, conn: SimpleLDAPObject, w: Write) -> Any:
        modlist = [(_OPS[ch.op], ch.attr, list(ch.values) or None) for ch in w.changes]
        sent = _assertion(w) + [RequestControl(*c) for c in w.ctrls]
        return _post_read_raw(self._wait(conn, conn.modify_ext(w.dn, modlist, sent or None)))

    def _rename(self, conn: SimpleLDAPObject, w: Write) -> None:
        msgid = conn.rename(w.dn, w.new_rdn, w.new_superior, 1, _assertion(w) or None)
        self._wait(conn, msgid)

    def _delete(self, conn: SimpleLDAPObject, w: Write) -> None:
        self._wait(conn, conn.delete_ext(w.dn, _assertion(w) or None))


def _result4(conn: SimpleLDAPObject, msgid: int, all_: int, timeout: float) -> Any:
    """python-ldap's ``result4(add_ctrls=1)`` without its wrapper, which fails on a poll that
    finds nothing yet (timeout 0) and decodes every entry control we do not use: entries come
    as ``(dn, attrs, [(oid, critical, value)])``, the result's controls decoded."""
    res = conn._ldap_call(conn._l.result4, msgid, all_, timeout, 1, 0, 0)
    if res is None or res[0] is None:
        return None, None, None, []
    rtype, data, rmsgid, rctrls = res[:4]
    return rtype, data, rmsgid, DecodeControlTuples(rctrls, _RESPONSE_CONTROLS) if rctrls else []


def _found(data: tuple[Any, ...]) -> Found:
    """A search entry ``(dn, attrs, [(oid, critical, value)])`` -> (dn, attrs, the value of its
    dereference control or None)."""
    dn, attrs, ectrls = data
    if not ectrls:
        return dn, attrs, None
    deref = next((v for oid, _c, v in ectrls if oid == controls.OID_DEREF and v), None)
    return dn, attrs, deref


def _assertion(w: Write) -> list[RequestControl]:
    """The assertion control (RFC 4528, critical; libldap's C encoder), when ``w`` has one."""
    return [AssertionControl(True, w.assertion)] if w.assertion else []


def _post_read_raw(rctrls: Sequence[ResponseControl]) -> bytes | None:
    """The value of a write's post-read response control, or None when there is none."""
    return next((r.encodedControlValue for r in rctrls if r.controlType == OID_POST_READ), None)


def _is_result(exc: ldap.LDAPError) -> bool:
    """True for an LDAP result from the server (a non-negative code), not a local failure."""
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    code = info.get("result")
    return isinstance(code, int) and code >= 0


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
