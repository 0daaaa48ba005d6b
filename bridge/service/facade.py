"""Use cases: list / get / create / replace / patch / delete.  No HTTP here.

Every write is the smallest correct set of LDAP operations: only attributes that change, member
changes as MODIFY_ADD/MODIFY_DELETE of the affected DNs (never a rewrite of a member list), a
rename before a modify when the RDN source changes.  References (members, groups, manager) are
resolved DN <-> id in batched searches.  Where the directory offers them, a PATCH of a group
learns whether the empty-group placeholder is there with the find (matched values, RFC 3876),
and a write that is one modify, like a create's last write (the add, or its last staged
modify), gets the entry for the response back with it (post-read, RFC 4527) instead of
reading it again.

:class:`Service` is thin: it gathers each use case's inputs and hands the work to four small
collaborators, each of one job: :class:`~bridge.service.lookup.Lookup` (find, id <-> DN),
:class:`~bridge.service.render.Renderer` (entry -> resource),
:class:`~bridge.service.listing.Lister` (list, search, paging) and
:class:`~bridge.service.writes.Writer` (modify, rename, undo, uniqueness).  A PATCH is planned
purely (:func:`bridge.translate.patch.plan`) from what the service found first, with the
:class:`Lookup` as its :class:`~bridge.translate.lookups.Lookups`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from bridge import concurrency
from bridge.directory.base import OID_EXTENDED_DN, Deref, Directory, Entry
from bridge.directory.syntax import normalize_dn, split_rdn
from bridge.errors import (
    BadRequest,
    DirectoryError,
    InvalidSyntax,
    ScimError,
    Uniqueness,
)
from bridge.mapping.model import MappingConfig, ResourceMap
from bridge.scim.messages import Op, parse_ops
from bridge.scim.projection import DEFAULT, Projection
from bridge.service import allocate, create, deprovision
from bridge.service.listing import Lister, ListQuery, ListResult
from bridge.service.lookup import RESERVED_IDS, Found, Lookup
from bridge.service.render import Renderer
from bridge.service.writes import Writer, Written
from bridge.translate import entry as tr
from bridge.translate.members import may_add_members
from bridge.translate.patch import (
    WORKING_VIEW,
    patch_size,
    plan,
    read_attributes,
    unique_candidates,
)

log = logging.getLogger("bridge.service")
#: how a directory refuses a critical control it advertises (for this account or request)
CONTROL_REFUSED = frozenset({"unavailableCriticalExtension", "unwillingToPerform"})
#: a PATCH with more operations + values than this is planned off the event loop (concurrency)
OFFLOAD_SIZE = 256


class Service:
    def __init__(
        self,
        mapping: MappingConfig,
        directory: Directory,
        *,
        max_results: int = 1000,
        default_count: int = 100,
        cursor_key: bytes = b"",
    ):
        self.lookup = Lookup(mapping, directory)
        self.renderer = Renderer(self.lookup)
        self.writer = Writer(self.lookup)
        self.lister = Lister(
            self.lookup,
            self.renderer,
            max_results=max_results,
            default_count=default_count,
            cursor_key=cursor_key,
        )
        #: the directory advertised matched values but refused them once: not sent again
        self._matched_values_refused = False

    # ------------------------------------------------------------------ what it works on
    @property
    def mapping(self) -> MappingConfig:
        return self.lookup.mapping

    @property
    def directory(self) -> Directory:
        return self.lookup.directory

    @directory.setter
    def directory(self, directory: Directory) -> None:
        self.lookup.directory = directory  # every collaborator reads it through the lookup

    @property
    def cursor_key(self) -> bytes:
        """Signs RFC 9865 cursors (bridge.scim.cursor.derive_key); equal on every replica."""
        return self.lister.cursor_key

    @cursor_key.setter
    def cursor_key(self, key: bytes) -> None:
        self.lister.cursor_key = key

    def rmap(self, name: str) -> ResourceMap:
        return self.lookup.mapping.resource(name)

    # ------------------------------------------------------------------ reads
    def get(
        self, name: str, rid: str, base_url: str, projection: Projection = DEFAULT
    ) -> dict[str, Any]:
        lookup = self.lookup
        rmap = lookup.mapping.resource(name)
        found = lookup.find(
            rmap, rid, tr.ldap_attributes(rmap, projection), lookup.derefs(rmap, projection)
        )
        return self.renderer.render(rmap, [found.entry], base_url, projection)[0]

    def version(self, name: str, rid: str) -> str | None:
        rmap = self.rmap(name)
        found = self.lookup.find(rmap, rid, [rmap.id.ldap, rmap.version])
        return tr.version_of(rmap, found.entry)

    def search(self, name: str, query: ListQuery, base_url: str) -> ListResult:
        """List / filter / sort / page one resource type (:meth:`Lister.search`)."""
        return self.lister.search(name, query, base_url)

    def search_all(self, query: ListQuery, base_url: str) -> ListResult:
        """``POST /.search`` over every resource type (:meth:`Lister.search_all`)."""
        return self.lister.search_all(query, base_url)

    # ------------------------------------------------------------------ create
    def create(self, name: str, body: Any, base_url: str) -> dict[str, Any]:
        rmap = self.rmap(name)
        writer = self.writer
        body = create.active_by_default(rmap, _body(body))
        tr.validate_schemas(rmap, body)
        tr.check_required(rmap, body)
        ref_dns = self.lookup.ref_dns_for(rmap, body)
        attrs = tr.to_attributes(rmap, body, ref_dns)
        dn = tr.dn_for(rmap, body)
        rdn_attr, rdn_val, _ = split_rdn(dn)
        writer.refuse_reserved(rmap, rdn_val)
        existing = attrs.get(rdn_attr, [])
        if rdn_val.encode() not in existing:
            attrs[rdn_attr] = [rdn_val.encode()] + [
                v for v in existing if v.lower() != rdn_val.encode().lower()
            ]
        attrs["objectClass"] = [oc.encode() for oc in rmap.object_classes]
        member = rmap.member_map
        mirror = self.lookup.mirror_values(rmap, body)  # RFC 2307bis: memberUid in step
        if member is not None and member.mirror is not None and mirror:
            attrs[member.mirror.ldap] = mirror
        if member is not None and rmap.empty_member and not attrs.get(member.ldap):
            attrs[member.ldap] = [rmap.empty_member.encode()]
        bases = create.add_extras(rmap, body, attrs)
        writer.unique_check(rmap, attrs)
        allocate.fill(self.lookup, rmap, body, attrs)  # POSIX numbers and templates
        try:
            created = self._add(rmap, dn, attrs, bases)
        except DirectoryError as exc:
            if exc.code == "constraintViolation" and exc.operation == "add":
                # AD refuses a userPrincipalName taken meanwhile so (0000202F): a 409
                writer.unique_check(rmap, attrs)
            if exc.code == "entryAlreadyExists":
                raise Uniqueness(f"{rmap.rdn.source} {rdn_val!r} is already in use") from None
            if exc.code == "noSuchObject":
                raise writer.missing_on_add(rmap, exc) from None
            raise
        writer.unique_recheck(rmap, dn, attrs)
        allocate.add_private_group(self.lookup.directory, rmap, dn, attrs)
        entry = created  # the entry as the create's last write left it (post-read)
        if entry is None:  # not asked for, or the directory sent none: read it back
            entry = self.lookup.read_dn(rmap, dn, tr.ldap_attributes(rmap))
        return self.renderer.render(rmap, [entry], base_url)[0]

    def _add(
        self,
        rmap: ResourceMap,
        dn: str,
        attrs: dict[str, list[bytes]],
        bases: dict[str, str],
    ) -> Entry | None:
        """The staged create, with each ``unique:`` derived value (AD's sAMAccountName) given
        the first free suffix; when a concurrent create took it between the search and the
        add, tried again with the next free one (a bounded number of times)."""
        # references are resolved by render from either entry: the create's read-back never
        # used the dereference control, so it does not rule the post-read out here
        post_read = self._post_read(rmap, carried=True)
        lookup = self.lookup
        for attempt in range(1, create.DERIVE_ATTEMPTS + 1):
            create.settle_unique(lookup, rmap, bases, attrs)
            try:
                return create.create(lookup, rmap, dn, attrs, post_read)
            except DirectoryError as exc:
                if attempt == create.DERIVE_ATTEMPTS or not create.lost_race(
                    lookup, rmap, bases, attrs, exc
                ):
                    raise
                log.info("create of %s: derived name taken meanwhile, trying the next", dn)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ replace
    def replace(
        self, name: str, rid: str, body: Any, base_url: str, if_match: str | None = None
    ) -> dict[str, Any]:
        """PUT (RFC 7644 §3.5.1): every mutable mapped attribute takes the body's value; absent
        ones are cleared; readOnly ones (groups, meta, id) are ignored; immutable ones may only be
        set if unset or to the same value."""
        rmap = self.rmap(name)
        body = _body(body)
        tr.validate_schemas(rmap, body)
        read = tr.ldap_attributes(rmap, Projection()) + [
            a.ldap
            for a in rmap.attributes
            if tr.readable(a)  # never a password hash
        ]
        member = rmap.member_map
        if member is not None and member.mirror is not None:
            read.append(member.mirror.ldap)  # kept in step with the members
        linked = self._find_deref(rmap)
        found = self.lookup.find(rmap, rid, list(dict.fromkeys(read)), linked)
        assertion = self.writer.check_version(rmap, found.entry, if_match)
        tr.check_required(rmap, body)
        ref_dns = self.lookup.ref_dns_for(rmap, body)
        new = tr.to_attributes(rmap, body, ref_dns, current=found.entry)
        mirror = self.lookup.mirror_values(rmap, body)
        if member is not None and member.mirror is not None and mirror is not None:
            new[member.mirror.ldap] = mirror
        changes = self.writer.replace_changes(rmap, found.entry, new)
        new_rdn = tr.rdn_value(rmap, body)
        _attr, old_rdn, _parent = split_rdn(found.dn)
        renamed = new_rdn if new_rdn != old_rdn else None
        written = self.writer.write(
            rmap,
            found,
            create.follow_derived(rmap, found.entry, changes, renamed),
            renamed,
            assertion,
            post_read=self._post_read(rmap, carried=bool(linked)),
        )
        return self._respond(rmap, found, written, base_url)

    # ------------------------------------------------------------------ delete
    def delete(self, name: str, rid: str, if_match: str | None = None) -> None:
        rmap = self.rmap(name)
        found = self.lookup.find(rmap, rid, [rmap.id.ldap, rmap.version])
        assertion = self.writer.check_version(rmap, found.entry, if_match)
        # delete, or disable/strip groups/move: the mapping's deprovisioning policy says
        private_group = allocate.private_group_of(self.lookup.directory, rmap, found.dn)
        deprovision.delete(self.writer, rmap, found, assertion)
        allocate.drop_private_group(self.lookup.directory, private_group)

    # ------------------------------------------------------------------ patch
    def patch(
        self,
        name: str,
        rid: str,
        body: Any,
        base_url: str,
        if_match: str | None = None,
        projection: Projection = DEFAULT,
    ) -> dict[str, Any]:
        """PATCH (RFC 7644 §3.5.2) answered with the resource: every operation is validated
        and planned before anything is written (translate.patch); the member list is read only
        for a replace or a remove of all members, or a general member filter, and then once.

        With a directory that offers them, adding a member to a group is three operations:
        the find (which also says, through matched values, whether the empty-group
        placeholder is there), the member id's lookup, and the modify, whose post-read gives
        the response."""
        if _offload(body):
            return concurrency.offload(self.patch, name, rid, body, base_url, if_match, projection)
        rmap = self.rmap(name)
        linked = self._find_deref(rmap, projection)
        post_read = self._post_read(rmap, projection, carried=bool(linked))
        found, written = self._patch(rmap, rid, body, base_url, if_match, linked, post_read)
        return self._respond(rmap, found, written, base_url, projection)

    def patch_no_content(
        self, name: str, rid: str, body: Any, base_url: str, if_match: str | None = None
    ) -> str | None:
        """PATCH answered with 204 No Content (RFC 7644 §3.5.2): the same writes as
        :meth:`patch`, but nothing of the resource is read back or rendered, so a membership
        change costs the same for a 10- and a 50,000-member group.  Returns the new version
        (the ETag): from the modify's post-read of that one attribute where the directory
        offers it, else one base read of it; None when the mapping has no version."""
        if _offload(body):
            return concurrency.offload(self.patch_no_content, name, rid, body, base_url, if_match)
        rmap = self.rmap(name)
        post_read = [rmap.version] if self.directory.capabilities.post_read else None
        found, written = self._patch(rmap, rid, body, base_url, if_match, (), post_read)
        moved = deprovision.after_update(self.writer, rmap, written.dn, found.entry)
        entry = written.entry if moved is None else None
        if entry is None or not entry.get(rmap.version):
            entry = self.directory.read(moved or written.dn, [rmap.version])
        return tr.version_of(rmap, entry) if entry is not None else None

    def _patch(
        self,
        rmap: ResourceMap,
        rid: str,
        body: Any,
        base_url: str,
        if_match: str | None,
        linked: Sequence[Deref],
        post_read: Sequence[str] | None,
    ) -> tuple[Found, Written]:
        """Gather, plan and write one PATCH: the body parsed once, the entry found, the current
        resource rendered; then the pure plan, the uniqueness check and the write.
        ``linked``: what the find dereferences for the response, ``post_read``: what the
        modify returns of the entry it leaves."""
        ops, bad = _parse(_body(body))
        probe = self._placeholder_probe(rmap) if may_add_members(ops) else None
        found, probed = self._find_for_patch(rmap, rid, linked, probe)
        assertion = self.writer.check_version(rmap, found.entry, if_match)
        if bad is not None:  # refused after the find and If-Match, as before: a 404 first
            raise bad
        current = self.renderer.render(rmap, [found.entry], base_url, WORKING_VIEW)[0]
        planned = plan(
            ops,
            rmap,
            found.entry,
            current,
            self.lookup,
            has_placeholder=_holds_placeholder(rmap, found.entry) if probed else None,
        )
        self.writer.unique_check(rmap, unique_candidates(planned), exclude_dn=found.dn)
        renamed = planned.new_rdn_value
        emptied = planned.when_emptied
        written = self.writer.write(
            rmap,
            found,
            create.follow_derived(rmap, found.entry, planned.changes, renamed),
            renamed,
            assertion,
            None if emptied is None else create.follow_derived(rmap, found.entry, emptied, renamed),
            post_read=post_read,
        )
        return found, written

    def _find_for_patch(
        self,
        rmap: ResourceMap,
        rid: str,
        linked: Sequence[Deref],
        probe: dict[str, list[bytes]] | None,
    ) -> tuple[Found, bool]:
        """The find of a PATCH, and whether the placeholder ``probe`` went with it."""
        try:
            found = self.lookup.find(rmap, rid, read_attributes(rmap), linked, matched_values=probe)
            return found, probe is not None
        except DirectoryError as exc:
            if probe is None or exc.code not in CONTROL_REFUSED:
                raise
            # advertised in the root DSE but refused (an ACL, a proxy, a limit): find without
            # it, and the plan asks for the placeholder with a search of its own
            log.warning("matched values refused (%s): not asked again", exc.code)
            self._matched_values_refused = True
            return self.lookup.find(rmap, rid, read_attributes(rmap), linked), False

    def _placeholder_probe(self, rmap: ResourceMap) -> dict[str, list[bytes]] | None:
        """For the find of a group whose mapping has an ``empty_member`` placeholder, where the
        directory offers matched values (RFC 3876): the member attribute, read with just the
        placeholder value (present or not), so planning needs no search of its own for it.
        None otherwise (the plan then asks through its :class:`Lookups`)."""
        member = rmap.member_map
        if member is None or not rmap.empty_member:
            return None
        if not self.directory.capabilities.matched_values or self._matched_values_refused:
            return None
        return {member.ldap: [rmap.empty_member.encode()]}

    # ------------------------------------------------------------------ responses
    def _post_read(
        self, rmap: ResourceMap, projection: Projection = DEFAULT, carried: bool = False
    ) -> list[str] | None:
        """The attributes a write asks back with its modify (RFC 4527 post-read) for the
        response, or None (read it back afterwards): where the directory has no post-read, and
        where the read-back brings more than the entry itself (the entries its references
        name, through the dereference control; AD's member GUIDs, through the extended-DN
        control), which the response would otherwise have to look up with searches — unless
        the find ``carried`` that dereference already (:meth:`_find_deref`)."""
        if not self._post_read_usable():
            return None
        if self.lookup.derefs(rmap, projection) and not carried:
            return None
        return tr.ldap_attributes(rmap, projection)

    def _post_read_usable(self) -> bool:
        """The directory offers post-read, and its entry is all a response needs: not with
        AD's extended-DN control, whose read-back brings the GUIDs of DN values."""
        caps = self.directory.capabilities
        return caps.post_read and OID_EXTENDED_DN not in caps.controls

    def _find_deref(self, rmap: ResourceMap, projection: Projection = DEFAULT) -> tuple[Deref, ...]:
        """The dereference a PUT/PATCH's find carries, so the response can come from the
        modify's post-read with no read-back: the entries a user's ``groups`` and ``manager``
        name (their ids and display names) come with the find.  Which groups the user is in
        is still taken from the post-read; a group the find did not bring (joined meanwhile)
        is looked up by the renderer as usual.  Not for a group's ``members`` (the member
        list may be huge, and the find of a PATCH never reads it)."""
        if not self._post_read_usable():
            return ()
        specs = self.lookup.derefs(rmap, projection)
        member = rmap.member_map
        if member is not None and any(d.attr.lower() == member.ldap.lower() for d in specs):
            return ()
        return specs

    def _respond(
        self,
        rmap: ResourceMap,
        found: Found,
        written: Written,
        base_url: str,
        projection: Projection = DEFAULT,
    ) -> dict[str, Any]:
        """The resource after a PUT/PATCH: rendered from the entry the modify returned, unless
        the deprovisioning policy then changed it (or there is no such entry: read back)."""
        moved = deprovision.after_update(self.writer, rmap, written.dn, found.entry)
        if moved is not None or written.entry is None:
            return self._read_back(rmap, moved or written.dn, base_url, projection)
        entry = written.entry
        if found.entry.linked:  # what the find dereferenced (_find_deref)
            entry = replace(entry, linked=found.entry.linked)
        return self.renderer.render(rmap, [entry], base_url, projection)[0]

    def _read_back(
        self, rmap: ResourceMap, dn: str, base_url: str, projection: Projection = DEFAULT
    ) -> dict[str, Any]:
        attrs = tr.ldap_attributes(rmap, projection)
        entry = self.lookup.read_dn(rmap, dn, attrs, self.lookup.derefs(rmap, projection))
        return self.renderer.render(rmap, [entry], base_url, projection)[0]


def _body(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise InvalidSyntax("the request body must be a JSON object")
    return body


def _parse(body: Mapping[str, Any]) -> tuple[list[Op], ScimError | None]:
    """The operations of a PATCH body, parsed once (RFC 7644 §3.5.2), or the error refusing
    them (raised by the caller after the find, so a missing resource is still a 404)."""
    try:
        return parse_ops(body), None
    except ScimError as exc:
        return [], exc


def _offload(body: Any) -> bool:
    """On the event loop (python-ldap, bridge/concurrency.py) a large body is CPU for a while
    (planning, encoding, rendering): such a PATCH runs whole in the threadpool, where the
    client's LDAP calls block that thread only, so the loop keeps answering (/healthz,
    other requests); the common small PATCH stays on the loop."""
    return concurrency.active() and patch_size(body) > OFFLOAD_SIZE


def _holds_placeholder(rmap: ResourceMap, entry: Entry) -> bool:
    """Whether ``entry`` (found with :meth:`Service._placeholder_probe`) holds the group's
    ``empty_member`` placeholder.  Compared here too, so the answer holds even from a
    directory that returned every value."""
    member, placeholder = rmap.member_map, rmap.empty_member
    assert member is not None and placeholder
    key = normalize_dn(placeholder)
    return any(normalize_dn(v.decode("utf-8", "replace")) == key for v in entry.get(member.ldap))


__all__ = [
    "RESERVED_IDS",
    "BadRequest",
    "Found",
    "ListQuery",
    "ListResult",
    "Service",
]
