"""Derived values follow their source on update (bridge/service/create.follow_derived): the
shipped POSIX mappings derive ``gecos`` from displayName, which ``getent passwd`` shows, so a
PATCH or PUT changing displayName rewrites gecos in the same modify; removing displayName
clears it.  A ``unique:`` derived value (AD's sAMAccountName) keeps its create-time value.
On the embedded directory and slapd with both clients (openldap-posix.yaml) and on 389 DS with
both clients (389ds-posix.yaml); gecos is read back with an independent search."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.directory.wrapper import Wrapper
from bridge.mapping.load import parse_mapping
from tests.conftest import Backend, make_client
from tests.helpers import SCIM, USER_SCHEMA, create_user, patch
from tests.posix_support import POSIX_BACKENDS, mapping_file, posix_backend

PEOPLE = "ou=people,dc=example,dc=org"
GECOS = "      gecos: {from: displayName, type: ia5-fold}\n"

pytestmark = pytest.mark.parametrize("backend", POSIX_BACKENDS, indirect=True)


class Counting(Wrapper):
    """Counts the modifies of each DN (lower-cased)."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.modifies: dict[str, int] = {}

    def run_modify(self, op: Any) -> Any:
        self.modifies[op.dn.lower()] = self.modifies.get(op.dn.lower(), 0) + 1
        return self.inner.run_modify(op)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    yield from posix_backend(request, request.param)


@pytest.fixture
def counting(backend: Backend) -> Counting:
    return Counting(backend.directory)


@pytest.fixture
def client(backend: Backend, counting: Counting) -> TestClient:
    return make_client(dataclasses.replace(backend, directory=counting))


def _gecos(backend: Backend, uid: str) -> list[str]:
    """gecos of ``uid``, read as the directory's administrator over a connection of its own
    (the embedded directory, which has no wire protocol, through its own search)."""
    if backend.info is None:
        found = backend.directory.search(PEOPLE, f"(uid={uid})", ["gecos"]).entries
        assert len(found) == 1, found
        return [v.decode() for v in found[0].get("gecos")]
    import ldap3

    info = backend.info
    conn = ldap3.Connection(info.url, info.admin_dn, info.admin_password, auto_bind=True)
    try:
        conn.search(PEOPLE, f"(uid={uid})", attributes=["gecos"])
        assert len(conn.entries) == 1, conn.entries
        raw = conn.response[0]["raw_attributes"]
        return [v.decode() for v in raw.get("gecos", [])]
    finally:
        conn.unbind()


def test_patch_of_display_name_rewrites_gecos_in_the_same_modify(
    client: TestClient, backend: Backend, counting: Counting
) -> None:
    u = create_user(client, "jdoe", displayName="Zoë Old")
    assert _gecos(backend, "jdoe") == ["Zoe Old"]
    dn = f"uid=jdoe,{PEOPLE}".lower()
    before = counting.modifies.get(dn, 0)
    r = patch(
        client, f"/Users/{u['id']}", {"op": "replace", "path": "displayName", "value": "Jörg Neu"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["displayName"] == "Jörg Neu"
    assert _gecos(backend, "jdoe") == ["Jorg Neu"]
    assert counting.modifies.get(dn, 0) - before == 1  # one modify carried both


def test_patch_removing_display_name_clears_gecos(client: TestClient, backend: Backend) -> None:
    u = create_user(client, "jdoe", displayName="Ann Smith")
    r = patch(client, f"/Users/{u['id']}", {"op": "remove", "path": "displayName"})
    assert r.status_code == 200, r.text
    assert _gecos(backend, "jdoe") == []


def test_put_rewrites_gecos_and_a_put_without_display_name_clears_it(
    client: TestClient, backend: Backend
) -> None:
    u = create_user(client, "jdoe", displayName="Ann Smith")
    body = {"schemas": [USER_SCHEMA], "userName": "jdoe", "displayName": "Ann Øster"}
    r = client.put(f"{SCIM}/Users/{u['id']}", json=body)
    assert r.status_code == 200, r.text
    assert _gecos(backend, "jdoe") == ["Ann Oster"]
    r = client.put(f"{SCIM}/Users/{u['id']}", json={"schemas": [USER_SCHEMA], "userName": "jdoe"})
    assert r.status_code == 200, r.text
    assert _gecos(backend, "jdoe") == []


def test_rename_with_a_new_display_name_rewrites_gecos(
    client: TestClient, backend: Backend
) -> None:
    u = create_user(client, "jdoe", displayName="Ann Smith")
    r = patch(
        client,
        f"/Users/{u['id']}",
        {"op": "replace", "value": {"userName": "asmith", "displayName": "Ann Smith-Ünal"}},
    )
    assert r.status_code == 200, r.text
    assert _gecos(backend, "asmith") == ["Ann Smith-Unal"]


def test_other_changes_leave_gecos_alone(client: TestClient, backend: Backend) -> None:
    """gecos is rewritten only when displayName changes: a value an administrator set by hand
    survives a PATCH of anything else."""
    from bridge.directory.base import Change

    u = create_user(client, "jdoe", displayName="Ann Smith")
    backend.directory.modify(f"uid=jdoe,{PEOPLE}", [Change("replace", "gecos", (b"Ann,Room 7",))])
    r = patch(client, f"/Users/{u['id']}", {"op": "replace", "path": "title", "value": "Boss"})
    assert r.status_code == 200, r.text
    assert _gecos(backend, "jdoe") == ["Ann,Room 7"]


def test_a_unique_derived_value_keeps_its_create_time_value(backend: Backend) -> None:
    """``unique:`` marks a name that was numbered until free (AD's sAMAccountName): it stays as
    created when its source changes, as ADUC keeps it."""
    text = mapping_file(backend.name).read_text("utf-8")
    assert GECOS in text
    text = text.replace(GECOS, GECOS.replace("ia5-fold}", "ia5-fold, unique: base}"))
    client = make_client(dataclasses.replace(backend, mapping=parse_mapping(text)))
    u = create_user(client, "jdoe", displayName="Ann Smith")
    r = patch(client, f"/Users/{u['id']}", {"op": "replace", "path": "displayName", "value": "X"})
    assert r.status_code == 200, r.text
    assert _gecos(backend, "jdoe") == ["Ann Smith"]


def test_a_value_derived_from_the_naming_attribute_follows_a_rename(backend: Backend) -> None:
    """The source is the RDN (uid from userName): a rename is the change it follows."""
    text = mapping_file(backend.name).read_text("utf-8")
    text = text.replace(GECOS, GECOS.replace("from: displayName", "from: userName"))
    client = make_client(dataclasses.replace(backend, mapping=parse_mapping(text)))
    u = create_user(client, "jdoe", displayName="Ann Smith")
    assert _gecos(backend, "jdoe") == ["jdoe"]
    r = patch(client, f"/Users/{u['id']}", {"op": "replace", "path": "userName", "value": "ann"})
    assert r.status_code == 200, r.text
    assert _gecos(backend, "ann") == ["ann"]
    body = {"schemas": [USER_SCHEMA], "userName": "asmith", "displayName": "Ann Smith"}
    r = client.put(f"{SCIM}/Users/{u['id']}", json=body)
    assert r.status_code == 200, r.text
    assert _gecos(backend, "asmith") == ["asmith"]
