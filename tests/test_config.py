"""The mapping loader reports every problem, each with its YAML path."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cli import main
from bridge.errors import ConfigError
from bridge.mapping.load import load_mapping, parse_mapping

ROOT = Path(__file__).resolve().parent.parent

BROKEN = """
version: 1
dialect: openldapp
colour: blue
resources:
  User:
    base_dn: ou=people,dc=example,dc=org
    object_classes: [inetOrgPerson]
    id: {ldap: entryUUID, type: uuidd}
    rdn: {ldap: uid, from: userNam}
    attributes:
      userName: {ldap: uid, required: yes-please}
      nickname: {ldap: displayName, mutabilty: readOnly}
      name: {ldap: cn}
      emails[type eq "work"].value: {ldap: mail}
      emails[type eq "work"].valeu: {ldap: mail}
      title: {ldap: uid}
      urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value: {ldap: manager, to: [Person]}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_mapping(text)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("path", sorted((ROOT / "mappings").glob("*.yaml")))
def test_shipped_mappings_load(path: Path) -> None:
    mapping = load_mapping(path)
    assert mapping.resources


def test_every_problem_is_reported_with_its_path() -> None:
    found = problems(BROKEN)
    expected = [
        "dialect: unknown dialect 'openldapp'",
        "colour: unknown key 'colour'",
        "resources.User.id.type: unknown type 'uuidd'",
        "resources.User.rdn.from: 'userNam' is not a mapped attribute",
        "resources.User.attributes.userName.required: expected true or false",
        "resources.User.attributes.nickname.mutabilty: unknown key 'mutabilty'",
        "resources.User.attributes.name: name is complex",
        "resources.User.attributes['emails[type eq \"work\"].valeu']: emails has no sub-attribute",
        "resources.User.attributes.title.ldap: LDAP attribute uid is already written by 'userName'",
        "resources.User.attributes['urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ":manager.value']: schema",
    ]
    for want in expected:
        assert any(p.startswith(want) for p in found), (want, found)


def test_duplicate_yaml_keys_are_an_error() -> None:
    text = """
version: 1
resources:
  Group:
    base_dn: ou=groups,dc=x
    object_classes: [groupOfNames]
    id: {ldap: entryUUID, type: uuid}
    rdn: {ldap: cn, from: displayName}
    attributes:
      displayName: {ldap: cn}
      displayName: {ldap: description}
"""
    found = problems(text)
    assert any("duplicate key 'displayName'" in p and "line 11" in p for p in found), found


def test_yaml_syntax_error_has_a_location() -> None:
    found = problems("version: 1\nresources: [\n")
    assert found and found[0].startswith("line ")


def test_check_mapping_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-mapping", str(ROOT / "mappings" / "openldap.yaml")]) == 0
    assert "OK" in capsys.readouterr().out
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    assert main(["check-mapping", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "problem(s)" in out and "resources.User.id.type" in out and "colour" in out
