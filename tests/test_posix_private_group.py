"""User-private groups (issue 18 item 2, the second primary-group choice): with
``private_group:`` each user gets a posixGroup named after it, whose allocated gidNumber is the
user's primary gidNumber; it is deleted with the user, and a create that cannot make it leaves
nothing behind -- on the embedded directory and slapd with both clients (openldap-posix.yaml),
and on 389 DS with both clients (389ds-posix.yaml, private groups shaped like its groups)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from bridge.directory.base import Change, Directory
from bridge.mapping.load import parse_mapping
from tests.conftest import Backend, make_client
from tests.helpers import SCIM, USER_SCHEMA, create_user
from tests.posix_support import GID_COUNTER, POSIX_BACKENDS, mapping_file, posix_backend

pytestmark = pytest.mark.parametrize("backend", POSIX_BACKENDS, indirect=True)
PRIVATE = "ou=usergroups,dc=example,dc=org"
PEOPLE = "ou=people,dc=example,dc=org"
PRIVATE_GROUP = f"""    private_group:
      base_dn: {PRIVATE}
      object_classes: [top, posixGroup]
      gidNumber: {{range: [20000, 29999], counter: "{GID_COUNTER}"}}
"""
#: 389 DS: as mappings/389ds-posix.yaml's comment suggests, shaped like its groups
DS389_CLASSES = "[top, groupOfNames, posixGroup]"


def _private_mapping(kind: str = "embedded") -> str:
    text = mapping_file(kind).read_text("utf-8")
    assert '      gidNumber: "100"\n' in text
    text = text.replace('      gidNumber: "100"\n', "")
    private = PRIVATE_GROUP
    if kind.startswith("ds389"):
        private = private.replace("[top, posixGroup]", DS389_CLASSES)
    return text.replace("    derived:\n      gecos:", private + "    derived:\n      gecos:")


def _clear(directory: Directory) -> None:
    if directory.read(PRIVATE, ["1.1"]) is None:
        return
    for e in directory.search(PRIVATE, "(objectClass=*)", ["1.1"], scope="one").entries:
        directory.delete(e.dn)
    directory.delete(PRIVATE)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    for b in posix_backend(request, request.param):
        _clear(b.directory)
        b.directory.add(PRIVATE, {"objectClass": [b"organizationalUnit"], "ou": [b"usergroups"]})
        try:
            yield dataclasses.replace(b, mapping=parse_mapping(_private_mapping(request.param)))
        finally:
            _clear(b.directory)


@pytest.fixture
def client(backend: Backend) -> TestClient:
    return make_client(backend)


def _text(directory: Directory, dn: str, attr: str) -> str | None:
    entry = directory.read(dn, [attr])
    return entry.text(attr) if entry else None


def test_user_gets_a_private_group(client: TestClient, backend: Backend) -> None:
    create_user(client, "jdoe")
    create_user(client, "asmith")
    d = backend.directory
    assert _text(d, f"uid=jdoe,{PEOPLE}", "gidNumber") == "20000"
    assert _text(d, f"uid=asmith,{PEOPLE}", "gidNumber") == "20001"
    group = d.search(PRIVATE, "(&(objectClass=posixGroup)(cn=jdoe))", ["gidNumber"]).entries
    assert [e.text("gidNumber") for e in group] == ["20000"]
    assert _text(d, f"cn=asmith,{PRIVATE}", "gidNumber") == "20001"
    assert _text(d, f"uid=jdoe,{PEOPLE}", "uidNumber") == "10000"
    classes = d.read(f"cn=jdoe,{PRIVATE}", ["objectClass"])
    assert classes is not None
    pg = backend.mapping.resource("User").posix.private_group
    assert pg is not None
    want = {c.lower() for c in pg.object_classes}
    assert {v.decode().lower() for v in classes.get("objectClass")} == want


def test_private_group_is_deleted_with_the_user(client: TestClient, backend: Backend) -> None:
    u = create_user(client, "jdoe")
    create_user(client, "keep")
    assert client.delete(f"{SCIM}/Users/{u['id']}").status_code == 204
    assert backend.directory.read(f"cn=jdoe,{PRIVATE}", ["1.1"]) is None
    assert backend.directory.read(f"cn=keep,{PRIVATE}", ["1.1"]) is not None


def test_a_group_not_holding_the_users_gid_is_kept(client: TestClient, backend: Backend) -> None:
    u = create_user(client, "jdoe")
    group = f"cn=jdoe,{PRIVATE}"
    backend.directory.modify(group, [Change("replace", "gidNumber", (b"4242",))])
    assert client.delete(f"{SCIM}/Users/{u['id']}").status_code == 204
    assert _text(backend.directory, group, "gidNumber") == "4242"


def test_name_taken_by_a_group_leaves_nothing_behind(client: TestClient, backend: Backend) -> None:
    backend.directory.add(
        f"cn=taken,{PRIVATE}",
        {"objectClass": [b"top", b"posixGroup"], "cn": [b"taken"], "gidNumber": [b"4000"]},
    )
    r = client.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": "taken"})
    assert r.status_code == 409, r.text
    assert r.json()["scimType"] == "uniqueness"
    assert "private group" in r.json()["detail"]
    assert backend.directory.read(f"uid=taken,{PEOPLE}", ["1.1"]) is None
    assert _text(backend.directory, f"cn=taken,{PRIVATE}", "gidNumber") == "4000"
