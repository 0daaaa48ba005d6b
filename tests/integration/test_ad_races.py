"""Uniqueness under races on a real AD (Samba): concurrent creates of one userName or group
name give exactly one 201 and 409 for the rest, and exactly one entry exists afterwards
(issue 7; the same law as tests/test_races.py on slapd and the embedded directory).

On AD the staged create (add disabled, password, enable) makes a create several LDAP writes, so
this also proves that a loser never leaves a half-made account behind."""

from __future__ import annotations

import concurrent.futures as cf
from typing import Any

import pytest

from tests.helpers import GROUP_SCHEMA, SCIM, USER_SCHEMA
from tests.integration.conftest import AD

pytestmark = pytest.mark.samba
RACERS = 5


def _race(ad: AD, path: str, body: dict[str, Any]) -> list[int]:
    with cf.ThreadPoolExecutor(RACERS) as pool:
        return list(
            pool.map(
                lambda _: ad.client.post(f"{SCIM}{path}", json=body).status_code, range(RACERS)
            )
        )


def test_concurrent_user_creates_one_wins(ad: AD) -> None:
    body = {
        "schemas": [USER_SCHEMA],
        "userName": "racer",
        "password": "Str0ng!Passw0rd-race",
        "active": True,
        "name": {"givenName": "Race", "familyName": "Condition"},
    }
    assert sorted(_race(ad, "/Users", body)) == [201] + [409] * (RACERS - 1)
    found = ad.entry(ad.info.base_dn, "(sAMAccountName=racer)", ["userAccountControl"])
    assert len(found) == 1
    assert int(found[0]["useraccountcontrol"][0]) & 0x2 == 0  # the winner is enabled
    listed = ad.client.get(f"{SCIM}/Users", params={"filter": 'userName eq "racer"'}).json()
    assert listed["totalResults"] == 1


def test_concurrent_group_creates_one_wins(ad: AD) -> None:
    body = {"schemas": [GROUP_SCHEMA], "displayName": "Racers"}
    assert sorted(_race(ad, "/Groups", body)) == [201] + [409] * (RACERS - 1)
    assert len(ad.entry(ad.info.base_dn, "(&(objectClass=group)(cn=Racers))", ["cn"])) == 1
