"""Writing one entry: the modify with its no-op retry, the rename (and the undo of a modify
whose rename failed), If-Match, the uniqueness checks (RFC 7644 §3.12 409), and the changes
a PUT makes (RFC 7644 §3.5.1).

A write is the smallest correct set of LDAP operations: a retry of an add of a present value or
a delete of an absent one is a successful no-op (IdPs retry), a rename follows the modify and
is undone with it, so a request never leaves an entry half-written.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bridge.directory.base import Change, Directory, Entry
from bridge.directory.syntax import normalize_dn, rdn_of, split_rdn
from bridge.errors import (
    BadGateway,
    DirectoryError,
    InvalidValue,
    Mutability,
    NotFound,
    PreconditionFailed,
    ScimError,
    Uniqueness,
)
from bridge.mapping.model import AttributeMap, MappingConfig, ResourceMap
from bridge.service import create, integrity, valuemembers
from bridge.service.lookup import RESERVED_IDS, Found, Lookup
from bridge.translate import entry as tr
from bridge.translate import membervalues as mv
from bridge.translate.filter import equals, of_type
from bridge.translate.members import member_changes

log = logging.getLogger("bridge.service")
NOOP_PROBES = 20  # above this many values, a no-op retry reads the attribute once instead


@dataclass(frozen=True)
class Modified:
    """What :meth:`Writer.modify` did: the changes the directory applied (what an undo must
    invert) and, when asked for with ``post_read`` and returned, the entry they left."""

    applied: list[Change]
    entry: Entry | None = None


@dataclass(frozen=True)
class Written:
    """What :meth:`Writer.write` did: the entry's DN afterwards and, when the write was one
    modify asked for a post-read, the entry it left (None: read it for the response)."""

    dn: str
    entry: Entry | None = None


class Writer:
    """Modify, rename, undo and the checks a write needs, through a :class:`Lookup`."""

    def __init__(self, lookup: Lookup):
        self.lookup = lookup

    @property
    def directory(self) -> Directory:
        return self.lookup.directory

    @property
    def mapping(self) -> MappingConfig:
        return self.lookup.mapping

    # ------------------------------------------------------------------ checks
    def unique_check(
        self, rmap: ResourceMap, attrs: Mapping[str, list[bytes]], exclude_dn: str | None = None
    ) -> None:
        for a in rmap.attributes:
            if not a.unique or not attrs.get(a.ldap):
                continue
            value = attrs[a.ldap][0]
            flt = of_type(rmap, equals(a.ldap, value.decode("utf-8")))
            for e in self.directory.search(
                rmap.base_dn, flt, ["1.1"], scope=rmap.scope, size_limit=2
            ).entries:
                if exclude_dn is None or normalize_dn(e.dn) != normalize_dn(exclude_dn):
                    raise Uniqueness(f"{a.path} {value.decode('utf-8')!r} is already in use")

    def unique_recheck(self, rmap: ResourceMap, dn: str, attrs: Mapping[str, list[bytes]]) -> None:
        """Uniqueness of a non-RDN attribute under races (the RDN is unique by the directory's
        own entryAlreadyExists): re-check after the add; the later duplicate removes itself."""
        for a in rmap.attributes:
            if not a.unique or not attrs.get(a.ldap) or a.ldap.lower() == rmap.rdn.ldap.lower():
                continue
            value = attrs[a.ldap][0]
            flt = of_type(rmap, equals(a.ldap, value.decode("utf-8")))
            if integrity.duplicates_after_create(
                self.directory, rmap.base_dn, flt, rmap.scope, dn, rmap.created, rmap.version
            ):
                self.directory.delete(dn)
                raise Uniqueness(f"{a.path} {value.decode('utf-8')!r} is already in use")

    def missing_on_add(self, rmap: ResourceMap, exc: DirectoryError) -> ScimError:
        if self.directory.read(rmap.base_dn, ["1.1"]) is None:
            log.error("the mapped base DN %s does not exist", rmap.base_dn)
            return BadGateway(f"the directory has no {rmap.base_dn} (check the mapping)")
        return InvalidValue(f"a referenced entry does not exist ({exc.message or exc.code})")

    @staticmethod
    def refuse_reserved(rmap: ResourceMap, value: str) -> None:
        """An RDN value that is a reserved path segment could never be addressed as an id."""
        if value in RESERVED_IDS:
            raise InvalidValue(f"{rmap.rdn.source} {value!r} is a reserved name (RFC 7644 §3.4.3)")

    def check_version(self, rmap: ResourceMap, entry: Entry, if_match: str | None) -> str | None:
        """RFC 7644 §3.14: If-Match must name the current version; returns an LDAP assertion
        filter so the directory re-checks it atomically where supported (RFC 4528)."""
        if not if_match or if_match.strip() == "*":
            return None
        current = tr.version_of(rmap, entry)
        wanted = {t.strip() for t in if_match.split(",")}
        norm = {w[2:] if w.startswith("W/") else w for w in wanted}
        if current is None or current[2:] not in norm:
            raise PreconditionFailed(f"{rmap.name} has changed: current version is {current}")
        raw = entry.first(rmap.version)
        if raw is None or not self.directory.capabilities.assertion:
            return None
        return equals(rmap.version, raw.decode("utf-8"))

    # ------------------------------------------------------------------ PUT
    def replace_changes(
        self, rmap: ResourceMap, entry: Entry, new: Mapping[str, list[bytes]]
    ) -> list[Change]:
        """A PUT's changes (RFC 7644 §3.5.1): every writable attribute of ``entry`` takes its
        value in ``new`` (the body's attributes); members as the difference of the visible
        ones, references SCIM does not show kept, immutable ones refused if they change."""
        changes: list[Change] = []
        for ldap_attr, maps in _writable_by_ldap(rmap).items():
            want = new.get(ldap_attr, [])
            have = list(entry.get(ldap_attr))
            a = maps[0]
            if not tr.readable(a):  # a password: set when given, never read nor compared
                if want:
                    changes.append(Change("replace", ldap_attr, tuple(want)))
                continue
            if a.codec.keep_when_absent and not want:
                continue  # e.g. AD's userAccountControl: a PUT without active leaves it
            if a.attr == "members":
                if a.by_value:  # memberUid: the visible values become the body's
                    changes += mv.replace_values(
                        self.lookup, entry, a.ldap, a.member_value, a.to, _texts(want), _texts(have)
                    )
                else:
                    changes += self._member_delta(rmap, a, have, want)
                if a.mirror is not None:  # RFC 2307bis: in step, in the same modify
                    m = a.mirror
                    changes += mv.replace_values(
                        self.lookup,
                        entry,
                        m.ldap,
                        m.member_value,
                        m.targets,
                        _texts(new.get(m.ldap, [])),
                        _texts(entry.get(m.ldap)),
                    )
                continue
            if a.is_reference and (a.multi or not want):
                want = want + self._hidden_refs(a, have)
            if _same(have, want, a):
                continue
            if a.mutability == "immutable" and have:
                raise Mutability(f"{a.path} is immutable")
            changes.append(Change("replace", ldap_attr, tuple(want)))
        return changes

    def _member_delta(
        self, rmap: ResourceMap, a: AttributeMap, have: list[bytes], want: list[bytes]
    ) -> list[Change]:
        """A PUT's member changes: the visible members become exactly ``want``; a value SCIM
        does not show (a member outside the mapped bases, scope or filters, the directory's
        own refint placeholder) is kept, since the client could not have listed it."""
        placeholder = rmap.empty_member
        have_k = {normalize_dn(tr.ref_dn(a, v)): v for v in have}
        want_k = {normalize_dn(v.decode()): v for v in want}
        if placeholder:
            have_k.pop(normalize_dn(placeholder), None)
        adds = [v for k, v in want_k.items() if k not in have_k]
        gone = {k: v for k, v in have_k.items() if k not in want_k}
        visible = self.lookup.resolve_dns([tr.ref_dn(a, v) for v in gone.values()], a.to)
        dels = [v for k, v in gone.items() if k in visible]  # as stored (uniqueMember's UID)
        return member_changes(
            rmap,
            a,
            adds,
            dels,
            len(have_k) - len(dels) + len(adds),
            had_placeholder=any(
                normalize_dn(v.decode()) == normalize_dn(placeholder or "") for v in have
            ),
        )

    def _hidden_refs(self, a: AttributeMap, have: list[bytes]) -> list[bytes]:
        """The values of reference attribute ``a`` that SCIM does not show (a manager outside
        the mapped User base): a PUT keeps them — when the attribute is single-valued, only if
        the body gives none."""
        if not have:
            return []
        shown = self.lookup.resolve_dns([tr.ref_dn(a, v) for v in have], a.to)
        return [v for v in have if normalize_dn(tr.ref_dn(a, v)) not in shown]

    # ------------------------------------------------------------------ operations
    def rename(
        self, rmap: ResourceMap, dn: str, new_value: str, assertion: str | None = None
    ) -> str:
        try:
            if assertion:
                return self.directory.rename(
                    dn, rdn_of(rmap.rdn.ldap, new_value), assertion=assertion
                )
            return self.directory.rename(dn, rdn_of(rmap.rdn.ldap, new_value))
        except DirectoryError as exc:
            if exc.code == "entryAlreadyExists":
                raise Uniqueness(f"{rmap.rdn.source} {new_value!r} is already in use") from None
            raise

    def modify(
        self,
        dn: str,
        changes: list[Change],
        assertion: str | None = None,
        post_read: Sequence[str] | None = None,
    ) -> Modified:
        """Apply changes; a retry of an add of a present value or a delete of an absent one is
        a successful no-op (IdPs retry), so those values are dropped and the rest re-applied.
        Returns the changes the directory actually applied (what an undo must invert) and,
        with ``post_read``, the entry the modify that went through left (none when the retry
        found nothing left to apply: no modify carried the control)."""
        directory = self.directory
        try:
            try:
                entry = directory.modify(dn, changes, assertion=assertion, post_read=post_read)
                return Modified(changes, entry)
            except DirectoryError as exc:
                if not exc.value_noop:
                    raise
                retry = self._drop_noops(dn, changes)
                if retry == changes:
                    raise
                entry = None
                if retry:
                    entry = directory.modify(dn, retry, assertion=assertion, post_read=post_read)
                return Modified(retry, entry)
        except DirectoryError as exc:
            if exc.code == "noSuchObject":
                raise self._missing(dn, exc) from None
            raise

    def _missing(self, dn: str, exc: DirectoryError) -> ScimError:
        """noSuchObject names either the target (404) or an entry a value refers to, e.g. a
        member or manager DN on directories that check references (400; RFC 7644 §3.12)."""
        if self.directory.read(dn, ["1.1"]) is None:
            return NotFound(f"the entry {dn} no longer exists")
        return InvalidValue(f"a referenced entry does not exist ({exc.message or exc.code})")

    def _drop_noops(self, dn: str, changes: list[Change]) -> list[Change]:
        out: list[Change] = []
        for ch in changes:
            if ch.op == "replace" or not ch.values:
                out.append(ch)
                continue
            keep = []
            many = len(ch.values) > NOOP_PROBES
            current = self._dn_values(dn, ch) if many else None
            exact = self._member_values(dn, ch) if many and current is None else None
            for v in ch.values:
                if current is not None:
                    present = normalize_dn(v.decode("utf-8", "replace")) in current
                elif exact is not None:
                    present = v in exact
                else:
                    present = self.lookup.has_value(dn, ch.attr, v.decode("utf-8", "replace"))
                if present != (ch.op == "add"):
                    keep.append(v)
            if keep:
                out.append(Change(ch.op, ch.attr, tuple(keep)))
        return out

    def _member_values(self, dn: str, ch: Change) -> set[bytes] | None:
        """The same for a value member attribute (memberUid, a mirror), read once and compared
        exactly as the directory does (caseExactIA5Match); None for any other attribute."""
        if not any(
            (a.by_value and not a.from_member and a.ldap.lower() == ch.attr.lower())
            or (a.mirror is not None and a.mirror.ldap.lower() == ch.attr.lower())
            for r in self.mapping.resources.values()
            for a in r.attributes
        ):
            return None
        entry = self.directory.read(dn, [ch.attr])
        return set(entry.get(ch.attr)) if entry is not None else set()

    def _dn_values(self, dn: str, ch: Change) -> set[str] | None:
        """For a retry of many DN values (an IdP re-sending 5,000 members): the attribute's
        current values, read once, instead of one probe per value; None if not DN-valued
        (a value member attribute, memberUid, is probed: its values are not DNs)."""
        if not any(
            a.is_reference and not a.by_value and a.ldap.lower() == ch.attr.lower()
            for r in self.mapping.resources.values()
            for a in r.attributes
        ):
            return None
        return {normalize_dn(v) for v in self.lookup.values_of(dn, ch.attr)}

    def write(
        self,
        rmap: ResourceMap,
        found: Found,
        changes: list[Change],
        new_rdn_value: str | None,
        assertion: str | None,
        when_emptied: list[Change] | None = None,
        *,
        post_read: Sequence[str] | None = None,
    ) -> Written:
        """One modify and, when the naming attribute changed, one rename; returns the DN (and,
        see ``post_read``, the entry).

        The modify goes first, carrying the If-Match assertion (RFC 4528) so a concurrent
        change fails it atomically; the rename follows (asserted itself when there is nothing to
        modify).  When the rename fails (the new name is taken) the modify is undone, so a
        request never leaves the entry half-written.  ``when_emptied`` is sent instead of
        ``changes`` if the directory refuses to leave a groupOfNames without members.

        ``post_read``: when the write is one modify (no rename after it), the modify asks for
        these attributes of the entry it leaves (``Written.entry``; RFC 4527)."""
        dn = found.dn
        if changes:
            changes = create.with_password_policy(self.mapping.dialect, rmap, changes)
            create.check_transport(self.directory, rmap, (c.attr for c in changes))
        # a member value (uid) that changes: the groups holding it follow (valuemembers)
        renames = valuemembers.renamed(self.mapping, rmap, found.entry, changes, new_rdn_value)
        if new_rdn_value is not None:
            changes = [c for c in changes if c.attr.lower() != rmap.rdn.ldap.lower()]
            self._check_free(rmap, dn, new_rdn_value)
        before = None
        secret = _write_only(rmap)
        if new_rdn_value is not None or renames:
            if new_rdn_value is not None:
                post_read = None  # the rename changes the entry after the modify
            if changes:
                before = integrity.before_image(self.directory, dn, _readable(changes, secret))
        done = Modified([])
        if changes:
            try:
                done = self.modify(dn, changes, assertion, post_read)
            except DirectoryError as exc:
                if exc.code != "objectClassViolation" or when_emptied is None:
                    raise
                changes = when_emptied
                if new_rdn_value is not None or renames:
                    before = integrity.before_image(self.directory, dn, _readable(changes, secret))
                done = self.modify(dn, changes, assertion, post_read)
        if new_rdn_value is None:
            if renames:
                self._follow(rmap, dn, None, renames, _readable(done.applied, secret), before)
            return Written(dn, done.entry)
        try:
            new_dn = self.rename(rmap, dn, new_rdn_value, None if changes else assertion)
        except (ScimError, DirectoryError) as exc:
            # a write-only attribute (a password) cannot be read into the before-image, so its
            # undo would be ``replace attr ()``, deleting it: it is left out of the undo, and
            # stays set as the request asked (the detail of a failed undo names it)
            undo = _readable(done.applied, secret)
            if undo and before is not None:
                self._undo(dn, undo, before, exc)
            raise
        if renames:
            self._follow(rmap, dn, new_dn, renames, _readable(done.applied, secret), before)
        return Written(new_dn)

    def _follow(
        self,
        rmap: ResourceMap,
        dn: str,
        new_dn: str | None,
        renames: list[valuemembers.Renamed],
        applied: list[Change],
        before: Entry | None,
    ) -> None:
        """The groups holding a changed member value follow it; when one fails, the groups done
        are put back, then the rename and the modify undone, and the error says what was left
        if an undo failed as well."""
        try:
            valuemembers.fan_out(self, rmap, renames)
            return
        except valuemembers.FanOutFailed as failed:
            cause, steps = failed.cause, failed.done
        left = valuemembers.undo_steps(self, steps)
        notes = [valuemembers.left_detail(dn, renames, left)] if left else []
        if new_dn is not None:
            try:
                self.directory.rename(new_dn, rdn_of(rmap.rdn.ldap, split_rdn(dn)[1]))
            except DirectoryError as exc:
                notes.append(f"renaming {new_dn} back to {dn} failed ({exc.code})")
                dn = new_dn
        if applied and before is not None:
            try:
                self.directory.modify(dn, integrity.inverse(applied, before))
            except DirectoryError as exc:
                notes.append(
                    f"undoing the modify of {dn} failed ({exc.code}): "
                    f"{integrity.describe(applied)} remain applied"
                )
        err = cause.to_scim() if isinstance(cause, DirectoryError) else cause
        err.detail = f"{err.detail}. Updating the groups that hold the member value failed" + (
            f"; what was left: {'; '.join(notes)}" if notes else "; the change was undone"
        )
        err.args = (err.detail,)
        if notes:
            log.error("partial write left behind", extra={"dn": dn, "cause": err.detail})
        raise err from None

    def _check_free(self, rmap: ResourceMap, dn: str, new_rdn_value: str) -> None:
        """A rename onto a taken name is refused before anything is written (409); the undo
        in :meth:`write` only covers a name taken in between."""
        self.refuse_reserved(rmap, new_rdn_value)
        new_dn = f"{rdn_of(rmap.rdn.ldap, new_rdn_value)},{split_rdn(dn)[2]}"
        if normalize_dn(new_dn) == normalize_dn(dn):
            return  # a case-only rename
        if self.directory.read(new_dn, ["1.1"]) is not None:
            raise Uniqueness(f"{rmap.rdn.source} {new_rdn_value!r} is already in use")

    def _undo(
        self,
        dn: str,
        applied: list[Change],
        before: Entry,
        cause: ScimError | DirectoryError,
    ) -> None:
        """Compensate a modify whose follow-up rename failed; when that fails too, the error
        the client gets says exactly what was left (integrity.left_behind)."""
        try:
            self.directory.modify(dn, integrity.inverse(applied, before))
        except DirectoryError as undo_error:
            raise integrity.left_behind(cause, dn, applied, undo_error) from None


def _texts(values: Sequence[bytes]) -> list[str]:
    return [v.decode("utf-8", "replace") for v in values]


def _write_only(rmap: ResourceMap) -> frozenset[str]:
    """The LDAP attributes of ``rmap`` that are written but never read back (password codecs,
    ``returned: never``), lower-cased."""
    return frozenset(a.ldap.lower() for a in rmap.attributes if not tr.readable(a))


def _readable(changes: Sequence[Change], secret: frozenset[str]) -> list[Change]:
    """``changes`` without those of the write-only attributes ``secret``."""
    return [c for c in changes if c.attr.lower() not in secret]


def _writable_by_ldap(rmap: ResourceMap) -> dict[str, list[AttributeMap]]:
    out: dict[str, list[AttributeMap]] = {}
    for a in rmap.attributes:
        if a.writable:
            out.setdefault(a.ldap, []).append(a)
    return out


def _same(have: Sequence[bytes], want: Sequence[bytes], a: AttributeMap) -> bool:
    if a.codec.binary:
        return list(have) == list(want)
    if a.is_reference:
        return {normalize_dn(v.decode()) for v in have} == {normalize_dn(v.decode()) for v in want}
    return sorted(have) == sorted(want)  # a case-only change is a change the client asked for
