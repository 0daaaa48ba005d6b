"""Fixtures of the Active Directory suite (tests/integration/test_ad.py), on the session's Samba
AD DC (``samba_server`` in tests/conftest.py): the AD mapping, a directory client over LDAPS with
the fixture's CA (``ad`` and ``ad_variant`` run with both clients, ldap3 and python-ldap), a SCIM
client, and direct LDAP access for checking what landed."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import ldap3
import pytest
from starlette.testclient import TestClient

from bridge.directory.base import Change, Modify
from bridge.directory.ldap3_client import ConnectionSettings, Ldap3Directory
from bridge.mapping.load import parse_mapping
from bridge.mapping.model import MappingConfig
from tests.conftest import ROOT, Backend, make_client

AD_MAP = ROOT / "mappings" / "active-directory.yaml"
TREE_DELETE = ("1.2.840.113556.1.4.805", True, None)


class RecordingDirectory(Ldap3Directory):
    """Ldap3Directory that records the modifies it sends (to prove single-value writes)."""

    def __init__(self, settings: ConnectionSettings):
        super().__init__(settings)
        self.modifies: list[tuple[str, list[Change]]] = []

    def run_modify(self, op: Modify) -> Any:
        self.modifies.append((op.dn, list(op.changes)))
        return super().run_modify(op)


def _recording_libldap(settings: ConnectionSettings) -> Any:
    """The same recorder around the python-ldap client (skipped locally without python-ldap)."""
    from tests.conftest import unavailable

    try:
        from bridge.directory.libldap_client import LibldapDirectory
    except ImportError as exc:
        unavailable(f"python-ldap is not installed: {exc}")

    class RecordingLibldap(LibldapDirectory):
        def __init__(self, settings: ConnectionSettings):
            super().__init__(settings)
            self.modifies: list[tuple[str, list[Change]]] = []

        def run_modify(self, op: Modify) -> Any:
            self.modifies.append((op.dn, list(op.changes)))
            return super().run_modify(op)

    return RecordingLibldap(settings)


def ad_directory(info: Any, client: str = "ldap3", **overrides: Any) -> RecordingDirectory:
    options: dict[str, Any] = {
        "urls": (info.url,),
        "bind_dn": info.bind_dn,
        "bind_password": info.bind_password,
        "ca_file": info.ca_file,
        "tls_hostname": "localhost",  # the certificate names localhost and the IP
        **overrides,
    }
    if client == "libldap":
        return _recording_libldap(ConnectionSettings(**options))  # type: ignore[no-any-return]
    return RecordingDirectory(ConnectionSettings(**options))


def admin(info: Any) -> ldap3.Connection:
    tls = ldap3.Tls(
        ca_certs_file=info.ca_file, validate=ssl.CERT_REQUIRED, valid_names=["localhost"]
    )
    server = ldap3.Server(info.host, 636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
    return ldap3.Connection(server, info.bind_dn, info.bind_password, auto_bind=True)


def ad_mapping_text(**replace: str) -> str:
    text = AD_MAP.read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def empty_ous(info: Any) -> None:
    """Delete everything below People, Groups and Quarantine (not the big-group OUs)."""
    conn = admin(info)
    try:
        for ou in (info.groups_dn, info.people_dn, info.quarantine_dn):
            conn.search(ou, "(objectClass=*)", ldap3.LEVEL, attributes=["1.1"])
            for dn in [e["dn"] for e in conn.response if e["type"] == "searchResEntry"]:
                conn.delete(dn, controls=[TREE_DELETE])
    finally:
        conn.unbind()


@dataclass
class AD:
    """What a test needs: the SCIM client, its directory, and LDAP helpers."""

    client: TestClient
    directory: RecordingDirectory
    mapping: MappingConfig
    info: Any

    def entry(self, base: str, flt: str, attrs: list[str]) -> list[dict[str, Any]]:
        conn = admin(self.info)
        try:
            conn.search(base, flt, attributes=attrs)
            return [
                {"dn": e["dn"], **{k.lower(): v for k, v in e["raw_attributes"].items()}}
                for e in conn.response
                if e["type"] == "searchResEntry"
            ]
        finally:
            conn.unbind()

    def user(self, sam: str, attrs: list[str] | None = None) -> dict[str, Any]:
        found = self.entry(
            self.info.base_dn,
            f"(sAMAccountName={sam})",
            attrs or ["userAccountControl", "pwdLastSet", "memberOf"],
        )
        assert len(found) == 1, found
        return found[0]

    def uac(self, sam: str) -> int:
        return int(self.user(sam, ["userAccountControl"])["useraccountcontrol"][0])

    def ldap(self, fn: Callable[[ldap3.Connection], Any]) -> Any:
        conn = admin(self.info)
        try:
            return fn(conn)
        finally:
            conn.unbind()


def build_ad(info: Any, mapping_text: str | None = None, **directory_options: Any) -> AD:
    mapping = parse_mapping(mapping_text or AD_MAP.read_text(), source=str(AD_MAP))
    directory = ad_directory(info, **directory_options)
    client = make_client(Backend("samba", directory, mapping, info))
    return AD(client, directory, mapping, info)


@pytest.fixture(params=["ldap3", "libldap"])
def ad(samba_server: Any, request: pytest.FixtureRequest) -> Iterator[AD]:
    """A SCIM client on the AD mapping over LDAPS, with People/Groups/Quarantine emptied."""
    empty_ous(samba_server)
    built = build_ad(samba_server, client=request.param)
    yield built
    built.directory.close()


@pytest.fixture(params=["ldap3", "libldap"])
def ad_variant(samba_server: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., AD]]:
    """Factory for a client on an edited copy of the AD mapping (deprovision variants...)."""
    empty_ous(samba_server)
    made: list[AD] = []

    def make(**replace: str) -> AD:
        built = build_ad(samba_server, ad_mapping_text(**replace), client=request.param)
        made.append(built)
        return built

    yield make
    for built in made:
        built.directory.close()
