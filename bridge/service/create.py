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
from bridge.directory.connections import plain_dn
from bridge.directory.syntax import is_under
from bridge.errors import BridgeError, DirectoryError, NotImplemented_, Uniqueness
from bridge.service.lookup import Lookup
from bridge.translate import entry as tr
from bridge.translate.filter import any_of

if TYPE_CHECKING:
    from bridge.mapping.dialects import Dialect
    from bridge.mapping.model import DerivedMap, ResourceMap

log = logging.getLogger("bridge.service")
#: how often a create is tried when a derived unique value was taken between search and add
DERIVE_ATTEMPTS = 5
#: numeric suffixes tried per search: none and 1-9, then 10-99, then 100-999
SUFFIX_BATCHES = ((0, 10), (10, 100), (100, 1000))


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


def active_by_default(rmap: ResourceMap, body: Mapping[str, Any]) -> Mapping[str, Any]:
    """A create without ``active`` (or with ``active: null``, RFC 7643 §2.5) makes an active
    account on every directory, as other SCIM servers treat it: slapd and the embedded
    directory would leave it active anyway, but AD creates accounts disabled, so the value is
    written (and the create runs the password and enable steps).  OneLogin and JumpCloud send
    no ``active`` on create."""
    amap = next((a for a in rmap.attributes if a.attr == "active" and a.writable), None)
    if amap is None:
        return body
    keys = [
        k for k in body if k.lower() == "active" or k.lower() == f"{amap.schema}:active".lower()
    ]
    if any(body[k] is not None for k in keys):
        return body
    return {**{k: v for k, v in body.items() if k not in keys}, "active": True}


def add_extras(
    rmap: ResourceMap, body: Mapping[str, Any], attrs: dict[str, list[bytes]]
) -> dict[str, str]:
    """Constant and derived attributes of a new entry (AD: groupType, a user's or group's
    sAMAccountName), unless the request already set them through a mapping.  Returns the
    derived values that must still be made unique (:func:`settle_unique`), by LDAP name."""
    present = {k.lower() for k in attrs}
    for attr, values in rmap.constants:
        if attr.lower() not in present:
            attrs[attr] = list(values)
    bases: dict[str, str] = {}
    for d in rmap.derived:
        if d.ldap.lower() in present:
            continue
        smap = next(a for a in rmap.attributes if a.path.lower() == d.source.lower())
        found = tr.scim_values(rmap, smap, body)[:1]
        encoded = d.codec.encode(found[0]) if found else []
        if encoded:
            attrs[d.ldap] = encoded
            if d.unique:
                bases[d.ldap] = encoded[0].decode("utf-8")
    return bases


def follow_derived(
    rmap: ResourceMap,
    entry: Entry,
    changes: Sequence[Change],
    new_rdn_value: str | None = None,
) -> list[Change]:
    """``changes`` (a PUT's or PATCH's, of ``entry``) plus a ``replace`` of each derived value
    without ``unique:`` whose source they change (gecos from displayName), so it follows its
    source in the same modify; a source emptied clears it.  A ``unique:`` derived value (AD's
    sAMAccountName) stays as created: renaming it would break logons and the numbering that
    made it unique.  A derived attribute the changes write themselves is left to them."""
    out = list(changes)
    touched = {c.attr.lower() for c in changes}
    for d in rmap.derived:
        if d.unique or d.ldap.lower() in touched:
            continue
        smap = next(a for a in rmap.attributes if a.path.lower() == d.source.lower())
        source = smap.ldap.lower()
        if source == rmap.rdn.ldap.lower() and new_rdn_value is not None:
            values: list[bytes] = [new_rdn_value.encode("utf-8")]
        elif source in touched:
            values = _after(list(entry.get(smap.ldap)), changes, source)
        else:
            continue
        encoded = d.codec.encode(smap.codec.decode(values[0])) if values else []
        out.append(Change("replace", d.ldap, tuple(encoded)))
    return out


def _after(have: list[bytes], changes: Sequence[Change], attr: str) -> list[bytes]:
    """The values of ``attr`` once ``changes`` are applied to ``have``."""
    values = have
    for c in changes:
        if c.attr.lower() != attr:
            continue
        if c.op == "replace" or (c.op == "delete" and not c.values):
            values = list(c.values) if c.op == "replace" else []
        elif c.op == "add":
            values = values + [v for v in c.values if v not in values]
        else:
            values = [v for v in values if v not in c.values]
    return values


def settle_unique(
    lookup: Lookup, rmap: ResourceMap, bases: Mapping[str, str], attrs: dict[str, list[bytes]]
) -> None:
    """Give each ``unique:`` derived value the first free numeric suffix (jdoe, jdoe1, jdoe2,
    ...), cut so the suffix fits the codec's length limit (AD's 20 characters)."""
    for d in rmap.derived:
        if d.ldap in bases:
            attrs[d.ldap] = [_free_value(lookup, rmap, d, bases[d.ldap]).encode("utf-8")]


def lost_race(
    lookup: Lookup,
    rmap: ResourceMap,
    bases: Mapping[str, str],
    attrs: Mapping[str, list[bytes]],
    exc: DirectoryError,
) -> bool:
    """Whether an add failed because another create took a derived unique value between the
    search and the add (AD: entryAlreadyExists 00002071/00000524 for a sAMAccountName in use;
    constraintViolation on some versions): then the create is tried again with the next one."""
    if not bases or exc.code not in ("entryAlreadyExists", "constraintViolation"):
        return False
    for d in rmap.derived:
        if d.ldap in bases:
            value = attrs[d.ldap][0].decode("utf-8")
            if _taken(lookup, rmap, d, [value]):
                return True
    return False


def _free_value(lookup: Lookup, rmap: ResourceMap, d: DerivedMap, base: str) -> str:
    limit: int | None = getattr(d.codec, "MAX", None)
    for lo, hi in SUFFIX_BATCHES:
        candidates = list(dict.fromkeys(_suffixed(base, n, limit) for n in range(lo, hi)))
        taken = _taken(lookup, rmap, d, candidates)
        for value in candidates:
            if value.lower() not in taken:
                return value
    last = _suffixed(base, SUFFIX_BATCHES[-1][1] - 1, limit)
    raise Uniqueness(f"{d.ldap}: every name from {base!r} to {last!r} is already in use")


def _suffixed(base: str, n: int, limit: int | None) -> str:
    if n == 0:
        return base
    suffix = str(n)
    return (base[: limit - len(suffix)] if limit else base) + suffix


def _taken(lookup: Lookup, rmap: ResourceMap, d: DerivedMap, values: Sequence[str]) -> set[str]:
    """Which of ``values`` some entry holds (lower-cased: AD compares names case-insensitively),
    among every object in the uniqueness scope, whatever its object class."""
    base, scope = rmap.base_dn, rmap.scope
    if d.unique == "domain":
        base, scope = _naming_context(lookup, rmap), "sub"
    res = lookup.directory.search(base, any_of(d.ldap, values), [d.ldap], scope=scope)
    return {v.decode("utf-8", "replace").lower() for e in res.entries for v in e.get(d.ldap)}


def _naming_context(lookup: Lookup, rmap: ResourceMap) -> str:
    """The naming context that holds ``base_dn`` (the domain, on AD), from the root DSE."""

    def find() -> str:
        root = lookup.directory.read("", ["namingContexts"])
        # AD answers in the extended-DN form (<GUID=..>;<SID=..>;DC=...) the bridge asks for
        contexts = [plain_dn(v.decode("utf-8")) for v in root.get("namingContexts")] if root else []
        holding = [nc for nc in contexts if nc and is_under(rmap.base_dn, nc)]
        return max(holding, key=len) if holding else rmap.base_dn

    found: str = lookup.memo(rmap, ("naming-context",), find)
    return found


def create(
    lookup: Lookup,
    rmap: ResourceMap,
    dn: str,
    attrs: dict[str, list[bytes]],
    post_read: Sequence[str] | None = None,
) -> Entry | None:
    """Add ``dn`` and run the create steps; undo the add if a step fails.

    ``post_read``: the last write of the create (the add, or the last step's modify, which
    leaves the entry as the create is done with it) asks for these attributes of the entry
    it leaves (RFC 4527); returned when the directory sent them, else None."""
    directory = lookup.directory
    _generate_password(rmap, attrs)
    check_transport(directory, rmap, attrs)
    first = dict(attrs)
    marker = _must_change(lookup.mapping.dialect, rmap, attrs)
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
