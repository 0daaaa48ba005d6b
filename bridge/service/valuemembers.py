"""Members held by value follow their user: the multi-step writes of RFC 2307 ``memberUid``
(and of RFC 2307bis's mirror), which no refint overlay does for a value.

* **Renames.**  When a user's member value changes (a PUT/PATCH of userName renames
  ``uid=old`` to ``uid=new``, or rewrites the mapped attribute), every group holding ``old``
  in a value member attribute gets ``old`` replaced by ``new``: found with one search
  ``(memberUid=old)`` per group type, then one modify per group (delete old, add new:
  atomic per group).  If a step fails, the groups done are put back, then the user's rename
  and modify are undone (:meth:`bridge.service.writes.Writer.write`); if an undo fails too,
  the error's detail says exactly what was left (:func:`left_detail`).
* **Deletes.**  A DELETE of a user (and the deprovision action ``remove_groups``) takes its
  values out of every group first: a stale memberUid would silently grant a future user of
  the same uid the old user's groups.  Done before the delete, so a failure leaves the
  account (still deletable: an IdP retries) rather than a grant nobody sees.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bridge.directory.base import Change, Directory, Entry
from bridge.errors import DirectoryError, ScimError
from bridge.mapping.model import MappingConfig, ResourceMap
from bridge.service import integrity
from bridge.translate.filter import equals, of_type
from bridge.translate.members import member_changes

log = logging.getLogger("bridge.integrity")


class _Applied(Protocol):
    @property
    def applied(self) -> list[Change]: ...


class Writer(Protocol):
    """What these steps need of :class:`bridge.service.writes.Writer` (which calls them, so
    it is described here rather than imported): its modify, whose no-op retry makes a
    re-run step harmless, and what it writes through."""

    @property
    def mapping(self) -> MappingConfig: ...

    @property
    def directory(self) -> Directory: ...

    def modify(self, dn: str, changes: list[Change]) -> _Applied: ...


@dataclass(frozen=True)
class Holder:
    """A group type whose ``attr`` holds the ``member_value`` of members of some type."""

    gmap: ResourceMap
    attr: str
    member_value: str


def holders(mapping: MappingConfig, rmap: ResourceMap) -> list[Holder]:
    """Every group type holding ``rmap``'s members by value (memberUid, or a mirror)."""
    out = []
    for gmap in mapping.resources.values():
        a = gmap.member_map
        if a is None:
            continue
        if a.by_value and rmap.name in a.to:
            out.append(Holder(gmap, a.ldap, a.member_value))
        if a.mirror is not None and rmap.name in a.mirror.targets:
            out.append(Holder(gmap, a.mirror.ldap, a.mirror.member_value))
    return out


def value_attrs(mapping: MappingConfig, rmap: ResourceMap) -> list[str]:
    """The LDAP attributes of ``rmap`` whose values groups hold (``uid``)."""
    return list(dict.fromkeys(h.member_value for h in holders(mapping, rmap)))


@dataclass(frozen=True)
class Renamed:
    """A member value that a write changes: ``old`` -> ``new`` of the user's ``attr``."""

    attr: str
    old: str
    new: str


def renamed(
    mapping: MappingConfig,
    rmap: ResourceMap,
    entry: Entry,
    changes: Sequence[Change],
    new_rdn_value: str | None,
) -> list[Renamed]:
    """The member values a write of ``entry`` changes: its naming value when the member value
    is the RDN attribute and the entry is renamed, or a replace of the attribute."""
    out = []
    for attr in value_attrs(mapping, rmap):
        old = entry.text(attr)
        new: str | None = None
        if new_rdn_value is not None and attr.lower() == rmap.rdn.ldap.lower():
            new = new_rdn_value
        else:
            for c in changes:
                if c.attr.lower() == attr.lower() and c.op == "replace" and c.values:
                    new = c.values[0].decode("utf-8", "replace")
        if old and new is not None and new != old:
            out.append(Renamed(attr, old, new))
    return out


@dataclass
class Step:
    dn: str
    applied: list[Change]


def fan_out(writer: Writer, rmap: ResourceMap, renames: Sequence[Renamed]) -> list[Step]:
    """Replace each old value by the new one in every group holding it; returns the steps
    done.  A failed step raises :class:`FanOutFailed` carrying the steps done before it."""
    done: list[Step] = []
    for r in renames:
        for h in holders(writer.mapping, rmap):
            if h.member_value.lower() != r.attr.lower():
                continue
            flt = of_type(h.gmap, equals(h.attr, r.old))
            try:
                groups = writer.directory.search(h.gmap.base_dn, flt, ["1.1"], scope=h.gmap.scope)
                for g in groups.entries:
                    change = [
                        Change("delete", h.attr, (r.old.encode(),)),
                        Change("add", h.attr, (r.new.encode(),)),
                    ]
                    applied = writer.modify(g.dn, change).applied
                    done.append(Step(g.dn, applied))
            except (ScimError, DirectoryError) as exc:
                raise FanOutFailed(exc, done) from exc
    return done


class FanOutFailed(Exception):
    def __init__(self, cause: ScimError | DirectoryError, done: list[Step]):
        super().__init__(str(cause))
        self.cause = cause
        self.done = done


def undo_steps(writer: Writer, steps: Sequence[Step]) -> list[str]:
    """Put the groups of ``steps`` back, last first; returns the DNs whose undo failed."""
    failed = []
    for step in reversed(steps):
        try:
            writer.directory.modify(step.dn, integrity.inverse(step.applied, Entry(step.dn, {})))
        except DirectoryError as exc:
            log.error("undo of a member value change failed", extra={"dn": step.dn})
            failed.append(f"{step.dn} ({exc.code})")
    return failed


def left_detail(user_dn: str, renames: Sequence[Renamed], groups_left: list[str]) -> str:
    """What a failed fan-out whose undo failed as well left behind."""
    what = ", ".join(f"{r.attr} {r.old!r} -> {r.new!r}" for r in renames)
    return (
        f"the member values of {user_dn} ({what}) could not be updated in every group, and "
        f"putting these groups back failed: {'; '.join(groups_left)} (they hold the new "
        f"value, the others the old one)"
    )


def drop_values(writer: Writer, rmap: ResourceMap, dn: str) -> None:
    """Take the member values of the entry ``dn`` (its uid) out of every group holding them,
    with a group holding the DN too (a mirror) changed in the same modify; a group it already
    left is skipped (the modify's no-op retry)."""
    found = holders(writer.mapping, rmap)
    if not found:
        return
    entry = writer.directory.read(dn, list(dict.fromkeys(h.member_value for h in found)))
    if entry is None:
        return
    for h in found:
        for raw in entry.get(h.member_value):
            value = raw.decode("utf-8", "replace")
            member = h.gmap.member_map
            dual = member is not None and member.mirror is not None and not member.by_value
            parts = [equals(h.attr, value)]
            if dual:
                assert member is not None
                parts.append(equals(member.ldap, dn))
            flt = of_type(h.gmap, parts[0] if len(parts) == 1 else f"(|{''.join(parts)})")
            for g in writer.directory.search(
                h.gmap.base_dn, flt, ["1.1"], scope=h.gmap.scope
            ).entries:
                value_change = Change("delete", h.attr, (raw,))
                if not dual:
                    writer.modify(g.dn, [value_change])
                    continue
                assert member is not None
                dn_change = Change("delete", member.ldap, (dn.encode(),))
                try:
                    writer.modify(g.dn, [dn_change, value_change])
                except DirectoryError as exc:
                    if exc.code != "objectClassViolation" or not h.gmap.empty_member:
                        raise
                    # a groupOfNames left without members: its placeholder goes in, same modify
                    changes = member_changes(h.gmap, member, [], [dn.encode()], 0, False)
                    writer.modify(g.dn, [*changes, value_change])
