"""The LDAP seam: one interface, several clients (ldap3, the embedded directory, python-ldap).

Everything above this package speaks in these terms only: DNs as strings, attribute values as raw
``bytes``, filters as RFC 4515 strings built by ``translate.filter`` with values escaped through
:mod:`bridge.directory.syntax`.  Each client converts its own exceptions into
:class:`bridge.errors.DirectoryError` in exactly one place.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, final

Scope = Literal["base", "one", "sub"]
ChangeOp = Literal["add", "delete", "replace"]

OID_PAGED = "1.2.840.113556.1.4.319"
OID_SORT = "1.2.840.113556.1.4.473"
OID_VLV = "2.16.840.1.113730.3.4.9"
OID_ASSERTION = "1.3.6.1.1.12"
OID_EXTENDED_DN = "1.2.840.113556.1.4.529"  # AD: DN values as <GUID=..>;<SID=..>;dn
OID_POST_READ = "1.3.6.1.1.13.2"  # RFC 4527: the entry as a write left it, in its response
OID_MATCHED_VALUES = "1.2.826.0.1.3344810.2.3"  # RFC 3876: return only the matching values


@dataclass(frozen=True)
class Entry:
    """A directory entry; attribute names are lower-cased keys, values are raw bytes."""

    dn: str
    attrs: Mapping[str, Sequence[bytes]]
    #: objectGUIDs (16 raw bytes) of DN values, keyed by normalized DN, when the directory
    #: returned them with the values (AD's extended-DN control); empty otherwise
    guids: Mapping[str, bytes] = field(default_factory=dict)
    #: attributes (lower-cased keys) of the entries named by this entry's DN values, keyed by
    #: normalized DN, when the search asked for them (``deref``) and the directory returned
    #: them (OpenLDAP's dereference control); empty otherwise
    linked: Mapping[str, Mapping[str, Sequence[bytes]]] = field(default_factory=dict)

    def get(self, name: str) -> Sequence[bytes]:
        return self.attrs.get(name.lower(), ())

    def first(self, name: str) -> bytes | None:
        vals = self.attrs.get(name.lower())
        return vals[0] if vals else None

    def text(self, name: str) -> str | None:
        raw = self.first(name)
        return raw.decode("utf-8", "replace") if raw is not None else None


@dataclass(frozen=True)
class Change:
    op: ChangeOp
    attr: str
    values: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class SortKey:
    attr: str
    reverse: bool = False
    ordering_rule: str | None = None


@dataclass(frozen=True)
class Window:
    """A VLV window: ``offset`` is 1-based, ``count`` entries after it (RFC-draft VLV by offset)."""

    offset: int
    count: int


@dataclass(frozen=True)
class Deref:
    """Ask for ``attributes`` of the entries named by the DN-valued ``attr`` of each result
    (honoured where ``Capabilities.deref``; elsewhere ``Entry.linked`` stays empty)."""

    attr: str
    attributes: tuple[str, ...]


@dataclass(frozen=True)
class Search:
    """One search request as it travels through the layers (decorators, pooled client,
    driver): built once by :meth:`Directory.search` / :meth:`Directory.iter_search` from their
    keywords, so the keyword signature is written only there.

    ``page_size`` applies to streams (:meth:`Directory.stream`); 0 is the client's own page
    size (``BRIDGE_LDAP_PAGE_SIZE``).  The other fields are those of :meth:`Directory.search`."""

    base: str
    filter: str
    attributes: Sequence[str]
    scope: Scope = "sub"
    size_limit: int = 0
    sort: Sequence[SortKey] = ()
    window: Window | None = None
    deref: Sequence[Deref] = ()
    matched_values: Mapping[str, Sequence[bytes]] | None = None
    page_size: int = 0


@dataclass(frozen=True)
class Add:
    """One add request as it travels through the layers, built once by :meth:`Directory.add`
    (the fields are its arguments)."""

    dn: str
    attributes: Mapping[str, Sequence[bytes]]
    post_read: Sequence[str] | None = None


@dataclass(frozen=True)
class Modify:
    """One modify request, built once by :meth:`Directory.modify`."""

    dn: str
    changes: Sequence[Change]
    assertion: str | None = None
    post_read: Sequence[str] | None = None


@dataclass(frozen=True)
class Rename:
    """One modify-DN request, built once by :meth:`Directory.rename`."""

    dn: str
    new_rdn: str
    new_superior: str | None = None
    assertion: str | None = None


@dataclass(frozen=True)
class Delete:
    """One delete request, built once by :meth:`Directory.delete`."""

    dn: str
    assertion: str | None = None


@dataclass(frozen=True)
class SearchResult:
    entries: list[Entry]
    #: the server's count of all matches (VLV contentCount), when known
    total: int | None = None


@dataclass(frozen=True)
class Capabilities:
    sort: bool = False
    vlv: bool = False
    paged: bool = True
    assertion: bool = False
    #: the dereference control (draft-masarati-ldap-deref; OpenLDAP's slapo-deref)
    deref: bool = False
    #: the post-read control (RFC 4527): ``add``/``modify(post_read=...)`` return the entry
    post_read: bool = False
    #: the matched-values control (RFC 3876): ``search(matched_values=...)`` is honoured
    matched_values: bool = False
    controls: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class PoolStats:
    """Connection-pool gauges of a networked client (for /metrics and /readyz)."""

    size: int
    in_use: int
    idle: int
    #: how many times new connections went to a different server than the previous ones
    failovers: int = 0
    current_url: str | None = None


class Directory(ABC):
    """One LDAP directory, as the service layer needs it.  Implementations are thread-safe."""

    name = "directory"
    #: True when the implementation may be called inside :func:`bridge.concurrency.run` on the
    #: event loop (it never blocks there: python-ldap).  Others run in the threadpool.
    cooperative = False

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @property
    def secure(self) -> bool:
        """True when the bridge may send passwords: what it sends cannot be read on the way
        (LDAPS, StartTLS, ldapi, or no network at all), or the operator allowed plain LDAP to
        a directory on this host (``BRIDGE_LDAP_ALLOW_PLAIN_PASSWORDS_ON_LOOPBACK``).  Values
        of ``secure_transport`` codecs (every password codec) are refused when this is False."""
        return False

    @final
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
        """All entries matching ``filter`` (paging through server size limits transparently),
        or, with ``window``, one VLV window of the ``sort``-ed result set and its total.

        ``matched_values`` (only where ``capabilities.matched_values``; RFC 3876, sent
        critical): of each attribute named there (it is requested too), only the values
        equal, by the attribute's equality rule, to one of the given raw assertion values come
        back (none: an empty attribute); every other requested attribute comes back whole.
        The attributes must be named (not ``*`` or ``+``).  Where the directory cannot honour
        it the search fails with ``unavailableCriticalExtension``: never all the values.

        The one spelling of these keywords: implementations and decorators override
        :meth:`run`, which takes them as one :class:`Search`."""
        return self.run(
            Search(base, filter, attributes, scope, size_limit, sort, window, deref, matched_values)
        )

    @final
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
        """Stream matches page by page (RFC 2696), never holding the whole result; pages of
        ``page_size`` entries (0: the client's own size).  Implementations override
        :meth:`stream`."""
        return self.stream(Search(base, filter, attributes, scope, sort=sort, page_size=page_size))

    @abstractmethod
    def run(self, search: Search) -> SearchResult:
        """The answer to ``search`` (see :meth:`search`)."""

    @abstractmethod
    def stream(self, search: Search) -> Iterator[Entry]:
        """The matches of ``search`` page by page (see :meth:`iter_search`)."""

    def read(self, dn: str, attributes: Sequence[str]) -> Entry | None:
        """The entry at ``dn`` or None if there is none."""
        from bridge.errors import DirectoryError

        try:
            found = self.search(dn, "(objectClass=*)", attributes, scope="base").entries
        except DirectoryError as exc:
            if exc.code == "noSuchObject":
                return None
            raise
        return found[0] if found else None

    @final
    def add(
        self,
        dn: str,
        attributes: Mapping[str, Sequence[bytes]],
        *,
        post_read: Sequence[str] | None = None,
    ) -> Entry | None:
        """Add the entry ``dn`` with ``attributes`` (empty value lists are left out).

        With ``post_read`` (attribute names) the entry as this add created it, with those
        attributes, operational ones the server set included (entryUUID, createTimestamp),
        read atomically with the add (RFC 4527 post-read, not critical); None when not asked,
        when the directory has no post-read (``capabilities.post_read``) or returned none:
        the caller reads the entry instead.

        The one spelling of these keywords: implementations override :meth:`run_add`."""
        return self.run_add(Add(dn, attributes, post_read))

    @final
    def modify(
        self,
        dn: str,
        changes: Sequence[Change],
        *,
        assertion: str | None = None,
        post_read: Sequence[str] | None = None,
    ) -> Entry | None:
        """Apply ``changes`` atomically; with ``assertion`` (an LDAP filter) only if the entry
        still matches it (RFC 4528), else DirectoryError('assertionFailed').

        With ``post_read`` (attribute names) the entry as this modify left it, with those
        attributes, read atomically with the change (RFC 4527 post-read, not critical);
        None when not asked, when the directory has no post-read
        (``capabilities.post_read``) or returned none: the caller reads the entry instead.

        Implementations override :meth:`run_modify`."""
        return self.run_modify(Modify(dn, changes, assertion, post_read))

    @final
    def rename(
        self,
        dn: str,
        new_rdn: str,
        new_superior: str | None = None,
        *,
        assertion: str | None = None,
    ) -> str:
        """modify_dn with deleteoldrdn; returns the new DN.  With ``assertion`` only if the
        entry still matches it (RFC 4528), else DirectoryError('assertionFailed').
        Implementations override :meth:`run_rename`."""
        return self.run_rename(Rename(dn, new_rdn, new_superior, assertion))

    @final
    def delete(self, dn: str, *, assertion: str | None = None) -> None:
        """Delete a leaf; with ``assertion`` only if the entry still matches it (RFC 4528).
        Implementations override :meth:`run_delete`."""
        self.run_delete(Delete(dn, assertion))

    @abstractmethod
    def run_add(self, op: Add) -> Entry | None:
        """Carry out ``op`` (see :meth:`add`)."""

    @abstractmethod
    def run_modify(self, op: Modify) -> Entry | None:
        """Carry out ``op`` (see :meth:`modify`)."""

    @abstractmethod
    def run_rename(self, op: Rename) -> str:
        """Carry out ``op`` (see :meth:`rename`); the new DN."""

    @abstractmethod
    def run_delete(self, op: Delete) -> None:
        """Carry out ``op`` (see :meth:`delete`)."""

    def check(self) -> None:  # noqa: B027 - optional hook
        """Raise DirectoryError if the directory cannot be reached and bound (readiness)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def pool_stats(self) -> PoolStats | None:
        """Connection-pool gauges, for clients that keep a pool (None otherwise)."""
        return None
