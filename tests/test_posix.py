"""POSIX accounts from the shipped POSIX mappings (issue 18 items 1 and 2): uidNumber and
gidNumber allocated from the mapping's ranges through a counter entry, homeDirectory from a
template, loginShell and gidNumber constants, gecos folded to ASCII -- on the embedded
directory and slapd with both clients, and with mappings/389ds-posix.yaml on 389 DS with both
clients (tests/posix_support.py).  The two-process proof is in
tests/integration/test_posix_allocation.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.directory.base import Change, Directory
from bridge.directory.wrapper import Wrapper
from bridge.errors import DirectoryError
from bridge.mapping.model import MappingConfig
from bridge.mapping.posix import Allocation
from tests.conftest import Backend, make_client
from tests.helpers import SCIM, USER_SCHEMA, create_group, create_user
from tests.posix_support import GID_COUNTER, POSIX_BACKENDS, UID_COUNTER, posix_backend

PEOPLE = "ou=people,dc=example,dc=org"


pytestmark = pytest.mark.parametrize("backend", POSIX_BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    yield from posix_backend(request, request.param)


def _entry(directory: Directory, base: str, flt: str, attrs: list[str]) -> Any:
    found = directory.search(base, flt, attrs, scope="one").entries
    assert len(found) == 1, found
    return found[0]


def _counter(directory: Directory, dn: str, attr: str) -> int:
    entry = directory.read(dn, [attr])
    assert entry is not None
    return int(entry.text(attr) or 0)


def _legacy_user(directory: Directory, uid: str, number: int) -> None:
    """An account written by another tool, holding a number the counter never handed out."""
    directory.add(
        f"uid={uid},{PEOPLE}",
        {
            "objectClass": [b"top", b"person", b"inetOrgPerson", b"posixAccount"],
            "uid": [uid.encode()],
            "cn": [uid.encode()],
            "sn": [uid.encode()],
            "uidNumber": [str(number).encode()],
            "gidNumber": [b"100"],
            "homeDirectory": [f"/home/{uid}".encode()],
        },
    )


def test_user_gets_posix_attributes(client: TestClient, backend: Backend) -> None:
    create_user(client, "zoe@example.com", displayName="Zoë Straße-Ørsted 日本")
    e = _entry(
        backend.directory,
        PEOPLE,
        "(&(objectClass=posixAccount)(uid=zoe@example.com))",
        ["uidNumber", "gidNumber", "homeDirectory", "loginShell", "gecos"],
    )
    assert e.text("uidNumber") == "10000"
    assert e.text("gidNumber") == "100"
    assert e.text("homeDirectory") == "/home/zoe@example.com"
    assert e.text("loginShell") == "/bin/bash"
    assert e.text("gecos") == "Zoe Strasse-Orsted"
    assert _counter(backend.directory, UID_COUNTER, "uidNumber") == 10001


def test_numbers_are_distinct_and_skip_legacy_ones(client: TestClient, backend: Backend) -> None:
    for uid, number in (("legacy1", 10001), ("legacy2", 10002), ("legacy3", 10004)):
        _legacy_user(backend.directory, uid, number)
    for i in range(4):
        create_user(client, f"new{i}")
    found = backend.directory.search(PEOPLE, "(uid=new*)", ["uidNumber"], scope="one").entries
    assert sorted(int(e.text("uidNumber") or 0) for e in found) == [10000, 10003, 10005, 10006]


def test_group_gets_allocated_gid(client: TestClient, backend: Backend) -> None:
    create_group(client, "admins")
    create_group(client, "devs")
    found = backend.directory.search(
        "ou=groups,dc=example,dc=org", "(objectClass=posixGroup)", ["cn", "gidNumber"]
    ).entries
    assert {e.text("cn"): e.text("gidNumber") for e in found} == {
        "admins": "10000",
        "devs": "10001",
    }
    assert _counter(backend.directory, GID_COUNTER, "gidNumber") == 10002


def _narrowed(mapping: MappingConfig, low: int, high: int) -> MappingConfig:
    rmap = mapping.resource("User")
    spec = rmap.posix
    narrow = tuple(
        dataclasses.replace(a, low=low, high=high) if isinstance(a, Allocation) else a
        for a in spec.allocations
    )
    users = dataclasses.replace(rmap, posix=dataclasses.replace(spec, allocations=narrow))
    return dataclasses.replace(mapping, resources={**mapping.resources, "User": users})


def test_exhausted_range_is_a_clear_error(backend: Backend) -> None:
    _legacy_user(backend.directory, "legacy", 10001)
    client = make_client(
        dataclasses.replace(backend, mapping=_narrowed(backend.mapping, 10000, 10002))
    )
    create_user(client, "first")
    create_user(client, "second")  # 10001 is held by the legacy entry: 10002
    r = client.post(
        f"{SCIM}/Users",
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "third"},
    )
    assert r.status_code == 507, r.text
    body = r.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert "10000-10002" in body["detail"] and "uidNumber" in body["detail"]
    assert not backend.directory.search(PEOPLE, "(uid=third)", ["1.1"], scope="one").entries


@pytest.mark.parametrize("user_name", ["../etc", "a/../../root", "has space", "zoë"])
def test_unsafe_template_value_is_refused(
    client: TestClient, backend: Backend, user_name: str
) -> None:
    r = client.post(
        f"{SCIM}/Users",
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name},
    )
    assert r.status_code == 400, r.text
    assert r.json()["scimType"] == "invalidValue"
    assert "homeDirectory" in r.json()["detail"]
    assert not backend.directory.search(PEOPLE, "(objectClass=*)", ["1.1"], scope="one").entries
    assert _counter(backend.directory, UID_COUNTER, "uidNumber") == 10000  # nothing spent


def test_refused_duplicate_spends_no_number(client: TestClient, backend: Backend) -> None:
    create_user(client, "dup")
    r = client.post(
        f"{SCIM}/Users",
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "dup"},
    )
    assert r.status_code == 409
    assert _counter(backend.directory, UID_COUNTER, "uidNumber") == 10001


def test_missing_counter_is_a_clear_error(client: TestClient, backend: Backend) -> None:
    backend.directory.delete(UID_COUNTER)
    r = client.post(
        f"{SCIM}/Users",
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "nobody"},
    )
    assert r.status_code == 501, r.text
    assert UID_COUNTER in r.json()["detail"]
    assert not backend.directory.search(PEOPLE, "(uid=nobody)", ["1.1"], scope="one").entries


def test_long_legacy_run_is_skipped_not_a_conflict(
    client: TestClient, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Skipping numbers legacy entries hold is progress, not a lost swap: even with a single
    attempt allowed, a run longer than one candidate batch is crossed."""
    from bridge.service import allocate

    monkeypatch.setattr(allocate, "ATTEMPTS", 1)
    for n in range(10000, 10000 + allocate.BATCH + 4):
        _legacy_user(backend.directory, f"legacy{n}", n)
    create_user(client, "after")
    e = _entry(backend.directory, PEOPLE, "(uid=after)", ["uidNumber"])
    assert e.text("uidNumber") == str(10000 + allocate.BATCH + 4)


def test_counter_without_a_value_starts_at_the_range(client: TestClient, backend: Backend) -> None:
    backend.directory.modify(UID_COUNTER, [Change("delete", "uidNumber", ())])
    create_user(client, "first")
    create_user(client, "second")
    found = backend.directory.search(PEOPLE, "(uid=*)", ["uid", "uidNumber"], scope="one").entries
    assert {e.text("uid"): e.text("uidNumber") for e in found} == {
        "first": "10000",
        "second": "10001",
    }


def test_always_losing_the_swap_is_a_503_and_writes_nothing(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every compare-and-swap lost (another writer moved the counter each time): after
    ATTEMPTS reads a 503 with Retry-After, and no entry."""
    from bridge.directory.wrapper import Wrapper
    from bridge.errors import DirectoryError
    from bridge.service import allocate

    class Busy(Wrapper):
        def run_modify(self, op: Any) -> Any:
            if op.dn == UID_COUNTER:
                raise DirectoryError("noSuchAttribute", "moved meanwhile", dn=op.dn)
            return self.inner.run_modify(op)

    monkeypatch.setattr(allocate, "ATTEMPTS", 3)
    client = make_client(dataclasses.replace(backend, directory=Busy(backend.directory)))
    r = client.post(
        f"{SCIM}/Users",
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "busy"},
    )
    assert r.status_code == 503, r.text
    assert "too busy" in r.json()["detail"]
    assert not backend.directory.search(PEOPLE, "(uid=busy)", ["1.1"], scope="one").entries


class _RefusedOnce(Wrapper):
    """The directory refusing the first modify of the uid counter with noSuchObject (389 DS
    does so under concurrent writes to the entry), optionally deleting the counter first."""

    def __init__(self, inner: Directory, delete: bool = False) -> None:
        super().__init__(inner)
        self.delete, self.refused = delete, 0

    def run_modify(self, op: Any) -> Any:
        if op.dn == UID_COUNTER and not self.refused:
            self.refused += 1
            if self.delete:
                self.inner.delete(UID_COUNTER)  # really gone: the directory's own answer
            else:
                raise DirectoryError("noSuchObject", "entry is busy", dn=op.dn)
        return self.inner.run_modify(op)


def test_a_counter_modify_refused_with_no_such_object_is_retried(backend: Backend) -> None:
    directory = _RefusedOnce(backend.directory)
    client = make_client(dataclasses.replace(backend, directory=directory))
    create_user(client, "first")
    assert directory.refused == 1
    e = _entry(backend.directory, PEOPLE, "(uid=first)", ["uidNumber"])
    assert e.text("uidNumber") == "10000"
    assert _counter(backend.directory, UID_COUNTER, "uidNumber") == 10001


def test_a_counter_deleted_before_the_swap_is_still_the_clear_error(backend: Backend) -> None:
    client = make_client(
        dataclasses.replace(backend, directory=_RefusedOnce(backend.directory, delete=True))
    )
    r = client.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": "nobody"})
    assert r.status_code == 501, r.text
    assert UID_COUNTER in r.json()["detail"]
    assert not backend.directory.search(PEOPLE, "(uid=nobody)", ["1.1"], scope="one").entries
