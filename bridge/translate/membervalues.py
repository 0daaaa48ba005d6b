"""PATCH of ``members`` held by value: RFC 2307's ``memberUid`` (the group holds each user's
``uid``, not its DN) and RFC 2307bis's mirror (a DN member attribute plus ``memberUid``, kept in
step).  The value part of a PATCH's member plan (:mod:`bridge.translate.members` calls it):

* add/remove become MODIFY_ADD/MODIFY_DELETE of just the members' values (the ids resolved to
  the value attribute in the same batched searches that find their DNs), in the same modify as
  the DN changes of a mirrored group, so both attributes change atomically;
* a replace (or remove-all) reads the value attribute once and changes only the values SCIM
  shows: a value that names no visible user (an account outside the mapped User base or filter,
  a uid with no entry) is kept, as hidden DN members are (a client could not have listed it);
* a value attribute may become empty (posixGroup allows no memberUid): no placeholder.

Pure: the directory is reached through :class:`~bridge.translate.lookups.Lookups` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from bridge.directory.base import Change, Entry
from bridge.errors import InvalidValue
from bridge.mapping.model import AttributeMap
from bridge.translate import entry as tr
from bridge.translate.lookups import Lookups, Member

__all__ = ["mirrored", "replace_values", "value_changes", "value_diff", "values_of"]


def values_of(a: AttributeMap, found: Mapping[str, Member], *, strict: bool) -> list[str]:
    """The values (uids) of resolved members; ``strict``: a member without one is a 400."""
    out = []
    for rid, m in found.items():
        if m.value:
            out.append(m.value)
        elif strict:
            raise InvalidValue(f"{a.attr}: {m.resource} {rid} has no {a.member_value}")
    return list(dict.fromkeys(out))


def mirrored(a: AttributeMap, found: Mapping[str, Member]) -> list[str]:
    """The mirror values of resolved members: those of the mirror's (user-like) targets."""
    assert a.mirror is not None
    targets = a.mirror.targets
    return list(dict.fromkeys(m.value for m in found.values() if m.value and m.resource in targets))


def value_changes(attr: str, adds: Sequence[str], dels: Sequence[str]) -> list[Change]:
    changes = []
    if adds:
        changes.append(Change("add", attr, tuple(v.encode() for v in adds)))
    if dels:
        changes.append(Change("delete", attr, tuple(v.encode() for v in dels)))
    return changes


def value_diff(
    member_value: str, have: Iterable[str], want: Iterable[str], visible: Mapping[str, tr.Ref]
) -> tuple[list[str], list[str]]:
    """(values to add, stored values to delete) so the visible values become ``want``;
    compared case-insensitively, as the uid they name (a stored ``JDoe`` is ``jdoe``)."""
    have = list(have)
    have_k = {v.lower() for v in have}
    want_k = {v.lower(): v for v in want}
    adds = [v for k, v in want_k.items() if k not in have_k]
    dels = [v for v in have if v.lower() not in want_k and tr.value_key(member_value, v) in visible]
    return adds, dels


def replace_values(
    lookups: Lookups,
    entry: Entry,
    attr: str,
    member_value: str,
    targets: Sequence[str],
    want: Iterable[str],
    have: list[str] | None = None,
) -> list[Change]:
    """The changes that make the visible values of ``attr`` exactly ``want``: the attribute
    read once (unless given as ``have``), its values resolved in batched searches."""
    if have is None:
        have = lookups.values_of(entry.dn, attr)
    visible = lookups.resolve_values(have, targets, member_value) if have else {}
    adds, dels = value_diff(member_value, have, want, visible)
    return value_changes(attr, adds, dels)
