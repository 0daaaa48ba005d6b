"""Uniqueness that holds under races, on the embedded directory and slapd.

* userName (User RDN) and displayName (Group RDN): the directory's entryAlreadyExists decides,
  atomically - concurrent creates give exactly one 201 and the rest 409.
* The bridge's own pre-check (a search) cannot decide a race; a barrier in ``add`` makes every
  racer pass the pre-check before any of them adds, so the directory is what decides.
* A unique attribute that is NOT the RDN (here externalId in a variant mapping): the post-write
  re-check removes the later duplicate (integrity.duplicates_after_create).
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from pathlib import Path
from typing import Any

import pytest

from bridge.directory.base import Add, Entry
from bridge.mapping.load import parse_mapping
from bridge.service.facade import Service
from devtools.faults import FaultyDirectory
from tests.conftest import Backend, make_client
from tests.helpers import GROUP_SCHEMA, SCIM, USER_SCHEMA

RACERS = 6


class BarrierDirectory(FaultyDirectory):
    """Holds every ``add`` until ``parties`` of them have arrived, then lets them all go."""

    def __init__(self, inner: Any, parties: int):
        super().__init__(inner)
        self.barrier = threading.Barrier(parties, timeout=20)

    def run_add(self, op: Add) -> Entry | None:
        self.barrier.wait()
        return super().run_add(op)


def race(fn: Any, n: int) -> list[Any]:
    with cf.ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda i: fn(i), range(n)))


@pytest.mark.parametrize("kind", ["Users", "Groups"])
def test_concurrent_creates_over_http_one_wins(backend: Backend, kind: str) -> None:
    client = make_client(backend)
    body = (
        {"schemas": [USER_SCHEMA], "userName": "same"}
        if kind == "Users"
        else {"schemas": [GROUP_SCHEMA], "displayName": "same"}
    )
    statuses = race(lambda i: client.post(f"{SCIM}/{kind}", json=body).status_code, RACERS)
    assert sorted(statuses) == [201] + [409] * (RACERS - 1)
    assert client.get(f"{SCIM}/{kind}").json()["totalResults"] == 1


@pytest.mark.parametrize("kind", ["User", "Group"])
def test_racers_past_the_precheck_are_decided_by_the_directory(backend: Backend, kind: str) -> None:
    service = Service(backend.mapping, BarrierDirectory(backend.directory, 2))
    body = {"userName": "twin"} if kind == "User" else {"displayName": "twin"}

    def create(_: int) -> int:
        try:
            service.create(kind, {"schemas": [service.rmap(kind).schema], **body}, "")
            return 201
        except Exception as exc:
            return int(getattr(exc, "status", 500))

    assert sorted(race(create, 2)) == [201, 409]
    rmap = service.rmap(kind)
    found = backend.directory.search(rmap.base_dn, rmap.base_filter, ["1.1"], scope="one")
    assert len(found.entries) == 1


def test_non_rdn_unique_attribute_holds_under_a_race(backend: Backend) -> None:
    text = Path(backend.mapping.source).read_text()
    text = text.replace(
        "externalId:                   {ldap: employeeType}",
        "externalId:                   {ldap: employeeType, unique: true}",
    )
    assert "employeeType, unique: true" in text
    mapping = parse_mapping(text, "variant")
    service = Service(mapping, BarrierDirectory(backend.directory, 2))

    def create(i: int) -> int:
        body = {"schemas": [service.rmap("User").schema], "userName": f"u{i}", "externalId": "X1"}
        try:
            service.create("User", body, "")
            return 201
        except Exception as exc:
            return int(getattr(exc, "status", 500))

    assert sorted(race(create, 2)) == [201, 409]
    found = backend.directory.search(
        mapping.resource("User").base_dn, "(employeeType=X1)", ["uid"], scope="one"
    )
    assert len(found.entries) == 1
    # and without a race the pre-check answers 409 before writing anything
    plain = Service(mapping, backend.directory)
    with pytest.raises(Exception) as caught:
        plain.create("User", {"userName": "u9", "externalId": "x1"}, "")
    assert getattr(caught.value, "status", None) == 409
