"""Dry-run: a Directory decorator under which writes are planned, logged and answered, but never
reach the directory (``serve --dry-run``).

Each write is logged at INFO on ``bridge.dryrun`` as the exact LDAP change record (LDIF, RFC
2849) it would have sent, with the values of password attributes replaced by ``<redacted>``, and
noted as ``planned`` in the request's audit record.

So that an IdP watching the bridge sees consistent answers, planned writes are kept in an
in-memory overlay (an :class:`EmbeddedDirectory`) for the life of the process: the entry a write
touches is copied from the real directory into the overlay (operational attributes included),
the write is applied there with slapd semantics (so a duplicate add is still a 409, a delete of a
missing entry a 404), and reads merge the overlay over the real directory.  A create therefore
reads back with a synthesized id (``entryUUID``, or the mapping's: 389 DS's ``nsUniqueId``, AD's
``objectGUID``), version and timestamps, a later GET/PATCH/DELETE of that id works,
and a deleted user disappears from lists, all without a single write reaching the directory.

Server-side effects are simulated as far as the overlay knows the entries: members of a planned
group change get their ``memberOf``, and groups naming a planned-renamed or -deleted entry are
rewritten (refint).  Limits (documented in docs/observability.md "Dry run"): the server's
schema, ACLs and other overlays are not checked, and the overlay grows with every planned write
until the process restarts.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace

from bridge.directory.base import (
    Add,
    Capabilities,
    Delete,
    Directory,
    Entry,
    Modify,
    Rename,
    Scope,
    Search,
    SearchResult,
    SortKey,
)
from bridge.directory.embedded import EmbeddedDirectory
from bridge.directory.syntax import escape_filter, normalize_dn, parent_dn, split_rdn
from bridge.directory.wrapper import Wrapper
from bridge.errors import DirectoryError
from bridge.observability import context, metrics

log = logging.getLogger("bridge.dryrun")

#: attributes whose values are never logged, whatever the mapping says
SECRET_ATTRIBUTES = frozenset(
    {
        "userpassword",
        "unicodepwd",
        "authpassword",
        "clearpassword",
        "sambantpassword",
        "sambalmpassword",
        "userpkcs12",
    }
)
_REF_ATTRIBUTES = ("member", "uniquemember")
_SAFE = re.compile(r"[^\x00\n\r :<][^\x00\n\r]*")


class DryRunDirectory(Wrapper):
    name = "dry-run"
    cooperative = False

    def __init__(
        self,
        inner: Directory,
        *,
        secret_attributes: Iterable[str] = (),
        read_attributes: Iterable[str] = (),
        search_bases: Iterable[str] = (),
        generated: Mapping[str, str] | None = None,
    ):
        """``generated``: the attributes the directory itself gives an entry that the mapping
        reads (its id, its version), for the overlay to stamp on planned entries; see
        :class:`EmbeddedDirectory`."""
        super().__init__(inner)
        self.overlay = EmbeddedDirectory(generated)
        self._secret = SECRET_ATTRIBUTES | {a.lower() for a in secret_attributes}
        self._read_attrs = ["*", "+", *dict.fromkeys(read_attributes)]
        #: where entries that reference others live (the mapping's base DNs)
        self._bases = list(dict.fromkeys(search_bases))
        #: normalized DN -> (DN, exists after the planned writes)
        self._touched: dict[str, tuple[str, bool]] = {}
        self._lock = threading.RLock()

    @property
    def capabilities(self) -> Capabilities:
        """The directory's, less post-read and matched values: planned writes live in the
        overlay, which has neither (the service then reads entries back as it does without)."""
        return replace(self.inner.capabilities, post_read=False, matched_values=False)

    # ------------------------------------------------------------------ overlay
    def _exists(self, dn: str) -> bool:
        known = self._touched.get(normalize_dn(dn))
        if known is not None:
            return known[1]
        return self.inner.read(dn, ["1.1"]) is not None

    def _materialize(self, dn: str) -> bool:
        """Copy the real entry at ``dn`` into the overlay (once); False if there is none."""
        known = self._touched.get(normalize_dn(dn))
        if known is not None:
            return known[1]
        real = self.inner.read(dn, self._read_attrs)
        if real is None:
            return False
        self._ensure_parents(real.dn)
        self.overlay.restore(real.dn, real.attrs)
        self._touched[normalize_dn(real.dn)] = (real.dn, True)
        return True

    def _ensure_parents(self, dn: str) -> None:
        """Placeholders for the ancestors of ``dn`` in the overlay (never shown: not touched)."""
        chain: list[str] = []
        parent = parent_dn(dn)
        while parent and self.overlay.read(parent, ["1.1"]) is None:
            chain.append(parent)
            parent = parent_dn(parent)
        for ancestor in reversed(chain):
            attr, value, _ = split_rdn(ancestor)
            self.overlay.restore(
                ancestor,
                {"objectClass": [b"top", b"extensibleObject"], attr: [value.encode()]},
            )

    def _materialize_refs(self, values: Iterable[bytes]) -> None:
        """Members' entries join the overlay, so their planned ``memberOf`` shows."""
        for value in values:
            try:
                self._materialize(value.decode("utf-8"))
            except (DirectoryError, UnicodeDecodeError):
                continue

    def _materialize_referrers(self, dn: str) -> None:
        """Entries whose member values name ``dn`` join the overlay before a rename or delete,
        so the overlay's refint/memberOf rewrite them as slapd's overlays would."""
        value = escape_filter(dn)
        flt = "(|" + "".join(f"({name}={value})" for name in _REF_ATTRIBUTES) + ")"
        for base in self._bases:
            try:
                found = list(self.inner.iter_search(base, flt, ["1.1"], scope="sub"))
            except DirectoryError as exc:
                if exc.code == "noSuchObject":
                    continue
                raise
            for entry in found:
                self._materialize(entry.dn)

    def _affects(self, base: str, scope: Scope) -> bool:
        key = normalize_dn(base)
        for tkey, (dn, _) in self._touched.items():
            if scope == "base" and tkey == key:
                return True
            if scope == "one" and normalize_dn(parent_dn(dn)) == key:
                return True
            if scope == "sub" and (tkey == key or tkey.endswith("," + key) or not key):
                return True
        return False

    # ------------------------------------------------------------------ reads
    def _merged(
        self,
        base: str,
        filter: str,
        attributes: Sequence[str],
        scope: Scope,
        sort: Sequence[SortKey],
    ) -> list[Entry]:
        try:
            real = list(
                self.inner.iter_search(base, filter, attributes, scope=scope)  # sorted below
            )
        except DirectoryError as exc:
            if exc.code != "noSuchObject":
                raise
            real = []
        out = [e for e in real if normalize_dn(e.dn) not in self._touched]
        if self.overlay.read(base, ["1.1"]) is not None:
            planned = self.overlay.search(base, filter, attributes, scope=scope).entries
            out += [e for e in planned if self._touched.get(normalize_dn(e.dn), ("", False))[1]]
        for key in reversed(sort):  # stable sorts, least significant key first
            attr = key.attr
            out.sort(key=lambda e: _sort_value(e, attr), reverse=key.reverse)
        return out

    def run(self, search: Search) -> SearchResult:
        if search.matched_values:  # not offered (see capabilities): as a server without it
            raise DirectoryError(
                "unavailableCriticalExtension",
                "no matched values",
                dn=search.base,
                operation="search",
            )
        with self._lock:
            affected = self._affects(search.base, search.scope)
        if not affected:  # no planned write in scope: straight to the directory, unlocked
            return self.inner.run(search)
        with self._lock:
            entries = self._merged(
                search.base,
                search.filter,
                search.attributes,
                search.scope,
                search.sort or (SortKey("cn"),),
            )
        window = search.window
        if window is not None:
            start = max(window.offset, 1) - 1
            return SearchResult(entries[start : start + window.count], len(entries))
        return SearchResult(entries[: search.size_limit] if search.size_limit else entries)

    def stream(self, search: Search) -> Iterator[Entry]:
        with self._lock:
            affected = self._affects(search.base, search.scope)
            entries = (
                self._merged(
                    search.base, search.filter, search.attributes, search.scope, search.sort
                )
                if affected
                else None
            )
        if entries is None:
            yield from self.inner.stream(search)
        else:
            yield from entries

    def read(self, dn: str, attributes: Sequence[str]) -> Entry | None:
        with self._lock:
            known = self._touched.get(normalize_dn(dn))
            if known is not None:
                return self.overlay.read(dn, attributes) if known[1] else None
        return self.inner.read(dn, attributes)

    # ------------------------------------------------------------------ writes (planned)
    def run_add(self, op: Add) -> Entry | None:
        """Planned, not sent; ``post_read`` is not offered (see capabilities): None."""
        dn, attributes = op.dn, op.attributes
        with self._lock:
            if self._exists(dn):
                raise DirectoryError("entryAlreadyExists", "", dn=dn, operation="add")
            parent = parent_dn(dn)
            if parent and not self._materialize(parent):
                raise DirectoryError(
                    "noSuchObject", "parent does not exist", dn=dn, operation="add"
                )
            for name in _REF_ATTRIBUTES:
                self._materialize_refs(_values(attributes, name))
            self.overlay.add(dn, attributes)
            self._touched[normalize_dn(dn)] = (dn, True)
        body = [f"{name}{self._value(name, v)}" for name, vals in attributes.items() for v in vals]
        self._plan("add", dn, [*attributes], body)
        return None

    def run_modify(self, op: Modify) -> Entry | None:
        """Planned, not sent; ``post_read`` is not offered (see capabilities): None."""
        dn, changes, assertion = op.dn, op.changes, op.assertion
        if not changes:
            return None
        with self._lock:
            if not self._materialize(dn):
                raise DirectoryError("noSuchObject", "", dn=dn, operation="modify")
            for ch in changes:
                if ch.attr.lower() in _REF_ATTRIBUTES:
                    self._materialize_refs(ch.values)
            self.overlay.modify(dn, changes, assertion=assertion)
        body = [f"control: 1.3.6.1.1.12 true: {assertion}"] if assertion else []
        for ch in changes:
            body.append(f"{ch.op}: {ch.attr}")
            body += [f"{ch.attr}{self._value(ch.attr, v)}" for v in ch.values]
            body.append("-")
        self._plan("modify", dn, list(dict.fromkeys(c.attr for c in changes)), body)
        return None

    def run_rename(self, op: Rename) -> str:
        dn, new_rdn, new_superior, assertion = op.dn, op.new_rdn, op.new_superior, op.assertion
        with self._lock:
            if not self._materialize(dn):
                raise DirectoryError("noSuchObject", "", dn=dn, operation="rename")
            if (
                assertion is not None
                and not self.overlay.search(dn, assertion, ["1.1"], scope="base").entries
            ):
                raise DirectoryError("assertionFailed", "", dn=dn, operation="rename")
            parent = new_superior if new_superior is not None else parent_dn(dn)
            target = f"{new_rdn},{parent}" if parent else new_rdn
            if normalize_dn(target) != normalize_dn(dn) and self._exists(target):
                raise DirectoryError("entryAlreadyExists", "", dn=target, operation="rename")
            if new_superior is not None and not self._materialize(new_superior):
                raise DirectoryError("noSuchObject", "new superior", dn=dn, operation="rename")
            self._materialize_referrers(dn)
            new_dn = self.overlay.rename(dn, new_rdn, new_superior, assertion=assertion)
            self._touched[normalize_dn(dn)] = (dn, False)
            self._touched[normalize_dn(new_dn)] = (new_dn, True)
        body = [f"control: 1.3.6.1.1.12 true: {assertion}"] if assertion else []
        body += [f"newrdn{_ldif_value(new_rdn)}", "deleteoldrdn: 1"]
        if new_superior is not None:
            body.append(f"newsuperior{_ldif_value(new_superior)}")
        self._plan("modrdn", dn, [], body)
        return new_dn

    def run_delete(self, op: Delete) -> None:
        dn, assertion = op.dn, op.assertion
        with self._lock:
            if not self._materialize(dn):
                raise DirectoryError("noSuchObject", "", dn=dn, operation="delete")
            if assertion and not self.overlay.search(dn, assertion, ["1.1"], scope="base").entries:
                raise DirectoryError("assertionFailed", "", dn=dn, operation="delete")
            for child in self._real_children(dn):
                if self._touched.get(normalize_dn(child.dn), ("", True))[1]:
                    raise DirectoryError("notAllowedOnNonLeaf", "", dn=dn, operation="delete")
            self._materialize_referrers(dn)
            self.overlay.delete(dn)
            self._touched[normalize_dn(dn)] = (dn, False)
        body = [f"control: 1.3.6.1.1.12 true: {assertion}"] if assertion else []
        self._plan("delete", dn, [], body)

    def _real_children(self, dn: str) -> list[Entry]:
        try:
            return self.inner.search(dn, "(objectClass=*)", ["1.1"], scope="one").entries
        except DirectoryError as exc:
            if exc.code == "noSuchObject":  # a planned entry: no children in the directory
                return []
            raise

    # ------------------------------------------------------------------ logging
    def _value(self, attr: str, value: bytes) -> str:
        if attr.lower() in self._secret:
            return ": <redacted>"
        return _ldif_value(value)

    def _plan(self, changetype: str, dn: str, attributes: Sequence[str], body: list[str]) -> None:
        ldif = "\n".join([f"dn{_ldif_value(dn)}", f"changetype: {changetype}", *body])
        op = "rename" if changetype == "modrdn" else changetype
        metrics.LDAP_OPERATIONS.labels(op, "planned").inc()
        context.record(context.LdapOp(op, dn, tuple(attributes), "planned", planned=True))
        log.info(
            "dry run: planned LDAP %s of %s (not applied)",
            op,
            dn,
            extra={
                "request_id": context.current_request_id(),
                "dry_run": True,
                "operation": op,
                "dn": dn,
                "ldif": ldif,
            },
        )


def _values(attributes: Mapping[str, Sequence[bytes]], name: str) -> list[bytes]:
    return [v for k, vals in attributes.items() if k.lower() == name for v in vals]


def _ldif_value(value: str | bytes) -> str:
    """``: text`` when the value is safe LDIF text (RFC 2849 SAFE-STRING), else ``:: base64``."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and (text == "" or (_SAFE.fullmatch(text) and not text.endswith(" "))):
        return f": {text}"
    return f":: {base64.b64encode(raw).decode('ascii')}"


def _sort_value(entry: Entry, attr: str) -> str:
    raw = entry.first(attr)
    return raw.decode("utf-8", "replace").lower() if raw is not None else "\uffff"
