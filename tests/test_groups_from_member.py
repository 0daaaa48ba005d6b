"""A user's ``groups`` read from the group side (issue 19 item 3): where nothing maintains
memberOf (a bare slapd: no memberof overlay), ``groups: {from_member: member, to: [Group]}``
reads the groups whose ``member`` holds the user's DN -- one search per response (an OR of the
page's DNs), never one per user -- and ``filter=groups.value eq "<id>"`` reads that group's
members.  Runs on the embedded directory, the tuned slapd and the bare slapd, both clients (the
embedded and tuned ones with the shipped mapping's ``groups`` switched to ``from_member``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bridge.errors import ConfigError
from bridge.mapping.load import parse_mapping
from bridge.mapping.model import MappingConfig
from devtools.faults import FaultyDirectory
from tests.conftest import BARE_MAP, OPENLDAP_MAP, Backend, make_client
from tests.helpers import SCIM, create_group, create_user

FROM_MEMBER = "groups:                       {from_member: member, to: [Group]}"
MEMBER_OF = "groups:                       {ldap: memberOf, to: [Group]}"


def _from_member(mapping_text: str) -> MappingConfig:
    assert MEMBER_OF in mapping_text
    return parse_mapping(mapping_text.replace(MEMBER_OF, FROM_MEMBER))


@pytest.fixture
def fm(any_backend: Backend) -> Backend:
    """The backend with a mapping whose groups are read from the group side."""
    if any_backend.name == "slapd-bare":
        assert "from_member" in BARE_MAP.read_text()
        return any_backend
    return replace(any_backend, mapping=_from_member(OPENLDAP_MAP.read_text()))


def _groups(resource: dict[str, Any]) -> list[str]:
    return sorted(g["value"] for g in resource.get("groups", []))


def test_get_and_list_show_groups_from_the_group_side(fm: Backend) -> None:
    counted = FaultyDirectory(fm.directory)
    client = make_client(replace(fm, directory=counted))
    ada, bob, cy = (create_user(client, n)["id"] for n in ("fm-ada", "fm-bob", "fm-cy"))
    g1 = create_group(client, "fm-one", [ada, bob])["id"]
    g2 = create_group(client, "fm-two", [ada])["id"]
    got = client.get(f"{SCIM}/Users/{ada}").json()
    assert _groups(got) == sorted([g1, g2])
    assert {g["display"] for g in got["groups"]} == {"fm-one", "fm-two"}
    assert all(g["$ref"].endswith(f"/Groups/{g['value']}") for g in got["groups"])
    assert _groups(client.get(f"{SCIM}/Users/{cy}").json()) == []
    counted.calls.clear()
    page = client.get(f"{SCIM}/Users", params={"filter": 'userName sw "fm-"'}).json()
    by_name = {u["userName"]: _groups(u) for u in page["Resources"]}
    assert by_name == {"fm-ada": sorted([g1, g2]), "fm-bob": [g1], "fm-cy": []}
    group_base = fm.mapping.resources["Group"].base_dn
    assert [b for op, b in counted.calls if op == "search" and b == group_base] == [group_base]
    excluded = client.get(f"{SCIM}/Users/{ada}", params={"excludedAttributes": "groups"})
    assert "groups" not in excluded.json()


def test_filter_on_groups_value_reads_the_group(fm: Backend) -> None:
    client = make_client(fm)
    ada, bob, cy = (create_user(client, n)["id"] for n in ("fm-ada", "fm-bob", "fm-cy"))
    g1 = create_group(client, "fm-one", [ada, bob])["id"]
    empty = create_group(client, "fm-empty")["id"]

    def ids(flt: str) -> list[str]:
        r = client.get(f"{SCIM}/Users", params={"filter": flt})
        assert r.status_code == 200, r.text
        return sorted(u["id"] for u in r.json()["Resources"])

    assert ids(f'groups.value eq "{g1}"') == sorted([ada, bob])
    assert ids(f'userName sw "fm-" and not (groups.value eq "{g1}")') == [cy]
    assert ids(f'groups.value eq "{empty}"') == []
    assert ids('groups.value eq "00000000-0000-0000-0000-000000000000"') == []
    # "in some group" (pr, and ne, which RFC 7644 reads as "has a value other than") would
    # read every group's members: refused, naming the reason
    for flt in ("groups pr", f'groups.value ne "{g1}"'):
        r = client.get(f"{SCIM}/Users", params={"filter": flt})
        assert r.status_code == 400 and r.json()["scimType"] == "invalidFilter"
        assert "read from the groups' member" in r.json()["detail"]


def test_groups_from_member_is_read_only(fm: Backend) -> None:
    client = make_client(fm)
    ada = create_user(client, "fm-ada")["id"]
    g1 = create_group(client, "fm-one", [ada])["id"]
    op = {"op": "replace", "path": "title", "value": "Countess"}
    r = client.patch(
        f"{SCIM}/Users/{ada}",
        json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [op]},
    )
    assert r.status_code == 200, r.text
    assert _groups(r.json()) == [g1]


BASE = OPENLDAP_MAP.read_text()


@pytest.mark.parametrize(
    ("spec", "where", "message"),
    [
        ("{from_member: member, ldap: memberOf, to: [Group]}", "groups:", "not both"),
        (  # the groups hold DNs in member, not uids: memberUid needs a value mapping
            "{from_member: member, member_value: uid, to: [Group]}",
            "groups.from_member:",
            "not held as uid values in member",
        ),
        ("{from_member: member}", "groups.to:", "to: [Group]"),
        ("{from_member: 7, to: [Group]}", "groups.from_member:", "member attribute"),
    ],
)
def test_from_member_config_errors_point_at_the_yaml_path(
    spec: str, where: str, message: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_mapping(BASE.replace(MEMBER_OF, f"groups: {spec}"))
    text = str(exc.value)
    assert f"resources.User.attributes.{where}" in text and message in text


def test_from_member_only_for_groups() -> None:
    line = "title:                        {ldap: title}"
    assert line in BASE
    with pytest.raises(ConfigError) as exc:
        parse_mapping(BASE.replace(line, "title: {from_member: member, to: [Group]}"))
    assert "only groups can be read from the group side" in str(exc.value)
