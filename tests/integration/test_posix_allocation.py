"""Issue 18's proof of POSIX number allocation: two bridge PROCESSES (one on ldap3, one on
python-ldap), four threads each, create 500 users at once against the same directory while
legacy accounts already hold numbers inside the range.  Afterwards there are 500 distinct
uidNumbers, none of them a legacy one, all in the mapping's range (the counter entry is moved
by compare-and-swap: bridge/service/allocate.py).  On slapd with mappings/openldap-posix.yaml
(ldap3 over LDAPS, python-ldap over ldapi) and on 389 DS with mappings/389ds-posix.yaml (both
over LDAPS), each with the counters of deploy/389ds/posix-counters.ldif."""

from __future__ import annotations

import multiprocessing as mp
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bridge.directory.base import Directory
from bridge.mapping.load import load_mapping
from bridge.service.facade import Service
from tests.conftest import ds389_directory, encrypted_slapd_directory
from tests.posix_support import drop_counters, mapping_file, seed_counters

PEOPLE = "ou=people,dc=example,dc=org"
PER_PROCESS = 250
THREADS = 4
#: numbers legacy tools handed out, inside the range and right where the counter starts
LEGACY = (10000, 10001, 10003, 10007, 10008, 10009, 10010, 10050, 10100, 10101, 10255, 10499)


def _directory(kind: str, info: Any, client: str = "ldap3") -> Directory:
    if kind == "ds389":
        return ds389_directory(info, client)
    return encrypted_slapd_directory(info, client)


def _create_many(kind: str, info: Any, client: str, prefix: str) -> list[str]:
    """One bridge process: its own directory client and Service, THREADS creating at once."""
    directory = _directory(kind, info, client)
    service = Service(load_mapping(mapping_file(kind)), directory)
    schema = "urn:ietf:params:scim:schemas:core:2.0:User"

    def one(i: int) -> str:
        try:
            service.create("User", {"schemas": [schema], "userName": f"{prefix}{i:03d}"}, "")
        except Exception as exc:  # reported to the parent, which fails the test
            return f"{prefix}{i:03d}: {exc!r}"
        return ""

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            return [e for e in pool.map(one, range(PER_PROCESS)) if e]
    finally:
        directory.close()


def _legacy(directory: Directory) -> None:
    for n in LEGACY:
        uid = f"legacy{n}"
        directory.add(
            f"uid={uid},{PEOPLE}",
            {
                "objectClass": [b"top", b"person", b"inetOrgPerson", b"posixAccount"],
                "uid": [uid.encode()],
                "cn": [uid.encode()],
                "sn": [uid.encode()],
                "uidNumber": [str(n).encode()],
                "gidNumber": [b"100"],
                "homeDirectory": [f"/home/{uid}".encode()],
            },
        )


def _numbers(directory: Directory, prefix: str) -> list[int]:
    found = directory.search(PEOPLE, f"(uid={prefix}*)", ["uidNumber"], scope="one").entries
    return [int(e.text("uidNumber") or -1) for e in found]


def _clean(directory: Directory) -> None:
    for prefix in ("a", "b", "legacy"):
        for e in directory.search(PEOPLE, f"(uid={prefix}*)", ["1.1"], scope="one").entries:
            directory.delete(e.dn)
    drop_counters(directory)


@pytest.mark.parametrize("kind", ["slapd", "ds389"])
def test_two_processes_allocate_500_distinct_numbers(
    kind: str, request: pytest.FixtureRequest
) -> None:
    info = request.getfixturevalue(f"{kind}_server")
    directory = _directory(kind, info)
    try:
        _clean(directory)
        seed_counters(directory)
        _legacy(directory)
        ctx = mp.get_context("spawn")
        started = time.monotonic()
        with ctx.Pool(2) as pool:
            runs = [
                pool.apply_async(_create_many, (kind, info, "ldap3", "a")),
                pool.apply_async(_create_many, (kind, info, "libldap", "b")),
            ]
            errors = [e for run in runs for e in run.get(timeout=300)]
        elapsed = time.monotonic() - started
        assert errors == []
        numbers = _numbers(directory, "a") + _numbers(directory, "b")
        assert len(numbers) == 2 * PER_PROCESS
        assert len(set(numbers)) == len(numbers), "a uidNumber was handed out twice"
        assert not set(numbers) & set(LEGACY), "a legacy uidNumber was reused"
        assert all(10000 <= n <= 59999 for n in numbers)
        print(f"{kind}: 500 creates in two processes: {elapsed:.1f}s")
    finally:
        _clean(directory)
        directory.close()
