"""Deprovisioning: running what ``active=false`` and ``DELETE`` do to the directory entry.

IdPs mostly send ``active: false`` (Entra, Okta) and only sometimes a DELETE; directory owners want
to choose what each does (field notes §5.9): disable the account, move it to a quarantine OU,
strip its group memberships, or delete it.  The choice is data, per resource, in the mapping::

    deprovision:
      on_deactivate: [disable, remove_groups]
      on_delete: [disable, remove_groups, {move: "OU=Quarantine,DC=example,DC=com"}]

Actions run in a fixed, safe order whatever the order in the file: disable first (the account
stops working even if a later step fails), then remove_groups, then move; ``delete`` stands alone.
Each step is idempotent, so an IdP's retry of a half-done deprovisioning completes it.

Rules checked when the mapping loads, in mapping/policy.py (each keeps the SCIM view
consistent):

* ``on_deactivate`` must include ``disable``: the IdP reads ``active`` back.
* ``on_deactivate`` cannot ``delete``, and its ``move`` target must stay inside the resource's
  search scope (``scope: sub``, below ``base_dn``), so the IdP can still read and re-activate the
  account; re-activation moves it back to ``base_dn``.
* ``on_delete`` without ``delete`` must ``move`` the entry out of the search scope: after a DELETE
  the resource must be gone (RFC 7644 §3.6: a later GET is 404).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridge.directory.base import Change
from bridge.directory.syntax import normalize_dn, parent_dn, rdn_of, split_rdn
from bridge.errors import DirectoryError, NotFound, Unavailable
from bridge.service import valuemembers
from bridge.service.lookup import Found
from bridge.service.writes import Writer
from bridge.translate.filter import equals, of_type
from bridge.translate.members import member_changes

if TYPE_CHECKING:
    from bridge.directory.base import Entry
    from bridge.mapping.model import ResourceMap
    from bridge.mapping.policy import Action


# ---------------------------------------------------------------------------- running
def delete(writer: Writer, rmap: ResourceMap, found: Found, assertion: str | None = None) -> None:
    """DELETE /{resource}/{id} under the resource's policy; ``assertion`` (If-Match, RFC 4528)
    makes the delete atomic with the version check."""
    if rmap.deprovision.deletes:
        # no refint follows a value (memberUid): taken out first, so no stale value could
        # grant a future user of the same uid this one's groups
        valuemembers.drop_values(writer, rmap, found.dn)
        try:
            if assertion:
                writer.directory.delete(found.dn, assertion=assertion)
            else:
                writer.directory.delete(found.dn)
        except DirectoryError as exc:
            if exc.code == "noSuchObject":
                raise NotFound(f"{rmap.name} not found") from None
            raise
        return
    _run(writer, rmap, found.dn, rmap.deprovision.on_delete, disable=True)


def after_update(writer: Writer, rmap: ResourceMap, dn: str, was: Entry) -> str | None:
    """Called after a PUT/PATCH was applied: runs on_deactivate when ``active`` went from true to
    false, and moves a re-activated account back from the deactivation OU.  Returns the entry's
    DN (new if it moved) when it changed anything, else None: the entry is as the update left
    it.  Costs nothing unless the policy does more than disable."""
    active = next((a for a in rmap.attributes if a.attr == "active" and not a.sub), None)
    policy = rmap.deprovision
    if active is None or all(a.kind == "disable" for a in policy.on_deactivate):
        return None
    now = writer.directory.read(dn, [active.ldap])
    if now is None:
        return None
    before = _active(active, was)
    after = _active(active, now)
    if before and not after:
        steps = tuple(a for a in rmap.deprovision.on_deactivate if a.kind != "disable")
        if steps:
            return _run(writer, rmap, dn, steps, disable=False)
    target = rmap.deprovision.move_on_deactivate()
    if after and not before and target and _inside(dn, target):
        return _move(writer, dn, rmap.base_dn)
    return None


def _active(amap: Any, entry: Entry) -> bool:
    values = amap.codec.decode_all(list(entry.get(amap.ldap)))
    return bool(values and values[0] is True) if values else amap.codec.absent is True


def _inside(dn: str, ou: str) -> bool:
    return normalize_dn(parent_dn(dn)) == normalize_dn(ou)


def _run(
    writer: Writer, rmap: ResourceMap, dn: str, actions: tuple[Action, ...], *, disable: bool
) -> str:
    for action in actions:
        if action.kind == "disable" and disable:
            _disable(writer, rmap, dn)
        elif action.kind == "remove_groups":
            valuemembers.drop_values(writer, rmap, dn)  # memberUid (and a mirror's DN)
            remove_groups(writer, dn)
        elif action.kind == "move" and action.target and not _inside(dn, action.target):
            dn = _move(writer, dn, action.target)
    return dn


def _disable(writer: Writer, rmap: ResourceMap, dn: str) -> None:
    amap = next(a for a in rmap.attributes if a.attr == "active" and not a.sub)
    entry = writer.directory.read(dn, [amap.ldap])
    current = list(entry.get(amap.ldap)) if entry else []
    want = amap.codec.encode(False, current)
    if sorted(want) != sorted(current):
        writer.modify(dn, [Change("replace", amap.ldap, tuple(want))])


def remove_groups(writer: Writer, dn: str) -> None:
    """Take ``dn`` out of every mapped group that lists it: one single-value MODIFY_DELETE per
    group (never a rewrite of a member list); a group it already left is skipped."""
    for gmap in writer.mapping.resources.values():
        member = gmap.member_map
        if member is None:
            continue
        flt = of_type(gmap, equals(member.ldap, dn))
        for group in writer.directory.search(gmap.base_dn, flt, ["1.1"], scope=gmap.scope).entries:
            changes = member_changes(
                gmap, member, [], [dn.encode()], remaining=1, had_placeholder=False
            )
            try:
                writer.modify(group.dn, changes)
            except DirectoryError as exc:
                if exc.code not in ("noSuchAttribute", "objectClassViolation"):
                    raise
                # groupOfNames that would become empty: put the placeholder in, then retry
                writer.modify(
                    group.dn,
                    member_changes(
                        gmap, member, [], [dn.encode()], remaining=0, had_placeholder=False
                    ),
                )


def _move(writer: Writer, dn: str, target: str) -> str:
    """Move ``dn`` below ``target``.  A missing target OU is the deployment's fault, not the
    client's: 503, so the IdP retries, and the retry completes once the OU exists (every step
    before the move is idempotent)."""
    attr, value, _ = split_rdn(dn)
    try:
        return writer.directory.rename(dn, rdn_of(attr, value), new_superior=target)
    except DirectoryError as exc:
        if exc.code != "noSuchObject" or writer.directory.read(target, ["1.1"]) is not None:
            raise
        raise Unavailable(
            f"the deprovisioning policy moves accounts to {target}, which does not exist; "
            "the directory administrator must create it (the account is already disabled)",
            retry_after=300,
        ) from None
