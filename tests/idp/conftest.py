"""The twelve backends of the IdP-shaped suite, each with the mapping exactly as shipped:
the embedded directory and slapd through ldap3 and python-ldap (mappings/openldap.yaml),
389 DS through ldap3 and python-ldap (mappings/389ds.yaml), and Samba AD through ldap3 and
python-ldap (mappings/active-directory.yaml), the embedded directory and slapd through both
clients with mappings/openldap-posix.yaml, and 389 DS through both clients with
mappings/389ds-posix.yaml (each POSIX target with its counter entries).  Each yields the SCIM
client and an Inspector that reads the directory without the bridge."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import ldap3
import pytest
from starlette.testclient import TestClient

from bridge.directory.base import Directory
from bridge.directory.embedded import EmbeddedDirectory
from bridge.mapping.load import load_mapping
from bridge.mapping.model import MappingConfig
from bridge.runtime import seed_structure
from tests.conftest import (
    DS389_MAP,
    Backend,
    _empty,
    ds389_directory,
    encrypted_slapd_directory,
    make_client,
)
from tests.idp.inspect import (
    Inspector,
    ad_profile,
    directory_search,
    ds389_profile,
    ldap3_search,
    openldap_profile,
)
from tests.integration.conftest import admin, build_ad, empty_ous

BACKENDS = [
    pytest.param("embedded", id="embedded"),
    pytest.param("slapd-ldap3", id="slapd-ldap3", marks=pytest.mark.slapd),
    pytest.param("slapd-libldap", id="slapd-libldap", marks=pytest.mark.slapd),
    pytest.param("ds389-ldap3", id="ds389-ldap3", marks=pytest.mark.ds389),
    pytest.param("ds389-libldap", id="ds389-libldap", marks=pytest.mark.ds389),
    pytest.param("samba-ldap3", id="samba-ldap3", marks=pytest.mark.samba),
    pytest.param("samba-libldap", id="samba-libldap", marks=pytest.mark.samba),
    # mappings/openldap-posix.yaml (posixAccount/posixGroup, allocated numbers): issue 18
    pytest.param("posix-embedded", id="posix-embedded"),
    pytest.param("posix-slapd-ldap3", id="posix-slapd-ldap3", marks=pytest.mark.slapd),
    pytest.param("posix-slapd-libldap", id="posix-slapd-libldap", marks=pytest.mark.slapd),
    # mappings/389ds-posix.yaml: the same on 389 DS (groupOfNames + posixGroup, member)
    pytest.param("posix-ds389-ldap3", id="posix-ds389-ldap3", marks=pytest.mark.ds389),
    pytest.param("posix-ds389-libldap", id="posix-ds389-libldap", marks=pytest.mark.ds389),
]


@dataclass(frozen=True)
class Target:
    name: str
    client: TestClient
    inspect: Inspector


def _openldap_inspector(mapping: MappingConfig, search: Any) -> Inspector:
    group = mapping.resource("Group")
    profile = openldap_profile(
        mapping.resource("User").base_dn, group.base_dn, group.empty_member or ""
    )
    return Inspector(profile, search)


@pytest.fixture(params=BACKENDS)
def idp_target(request: pytest.FixtureRequest, openldap_mapping: MappingConfig) -> Iterator[Target]:
    name = str(request.param)
    if name.startswith("posix-"):
        yield from _posix_target(request, name)
        return
    if name == "embedded":
        embedded = EmbeddedDirectory()
        seed_structure(embedded, openldap_mapping)
        backend = Backend(name, embedded, openldap_mapping)
        inspect = _openldap_inspector(openldap_mapping, directory_search(embedded))
        yield Target(name, make_client(backend), inspect)
        return
    if name.startswith("slapd"):
        info = request.getfixturevalue("slapd_server")
        directory: Directory = encrypted_slapd_directory(info, name.removeprefix("slapd-"))
        _empty(directory, openldap_mapping)

        def connect() -> ldap3.Connection:
            return ldap3.Connection(info.url, info.admin_dn, info.admin_password, auto_bind=True)

        inspect = _openldap_inspector(openldap_mapping, ldap3_search(connect))
        yield Target(
            name, make_client(Backend("slapd", directory, openldap_mapping, info)), inspect
        )
        _empty(directory, openldap_mapping)
        directory.close()
        return
    if name.startswith("ds389"):
        yield from _ds389_target(request, name)
        return
    info = request.getfixturevalue("samba_server")
    empty_ous(info)
    ad = build_ad(info, client=name.removeprefix("samba-"))
    profile = ad_profile(info.base_dn, info.groups_dn)
    yield Target(name, ad.client, Inspector(profile, ldap3_search(lambda: admin(info))))
    ad.directory.close()
    empty_ous(info)


def _ds389_target(request: pytest.FixtureRequest, name: str) -> Iterator[Target]:
    """389 DS with mappings/389ds.yaml as shipped, read back as Directory Manager."""
    info = request.getfixturevalue("ds389_server")
    mapping = load_mapping(DS389_MAP)
    directory = ds389_directory(info, name.removeprefix("ds389-"))
    _empty(directory, mapping)

    def connect() -> ldap3.Connection:
        return ldap3.Connection(info.url, info.admin_dn, info.admin_password, auto_bind=True)

    profile = ds389_profile(mapping.resource("User").base_dn, mapping.resource("Group").base_dn)
    backend = Backend("ds389", directory, mapping, info)
    yield Target(name, make_client(backend), Inspector(profile, ldap3_search(connect)))
    _empty(directory, mapping)
    directory.close()


def _posix_target(request: pytest.FixtureRequest, name: str) -> Iterator[Target]:
    """mappings/openldap-posix.yaml (embedded, slapd) or mappings/389ds-posix.yaml (389 DS)
    as shipped, with their counter entries."""
    from tests.posix_support import posix_backend

    kind = name.removeprefix("posix-").removesuffix("-ldap3")
    for backend in posix_backend(request, kind):
        if backend.info is None:
            search = directory_search(backend.directory)
        else:

            def connect(info: Any = backend.info) -> ldap3.Connection:
                return ldap3.Connection(
                    info.url, info.admin_dn, info.admin_password, auto_bind=True
                )

            search = ldap3_search(connect)
        people, groups = (backend.mapping.resource(r).base_dn for r in ("User", "Group"))
        if kind.startswith("ds389"):
            profile = ds389_profile(people, groups, members="member")
        else:
            profile = openldap_profile(people, groups, "")
        # RFC 2307bis: memberUid holds every user member's uid, in step with member
        profile = replace(profile, member_values=("memberUid", "uid"))
        yield Target(name, make_client(backend), Inspector(profile, search))
