"""POSIX numbers and templated attributes of a new entry (mapping/posix.py).

Allocation is atomic across any number of bridge processes and replicas without a lock service:
the counter entry holds the next number to try, and the bridge moves it with ONE modify that
deletes the value it read and adds the next one.  LDAP applies a modify's changes atomically
(RFC 4511 §4.6), so when another writer moved the counter first, the delete finds no such
value, the directory answers noSuchAttribute (16) and nothing changes; the bridge reads the
counter again and retries, a bounded number of times with jitter.

A number is never reused: before the swap, one search over the whole naming context asks which
of a batch of candidates some entry already holds (legacy directories hold numbers no counter
knows about) and the counter skips past them.  Every number the counter passes is spent, even
when the add then fails, so two creates can never hold the same number.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bridge.directory.base import Change, Directory
from bridge.directory.syntax import dn_equal, rdn_of, split_rdn
from bridge.errors import (
    DirectoryError,
    InvalidValue,
    NotImplemented_,
    ScimError,
    Unavailable,
    Uniqueness,
)
from bridge.mapping.posix import NONE, Allocation, PrivateGroup, Template
from bridge.service.create import _compensate, _naming_context
from bridge.translate import entry as tr
from bridge.translate.filter import any_of

if TYPE_CHECKING:
    from bridge.mapping.model import ResourceMap
    from bridge.service.lookup import Lookup

log = logging.getLogger("bridge.service")
#: compare-and-swap attempts per number before a 503 (each lost one means another create won)
ATTEMPTS = 100
#: candidates checked against the directory per search
BATCH = 16
#: LDAP results that mean "another writer moved the counter between our read and our swap".
#: noSuchObject too: under concurrent writes 389 DS (2.3.1, measured once in 500 creates) may
#: refuse a modify of the existing counter so while another update of it holds the entry; the
#: modify changed nothing, and the next read says whether the counter really is gone (501)
_LOST = ("noSuchAttribute", "attributeOrValueExists", "noSuchObject")
#: a template value: printable ASCII (homeDirectory is IA5String), one path component
_SAFE = re.compile(r"[!-.0-~]+")


class RangeExhausted(ScimError):
    """Every number of an ``allocate:`` range is spent.  507 Insufficient Storage (RFC 4918
    §11.5): the request is fine (a 400 would blame the IdP's data, a 409 would make Okta and
    Entra look for an existing user to match) and retrying will not help until the
    directory's administrator widens the range; no RFC 7644 §3.12 scimType fits, so none."""

    status = 507


def fill(
    lookup: Lookup, rmap: ResourceMap, body: Mapping[str, Any], attrs: dict[str, list[bytes]]
) -> None:
    """Templated attributes and allocated numbers of a new entry, unless the request already
    set them through a mapping.  Called after the uniqueness checks, so a refused create
    spends no number."""
    spec = rmap.posix
    if spec is NONE:
        return
    present = {k.lower() for k in attrs}
    for t in spec.templates:
        if t.ldap.lower() not in present:
            attrs[t.ldap] = [render(rmap, t, body).encode("ascii")]
    todo = [a for a in spec.allocations if a.ldap.lower() not in present]
    if spec.private_group is not None and "gidnumber" not in present:
        todo.append(spec.private_group.gid)
    if todo:
        context = _naming_context(lookup, rmap)
        for a in todo:
            attrs[a.ldap] = [str(allocate(lookup.directory, a, context)).encode()]


def render(rmap: ResourceMap, t: Template, body: Mapping[str, Any]) -> str:
    """``t.text`` with each ``{path}`` replaced by the request's value.  A value must be one
    safe path component -- printable ASCII, no ``/``, not ``.`` or ``..`` -- so that
    ``/home/{userName}`` can never point outside /home; anything else is a 400 (folding or
    replacing characters could give two users the same home directory)."""
    out = t.text
    for field in t.fields:
        smap = next(a for a in rmap.attributes if a.path.lower() == field.lower())
        found = tr.scim_values(rmap, smap, body)[:1]
        value = found[0] if found and isinstance(found[0], str | int) else None
        text = str(value) if value is not None else ""
        if not _SAFE.fullmatch(text) or text in (".", ".."):
            raise InvalidValue(
                f"{t.ldap} is built from {field} ({t.text!r}): {field} must be printable ASCII "
                f"without '/' or spaces, and not '.' or '..'; got {value!r}"
            )
        out = out.replace("{" + field + "}", text)
    return out


def allocate(directory: Directory, a: Allocation, context: str) -> int:
    """The next free number of ``a``'s range, taken atomically from its counter.  Only lost
    swaps count against ATTEMPTS: skipping a long run of legacy numbers is progress."""
    lost = 0
    while True:
        current = _read_counter(directory, a)
        start = max(current or a.low, a.low)
        if start > a.high:
            raise RangeExhausted(
                f"{a.ldap}: every number of the range {a.low}-{a.high} is in use; the "
                f"directory's administrator must widen the mapping's allocate.{a.ldap}.range"
            )
        candidates = range(start, min(start + BATCH, a.high + 1))
        taken = _taken(directory, a.ldap, candidates, context, a.counter)
        free = next((n for n in candidates if n not in taken), None)
        following = (candidates[-1] if free is None else free) + 1
        if _swap(directory, a, current, following):
            if free is not None:
                return free
            continue  # a run of numbers held by legacy entries: the counter skipped them
        lost += 1
        if lost >= ATTEMPTS:
            raise Unavailable(f"{a.ldap}: the number counter {a.counter} is too busy; try again")
        time.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(lost, 6))))


def _read_counter(directory: Directory, a: Allocation) -> int | None:
    entry = directory.read(a.counter, [a.counter_attr])
    if entry is None:
        log.error("allocate %s: the counter entry %s does not exist", a.ldap, a.counter)
        raise NotImplemented_(
            f"{a.ldap} cannot be allocated: the counter entry {a.counter} does not exist; the "
            "directory's administrator must create it (see check-mapping --connect)"
        )
    value = entry.first(a.counter_attr)
    try:
        return int(value) if value is not None else None
    except ValueError:
        raise NotImplemented_(
            f"{a.ldap} cannot be allocated: {a.counter_attr} of {a.counter} is not a number"
        ) from None


def _taken(
    directory: Directory, ldap: str, candidates: Sequence[int], context: str, counter: str
) -> set[int]:
    """Which candidates some entry of the naming context already holds, whatever its class."""
    res = directory.search(context, any_of(ldap, [str(n) for n in candidates]), [ldap], scope="sub")
    # the counter entry holds the next number in this very attribute by default: not a user
    found = {v for e in res.entries if not dn_equal(e.dn, counter) for v in e.get(ldap)}
    return {n for n in candidates if str(n).encode() in found}


def _swap(directory: Directory, a: Allocation, current: int | None, following: int) -> bool:
    """Compare-and-swap: ``current`` -> ``following`` in one modify; False if another writer
    moved the counter first (the modify then changed nothing)."""
    changes = [Change("add", a.counter_attr, (str(following).encode(),))]
    if current is not None:
        changes.insert(0, Change("delete", a.counter_attr, (str(current).encode(),)))
    try:
        directory.modify(a.counter, changes)
    except DirectoryError as exc:
        # a counter without a value yet: another writer's add makes ours a second value of a
        # single-valued attribute (constraintViolation) or the same value
        if exc.code in _LOST or (current is None and exc.code == "constraintViolation"):
            return False
        raise
    return True


# ---------------------------------------------------------------------------- private groups
def _group_dn(pg: PrivateGroup, user_dn: str) -> str:
    """The private group is named after the user's RDN value (the uid: Debian's convention)."""
    return f"{rdn_of('cn', split_rdn(user_dn)[1])},{pg.base_dn}"


def add_private_group(
    directory: Directory, rmap: ResourceMap, dn: str, attrs: Mapping[str, list[bytes]]
) -> None:
    """After the user ``dn`` was added: its private group, holding the gidNumber :func:`fill`
    allocated.  If the group cannot be added the user is deleted again, so a failed create
    leaves nothing behind (a group of that name already there: 409)."""
    pg = rmap.posix.private_group
    if pg is None:
        return
    name = split_rdn(dn)[1]
    entry = {
        "objectClass": [c.encode() for c in pg.object_classes],
        "cn": [name.encode()],
        "gidNumber": list(attrs["gidNumber"]),
    }
    try:
        directory.add(_group_dn(pg, dn), entry)
    except DirectoryError as exc:
        _compensate(directory, dn)
        if exc.code == "entryAlreadyExists":
            raise Uniqueness(
                f"a group named {name!r} already exists in {pg.base_dn}, so the user's "
                "private group cannot be created"
            ) from None
        raise


def private_group_of(directory: Directory, rmap: ResourceMap, dn: str) -> str | None:
    """Before the user ``dn`` is deleted: the DN of its private group -- the group named after
    it whose gidNumber is the user's -- when the policy deletes the entry, else None."""
    pg = rmap.posix.private_group
    if pg is None or not rmap.deprovision.deletes:
        return None
    user = directory.read(dn, ["gidNumber"])
    group_dn = _group_dn(pg, dn)
    group = directory.read(group_dn, ["gidNumber"])
    gid = user.first("gidNumber") if user else None
    return group_dn if gid is not None and group and group.first("gidNumber") == gid else None


def drop_private_group(directory: Directory, group_dn: str | None) -> None:
    """After the user was deleted: its private group.  The user is gone whatever happens here,
    so a failure is logged, not returned (the IdP's retry would get a 404 and stop)."""
    if group_dn is None:
        return
    try:
        directory.delete(group_dn)
    except DirectoryError as exc:
        if exc.code != "noSuchObject":
            log.error("the private group %s was left behind: %s", group_dn, exc.code)
