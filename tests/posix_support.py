"""Backends for the POSIX mappings: mappings/openldap-posix.yaml on the embedded directory and
slapd with both clients, and mappings/389ds-posix.yaml on 389 DS with both clients -- each with
the two counter entries the mappings name, seeded from the LDIF an administrator loads
(deploy/389ds/posix-counters.ldif, the same entries as openldap-posix.yaml's header)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.directory.base import Directory
from bridge.directory.embedded import EmbeddedDirectory
from bridge.mapping.load import load_mapping
from bridge.mapping.model import MappingConfig
from bridge.runtime import seed_structure
from tests.conftest import Backend, _empty, ds389_directory, encrypted_slapd_directory

ROOT = Path(__file__).resolve().parent.parent
POSIX_MAP = ROOT / "mappings" / "openldap-posix.yaml"
DS389_POSIX_MAP = ROOT / "mappings" / "389ds-posix.yaml"
COUNTERS_LDIF = ROOT / "deploy" / "389ds" / "posix-counters.ldif"
COUNTERS = "ou=counters,dc=example,dc=org"
UID_COUNTER = f"cn=uidNext,{COUNTERS}"
GID_COUNTER = f"cn=gidNext,{COUNTERS}"
#: openldap-posix.yaml on embedded and slapd (both clients); 389ds-posix.yaml on 389 DS (both)
POSIX_BACKENDS = ("embedded", "slapd", "slapd-libldap", "ds389", "ds389-libldap")


def mapping_file(kind: str) -> Path:
    """The shipped POSIX mapping a backend kind runs with."""
    return DS389_POSIX_MAP if kind.startswith("ds389") else POSIX_MAP


def counter_entries(start: int = 10000) -> list[tuple[str, dict[str, list[bytes]]]]:
    """The entries of deploy/389ds/posix-counters.ldif (plain RFC 2849 records: comments,
    folded lines, ``attr: value``), the counters' numbers set to ``start``."""
    text = COUNTERS_LDIF.read_text("utf-8").replace("\n ", "")
    out = []
    for record in text.split("\n\n"):
        lines = [x for x in record.splitlines() if x and not x.startswith("#")]
        if not lines:
            continue
        attrs: dict[str, list[bytes]] = {}
        for line in lines:
            attr, _, value = line.partition(": ")
            attrs.setdefault(attr, []).append(value.encode())
        dn = attrs.pop("dn")[0].decode()
        for number in ("uidNumber", "gidNumber"):
            if number in attrs:
                attrs[number] = [str(start).encode()]
        out.append((dn, attrs))
    return out


def seed_counters(directory: Directory, start: int = 10000) -> None:
    """The counters as the shipped LDIF creates them."""
    for dn, attrs in counter_entries(start):
        directory.add(dn, attrs)


def drop_counters(directory: Directory) -> None:
    for dn in (UID_COUNTER, GID_COUNTER, COUNTERS):
        if directory.read(dn, ["1.1"]) is not None:
            directory.delete(dn)


def posix_backend(request: pytest.FixtureRequest, kind: str) -> Iterator[Backend]:
    mapping: MappingConfig = load_mapping(mapping_file(kind))
    if kind == "embedded":
        directory: Directory = EmbeddedDirectory()
        seed_structure(directory, mapping)  # type: ignore[arg-type]
        seed_counters(directory)
        yield Backend("embedded", directory, mapping)
        return
    client = "libldap" if kind.endswith("libldap") else "ldap3"
    if kind.startswith("ds389"):
        name, info = "ds389", request.getfixturevalue("ds389_server")
        directory = ds389_directory(info, client)
    else:
        name, info = "slapd", request.getfixturevalue("slapd_server")
        directory = encrypted_slapd_directory(info, client)
    _empty(directory, mapping)
    drop_counters(directory)
    seed_counters(directory)
    try:
        yield Backend(name, directory, mapping, info)
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


def pure_mapping_text(kind: str = "embedded") -> str:
    """The shipped mapping for ``kind`` with RFC 2307 membership (memberUid only) switched on:
    openldap-posix.yaml's commented variant; on 389 DS the same members and groups lines (its
    rfc2307compat posixGroup is AUXILIARY, so the groups stay groupOfNames + posixGroup, where
    member is optional)."""
    text = mapping_file(kind).read_text()
    assert DUAL_MEMBERS in text and DN_GROUPS in text
    return (
        text.replace(DUAL_MEMBERS, PURE_MEMBERS)
        .replace(DN_GROUPS, VALUE_GROUPS)
        .replace("[top, posixGroup, extensibleObject]", "[top, posixGroup]")
    )
