"""The service's one-way shape (issue 17): the PATCH planner is pure behind its Lookups, the
body is parsed once, and the filters the service searches with are built (and escaped) in
translate/filter.py only."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.directory.base import Change, Entry
from bridge.directory.syntax import normalize_dn
from bridge.errors import InvalidValue, NotFound
from bridge.mapping.model import MappingConfig
from bridge.scim import messages as scim_messages
from bridge.scim.messages import parse_ops
from bridge.service import facade
from bridge.translate import entry as tr
from bridge.translate import patch as translate_patch
from bridge.translate.filter import any_of, equals, id_filter, in_chain, of_type
from bridge.translate.patch import WORKING_VIEW, plan, unique_candidates
from tests.helpers import PATCH_SCHEMA, SCIM, create_group, create_user, patch

ROOT = Path(__file__).resolve().parent.parent
GROUP_DN = "cn=team,ou=groups,dc=example,dc=org"
PLACEHOLDER = "cn=empty-membership-placeholder,dc=example,dc=org"
PEOPLE = "ou=people,dc=example,dc=org"


class FakeLookups:
    """An in-memory :class:`bridge.translate.lookups.Lookups`: what the planner may ask, and a
    record of what it asked (no directory anywhere)."""

    def __init__(self, ids: dict[str, str], values: dict[tuple[str, str], list[str]]):
        self.ids = ids
        self.values = values
        self.asked: list[str] = []

    def resolve_ids(
        self, ids: Iterable[str], targets: Sequence[str], what: str, *, missing_ok: bool = False
    ) -> dict[str, str]:
        self.asked.append("resolve_ids")
        wanted = list(ids)
        missing = [i for i in wanted if i not in self.ids]
        if missing and not missing_ok:
            raise InvalidValue(f"{what}: no {' or '.join(targets)} with id {missing[0]}")
        return {i: self.ids[i] for i in wanted if i in self.ids}

    def resolve_dns(self, dns: Iterable[str], targets: Sequence[str]) -> dict[str, tr.Ref]:
        self.asked.append("resolve_dns")
        by_dn = {normalize_dn(dn): rid for rid, dn in self.ids.items()}
        return {
            normalize_dn(d): tr.Ref(by_dn[normalize_dn(d)], "User")
            for d in dns
            if normalize_dn(d) in by_dn
        }

    def values_of(self, dn: str, attr: str) -> list[str]:
        self.asked.append("values_of")
        return list(self.values.get((dn, attr), []))

    def has_value(self, dn: str, attr: str, value: str) -> bool:
        self.asked.append("has_value")
        return value in self.values.get((dn, attr), [])


def _group(members: list[str]) -> Entry:
    return Entry(
        GROUP_DN,
        {
            "cn": [b"team"],
            "entryuuid": [b"6f1c2d3e-0000-4000-8000-000000000001"],
            "member": [m.encode() for m in members],
        },
    )


def _plan(
    mapping: MappingConfig, entry: Entry, ops: list[dict[str, Any]], lookups: FakeLookups
) -> translate_patch.PatchPlan:
    rmap = mapping.resource("Group")
    current = tr.to_resource(rmap, entry, {}, "https://x/scim/v2", WORKING_VIEW)
    parsed = parse_ops({"schemas": [PATCH_SCHEMA], "Operations": ops})
    return plan(parsed, rmap, entry, current, lookups)


def test_the_planner_adds_a_member_through_its_lookups_only(
    openldap_mapping: MappingConfig,
) -> None:
    """An add of a member to a group holding only the placeholder: the member's DN comes from
    ``resolve_ids``, whether the placeholder is there from ``has_value``; nothing else."""
    u1 = f"uid=u1,{PEOPLE}"
    lookups = FakeLookups({"u1": u1}, {(GROUP_DN, "member"): [PLACEHOLDER]})
    ops = [{"op": "add", "path": "members", "value": [{"value": "u1"}]}]
    planned = _plan(openldap_mapping, _group([PLACEHOLDER]), ops, lookups)
    assert planned.changes == (
        Change("add", "member", (u1.encode(),)),
        Change("delete", "member", (PLACEHOLDER.encode(),)),
    )
    assert planned.new_rdn_value is None
    assert lookups.asked == ["resolve_ids", "has_value"]


def test_the_planner_reads_the_member_list_once_for_a_replace(
    openldap_mapping: MappingConfig,
) -> None:
    """``replace members`` reads the list through ``values_of`` once and changes only the
    difference; a value SCIM does not show (outside the mapped bases) is kept."""
    u1, u2, u3 = (f"uid={n},{PEOPLE}" for n in ("u1", "u2", "u3"))
    hidden = "uid=svc,ou=system,dc=example,dc=org"
    lookups = FakeLookups({"u1": u1, "u2": u2, "u3": u3}, {(GROUP_DN, "member"): [u1, u2, hidden]})
    ops = [{"op": "replace", "path": "members", "value": [{"value": "u2"}, {"value": "u3"}]}]
    planned = _plan(openldap_mapping, _group([u1, u2, hidden]), ops, lookups)
    assert planned.changes == (
        Change("add", "member", (u3.encode(),)),
        Change("delete", "member", (u1.encode(),)),
    )
    assert lookups.asked.count("values_of") == 1


def test_the_plan_names_its_unique_candidates(openldap_mapping: MappingConfig) -> None:
    """A rename of a group (displayName is unique and the RDN): the plan leaves the uniqueness
    check to the service, naming the replaced values; a pure rename has none."""
    lookups = FakeLookups({}, {})
    ops = [{"op": "replace", "path": "displayName", "value": "crew"}]
    planned = _plan(openldap_mapping, _group([PLACEHOLDER]), ops, lookups)
    assert planned.new_rdn_value == "crew"
    assert unique_candidates(planned) == {}
    assert lookups.asked == []


def test_a_patch_body_is_parsed_once(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service parses the operations once and hands them to the planner (it used to
    parse them again to decide whether the find should probe for the placeholder)."""
    calls: list[int] = []
    real = scim_messages.parse_ops

    def counting(body: Any) -> list[scim_messages.Op]:
        calls.append(1)
        return real(body)

    for module in (facade, translate_patch, scim_messages):
        monkeypatch.setattr(module, "parse_ops", counting, raising=False)
    user = create_user(client, "parsed.once")
    group = create_group(client, "Parsed")
    r = patch(
        client,
        f"/Groups/{group['id']}",
        {"op": "add", "path": "members", "value": [{"value": user["id"]}]},
    )
    assert r.status_code in (200, 204), r.text
    assert len(calls) == 1
    got = client.get(f"{SCIM}/Groups/{group['id']}").json()
    assert [m["value"] for m in got["members"]] == [user["id"]]


def test_a_bad_patch_of_a_missing_resource_is_still_a_404(client: TestClient) -> None:
    """Parsing first must not change which error wins: the resource is looked for first."""
    r = client.patch(
        f"{SCIM}/Users/no-such-user",
        json={"schemas": [PATCH_SCHEMA], "Operations": [{"op": "nonsense"}]},
    )
    assert r.status_code == 404, r.text


def test_the_service_escapes_no_filter_itself() -> None:
    """translate/filter.py escapes every value an LDAP filter carries (RFC 4515): the service
    builds its filters with it and never calls escape_filter itself."""
    offenders = [
        p.name
        for p in (ROOT / "bridge" / "service").glob("*.py")
        if "escape_filter" in p.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_the_service_filters_escape_their_values(openldap_mapping: MappingConfig) -> None:
    users = openldap_mapping.resource("User")
    assert equals("cn", "a*(b)\\") == r"(cn=a\2a\28b\29\5c)"
    assert any_of("uid", ["x*", "y"]) == r"(|(uid=x\2a)(uid=y))"
    assert of_type(users, "(uid=x)") == f"(&{users.base_filter}(uid=x))"
    assert in_chain(users, "member", "cn=a(1)") == (
        f"(&{users.base_filter}(member:1.2.840.113556.1.4.1941:=cn=a\\281\\29))"
    )
    with pytest.raises(NotFound):
        id_filter(users, "x\x00y")  # AD compares only up to a NUL
