"""Backends for mappings/openldap-posix.yaml: the embedded directory and slapd with both
clients, each with the two counter entries the mapping names (its header's LDIF)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.directory.base import Directory
from bridge.directory.embedded import EmbeddedDirectory
from bridge.mapping.load import load_mapping
from bridge.mapping.model import MappingConfig
from bridge.runtime import seed_structure
from tests.conftest import Backend, _empty, encrypted_slapd_directory

ROOT = Path(__file__).resolve().parent.parent
POSIX_MAP = ROOT / "mappings" / "openldap-posix.yaml"
COUNTERS = "ou=counters,dc=example,dc=org"
UID_COUNTER = f"cn=uidNext,{COUNTERS}"
GID_COUNTER = f"cn=gidNext,{COUNTERS}"
POSIX_BACKENDS = ("embedded", "slapd", "slapd-libldap")


def seed_counters(directory: Directory, start: int = 10000) -> None:
    """The counters as the mapping's header tells an administrator to create them."""
    directory.add(COUNTERS, {"objectClass": [b"top", b"organizationalUnit"], "ou": [b"counters"]})
    for dn, attr in ((UID_COUNTER, "uidNumber"), (GID_COUNTER, "gidNumber")):
        cn = dn.split(",")[0].split("=")[1]
        directory.add(
            dn,
            {
                "objectClass": [b"top", b"device", b"extensibleObject"],
                "cn": [cn.encode()],
                attr: [str(start).encode()],
            },
        )


def drop_counters(directory: Directory) -> None:
    for dn in (UID_COUNTER, GID_COUNTER, COUNTERS):
        if directory.read(dn, ["1.1"]) is not None:
            directory.delete(dn)


def posix_backend(request: pytest.FixtureRequest, kind: str) -> Iterator[Backend]:
    mapping: MappingConfig = load_mapping(POSIX_MAP)
    if kind == "embedded":
        directory: Directory = EmbeddedDirectory()
        seed_structure(directory, mapping)  # type: ignore[arg-type]
        seed_counters(directory)
        yield Backend("embedded", directory, mapping)
        return
    info = request.getfixturevalue("slapd_server")
    directory = encrypted_slapd_directory(info, "libldap" if kind == "slapd-libldap" else "ldap3")
    _empty(directory, mapping)
    drop_counters(directory)
    seed_counters(directory)
    try:
        yield Backend("slapd", directory, mapping, info)
    finally:
        _empty(directory, mapping)
        drop_counters(directory)
        directory.close()


# RFC 2307(bis) membership (tests/test_memberuid*.py): the shipped mapping's lines and its
# commented pure memberUid variant
DUAL_MEMBERS = "{ldap: member, to: [User, Group], mirror: {ldap: memberUid, member_value: uid}}"
PURE_MEMBERS = "{ldap: memberUid, member_value: uid, to: [User]}"
DN_GROUPS = "groups:                       {from_member: member, to: [Group]}"
VALUE_GROUPS = (
    "groups:                       {from_member: memberUid, member_value: uid, to: [Group]}"
)


def pure_mapping_text() -> str:
    """The shipped mapping with its commented RFC 2307 variant switched on."""
    text = POSIX_MAP.read_text()
    assert DUAL_MEMBERS in text and DN_GROUPS in text
    return (
        text.replace(DUAL_MEMBERS, PURE_MEMBERS)
        .replace(DN_GROUPS, VALUE_GROUPS)
        .replace("[top, posixGroup, extensibleObject]", "[top, posixGroup]")
    )
