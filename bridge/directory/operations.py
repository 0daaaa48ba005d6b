"""What a pooled client (:mod:`bridge.directory.pooled`) hands its driver and gets back: one
search or write operation, and the answer to a search, in terms neither LDAP library owns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from bridge.directory.base import Change, Scope

#: a request control as both libraries take it: (controlType, criticality, BER value or None)
Ctrl = tuple[str, bool, bytes | None]
#: one search entry as received: (DN, attributes as named by the server, its dereference
#: control's value or None)
Found = tuple[str, dict[str, list[bytes]], Any]
#: marks a connection that must not go back to the pool (closed when its operation ends)
SPENT = "_bridge_spent"


class SearchOp(NamedTuple):
    """One search operation for a driver to send."""

    base: str
    scope: Scope
    filter: str
    attrs: list[str]
    ctrls: list[Ctrl]
    #: at most this many entries (0: the server's limit); sizeLimitExceeded is then no error
    size_limit: int = 0
    #: with ``size_limit``: keep the entries received before sizeLimitExceeded
    partial: bool = True
    #: (page size, cookie) for RFC 2696 paging
    paged: tuple[int, bytes | None] | None = None


class Write(NamedTuple):
    """One write operation for a driver to send; the fields of its kind are set."""

    dn: str
    #: request controls besides the assertion (the post-read control, when asked)
    ctrls: list[Ctrl] = []
    #: an LDAP filter the entry must still match (RFC 4528), sent as the assertion control
    assertion: str | None = None
    attrs: Mapping[str, list[bytes]] = {}
    changes: Sequence[Change] = ()
    new_rdn: str = ""
    new_superior: str | None = None


class Answer(NamedTuple):
    """One search operation's answer, in library-neutral terms."""

    found: list[Found]
    #: the paged-results cookie (RFC 2696) of a paged search; empty or None at the end
    cookie: bytes | None = None
    #: the VLV response control's BER value, when the server sent one
    vlv: bytes | None = None
    #: "success", "sizeLimitExceeded" (only when a size limit was asked) or
    #: "virtualListViewError" (an offset past the end: ``vlv`` still holds the exact count)
    status: str = "success"


def spend(conn: Any) -> None:
    """Have ``conn`` closed instead of pooled once its operation ends."""
    conn.__dict__[SPENT] = True
