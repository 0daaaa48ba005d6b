"""Deprovisioning policy as data: what ``active=false`` and ``DELETE`` do to the directory entry,
parsed and checked when the mapping loads.  The actions themselves run in service/deprovision.py,
whose docstring tells the whole story.

IdPs mostly send ``active: false`` (Entra, Okta) and only sometimes a DELETE; directory owners want
to choose what each does (field notes §5.9).  Rules checked here (each keeps the SCIM view
consistent):

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
from typing import Any

from bridge.directory.syntax import is_under

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
