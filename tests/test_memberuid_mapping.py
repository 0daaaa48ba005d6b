"""Mapping shapes of members held by value (issue 18 item 3): RFC 2307 ``memberUid``
(``member_value``), RFC 2307bis (``mirror``) and a user's ``groups`` read from memberUid.  Each
bad shape is refused by the loader with its YAML path (what ``check-mapping`` prints) and, where
the JSON schema can tell, by the schema too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bridge.cli import main
from bridge.errors import ConfigError
from bridge.mapping.load import parse_mapping
from bridge.service.dircheck import needed_indexes
from tests.posix_support import DN_GROUPS, DUAL_MEMBERS, POSIX_MAP, VALUE_GROUPS, pure_mapping_text

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = POSIX_MAP.read_text()
MEMBERS = f"members:      {DUAL_MEMBERS}"


def _members(spec: str, text: str = SHIPPED) -> str:
    assert MEMBERS in text
    return text.replace(MEMBERS, f"members:      {spec}")


def test_the_shapes_load() -> None:
    dual = parse_mapping(SHIPPED).resources["Group"].member_map
    assert dual is not None and dual.mirror is not None
    assert (dual.ldap, dual.mirror.ldap, dual.mirror.member_value) == ("member", "memberUid", "uid")
    assert dual.mirror.targets == ("User",)  # groups go to member only
    pure = parse_mapping(pure_mapping_text())
    member = pure.resources["Group"].member_map
    assert member is not None and member.by_value and member.member_value == "uid"
    groups = pure.resources["User"].maps_for("groups")[0]
    assert groups.from_member and groups.by_value and groups.ldap == "memberUid"


BAD = [
    (  # a memberUid cannot name a group
        "{ldap: memberUid, member_value: uid, to: [User, Group]}",
        "resources.Group.attributes.members.to",
        "a value cannot name a group",
    ),
    (  # the users do not map the attribute
        "{ldap: memberUid, member_value: gecos, to: [User]}",
        "resources.Group.attributes.members.member_value",
        "User maps no single-valued attribute to gecos",
    ),
    (  # a multi-valued SCIM attribute cannot name one user
        "{ldap: memberUid, member_value: mail, to: [User]}",
        "resources.Group.attributes.members.member_value",
        "User maps no single-valued attribute to mail",
    ),
    (
        "{ldap: memberUid, member_value: 'u id', to: [User]}",
        "resources.Group.attributes.members.member_value",
        "expected dn or the LDAP attribute",
    ),
    (  # a mirror goes with a DN attribute
        "{ldap: memberUid, member_value: uid, to: [User], mirror: {ldap: x, member_value: uid}}",
        "resources.Group.attributes.members.mirror",
        "goes with a DN member attribute",
    ),
    (
        "{ldap: member, to: [User, Group], mirror: {ldap: memberUid}}",
        "resources.Group.attributes.members.mirror.member_value",
        "expected the LDAP attribute",
    ),
    (
        "{ldap: member, to: [User, Group], mirror: {ldap: memberUid, member_value: uid, x: 1}}",
        "resources.Group.attributes.members.mirror.x",
        "unknown key",
    ),
    (
        "{ldap: member, to: [Group], mirror: {ldap: memberUid, member_value: uid}}",
        "resources.Group.attributes.members.mirror",
        "nothing to mirror",
    ),
    (
        "{ldap: member, to: [User, Group], mirror: {ldap: memberUid, member_value: gecos}}",
        "resources.Group.attributes.members.mirror.member_value",
        "User maps no single-valued attribute to gecos",
    ),
]


@pytest.mark.parametrize(("spec", "where", "message"), BAD)
def test_bad_member_shapes_name_their_path(spec: str, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_mapping(_members(spec))
    text = str(exc.value)
    assert f"{where}:" in text and message in text, text


@pytest.mark.parametrize(
    ("groups", "where", "message"),
    [
        (  # the shipped groups hold DNs in member and uids in memberUid: uid in member is wrong
            "{from_member: member, member_value: uid, to: [Group]}",
            "resources.User.attributes.groups.from_member",
            "not held as uid values in member",
        ),
        (
            "{from_member: memberUid, member_value: cn, to: [Group]}",
            "resources.User.attributes.groups.from_member",
            "not held as cn values in memberUid",
        ),
        (
            "{ldap: memberOf, member_value: uid, to: [Group]}",
            "resources.User.attributes.groups.member_value",
            "goes with from_member",
        ),
    ],
)
def test_bad_groups_shapes_name_their_path(groups: str, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_mapping(SHIPPED.replace(DN_GROUPS, f"groups: {groups}"))
    text = str(exc.value)
    assert f"{where}:" in text and message in text, text


def test_groups_from_the_mirror_load() -> None:
    """The dual group's mirror can feed a user's groups too."""
    mapping = parse_mapping(SHIPPED.replace(DN_GROUPS, VALUE_GROUPS))
    assert mapping.resources["User"].maps_for("groups")[0].ldap == "memberUid"


def test_member_value_only_on_members_and_groups() -> None:
    line = "title:                        {ldap: title}"
    assert line in SHIPPED
    with pytest.raises(ConfigError) as exc:
        parse_mapping(SHIPPED.replace(line, "title: {ldap: title, member_value: uid}"))
    assert "attributes.title.member_value:" in str(exc.value)


def test_check_mapping_prints_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(_members(BAD[0][0]))
    assert main(["check-mapping", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "resources.Group.attributes.members.to" in out and "cannot name a group" in out


def _schema() -> dict[str, Any]:
    import json

    return json.loads((ROOT / "bridge" / "data" / "mapping.schema.json").read_text())  # type: ignore[no-any-return]


def test_json_schema_accepts_the_shapes_and_refuses_a_bad_mirror() -> None:
    schema = _schema()
    for text in (SHIPPED, pure_mapping_text()):
        jsonschema.validate(yaml.safe_load(text), schema)
    bad = yaml.safe_load(_members("{ldap: member, to: [User], mirror: {ldap: memberUid}}"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_check_mapping_connect_asks_for_the_value_indexes() -> None:
    """Renames and deletes search (memberUid=<uid>); rendering a pure memberUid group
    resolves its values by the users' uid."""
    dual = {n.attr: n.kinds for n in needed_indexes(parse_mapping(SHIPPED))}
    assert dual["memberUid"] == ("eq",) and dual["member"] == ("eq",)
    pure = needed_indexes(parse_mapping(pure_mapping_text()))
    by_attr = {n.attr: n for n in pure}
    assert by_attr["memberUid"].kinds == ("eq",)
    assert any("values to Users" in use for use in by_attr["uid"].uses)
