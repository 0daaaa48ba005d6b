"""Writes that one LDAP operation cannot do: multi-step creates, and values that may only travel
encrypted.

Active Directory refuses to enable an account that has no password, and the password can only be
set on an existing account over an encrypted connection.  So a create is *staged*: the mapping
(or its dialect) lists ``create_steps``, LDAP attributes held back from the add and written
afterwards, one modify per step, in order::

    create_steps: [[unicodePwd, pwdLastSet], [userAccountControl]]

The entry is added without them (AD makes it a disabled account, UAC 546), then the password is
set, then the account is enabled.  If a step fails (a weak password: AD's 52D) the half-made entry
is deleted again (compensation) and the step's error is returned, so a failed create leaves
nothing behind and the IdP's retry starts clean.  Nothing here knows about AD: the steps, the
codecs and the must-change attribute are data from the mapping and its dialect.
"""

from __future__ import annotations

import logging
import secrets
import string
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bridge.directory.base import Change, Directory, Entry
from bridge.errors import BridgeError, NotImplemented_
from bridge.translate import entry as tr

if TYPE_CHECKING:
    from bridge.config import Dialect, ResourceMap
    from bridge.service import Service

log = logging.getLogger("bridge.service")


def check_transport(directory: Directory, rmap: ResourceMap, attributes: Iterable[str]) -> None:
    """Refuse to send a ``secure_transport`` value (every password codec: OpenLDAP's
    userPassword, AD's unicodePwd) or any write-only secret over plain LDAP.  The one check for
    all of them; ``Directory.secure`` also holds for a loopback directory when the operator
    opted out (``BRIDGE_LDAP_ALLOW_PLAIN_PASSWORDS_ON_LOOPBACK=true``).

    501, not 400: the request is fine, this deployment cannot carry it out until its
    administrator configures LDAPS or StartTLS (a 400 would tell the IdP its data is wrong; a 503
    would make it retry forever).  The detail says what to change."""
    if directory.secure:
        return
    for name in attributes:
        for a in rmap.maps_for_ldap(name):
            if a.codec.secure_transport or a.codec.write_only:
                raise NotImplemented_(
                    f"{a.path} cannot be written: the bridge reaches the directory over "
                    f"unencrypted LDAP and sends {a.ldap} only over LDAPS, StartTLS or ldapi; "
                    "the bridge's administrator must set BRIDGE_LDAP_URL=ldaps://... (or "
                    "ldapi://...) or BRIDGE_LDAP_STARTTLS=true (for a directory on the same "
                    "host only: BRIDGE_LDAP_ALLOW_PLAIN_PASSWORDS_ON_LOOPBACK=true)"
                )


def _must_change(dialect: Dialect, rmap: ResourceMap, names: Iterable[str]) -> Change | None:
    """The dialect's "must change at next sign-in" change, when a password is being written and
    the mapping asks for it (``password_must_change: true``)."""
    if not rmap.password_must_change or dialect.must_change is None:
        return None
    lowered = {n.lower() for n in names}
    if not any(a.codec.write_only and a.ldap.lower() in lowered for a in rmap.attributes):
        return None
    attr, value = dialect.must_change
    return Change("replace", attr, (value,))


def with_password_policy(
    dialect: Dialect, rmap: ResourceMap, changes: Sequence[Change]
) -> list[Change]:
    """``changes`` plus the must-change marker when they set a password (PUT/PATCH)."""
    extra = _must_change(dialect, rmap, (c.attr for c in changes))
    return [*changes, extra] if extra else list(changes)


def add_extras(rmap: ResourceMap, body: Mapping[str, Any], attrs: dict[str, list[bytes]]) -> None:
    """Constant and derived attributes of a new entry (AD: groupType, a group's
    sAMAccountName), unless the request already set them through a mapping."""
    present = {k.lower() for k in attrs}
    for attr, values in rmap.constants:
        if attr.lower() not in present:
            attrs[attr] = list(values)
    for attr, source, codec in rmap.derived:
        if attr.lower() in present:
            continue
        smap = next(a for a in rmap.attributes if a.path.lower() == source.lower())
        found = tr.scim_values(rmap, smap, body)[:1]
        encoded = codec.encode(found[0]) if found else []
        if encoded:
            attrs[attr] = encoded


def create(
    service: Service,
    rmap: ResourceMap,
    dn: str,
    attrs: dict[str, list[bytes]],
    post_read: Sequence[str] | None = None,
) -> Entry | None:
    """Add ``dn`` and run the create steps; undo the add if a step fails.

    ``post_read``: the last write of the create (the add, or the last step's modify, which
    leaves the entry as the create is done with it) asks for these attributes of the entry
    it leaves (RFC 4527); returned when the directory sent them, else None."""
    directory = service.directory
    _generate_password(rmap, attrs)
    check_transport(directory, rmap, attrs)
    first = dict(attrs)
    marker = _must_change(service.mapping.dialect, rmap, attrs)
    if marker is not None:
        first[marker.attr] = list(marker.values)
    steps: list[list[Change]] = []
    for step in rmap.create_steps:
        wanted = {name.lower() for name in step}
        changes = [
            Change("replace", name, tuple(first.pop(name)))
            for name in list(first)
            if name.lower() in wanted and first[name]
        ]
        if changes:
            steps.append(changes)
    entry = directory.add(dn, first, post_read=None if steps else post_read)
    for i, changes in enumerate(steps, 1):
        try:
            entry = directory.modify(dn, changes, post_read=post_read if i == len(steps) else None)
        except BridgeError:
            _compensate(directory, dn)
            raise
    return entry


def _generate_password(rmap: ResourceMap, attrs: dict[str, list[bytes]]) -> None:
    """``generate_missing_password: true``: a create without a password gets 32 random
    characters from all four classes AD's complexity rule counts, so AD lets the account be
    enabled.  Nobody learns it (never returned, never logged): the user signs in through the
    IdP's federation, or the helpdesk resets it.  Entra sends no password for such users."""
    if not rmap.generate_missing_password:
        return
    target = next((a for a in rmap.attributes if a.attr == "password"), None)
    if target is None or any(k.lower() == target.ldap.lower() for k in attrs):
        return
    classes = (string.ascii_uppercase, string.ascii_lowercase, string.digits, "!#%+-.:=?@_~")
    chars = [secrets.choice(c) for c in classes]
    chars += [secrets.choice("".join(classes)) for _ in range(28)]
    secrets.SystemRandom().shuffle(chars)
    attrs[target.ldap] = target.codec.encode("".join(chars))


def _compensate(directory: Directory, dn: str) -> None:
    try:
        directory.delete(dn)
    except BridgeError as exc:  # the original error is the one the client must see
        log.error("create of %s failed half-way and the entry could not be removed: %s", dn, exc)
    else:
        log.warning("create of %s failed half-way; the entry was removed again", dn)
