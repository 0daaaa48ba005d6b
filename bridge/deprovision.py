"""Deprovisioning policy: what ``active=false`` and ``DELETE`` do to the directory entry.

IdPs mostly send ``active: false`` (Entra, Okta) and only sometimes a DELETE; directory owners want
to choose what each does (field notes §5.9): disable the account, move it to a quarantine OU,
strip its group memberships, or delete it.  The choice is data, per resource, in the mapping::

    deprovision:
      on_deactivate: [disable, remove_groups]
      on_delete: [disable, remove_groups, {move: "OU=Quarantine,DC=example,DC=com"}]

Actions run in a fixed, safe order whatever the order in the file: disable first (the account
stops working even if a later step fails), then remove_groups, then move; ``delete`` stands alone.
Each step is idempotent, so an IdP's retry of a half-done deprovisioning completes it.

Rules checked when the mapping loads (each keeps the SCIM view consistent):

* ``on_deactivate`` must include ``disable``: the IdP reads ``active`` back.
* ``on_deactivate`` cannot ``delete``, and its ``move`` target must stay inside the resource's
  search scope (``scope: sub``, below ``base_dn``), so the IdP can still read and re-activate the
  account; re-activation moves it back to ``base_dn``.
* ``on_delete`` without ``delete`` must ``move`` the entry out of the search scope: after a DELETE
  the resource must be gone (RFC 7644 §3.6: a later GET is 404).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bridge.directory.base import Change
from bridge.directory.syntax import (
    escape_filter,
    is_under,
    normalize_dn,
    parent_dn,
    rdn_of,
    split_rdn,
)
from bridge.errors import DirectoryError, NotFound, Unavailable

if TYPE_CHECKING:
    from bridge.config import ResourceMap
    from bridge.directory.base import Entry
    from bridge.service import Found, Service

ACTIONS = ("disable", "remove_groups", "move", "delete")
_ORDER = {name: i for i, name in enumerate(ACTIONS)}


@dataclass(frozen=True)
class Action:
    kind: str  # one of ACTIONS
    target: str | None = None  # the OU for "move"


@dataclass(frozen=True)
class Policy:
    on_deactivate: tuple[Action, ...] = (Action("disable"),)
    on_delete: tuple[Action, ...] = (Action("delete"),)

    @property
    def deletes(self) -> bool:
        return any(a.kind == "delete" for a in self.on_delete)

    def move_on_deactivate(self) -> str | None:
        return next((a.target for a in self.on_deactivate if a.kind == "move"), None)


DEFAULT = Policy()


# ---------------------------------------------------------------------------- loading
def parse_policy(
    data: Any,
    path: str,
    add: Callable[[str, str], None],
    *,
    base_dn: str,
    scope: str,
    has_active: bool,
) -> Policy:
    """The ``deprovision:`` block of a resource; problems go to ``add(yaml_path, message)``."""
    if data is None:
        return DEFAULT
    if not isinstance(data, dict):
        add(path, "expected {on_deactivate: [...], on_delete: [...]}")
        return DEFAULT
    for key in data:
        if key not in ("on_deactivate", "on_delete"):
            add(f"{path}.{key}", f"unknown key {key!r} (allowed: on_deactivate, on_delete)")
    deact = _actions(data.get("on_deactivate", ["disable"]), f"{path}.on_deactivate", add)
    delete = _actions(data.get("on_delete", ["delete"]), f"{path}.on_delete", add)
    kinds_d = {a.kind for a in deact}
    kinds_x = {a.kind for a in delete}
    where = f"{path}.on_deactivate"
    if "delete" in kinds_d:
        add(where, "cannot delete: the IdP still reads a deactivated account (use on_delete)")
    if "disable" not in kinds_d and has_active:
        add(where, "must include disable: active=false has to read back as false")
    if ("disable" in kinds_d | kinds_x) and not has_active:
        add(path, "disable needs an 'active' attribute mapping (e.g. userAccountControl)")
    for a in deact:
        if a.kind == "move" and a.target and not (scope == "sub" and is_under(a.target, base_dn)):
            add(
                where,
                f"move target {a.target} must be below base_dn {base_dn} with scope: sub, so "
                "the IdP can still read and re-activate the account",
            )
    where = f"{path}.on_delete"
    if "delete" in kinds_x and len(kinds_x) > 1:
        add(where, "delete cannot be combined with other actions")
    if "delete" not in kinds_x:
        moves = [a for a in delete if a.kind == "move"]
        if not moves:
            add(
                where,
                "without delete, the entry must move out of the search scope (a deleted resource "
                "must be gone, RFC 7644 §3.6): add {move: <quarantine OU>}",
            )
        for a in moves:
            if a.target and is_under(a.target, base_dn):
                add(
                    where, f"move target {a.target} is inside base_dn {base_dn}: it must be outside"
                )
    return Policy(deact, delete)


def _actions(data: Any, path: str, add: Callable[[str, str], None]) -> tuple[Action, ...]:
    if not isinstance(data, list) or not data:
        add(path, f"expected a non-empty list of actions from {', '.join(ACTIONS)}")
        return ()
    out: list[Action] = []
    for i, item in enumerate(data):
        here = f"{path}[{i}]"
        if isinstance(item, str) and item in ACTIONS and item != "move":
            out.append(Action(item))
        elif isinstance(item, dict) and list(item) == ["move"] and isinstance(item["move"], str):
            if "=" not in item["move"]:
                add(here, f"move needs an OU's DN, got {item['move']!r}")
            out.append(Action("move", item["move"]))
        elif item == "move":
            add(here, "move needs a target: {move: OU=Quarantine,DC=example,DC=com}")
        else:
            add(
                here,
                f"unknown action {item!r} (choose from {', '.join(ACTIONS)}; "
                "move as {move: <DN>})",
            )
    if len({a.kind for a in out}) != len(out):
        add(path, "an action is listed twice")
    return tuple(sorted(out, key=lambda a: _ORDER[a.kind]))


# ---------------------------------------------------------------------------- running
def delete(service: Service, rmap: ResourceMap, found: Found, assertion: str | None = None) -> None:
    """DELETE /{resource}/{id} under the resource's policy; ``assertion`` (If-Match, RFC 4528)
    makes the delete atomic with the version check."""
    if rmap.deprovision.deletes:
        try:
            if assertion:
                service.directory.delete(found.dn, assertion=assertion)
            else:
                service.directory.delete(found.dn)
        except DirectoryError as exc:
            if exc.code == "noSuchObject":
                raise NotFound(f"{rmap.name} not found") from None
            raise
        return
    _run(service, rmap, found.dn, rmap.deprovision.on_delete, disable=True)


def after_update(service: Service, rmap: ResourceMap, dn: str, was: Entry) -> str | None:
    """Called after a PUT/PATCH was applied: runs on_deactivate when ``active`` went from true to
    false, and moves a re-activated account back from the deactivation OU.  Returns the entry's
    DN (new if it moved) when it changed anything, else None: the entry is as the update left
    it.  Costs nothing unless the policy does more than disable."""
    active = next((a for a in rmap.attributes if a.attr == "active" and not a.sub), None)
    policy = rmap.deprovision
    if active is None or all(a.kind == "disable" for a in policy.on_deactivate):
        return None
    now = service.directory.read(dn, [active.ldap])
    if now is None:
        return None
    before = _active(active, was)
    after = _active(active, now)
    if before and not after:
        steps = tuple(a for a in rmap.deprovision.on_deactivate if a.kind != "disable")
        if steps:
            return _run(service, rmap, dn, steps, disable=False)
    target = rmap.deprovision.move_on_deactivate()
    if after and not before and target and _inside(dn, target):
        return _move(service, dn, rmap.base_dn)
    return None


def _active(amap: Any, entry: Entry) -> bool:
    values = amap.codec.decode_all(list(entry.get(amap.ldap)))
    return bool(values and values[0] is True) if values else amap.codec.absent is True


def _inside(dn: str, ou: str) -> bool:
    return normalize_dn(parent_dn(dn)) == normalize_dn(ou)


def _run(
    service: Service, rmap: ResourceMap, dn: str, actions: tuple[Action, ...], *, disable: bool
) -> str:
    for action in actions:
        if action.kind == "disable" and disable:
            _disable(service, rmap, dn)
        elif action.kind == "remove_groups":
            remove_groups(service, dn)
        elif action.kind == "move" and action.target and not _inside(dn, action.target):
            dn = _move(service, dn, action.target)
    return dn


def _disable(service: Service, rmap: ResourceMap, dn: str) -> None:
    amap = next(a for a in rmap.attributes if a.attr == "active" and not a.sub)
    entry = service.directory.read(dn, [amap.ldap])
    current = list(entry.get(amap.ldap)) if entry else []
    want = amap.codec.encode(False, current)
    if sorted(want) != sorted(current):
        service.modify(dn, [Change("replace", amap.ldap, tuple(want))])


def remove_groups(service: Service, dn: str) -> None:
    """Take ``dn`` out of every mapped group that lists it: one single-value MODIFY_DELETE per
    group (never a rewrite of a member list); a group it already left is skipped."""
    for gmap in service.mapping.resources.values():
        member = gmap.member_map
        if member is None:
            continue
        flt = f"(&{gmap.base_filter}({member.ldap}={escape_filter(dn)}))"
        for group in service.directory.search(gmap.base_dn, flt, ["1.1"], scope=gmap.scope).entries:
            changes = service.member_changes(
                gmap, member, [], [dn.encode()], remaining=1, had_placeholder=False
            )
            try:
                service.modify(group.dn, changes)
            except DirectoryError as exc:
                if exc.code not in ("noSuchAttribute", "objectClassViolation"):
                    raise
                # groupOfNames that would become empty: put the placeholder in, then retry
                service.modify(
                    group.dn,
                    service.member_changes(
                        gmap, member, [], [dn.encode()], remaining=0, had_placeholder=False
                    ),
                )


def _move(service: Service, dn: str, target: str) -> str:
    """Move ``dn`` below ``target``.  A missing target OU is the deployment's fault, not the
    client's: 503, so the IdP retries, and the retry completes once the OU exists (every step
    before the move is idempotent)."""
    attr, value, _ = split_rdn(dn)
    try:
        return service.directory.rename(dn, rdn_of(attr, value), new_superior=target)
    except DirectoryError as exc:
        if exc.code != "noSuchObject" or service.directory.read(target, ["1.1"]) is not None:
            raise
        raise Unavailable(
            f"the deprovisioning policy moves accounts to {target}, which does not exist; "
            "the directory administrator must create it (the account is already disabled)",
            retry_after=300,
        ) from None
