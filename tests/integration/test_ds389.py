"""389 Directory Server with mappings/389ds.yaml, and what it needed from the bridge.

* the fixture itself (devtools/ds389.py): LDAPS with the test CA, plugins on, ids;
* ``active`` through ``nsAccountLock`` (codec ``nsaccountlock``): a deactivated user cannot
  bind, a reactivated one can again (389 DS, both clients);
* ``uniqueMember`` values carrying an optional UID (``dn#'0101'B``, RFC 4517 §3.3.21; codec
  ``name-and-optional-uid``): read as the member, removed by PATCH and by PUT as stored.  On
  389 DS with the shipped mapping, and on the embedded directory and slapd (both clients) with
  openldap.yaml switched to groupOfUniqueNames.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import ldap3
import pytest
from starlette.testclient import TestClient

from bridge.directory.base import Change, Directory
from bridge.directory.embedded import EmbeddedDirectory
from bridge.mapping.codecs import CODECS
from bridge.mapping.load import load_mapping, parse_mapping
from bridge.mapping.model import MappingConfig
from bridge.runtime import seed_structure
from tests.conftest import (
    DS389_MAP,
    OPENLDAP_MAP,
    Backend,
    _empty,
    ds389_directory,
    encrypted_slapd_directory,
    make_client,
    slapd_directory,
)

SCIM = "/scim/v2"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PASSWORD = "Corr3ct-Horse-Battery"
UID = "#'0101'B"


# --------------------------------------------------------------------------- the fixture


def test_fixture_serves_ldaps_with_its_ca_and_the_plugins(ds389_server: Any) -> None:
    tls = ldap3.Tls(ca_certs_file=ds389_server.ca_file, validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(ds389_server.ldaps_url, use_ssl=True, tls=tls, get_info=ldap3.NONE)
    conn = ldap3.Connection(
        server, ds389_server.bind_dn, ds389_server.bind_password, auto_bind=True
    )
    try:
        conn.search(
            ds389_server.base_dn,
            "(objectClass=organizationalUnit)",
            attributes=["ou", "nsUniqueId", "entryusn"],
        )
        ous = {e.ou.value: e for e in conn.entries}
        assert set(ous) == {"people", "groups"}
        for e in ous.values():  # the id format the mapping's comment describes
            assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{8}){3}", e.nsUniqueId.value)
            assert e.entryusn.value is not None  # USN plugin on
        conn.search(
            "cn=MemberOf Plugin,cn=plugins,cn=config",
            "(objectClass=*)",
            ldap3.BASE,
            attributes=["nsslapd-pluginEnabled"],
        )
        assert conn.entries[0]["nsslapd-pluginEnabled"].value == "on"
    finally:
        conn.unbind()


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    name: str
    client: TestClient
    directory: Directory
    mapping: MappingConfig
    info: Any


def _unique_member_variant() -> MappingConfig:
    """openldap.yaml with groupOfUniqueNames groups (slapd's schema makes uniqueMember a MUST,
    so the placeholder stays)."""
    text = OPENLDAP_MAP.read_text()
    for old, new in (
        ("object_classes: [top, groupOfNames]", "object_classes: [top, groupOfUniqueNames]"),
        (
            "base_filter: (objectClass=groupOfNames)",
            "base_filter: (objectClass=groupOfUniqueNames)",
        ),
        (
            "members:      {ldap: member, to: [User, Group]}",
            "members:      {ldap: uniqueMember, type: name-and-optional-uid, to: [User, Group]}",
        ),
    ):
        assert old in text, old
        text = text.replace(old, new)
    return parse_mapping(text, source="openldap.yaml (groupOfUniqueNames)")


def _target(request: pytest.FixtureRequest, name: str) -> Iterator[Target]:
    if name == "embedded":
        mapping = _unique_member_variant()
        directory: Directory = EmbeddedDirectory()
        seed_structure(directory, mapping)
        yield Target(name, make_client(Backend(name, directory, mapping)), directory, mapping, None)
        return
    if name.startswith("slapd"):
        info = request.getfixturevalue("slapd_server")
        mapping = _unique_member_variant()
        directory = encrypted_slapd_directory(info, name.removeprefix("slapd-"))
    else:
        info = request.getfixturevalue("ds389_server")
        mapping = load_mapping(DS389_MAP)
        directory = ds389_directory(info, name.removeprefix("ds389-"))
    _empty(directory, mapping)
    yield Target(
        name, make_client(Backend(name, directory, mapping, info)), directory, mapping, info
    )
    _empty(directory, mapping)
    directory.close()


@pytest.fixture(
    params=[
        "embedded",
        pytest.param("slapd-ldap3", marks=pytest.mark.slapd),
        pytest.param("slapd-libldap", marks=pytest.mark.slapd),
        pytest.param("ds389-ldap3", marks=pytest.mark.ds389),
        pytest.param("ds389-libldap", marks=pytest.mark.ds389),
    ]
)
def uniq(request: pytest.FixtureRequest) -> Iterator[Target]:
    yield from _target(request, str(request.param))


@pytest.fixture(
    params=[
        pytest.param("ds389-ldap3", marks=pytest.mark.ds389),
        pytest.param("ds389-libldap", marks=pytest.mark.ds389),
    ]
)
def ds389(request: pytest.FixtureRequest) -> Iterator[Target]:
    yield from _target(request, str(request.param))


def _user(t: Target, name: str, **extra: Any) -> dict[str, Any]:
    r = t.client.post(f"{SCIM}/Users", json={"userName": name, **extra})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _dn(t: Target, rid: str, resource: str) -> str:
    rmap = t.mapping.resource(resource)
    flt = f"({rmap.id.ldap}={rid})"
    found = t.directory.search(rmap.base_dn, flt, ["1.1"], scope="one").entries
    assert len(found) == 1, (rid, found)
    return found[0].dn


def _stored_members(t: Target, gid: str) -> list[str]:
    entry = t.directory.read(_dn(t, gid, "Group"), ["uniqueMember"])
    assert entry is not None
    return sorted(v.decode() for v in entry.get("uniqueMember"))


def _members(t: Target, gid: str) -> set[str]:
    r = t.client.get(f"{SCIM}/Groups/{gid}")
    assert r.status_code == 200, r.text
    return {m["value"] for m in r.json().get("members", [])}


# --------------------------------------------------------------------------- uniqueMember


def _group_with_a_uid_member(t: Target) -> tuple[str, str, str, str]:
    """A group holding u1 as ``dn#'0101'B`` (written by another tool) and u2 as a plain DN."""
    u1, u2 = _user(t, "uniq-one")["id"], _user(t, "uniq-two")["id"]
    r = t.client.post(f"{SCIM}/Groups", json={"displayName": "uniq-group"})
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    gdn, u1dn = _dn(t, gid, "Group"), _dn(t, u1, "User")
    t.directory.modify(gdn, [Change("add", "uniqueMember", ((u1dn + UID).encode(),))])
    op = {"op": "add", "path": "members", "value": [{"value": u2}]}
    r = t.client.patch(f"{SCIM}/Groups/{gid}", json={"schemas": [PATCH], "Operations": [op]})
    assert r.status_code in (200, 204), r.text
    return gid, u1, u2, u1dn


def test_a_member_stored_with_a_uid_is_read_and_removed_by_patch(uniq: Target) -> None:
    gid, u1, u2, u1dn = _group_with_a_uid_member(uniq)
    assert _members(uniq, gid) == {u1, u2}
    op = {"op": "remove", "path": f'members[value eq "{u1}"]'}
    r = uniq.client.patch(f"{SCIM}/Groups/{gid}", json={"schemas": [PATCH], "Operations": [op]})
    assert r.status_code in (200, 204), r.text
    assert _members(uniq, gid) == {u2}
    assert not [v for v in _stored_members(uniq, gid) if v.lower().startswith(u1dn.lower())]


def test_a_put_without_the_member_stored_with_a_uid_removes_it(uniq: Target) -> None:
    gid, _u1, u2, u1dn = _group_with_a_uid_member(uniq)
    body = {"displayName": "uniq-group", "members": [{"value": u2}]}
    r = uniq.client.put(f"{SCIM}/Groups/{gid}", json=body)
    assert r.status_code == 200, r.text
    assert {m["value"] for m in r.json()["members"]} == {u2}
    assert not [v for v in _stored_members(uniq, gid) if v.lower().startswith(u1dn.lower())]


def test_a_replace_of_members_drops_the_member_stored_with_a_uid(uniq: Target) -> None:
    gid, _u1, u2, u1dn = _group_with_a_uid_member(uniq)
    op = {"op": "replace", "path": "members", "value": [{"value": u2}]}
    r = uniq.client.patch(f"{SCIM}/Groups/{gid}", json={"schemas": [PATCH], "Operations": [op]})
    assert r.status_code in (200, 204), r.text
    assert _members(uniq, gid) == {u2}
    assert not [v for v in _stored_members(uniq, gid) if v.lower().startswith(u1dn.lower())]


# --------------------------------------------------------------------------- nsAccountLock


def _binds(t: Target, dn: str) -> bool:
    tls = ldap3.Tls(ca_certs_file=t.info.ca_file, validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(t.info.ldaps_url, use_ssl=True, tls=tls, get_info=ldap3.NONE)
    conn = ldap3.Connection(server, dn, PASSWORD)
    try:
        return bool(conn.bind())
    finally:
        conn.unbind()


def _set_active(t: Target, uid: str, active: bool) -> dict[str, Any]:
    op = {"op": "replace", "path": "active", "value": active}
    r = t.client.patch(f"{SCIM}/Users/{uid}", json={"schemas": [PATCH], "Operations": [op]})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_active_false_locks_the_account_and_true_unlocks_it(ds389: Target) -> None:
    user = _user(ds389, "locky", password=PASSWORD)
    dn = _dn(ds389, user["id"], "User")
    assert user["active"] is True and _binds(ds389, dn)
    assert _set_active(ds389, user["id"], False)["active"] is False
    entry = ds389.directory.read(dn, ["nsAccountLock"])
    assert entry is not None and entry.get("nsAccountLock") == [b"true"]
    assert not _binds(ds389, dn)
    r = ds389.client.get(f"{SCIM}/Users", params={"filter": "active eq false"})
    assert [u["id"] for u in r.json()["Resources"]] == [user["id"]]
    assert _set_active(ds389, user["id"], True)["active"] is True
    assert _binds(ds389, dn)
    r = ds389.client.get(f"{SCIM}/Users", params={"filter": "active eq true"})
    assert [u["id"] for u in r.json()["Resources"]] == [user["id"]]


def test_nsaccountlock_codec_reads_false_and_absent_as_active() -> None:
    codec = CODECS["nsaccountlock"]
    assert codec.decode_all([]) == [True]
    assert codec.decode_all([b"false"]) == [True]  # dsidm account unlock may leave "false"
    assert codec.decode_all([b"TRUE"]) == [False]
    assert codec.encode(False) == [b"true"] and codec.encode(True) == []
    assert codec.filter_for("nsAccountLock", "eq", True) == "(!(nsAccountLock=true))"
    assert codec.filter_for("nsAccountLock", "ne", True) == "(nsAccountLock=true)"


def test_name_and_optional_uid_codec_keeps_the_dn_only() -> None:
    codec = CODECS["name-and-optional-uid"]
    dn = "uid=a,ou=people,dc=example,dc=org"
    assert codec.dn(dn + UID) == dn  # type: ignore[attr-defined]
    assert codec.dn(dn) == dn  # type: ignore[attr-defined]
    assert CODECS["reference"].dn(dn + UID) == dn + UID  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- check-mapping


def _admin_modify(info: Any, dn: str, attr: str, values: list[str]) -> list[str]:
    """Replace ``attr`` on a cn=config entry as Directory Manager; returns the old values.
    (Plugin settings take effect on restart: only what check-mapping reads changes.)"""
    server = ldap3.Server(info.url, get_info=ldap3.NONE)  # memberOfGroupAttr: in no schema
    conn = ldap3.Connection(server, info.admin_dn, info.admin_password, auto_bind=True)
    try:
        conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=[attr])
        old = [str(v) for v in conn.entries[0][attr].values]
        assert conn.modify(dn, {attr: [(ldap3.MODIFY_REPLACE, values)]}), conn.result
        return old
    finally:
        conn.unbind()


def _findings(t: Target) -> dict[str, Any]:
    from bridge.service.dircheck import check

    return {f.topic: f for f in check(t.directory, t.mapping)}


def test_check_mapping_connect_finds_only_the_stock_indexes_missing(ds389: Target) -> None:
    """The shipped mapping on the fixture: only 389 DS's stock index set is short (uid has
    eq only, displayName none); nsUniqueId, uniqueMember, memberOf, entryusn are indexed."""
    found = _findings(ds389)
    assert set(found) == {"index uid", "index displayName"}, found
    assert {f.severity for f in found.values()} == {"warning"}
    assert "--add-type sub --attr uid userroot" in found["index uid"].fix


def test_check_mapping_connect_sees_memberof_not_following_uniquemember(ds389: Target) -> None:
    dn = "cn=MemberOf Plugin,cn=plugins,cn=config"
    old = _admin_modify(ds389.info, dn, "memberOfGroupAttr", ["member"])
    try:
        found = _findings(ds389)
    finally:
        _admin_modify(ds389.info, dn, "memberOfGroupAttr", old)
    assert found["memberof"].severity == "error"
    assert "uniqueMember" in found["memberof"].effect
    assert "--groupattr member uniqueMember" in found["memberof"].fix


def test_check_mapping_connect_sees_the_usn_plugin_off(ds389: Target) -> None:
    dn = "cn=USN,cn=plugins,cn=config"
    old = _admin_modify(ds389.info, dn, "nsslapd-pluginEnabled", ["off"])
    try:
        found = _findings(ds389)
    finally:
        _admin_modify(ds389.info, dn, "nsslapd-pluginEnabled", old)
    assert found["usn"].severity == "warning" and "entryusn" in found["usn"].effect


# ------------------------------------------------------------------ the look-through limit


@pytest.mark.parametrize("client", ["ldap3", "libldap"])
def test_a_paged_walk_stopped_by_the_look_through_limit_is_an_error(
    ds389_server: Any, ds389_mapping: MappingConfig, client: str
) -> None:
    """389 DS ends a search that looks at more candidates than the bind account's look-through
    limit with adminLimitExceeded, on the page where it stops (with that page's entries and
    no cookie).  Both clients raise it: ldap3 returned the walk so far as if complete."""
    from bridge.errors import DirectoryError
    from devtools.ds389 import BIND_DN, admin_connection

    people = ds389_mapping.resource("User").base_dn
    directory = _paging(ds389_server, client)
    _empty(directory, ds389_mapping)
    admin = admin_connection(ds389_server)
    admin.search(BIND_DN, "(objectClass=*)", ldap3.BASE, attributes=["nsLookThroughLimit"])
    before = [str(v) for v in admin.entries[0]["nsLookThroughLimit"].values]
    try:
        for i in range(120):
            directory.add(
                f"uid=lt{i:03d},{people}",
                {"objectClass": [b"inetOrgPerson"], "uid": [f"lt{i:03d}".encode()],
                 "cn": [b"lt"], "sn": [b"lt"]},
            )  # fmt: skip
        assert len(list(directory.iter_search(people, "(uid=lt*)", ["1.1"]))) == 120
        admin.modify(BIND_DN, {"nsLookThroughLimit": [(ldap3.MODIFY_REPLACE, ["100"])]})
        limited = _paging(ds389_server, client)  # binds anew: the account's new limit
        try:
            with pytest.raises(DirectoryError) as caught:
                list(limited.iter_search(people, "(objectClass=inetOrgPerson)", ["1.1"]))
            assert caught.value.code == "adminLimitExceeded"
            assert caught.value.to_scim().status == 400
        finally:
            limited.close()
    finally:
        admin.modify(BIND_DN, {"nsLookThroughLimit": [(ldap3.MODIFY_REPLACE, before)]})
        admin.unbind()
        _empty(directory, ds389_mapping)
        directory.close()


def _paging(info: Any, client: str) -> Directory:
    """A client of the fixture 389 DS that walks in pages of 40 entries."""
    return slapd_directory(info, client, urls=(info.ldaps_url,), ca_file=info.ca_file, page_size=40)
