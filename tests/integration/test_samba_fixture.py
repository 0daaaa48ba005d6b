"""The Samba AD DC fixture works, and the AD behaviours the bridge relies on are as recorded.

Tests named ``test_samba_quirk_*`` pin behaviours where Samba 4.17 differs from Windows AD (or
where ldap3 is surprising); see tests/integration/SAMBA.md. If one of them starts failing after
an upgrade, update SAMBA.md and the AD mapping notes rather than just the assertion.

Host: env SCIM_BRIDGE_SAMBA_HOST, else the first free address from 127.0.0.2 on. Without Samba
the module is skipped, except under CI (env CI set), where it fails.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import time
import uuid

import ldap3
import pytest
from ldap3.utils.conv import escape_bytes

from devtools.samba import SambaDC, SambaInfo, free_loopback_host, require_samba

pytestmark = pytest.mark.samba

PASSWORD = "Str0ng!Passw0rd"
SSS_OID = "1.2.840.113556.1.4.473"
VLV_OID = "2.16.840.1.113730.3.4.9"
PAGED_OID = "1.2.840.113556.1.4.319"
BIG_GROUP_SIZE = 3000

USER_CLASSES = ["top", "person", "organizationalPerson", "user"]


def unicode_pwd(password: str) -> bytes:
    return f'"{password}"'.encode("utf-16-le")


@pytest.fixture(scope="module")
def samba_dc():
    try:
        require_samba()
    except RuntimeError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    dc = SambaDC(host=os.environ.get("SCIM_BRIDGE_SAMBA_HOST") or free_loopback_host())
    t0 = time.monotonic()
    try:
        dc.start()
        timings = ", ".join(f"{k}={v:.2f}s" for k, v in dc.timings.items())
        print(f"\nSambaDC on {dc.host} ready in {time.monotonic() - t0:.2f}s ({timings})")
        yield dc
    finally:
        dc.cleanup()


@pytest.fixture(scope="module")
def info(samba_dc: SambaDC) -> SambaInfo:
    return samba_dc.info


@pytest.fixture(scope="module")
def admin(samba_dc: SambaDC):
    conn = samba_dc.connection()
    yield conn
    with contextlib.suppress(ldap3.core.exceptions.LDAPException):
        conn.unbind()  # may already be dead after test_restart_keeps_data


def ldaps_server(info: SambaInfo, **kwargs) -> ldap3.Server:
    tls = ldap3.Tls(ca_certs_file=info.ca_file, validate=ssl.CERT_REQUIRED)
    return ldap3.Server(info.host, 636, use_ssl=True, tls=tls, **kwargs)


def try_bind(info: SambaInfo, user: str, password: str) -> tuple[bool, dict]:
    conn = ldap3.Connection(ldaps_server(info), user, password)
    try:
        ok = conn.bind()
        return ok, dict(conn.result)
    finally:
        conn.unbind()


def read(conn: ldap3.Connection, dn: str, attrs: list[str]) -> dict:
    assert conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=attrs), conn.result
    return conn.response[0]["raw_attributes"]


def add_user(conn: ldap3.Connection, parent: str, name: str, **attrs) -> str:
    dn = f"CN={name},{parent}"
    conn.add(dn, USER_CLASSES, {"sAMAccountName": name, **attrs})
    assert conn.result["result"] == 0, conn.result
    return dn


# ---------------------------------------------------------------------------------------------


def test_server_facts(info: SambaInfo, admin: ldap3.Connection):
    assert info.url == f"ldaps://{info.host}:636"
    assert info.ldap_url == f"ldap://{info.host}:389"
    assert os.path.isfile(info.ca_file)
    for dn in (info.people_dn, info.groups_dn, info.quarantine_dn):
        assert read(admin, dn, ["objectClass"])["objectClass"][-1] == b"organizationalUnit"
    policy = read(admin, info.base_dn, ["minPwdAge", "pwdHistoryLength", "pwdProperties"])
    assert policy["minPwdAge"] == [b"0"]
    assert policy["pwdHistoryLength"] == [b"0"]
    assert policy["pwdProperties"] == [b"1"]  # DOMAIN_PASSWORD_COMPLEX stays on


def test_root_dse_lists_sss_vlv_and_paging(info: SambaInfo):
    conn = ldap3.Connection(ldaps_server(info, get_info=ldap3.DSA), auto_bind=True)  # anonymous
    oids = {c[0] for c in conn.server.info.supported_controls}
    assert {SSS_OID, VLV_OID, PAGED_OID} <= oids
    conn.unbind()


def test_plain_ldap_simple_bind_is_refused(info: SambaInfo):
    conn = ldap3.Connection(ldap3.Server(info.host, 389), info.bind_dn, info.bind_password)
    assert not conn.bind()
    assert conn.result["description"] == "strongerAuthRequired"  # 8, "Transport encryption"
    conn.unbind()
    # StartTLS on 389 is accepted
    tls = ldap3.Tls(ca_certs_file=info.ca_file, validate=ssl.CERT_REQUIRED)
    conn = ldap3.Connection(ldap3.Server(info.host, 389, tls=tls), info.bind_dn, info.bind_password)
    conn.open()
    assert conn.start_tls()
    assert conn.bind()
    conn.unbind()


def test_user_password_enable_disable(info: SambaInfo, admin: ldap3.Connection):
    dn = add_user(admin, info.people_dn, "jdoe", userPrincipalName="jdoe@example.test",
                  givenName="John", sn="Doe")  # fmt: skip
    created = read(admin, dn, ["userAccountControl", "pwdLastSet", "primaryGroupID"])
    # ACCOUNTDISABLE | PASSWD_NOTREQD | NORMAL_ACCOUNT, as AD does
    assert created["userAccountControl"] == [b"546"]
    assert created["pwdLastSet"] == [b"0"]
    assert created["primaryGroupID"] == [b"513"]

    # weak password: 19 constraintViolation with the 0000052D code, as AD
    admin.modify(dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [unicode_pwd("abc")])]})
    assert admin.result["result"] == 19, admin.result
    assert admin.result["message"].startswith("0000052D")
    # complexity is on: long enough but only lower-case letters
    admin.modify(dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [unicode_pwd("abcdefghijkl")])]})
    assert admin.result["result"] == 19, admin.result

    admin.modify(dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [unicode_pwd(PASSWORD)])]})
    assert admin.result["result"] == 0, admin.result
    admin.modify(dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, ["512"])]})
    assert admin.result["result"] == 0, admin.result

    ok, result = try_bind(info, dn, PASSWORD)
    assert ok, result
    assert try_bind(info, "jdoe@example.test", PASSWORD)[0]  # UPN bind
    ok, result = try_bind(info, dn, "Wr0ng!Passw0rd")
    assert not ok
    assert result["description"] == "invalidCredentials" and "data 52e" in result["message"]

    admin.modify(dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, ["514"])]})
    assert admin.result["result"] == 0, admin.result
    ok, result = try_bind(info, dn, PASSWORD)
    assert not ok
    assert result["description"] == "invalidCredentials" and "data 533" in result["message"]

    # min-pwd-age 0 and history 0: the same password can be set again at once
    admin.modify(dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [unicode_pwd(PASSWORD)])]})
    assert admin.result["result"] == 0, admin.result


def test_one_shot_add_with_password_and_uac(info: SambaInfo, admin: ldap3.Connection):
    dn = add_user(admin, info.people_dn, "oneshot", unicodePwd=unicode_pwd(PASSWORD),
                  userAccountControl="512")  # fmt: skip
    assert read(admin, dn, ["userAccountControl"])["userAccountControl"] == [b"512"]
    assert try_bind(info, dn, PASSWORD)[0]
    admin.add(f"CN=weakshot,{info.people_dn}", USER_CLASSES,
              {"sAMAccountName": "weakshot", "unicodePwd": unicode_pwd("weak"),
               "userAccountControl": "512"})  # fmt: skip
    assert admin.result["result"] == 19 and admin.result["message"].startswith("0000052D")


def test_samba_quirk_enable_without_password_is_accepted(info: SambaInfo, admin: ldap3.Connection):
    """Windows AD refuses 512 on a user without password (53 / 0000052D); Samba accepts it."""
    dn = add_user(admin, info.people_dn, "nopwd")
    admin.modify(dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, ["512"])]})
    assert admin.result["result"] == 0, admin.result
    assert read(admin, dn, ["userAccountControl"])["userAccountControl"] == [b"512"]


def test_unquoted_unicode_pwd_is_refused(info: SambaInfo, admin: ldap3.Connection):
    dn = add_user(admin, info.people_dn, "unquoted")
    admin.modify(dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [PASSWORD.encode("utf-16-le")])]})
    assert admin.result["result"] == 53, admin.result  # unwillingToPerform (00002035)


def test_object_guid_round_trip(info: SambaInfo, admin: ldap3.Connection):
    dn = add_user(admin, info.people_dn, "guidy")
    raw = read(admin, dn, ["objectGUID"])["objectGUID"][0]
    assert len(raw) == 16
    guid = uuid.UUID(bytes_le=raw)  # AD's canonical text form; NOT uuid.UUID(bytes=raw)
    # admin has no schema loaded, so the filter really goes out as escaped bytes
    admin.search(info.base_dn, f"(objectGUID={escape_bytes(raw)})", attributes=["cn"])
    assert [e["dn"] for e in admin.response if e["type"] == "searchResEntry"] == [dn]
    admin.search(f"<GUID={guid}>", "(objectClass=*)", ldap3.BASE, attributes=["cn"])
    assert admin.response[0]["dn"] == dn


def test_samba_quirk_guid_string_filter_matches(info: SambaInfo, admin: ldap3.Connection):
    """Samba also matches `(objectGUID=<text uuid>)` sent as plain text; Windows AD documents
    only the escaped-binary form, so the bridge must always send escape_bytes(raw)."""
    dn = f"CN=guidy,{info.people_dn}"
    guid = uuid.UUID(bytes_le=read(admin, dn, ["objectGUID"])["objectGUID"][0])
    admin.search(info.people_dn, f"(objectGUID={guid})", attributes=["cn"])  # no schema: as text
    assert [e["dn"] for e in admin.response if e["type"] == "searchResEntry"] == [dn]


# --- a 3,000-member group -------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_group(info: SambaInfo, admin: ldap3.Connection):
    parent = f"OU=Bulk,{info.people_dn}"
    admin.add(parent, ["top", "organizationalUnit"])
    members = []
    t0 = time.monotonic()
    for i in range(BIG_GROUP_SIZE):
        members.append(add_user(admin, parent, f"bulk{i:05d}"))
    t1 = time.monotonic()
    dn = f"CN=big,{info.groups_dn}"
    admin.add(dn, ["top", "group"], {"sAMAccountName": "big"})
    assert admin.result["result"] == 0, admin.result
    admin.modify(dn, {"member": [(ldap3.MODIFY_ADD, members)]})  # all in ONE modify
    assert admin.result["result"] == 0, admin.result
    print(f"\n{BIG_GROUP_SIZE} users in {t1 - t0:.1f}s, one {BIG_GROUP_SIZE}-member modify "
          f"in {time.monotonic() - t1:.2f}s")  # fmt: skip
    return dn, parent, {m.lower() for m in members}


def _member_values(samba_dc: SambaDC, dn: str, attrs: list[str], **conn_kwargs) -> dict:
    conn = samba_dc.connection(**conn_kwargs)
    try:
        assert conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=attrs), conn.result
        return {k: v for k, v in conn.response[0]["attributes"].items() if k.startswith("member")}
    finally:
        conn.unbind()


def test_big_group_read_back_fully(samba_dc: SambaDC, big_group):
    dn, _, members = big_group
    got = _member_values(samba_dc, dn, ["member"])  # ldap3 default: auto_range=True
    assert {m.lower() for m in got["member"]} == members
    # Samba does NOT enforce MaxValRange=1500: a plain request returns every value, so even
    # without auto_range there is no `member;range=0-1499` (Windows AD would send one).
    got = _member_values(samba_dc, dn, ["member"], auto_range=False)
    assert list(got) == ["member"] and len(got["member"]) == BIG_GROUP_SIZE


def test_explicit_range_requests(samba_dc: SambaDC, big_group):
    dn, _, members = big_group
    manual = {"auto_range": False, "return_empty_attributes": False}
    first = _member_values(samba_dc, dn, ["member;range=0-1499"], **manual)
    assert list(first) == ["member;range=0-1499"] and len(first["member;range=0-1499"]) == 1500
    rest = _member_values(samba_dc, dn, ["member;range=1500-*"], **manual)
    assert list(rest) == ["member;range=1500-*"] and len(rest["member;range=1500-*"]) == 1500
    union = {m.lower() for m in first["member;range=0-1499"] + rest["member;range=1500-*"]}
    assert union == members
    # an upper bound past the end comes back as `range=0-*`
    whole = _member_values(samba_dc, dn, ["member;range=0-4999"], **manual)
    assert list(whole) == ["member;range=0-*"]
    # past the end: the attribute comes back without values
    past = _member_values(samba_dc, dn, [f"member;range={BIG_GROUP_SIZE}-*"], **manual)
    assert not past.get(f"member;range={BIG_GROUP_SIZE}-*")


def test_samba_quirk_range_option_is_case_sensitive(samba_dc: SambaDC, big_group):
    """`member;Range=0-9` is not recognised by Samba (AD: case-insensitive): all values."""
    dn = big_group[0]
    got = _member_values(samba_dc, dn, ["member;Range=0-9"], auto_range=False,
                         return_empty_attributes=False)  # fmt: skip
    assert list(got) == ["member"] and len(got["member"]) == BIG_GROUP_SIZE


def test_ldap3_quirk_auto_range_swallows_explicit_ranges(samba_dc: SambaDC, big_group):
    """With auto_range=True ldap3 follows an explicit range to the end and files the values
    under plain `member`, leaving an empty `member;range=...` key."""
    dn = big_group[0]
    got = _member_values(samba_dc, dn, ["member;range=0-99"])
    assert len(got["member"]) == BIG_GROUP_SIZE and got["member;range=0-99"] == []
    got = _member_values(samba_dc, dn, ["member;range=1500-*"])
    assert len(got["member"]) == 1500


def test_ldap3_quirk_no_auto_range_with_empty_attributes_crashes(samba_dc: SambaDC, big_group):
    """ldap3 2.9.1: auto_range=False + return_empty_attributes=True (default) + a ranged
    attribute request -> KeyError('member') inside ldap3."""
    with pytest.raises(KeyError):
        _member_values(samba_dc, big_group[0], ["member;range=0-1499"], auto_range=False)


def test_samba_quirk_no_page_or_size_limit(admin: ldap3.Connection, big_group):
    """Windows AD caps an unpaged search at MaxPageSize=1000 and honours sizeLimit with
    sizeLimitExceeded (4); Samba stores lDAPAdminLimits but enforces neither."""
    parent = big_group[1]
    admin.search(parent, "(objectClass=user)", ldap3.LEVEL, attributes=["cn"])
    assert admin.result["result"] == 0 and len(admin.response) == BIG_GROUP_SIZE
    admin.search(parent, "(objectClass=user)", ldap3.LEVEL, attributes=["cn"], size_limit=10)
    assert admin.result["result"] == 0 and len(admin.response) == BIG_GROUP_SIZE
    admin.search(parent, "(objectClass=user)", ldap3.LEVEL, attributes=["cn"], paged_size=1000)
    assert len(admin.response) == 1000
    assert admin.result["controls"][PAGED_OID]["value"]["cookie"]


# --- last: restart keeps the data ------------------------------------------------------------


def test_restart_keeps_data(samba_dc: SambaDC, info: SambaInfo):
    pid = samba_dc.pid
    assert samba_dc.restart() == info
    assert samba_dc.pid != pid
    conn = samba_dc.connection()
    assert read(conn, f"CN=jdoe,{info.people_dn}", ["sAMAccountName"])["sAMAccountName"] == [
        b"jdoe"
    ]
    conn.unbind()
    assert try_bind(info, f"CN=oneshot,{info.people_dn}", PASSWORD)[0]
