"""Units of issue 18 items 1-2: the ``allocate:``/``templates:`` mapping keys (errors name their
YAML path; the JSON schema agrees with the loader) and the ia5-fold codec of gecos."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml

from bridge.errors import ConfigError
from bridge.mapping.codecs import CODECS
from bridge.mapping.load import load_mapping, parse_mapping
from bridge.mapping.posix import Allocation, Template
from tests.posix_support import POSIX_MAP, ROOT

SCHEMA = yaml.safe_load((ROOT / "bridge" / "data" / "mapping.schema.json").read_text("utf-8"))


def _with_user(**user: Any) -> dict[str, Any]:
    data = yaml.safe_load(POSIX_MAP.read_text("utf-8"))
    data["resources"]["User"].update(user)
    return dict(data)


def test_shipped_posix_mapping_loads() -> None:
    user = load_mapping(POSIX_MAP).resource("User")
    assert user.posix.allocations == (
        Allocation(
            "uidNumber", 10000, 59999, "cn=uidNext,ou=counters,dc=example,dc=org", "uidNumber"
        ),
    )
    assert user.posix.templates == (Template("homeDirectory", "/home/{userName}", ("userName",)),)
    group = load_mapping(POSIX_MAP).resource("Group")
    assert [a.ldap for a in group.posix.allocations] == ["gidNumber"]


@pytest.mark.parametrize(
    ("user", "path", "message"),
    [
        ({"allocate": {"uidNumber": {"range": [5, 1], "counter": "cn=x"}}}, "uidNumber.range", "low <= high"),
        ({"allocate": {"uidNumber": {"range": [1, 2]}}}, "uidNumber.counter", "DN of the counter"),
        ({"allocate": {"uidNumber": {"range": [1, 2], "counter": "cn=x", "step": 2}}}, "uidNumber.step", "unknown key"),
        ({"allocate": {"uidNumber": {"range": ["a", 2], "counter": "cn=x"}}}, "uidNumber.range", "expected [low, high]"),
        ({"allocate": {"uidNumber": {"range": [1, 2], "counter": "cn=x", "counter_attr": "a b"}}}, "uidNumber.counter_attr", "attribute name"),
        ({"allocate": ["uidNumber"]}, "", "expected a mapping"),
        ({"templates": {"homeDirectory": "/home/{nickName}"}}, "homeDirectory", "mapped SCIM path"),
        ({"templates": {"homeDirectory": "/home/{userName"}}, "homeDirectory", "mapped SCIM path"),
        ({"templates": {"homeDirectory": 7}}, "homeDirectory", "expected a string"),
    ],
)  # fmt: skip
def test_posix_spec_errors_name_their_yaml_path(
    user: dict[str, Any], path: str, message: str
) -> None:
    data = _with_user(**user)
    with pytest.raises(ConfigError) as err:
        parse_mapping(yaml.safe_dump(data, allow_unicode=True))
    key = next(iter(user))
    where = f"resources.User.{key}" + (f".{path}" if path else "")
    assert any(p.path == where and message in p.message for p in err.value.problems), (
        err.value.problems
    )
    if message in ("low <= high", "mapped SCIM path"):
        return  # beyond what a JSON schema can say: only the loader checks these
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, SCHEMA)


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Zoë Müller", "Zoe Muller"),
        ("Straße", "Strasse"),
        ("Łukasz Ørsted-Æsir", "Lukasz Orsted-AEsir"),
        ("José\tGarcía\n", "Jose Garcia"),
        ("Bob 日本 ", "Bob"),
        ("a:b", "a b"),  # ':' separates passwd(5) fields
        ("日本", None),
        ("\u00a0ﬁne", "fine"),
    ],
)
def test_ia5_fold(text: str, folded: str | None) -> None:
    out = CODECS["ia5-fold"].encode(text)
    assert out == ([folded.encode("ascii")] if folded else [])


_PG = {
    "base_dn": "ou=usergroups,dc=example,dc=org",
    "gidNumber": {"range": [1, 2], "counter": "cn=g"},
}


@pytest.mark.parametrize(
    ("user", "path", "message"),
    [
        ({"private_group": _PG}, "", "constants.gidNumber or a private group"),
        ({"private_group": {**_PG, "base_dn": "usergroups"}, "constants": {}}, "base_dn", "expected the DN"),
        ({"private_group": {"base_dn": _PG["base_dn"]}, "constants": {}}, "gidNumber", "expected {range"),
        ({"private_group": {**_PG, "gid": 1}, "constants": {}}, "gid", "unknown key"),
        ({"private_group": {**_PG, "gidNumber": {"range": [1, 2]}}, "constants": {}}, "gidNumber.counter", "DN of the counter"),
    ],
)  # fmt: skip
def test_private_group_errors_name_their_yaml_path(
    user: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_mapping(yaml.safe_dump(_with_user(**user), allow_unicode=True))
    where = "resources.User.private_group" + (f".{path}" if path else "")
    assert any(p.path == where and message in p.message for p in err.value.problems), (
        err.value.problems
    )


def test_private_group_loads() -> None:
    user = parse_mapping(
        yaml.safe_dump(_with_user(private_group=_PG, constants={"loginShell": "/bin/sh"}))
    ).resource("User")
    pg = user.posix.private_group
    assert pg is not None
    assert (pg.base_dn, pg.object_classes) == (
        "ou=usergroups,dc=example,dc=org",
        ("top", "posixGroup"),
    )
    assert pg.gid == Allocation("gidNumber", 1, 2, "cn=g", "gidNumber")
