"""What the two network clients (ldap3, python-ldap) decide the same way about the servers,
whatever the LDAP library: the checks of their settings at start, whether the connection may
carry a password, failover between the configured servers, and TLS failures put into words.

One copy here, used by :class:`~bridge.directory.pooled.PooledDirectory`, so the clients cannot
drift apart again (python-ldap once lacked the TLS warnings and the CA-file check, and never
counted a failover).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from bridge.directory.connections import ConnectionSettings
from bridge.errors import ConfigError, DirectoryError, Problem

log = logging.getLogger("bridge.ldap")
C = TypeVar("C")

#: RFC 4511 §4.14.1: the StartTLS extended request, message ID 1, as BER
_START_TLS = b"\x30\x1d\x02\x01\x01\x77\x18\x80\x16" + b"1.3.6.1.4.1.1466.20037"


# ---------------------------------------------------------------------------- URLs
def scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "ldap"


def loopback(url: str) -> bool:
    """The URL names this host: ``localhost``, 127.0.0.0/8 or ``::1`` (ldapi has no host)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def uses_start_tls(url: str, settings: ConnectionSettings) -> bool:
    """StartTLS applies to ``ldap://`` URLs only (ldaps is TLS already, ldapi a local socket)."""
    return settings.start_tls and scheme(url) == "ldap"


def encrypted(url: str, settings: ConnectionSettings) -> bool:
    """Nothing sent to ``url`` can be read on the way: TLS (ldaps://, StartTLS) or a local
    socket (ldapi://)."""
    return scheme(url) in ("ldaps", "ldapi") or uses_start_tls(url, settings)


def may_carry_secrets(settings: ConnectionSettings) -> bool:
    """Whether passwords may be sent to every configured server: each connection is encrypted,
    or — only when the operator opted out with
    ``BRIDGE_LDAP_ALLOW_PLAIN_PASSWORDS_ON_LOOPBACK=true`` — goes to this very host."""
    return bool(settings.urls) and all(
        encrypted(u, settings) or (settings.allow_plain_passwords_on_loopback and loopback(u))
        for u in settings.urls
    )


# ---------------------------------------------------------------------------- start-up checks
def check_settings(settings: ConnectionSettings) -> None:
    """Refuse settings no connection can work with (ConfigError, at start, not a 500 on every
    request) and warn about the ones that expose the bind password or user passwords."""
    if not settings.urls:
        raise ConfigError([Problem("BRIDGE_LDAP_URL", "no directory URL given")])
    if settings.ca_file:
        problem = ca_file_problem(settings.ca_file)
        if problem:
            raise ConfigError([Problem("BRIDGE_LDAP_CA_FILE", problem)])
    _warn(settings)


def ca_file_problem(path: str) -> str | None:
    """Why ``path`` cannot serve as the CA bundle (unreadable, no PEM certificate), or None."""
    if not os.access(path, os.R_OK):
        return f"cannot read {path}"
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError, ValueError) as exc:
        return f"{path} holds no PEM CA certificate ({exc})"
    return None


def _warn(s: ConnectionSettings) -> None:
    tls_used = any(scheme(u) == "ldaps" or uses_start_tls(u, s) for u in s.urls)
    if tls_used and not s.verify:
        log.warning(
            "TLS certificate verification is OFF (BRIDGE_LDAP_TLS_VERIFY=false): the bind "
            "password can be sent to anyone who intercepts the connection",
            extra={"urls": list(s.urls)},
        )
    plain = [u for u in s.urls if not encrypted(u, s)]
    remote = [u for u in plain if not loopback(u)]
    if s.bind_password and remote:
        log.warning(
            "the bind password is sent in clear text: use ldaps:// or BRIDGE_LDAP_STARTTLS=true",
            extra={"urls": remote},
        )
    if s.allow_plain_passwords_on_loopback and remote:
        log.warning(
            "BRIDGE_LDAP_ALLOW_PLAIN_PASSWORDS_ON_LOOPBACK applies to loopback servers only: "
            "passwords are refused while these servers are reached without TLS",
            extra={"urls": remote},
        )
    elif s.allow_plain_passwords_on_loopback and plain:
        log.warning(
            "user passwords go unencrypted to the directory on this host "
            "(BRIDGE_LDAP_ALLOW_PLAIN_PASSWORDS_ON_LOOPBACK=true)",
            extra={"urls": plain},
        )


# ---------------------------------------------------------------------------- failover
class Failover:
    """The order in which servers are tried, and the switches between them.

    ``urls`` are tried in order; one that fails to connect goes to the back of the order for
    ``backoff`` seconds (never skipped: when all are down all are tried, so the bridge recovers
    as soon as any comes back).  Every connection to a server other than the one before —
    the first configured one, before any connection: a first server down from the start is a
    failover too — is counted (``failovers``, the ``scim_bridge_ldap_failovers_total`` metric)
    and logged."""

    def __init__(self, urls: tuple[str, ...], backoff: float):
        self._urls = urls
        self._backoff = backoff
        self._down_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self.failovers = 0
        self.current: str | None = None

    def order(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            return sorted(self._urls, key=lambda u: self._down_until.get(u, 0.0) > now)

    def connect(self, open_: Callable[[str], C]) -> C:
        """A connection from ``open_(url)`` to the first server that answers.  ``open_`` raises
        DirectoryError: a transient one (no answer, TLS refused, busy) moves on to the next
        server; any other (wrong bind password: the same on every replica) is raised at once."""
        errors: list[str] = []
        for url in self.order():
            try:
                conn = open_(url)
            except DirectoryError as exc:
                if not exc.transient:
                    raise
                reason = exc.message or exc.code
            else:
                self._connected(url)
                return conn
            with self._lock:
                self._down_until[url] = time.monotonic() + self._backoff
            errors.append(f"{url}: {reason}")
            log.warning("directory server unreachable", extra={"url": url, "error": reason})
        raise DirectoryError("connectError", "; ".join(errors), operation="connect")

    def _connected(self, url: str) -> None:
        with self._lock:
            self._down_until.pop(url, None)
            previous = self.current or self._urls[0]
            self.current = url
            if previous == url:
                return
            self.failovers += 1
        log.warning("directory failover", extra={"from_url": previous, "to_url": url})


# ---------------------------------------------------------------------------- TLS in words
def connect_failure(
    url: str, settings: ConnectionSettings, message: str, *, handshake: bool = False
) -> str:
    """The reason a connection to ``url`` failed, for the operator: a CA file that became
    unusable after start (both clients otherwise say "No such file" or "option error"), or,
    with ``handshake`` (libldap, whose own words are "unknown error code"), what a repeated
    TLS handshake says; else the client's ``message``."""
    if not (scheme(url) == "ldaps" or uses_start_tls(url, settings)):
        return message
    if settings.ca_file:
        problem = ca_file_problem(settings.ca_file)
        if problem:
            return f"TLS impossible: BRIDGE_LDAP_CA_FILE: {problem}"
    return (tls_failure(url, settings) if handshake else None) or message


def tls_failure(url: str, settings: ConnectionSettings) -> str | None:
    """Why a TLS handshake with ``url`` fails, in Python's words ("certificate verify failed:
    self signed certificate", "Hostname mismatch ..."), or None when it succeeds.

    libldap reports every TLS failure as "Can't contact LDAP server (unknown error code)"; this
    repeats the handshake (after StartTLS for ``ldap://``) with the same CA file, verification
    and host name, only when a connection has already failed."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or (636 if scheme(url) == "ldaps" else 389)
    ctx = ssl.create_default_context(cafile=settings.ca_file)
    if not settings.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=settings.connect_timeout) as raw:
            if scheme(url) != "ldaps" and not _start_tls(raw):
                return "the server refused StartTLS"
            with ctx.wrap_socket(raw, server_hostname=unquote(host)):
                return None
    except ssl.SSLCertVerificationError as exc:
        return f"TLS: certificate verify failed: {exc.verify_message or exc.reason}"
    except ssl.SSLError as exc:
        return f"TLS: {exc}"
    except OSError as exc:  # not TLS: the server cannot be reached (any more)
        return f"cannot connect: {exc.strerror or exc}"


def _start_tls(sock: socket.socket) -> bool:
    """Send StartTLS on a fresh connection; True when the server answered success (0)."""
    sock.sendall(_START_TLS)
    answer = sock.recv(4096)
    # LDAPMessage { messageID, ExtendedResponse [APPLICATION 24] { resultCode ENUMERATED ... } }
    at = answer.find(b"\x0a\x01", 2)
    return at > 0 and answer[at + 2 : at + 3] == b"\x00"
