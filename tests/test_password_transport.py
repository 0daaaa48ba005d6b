"""Passwords travel only encrypted (RFC 7644 §7.1 asks for TLS on the SCIM side; the directory
side is the bridge's to protect): every password codec, OpenLDAP's userPassword as AD's
unicodePwd, is refused over plain ``ldap://`` with AD's 501 and the fix in the detail, before
anything is written; LDAPS, StartTLS and ldapi carry it, and so does plain LDAP to a directory
on this host when the operator opted out (``BRIDGE_LDAP_ALLOW_PLAIN_PASSWORDS_ON_LOOPBACK``).

The refusal runs on the embedded directory (made to look unencrypted) and on slapd over
``ldap://127.0.0.1`` with both clients; the encrypted transports on slapd with both clients,
where the ppolicy overlay hashes the clear text (``olcPPolicyHashCleartext``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import ldap3
import pytest

from bridge.directory.connections import ConnectionSettings
from bridge.directory.embedded import EmbeddedDirectory
from bridge.mapping.model import MappingConfig
from bridge.runtime import connection_settings, seed_structure
from bridge.settings import Settings
from tests.conftest import Backend, _empty, make_client, slapd_directory, unavailable
from tests.helpers import SCIM, create_user

PASSWORD = "Corr3ct-Horse-Battery"
FIX = "BRIDGE_LDAP_ALLOW_PLAIN_PASSWORDS_ON_LOOPBACK=true"


class _Unencrypted(EmbeddedDirectory):
    """The embedded directory as if reached over plain LDAP to another host."""

    @property
    def secure(self) -> bool:
        return False


@pytest.fixture(params=["embedded", "slapd", "slapd-libldap"])
def plain(request: pytest.FixtureRequest, openldap_mapping: MappingConfig) -> Iterator[Backend]:
    """A backend reached without encryption: slapd over ldap://127.0.0.1, no opt-out."""
    if request.param == "embedded":
        directory = _Unencrypted()
        seed_structure(directory, openldap_mapping)
        yield Backend("embedded", directory, openldap_mapping)
        return
    info = request.getfixturevalue("slapd_server")
    client = "libldap" if request.param == "slapd-libldap" else "ldap3"
    yield from _slapd_backend(info, openldap_mapping, client)


def _slapd_backend(
    info: Any, mapping: MappingConfig, client: str, **overrides: Any
) -> Iterator[Backend]:
    directory = slapd_directory(info, client, **overrides)
    _empty(directory, mapping)
    yield Backend("slapd", directory, mapping, info)
    _empty(directory, mapping)
    directory.close()


def _stored(backend: Backend, uid: str) -> list[bytes]:
    """userPassword of uid as the directory holds it (read past the bridge)."""
    people = backend.mapping.resources["User"].base_dn
    found = backend.independent_search(people, f"(uid={uid})", ["userPassword"])
    assert len(found) == 1
    entry = found[0]
    if backend.info is None:
        return list(entry.attrs.get("userpassword", []))
    return list(entry.userPassword.raw_values) if "userPassword" in entry else []


def _refused(r: Any) -> None:
    assert r.status_code == 501, r.text
    body = r.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert "ldaps://" in body["detail"] and "BRIDGE_LDAP_STARTTLS=true" in body["detail"]
    assert FIX in body["detail"]
    assert PASSWORD not in r.text


# ---------------------------------------------------------------------------------- refusal
def test_create_with_a_password_over_plain_ldap_is_refused_and_writes_nothing(
    plain: Backend,
) -> None:
    client = make_client(plain)
    r = client.post(f"{SCIM}/Users", json={"userName": "pw-create", "password": PASSWORD})
    _refused(r)
    listed = client.get(f"{SCIM}/Users", params={"filter": 'userName eq "pw-create"'})
    assert listed.json()["totalResults"] == 0


def test_patch_and_put_of_a_password_over_plain_ldap_are_refused(plain: Backend) -> None:
    client = make_client(plain)
    user = create_user(client, "pw-patch", title="Before")  # no password: written as usual
    where = f"{SCIM}/Users/{user['id']}"
    op = {"op": "replace", "path": "password", "value": PASSWORD}
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [op]}
    _refused(client.patch(where, json=patch))
    put = {"userName": "pw-patch", "title": "After", "password": PASSWORD}
    _refused(client.put(where, json=put))
    assert _stored(plain, "pw-patch") == []
    assert client.get(where).json()["title"] == "Before"  # nothing of the PUT was written


# ---------------------------------------------------------------------------------- allowed
@pytest.fixture(params=["ldap3", "libldap"])
def client_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _transport(info: Any, name: str) -> dict[str, Any]:
    return {
        "ldaps": {"urls": (info.ldaps_url,), "ca_file": info.ca_file},
        "starttls": {"start_tls": True, "ca_file": info.ca_file},
        "ldapi": {"urls": (info.ldapi_url,)},
        "loopback-opt-out": {"allow_plain_passwords_on_loopback": True},
    }[name]


@pytest.mark.parametrize("transport", ["ldaps", "starttls", "ldapi", "loopback-opt-out"])
def test_passwords_go_over_tls_ldapi_or_the_loopback_opt_out(
    slapd_server: Any, openldap_mapping: MappingConfig, client_name: str, transport: str
) -> None:
    overrides = _transport(slapd_server, transport)
    for backend in _slapd_backend(slapd_server, openldap_mapping, client_name, **overrides):
        assert backend.directory.secure
        client = make_client(backend)
        create_user(client, "pw-ok", password=PASSWORD)
        (stored,) = _stored(backend, "pw-ok")
        assert stored.startswith(b"{SSHA}")  # slapd hashed it (olcPPolicyHashCleartext)
        dn = f"uid=pw-ok,{backend.mapping.resources['User'].base_dn}"
        conn = ldap3.Connection(slapd_server.url, dn, PASSWORD)
        assert conn.bind(), conn.result
        conn.unbind()


def test_the_opt_out_covers_loopback_hosts_only(
    client_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    if client_name == "libldap":
        try:
            from bridge.directory.libldap_client import LibldapDirectory as cls
        except ImportError as exc:
            unavailable(f"python-ldap is not installed: {exc}")
    else:
        from bridge.directory.ldap3_client import Ldap3Directory as cls  # type: ignore[assignment]

    def secure(*urls: str, **kw: Any) -> bool:
        d = cls(ConnectionSettings(urls=urls, allow_plain_passwords_on_loopback=True, **kw))
        return d.secure

    assert secure("ldap://127.0.0.1:389", "ldap://localhost", "ldap://[::1]:389")
    assert secure("ldap://127.0.0.1:389", "ldaps://dc.example.test")
    with caplog.at_level(logging.WARNING, logger="bridge.ldap"):
        assert not secure("ldap://127.0.0.1:389", "ldap://dc.example.test")
    assert any("loopback servers only" in r.getMessage() for r in caplog.records)
    assert not secure("ldap://127.0.0.1.example.test")  # a name, not the loopback address
    assert secure("ldap://dc.example.test", start_tls=True)
    without = cls(ConnectionSettings(urls=("ldap://127.0.0.1:389",)))
    assert not without.secure  # no opt-out: loopback is no exception


def test_the_setting_reaches_the_clients() -> None:
    env = {"BRIDGE_LDAP_URL": "ldap://127.0.0.1", FIX.split("=")[0]: "true"}
    assert connection_settings(Settings.from_env(env)).allow_plain_passwords_on_loopback
    env[FIX.split("=")[0]] = ""
    assert not connection_settings(Settings.from_env(env)).allow_plain_passwords_on_loopback
