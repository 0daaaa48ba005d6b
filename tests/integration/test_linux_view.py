"""What a Linux host sees (issue 18 item 5): users and groups created over SCIM, with the
payloads Okta and Entra ID send (tests/idp/flows: e-mail userNames, Okta's group push, Entra's
PATCH shapes), looked up the way nslcd and sssd look them up with their DEFAULT configuration
-- the filters and attribute maps their manuals document (tests/linux_host.py cites
nslcd.conf(5) and sssd-ldap(5)/sssd-ldap-attributes(5) for each) -- over an independent LDAP
connection, after create, group push (members added and removed), rename (a userName change),
deactivate/reactivate and delete.

sssd is checked with each ``ldap_schema`` the groups serve: rfc2307bis (member DNs) and
rfc2307, its default (memberUid values), which both shipped POSIX mappings' groups hold in step.

Backends: slapd with mappings/openldap-posix.yaml and 389 DS with mappings/389ds-posix.yaml
(groupOfNames + posixGroup), each through both bridge clients (ldap3, python-ldap); one server
of each kind per session.  ``test_getent_and_id_through_nslcd`` then resolves a provisioned
user with the
real ``getent passwd``, ``getent group`` and ``id`` through a real nslcd in a private mount
namespace (devtools/nslcd.py: the host's NSS configuration is not touched), and checks that
nslcd sent the same filters as tests/linux_host.py does.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import ldap3
import pytest
from starlette.testclient import TestClient

from tests.conftest import Backend, make_client, unavailable
from tests.helpers import SCIM
from tests.linux_host import Group, LinuxHost, Passwd
from tests.posix_support import posix_backend

T = TypeVar("T")

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
OKTA = {"User-Agent": "Okta SCIM Client 1.0.0", "Content-Type": "application/scim+json"}
ENTRA = {"Content-Type": "application/scim+json"}
PASSWORD = "t1meMa$heen"  # the Okta reference flow's
#: the mapping's constants: every user's primary group and shell
PRIMARY_GID = 100
SHELL = "/bin/bash"
FIRST_UID = FIRST_GID = 10000  # where the counters start (tests/posix_support.py)
#: sssd's ldap_schema values a server kind's groups must serve whatever its mapping says:
#: the shipped POSIX mappings' groups hold member DNs and memberUid values in step (issue 18
#: item 3)
INTENDED_SCHEMAS: dict[str, set[str]] = {
    "slapd": {"rfc2307bis", "rfc2307"},
    "ds389": {"rfc2307bis", "rfc2307"},
}

BACKENDS = [
    pytest.param("slapd", id="slapd-ldap3", marks=pytest.mark.slapd),
    pytest.param("slapd-libldap", id="slapd-libldap", marks=pytest.mark.slapd),
    pytest.param("ds389", id="ds389-ldap3", marks=pytest.mark.ds389),
    pytest.param("ds389-libldap", id="ds389-libldap", marks=pytest.mark.ds389),
]


@dataclass
class Site:
    """A bridge in front of one directory, and a Linux host looking at that directory."""

    backend: Backend
    scim: TestClient
    host: LinuxHost
    #: the sssd ldap_schema values checked (sssd_schemas)
    schemas: tuple[str, ...]

    def bind_as(self, dn: str, password: str) -> bool:
        """What nslcd's PAM module (pam_authc_search default) and sssd's auth provider do to
        check a password: a simple bind as the user's DN."""
        info = self.backend.info
        conn = ldap3.Connection(info.url, dn, password)
        try:
            return bool(conn.bind())
        finally:
            conn.unbind()


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    for backend in posix_backend(request, request.param):
        assert backend.name == request.param.split("-")[0], (backend.name, request.param)
        info = backend.info

        def connect(info: Any = info) -> ldap3.Connection:
            return ldap3.Connection(info.url, info.admin_dn, info.admin_password, auto_bind=True)

        members = backend.mapping.resource("Group").member_map
        assert members is not None
        dn_attr = members.ldap if members.member_value == "dn" else "member"
        host = LinuxHost(connect, info.base_dn, member_attr=dn_attr)
        schemas = sssd_schemas(request.param, backend.mapping)
        yield Site(backend, make_client(backend), host, schemas)
        host.close()


def sssd_schemas(kind: str, mapping: Any) -> tuple[str, ...]:
    """Which sssd ``ldap_schema`` the groups serve: rfc2307bis when they hold DN members,
    rfc2307 when they hold memberUid values (as the members attribute or its mirror), plus
    what INTENDED_SCHEMAS asks of the server kind."""
    members = mapping.resource("Group").member_map
    out = set(INTENDED_SCHEMAS.get(kind.split("-")[0], ()))
    if members.member_value == "dn":
        out.add("rfc2307bis")
    mirror = getattr(members, "mirror", None)
    if members.ldap.lower() == "memberuid" or (mirror and mirror.ldap.lower() == "memberuid"):
        out.add("rfc2307")
    return tuple(sorted(out))


def eventually(read: Callable[[], T], expected: T, timeout: float = 5.0) -> T:
    """slapd's refint rewrites member values a few ms after the rename/delete returned."""
    deadline = time.monotonic() + timeout
    while True:
        got = read()
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def _send(
    scim: TestClient, method: str, path: str, headers: dict[str, str], body: Any = None
) -> Any:
    r = scim.request(method, SCIM + path, json=body, headers=headers)
    assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
    return r.json() if r.content else None


def okta_user(
    scim: TestClient, first: str, last: str, domain: str = "example.test"
) -> dict[str, Any]:
    """Okta's create (tests/idp/flows/okta.json "create user")."""
    login = f"{first}.{last}@{domain}"
    return _send(
        scim,
        "POST",
        "/Users",
        OKTA,
        {
            "schemas": [USER],
            "userName": login,
            "name": {"givenName": first, "familyName": last},
            "emails": [{"primary": True, "value": login, "type": "work"}],
            "displayName": f"{first} {last}",
            "locale": "en-US",
            "externalId": f"00u{first.lower()}",
            "groups": [],
            "password": PASSWORD,
            "active": True,
        },
    )


def entra_user(scim: TestClient, first: str, last: str) -> dict[str, Any]:
    """Entra's create (tests/idp/flows/entra-aadoptscim062020.json "create user"): no
    displayName, so gecos comes from nowhere and both clients fall back to cn."""
    upn = f"{first}.{last}@example.test"
    return _send(
        scim,
        "POST",
        "/Users",
        ENTRA,
        {
            "schemas": [USER, ENTERPRISE],
            "externalId": f"{first}{last[0]}",
            "userName": upn,
            "active": True,
            "emails": [{"primary": True, "type": "work", "value": upn}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": f"{first} {last}", "familyName": last, "givenName": first},
            "roles": [],
        },
    )


def okta_group_push(scim: TestClient, name: str, member_ids: list[str]) -> str:
    """Okta's group push: create with no members, then PATCH add (okta.json)."""
    gid = _send(
        scim, "POST", "/Groups", OKTA, {"schemas": [GROUP], "displayName": name, "members": []}
    )["id"]
    ops = [{"op": "add", "path": "members", "value": [{"value": m} for m in member_ids]}]
    _send(scim, "PATCH", f"/Groups/{gid}", OKTA, {"schemas": [PATCH], "Operations": ops})
    return str(gid)


def remove_member(scim: TestClient, group_id: str, user_id: str, headers: dict[str, str]) -> None:
    """Remove by filter, as both Okta and Entra send it."""
    ops = [{"op": "remove", "path": f'members[value eq "{user_id}"]'}]
    _send(scim, "PATCH", f"/Groups/{group_id}", headers, {"schemas": [PATCH], "Operations": ops})


def _passwd(name: str, uid: int, gecos: str, home: str | None = None) -> Passwd:
    return Passwd(name, uid, PRIMARY_GID, gecos, home or f"/home/{name}", SHELL)


def assert_user(host: LinuxHost, expected: Passwd) -> None:
    """By name and by number, through both clients' searches, exactly one answer each."""
    assert host.nslcd_passwd(expected.name) == [expected]
    assert host.nslcd_passwd(expected.uid) == [expected]
    assert host.sssd_user(expected.name) == [expected]
    assert host.sssd_user(expected.uid) == [expected]


def assert_no_user(host: LinuxHost, name: str, uid: int | None = None) -> None:
    assert host.nslcd_passwd(name) == []
    assert host.sssd_user(name) == []
    if uid is not None:
        assert host.nslcd_passwd(uid) == []
        assert host.sssd_user(uid) == []


def assert_group(site: Site, name: str, gid: int, members: set[str]) -> None:
    """getgrgid/getgrnam through nslcd, and getgrgid through sssd with each schema --
    polled for slapd's refint, which rewrites member values just after a rename/delete."""
    host, want = site.host, [Group(name, gid, tuple(sorted(members)))]
    assert eventually(lambda: host.nslcd_group(gid), want) == want
    assert host.nslcd_group(name) == want
    for schema in site.schemas:
        assert eventually(lambda s=schema: host.sssd_group(gid, s), want) == want, schema


def assert_groups_of(site: Site, name: str, groups: set[str]) -> None:
    """initgroups (``id``, login's supplementary groups): nslcd's member-or-memberUid filter
    and sssd's filter for each schema."""
    host = site.host
    assert eventually(lambda: host.nslcd_groups_of(name), groups) == groups
    for schema in site.schemas:
        got = eventually(lambda s=schema: host.sssd_groups_of(name, s), groups)
        assert got == groups, schema


def test_lifecycle_as_a_linux_host_sees_it(site: Site) -> None:
    scim, host = site.scim, site.host
    barbara_name, megan_name = "Barbara.Jensen@example.test", "Megan.Bowen@example.test"

    # -- create (Okta and Entra shapes): numbers allocated in order, home from the template,
    # the mapping's shell and primary group, gecos from displayName or else cn
    barbara = okta_user(scim, "Barbara", "Jensen")
    megan = entra_user(scim, "Megan", "Bowen")
    barbara_pw = _passwd(barbara_name, FIRST_UID, "Barbara Jensen")
    megan_pw = _passwd(megan_name, FIRST_UID + 1, "Megan Bowen")
    assert_user(host, barbara_pw)
    assert_user(host, megan_pw)
    assert host.nslcd_groups_of(barbara_name) == set()

    # -- group push: Okta creates empty then adds both
    admins = okta_group_push(scim, "Linux Admins", [barbara["id"], megan["id"]])
    admins_gid = FIRST_GID
    both = {barbara_name, megan_name}
    assert_group(site, "Linux Admins", admins_gid, both)
    assert_groups_of(site, barbara_name, {"Linux Admins"})
    assert_groups_of(site, megan_name, {"Linux Admins"})

    # -- a member removed
    remove_member(scim, admins, barbara["id"], OKTA)
    assert_group(site, "Linux Admins", admins_gid, {megan_name})
    assert_groups_of(site, barbara_name, set())
    assert_groups_of(site, megan_name, {"Linux Admins"})
    okta_patch = {"op": "add", "path": "members", "value": [{"value": barbara["id"]}]}
    _send(
        scim, "PATCH", f"/Groups/{admins}", OKTA, {"schemas": [PATCH], "Operations": [okta_patch]}
    )
    assert_group(site, "Linux Admins", admins_gid, both)

    # -- rename (Entra changes the UPN): the old name is gone everywhere, the new one has the
    # same numbers and groups; homeDirectory is set on create only, so it stays
    new_name = "Megan.Bowen-Li@example.test"
    ops = [{"op": "Replace", "path": "userName", "value": new_name}]
    _send(scim, "PATCH", f"/Users/{megan['id']}", ENTRA, {"schemas": [PATCH], "Operations": ops})
    renamed = _passwd(new_name, megan_pw.uid, megan_pw.gecos, home=megan_pw.home)
    assert_no_user(host, megan_name)
    assert_user(host, renamed)
    assert_group(site, "Linux Admins", admins_gid, {barbara_name, new_name})
    assert_groups_of(site, new_name, {"Linux Admins"})
    assert_groups_of(site, megan_name, set())

    # -- deactivate (Okta): NSS still resolves the account (files stay owned by the same uid,
    # the groups are kept), but the password no longer works: the bind nslcd's PAM module and
    # sssd's auth provider do fails; reactivate restores it
    user_dn = host.sssd_user_dns(barbara_name)[0]
    assert site.bind_as(user_dn, PASSWORD)
    deactivate = [{"op": "replace", "value": {"active": False}}]
    _send(
        scim,
        "PATCH",
        f"/Users/{barbara['id']}",
        OKTA,
        {"schemas": [PATCH], "Operations": deactivate},
    )
    assert_user(host, barbara_pw)
    assert_groups_of(site, barbara_name, {"Linux Admins"})
    assert not site.bind_as(user_dn, PASSWORD)
    reactivate = [{"op": "replace", "value": {"active": True}}]
    _send(
        scim,
        "PATCH",
        f"/Users/{barbara['id']}",
        OKTA,
        {"schemas": [PATCH], "Operations": reactivate},
    )
    assert site.bind_as(user_dn, PASSWORD)

    # -- delete (Entra): gone by name and number, and out of the group
    _send(scim, "DELETE", f"/Users/{megan['id']}", ENTRA)
    assert_no_user(host, new_name, renamed.uid)
    assert_group(site, "Linux Admins", admins_gid, {barbara_name})
    assert_groups_of(site, new_name, set())

    # -- the group deleted (Okta unlinks a pushed group with DELETE)
    _send(scim, "DELETE", f"/Groups/{admins}", OKTA)
    assert host.nslcd_group(admins_gid) == []
    for schema in site.schemas:
        assert host.sssd_group(admins_gid, schema) == []
    assert_groups_of(site, barbara_name, set())


def entra_group(scim: TestClient, name: str, member_ids: list[str]) -> str:
    """Entra's group provisioning: create, then PATCH add members (entra flow)."""
    body = {"schemas": [GROUP], "externalId": f"ext-{name}", "displayName": name}
    gid = _send(scim, "POST", "/Groups", ENTRA, body)["id"]
    ops = [{"op": "add", "path": "members", "value": [{"value": m} for m in member_ids]}]
    _send(scim, "PATCH", f"/Groups/{gid}", ENTRA, {"schemas": [PATCH], "Operations": ops})
    return str(gid)


@pytest.fixture
def nslcd(site: Site) -> Iterator[Any]:
    """A real nslcd (devtools/nslcd.py) in a private mount namespace, reading the site's
    directory over LDAPS with the test CA, bound as the directory's administrator."""
    try:
        from devtools.nslcd import Nslcd, require_nslcd

        require_nslcd()
    except (ImportError, RuntimeError) as exc:
        unavailable(f"a private nslcd cannot run: {exc}")
    info = site.backend.info
    daemon = Nslcd(
        uri=info.ldaps_url,
        base=info.base_dn,
        binddn=info.admin_dn,
        bindpw=info.admin_password,
        ca_file=info.ca_file,
    )
    try:
        daemon.start()
    except RuntimeError as exc:
        daemon.cleanup()
        unavailable(f"nslcd did not start: {exc}")
    yield daemon
    daemon.cleanup()


def _group_line(line: str | None) -> tuple[str, str, int, set[str]] | None:
    if line is None:
        return None
    name, password, gid, members = line.split(":")
    return name, password, int(gid), set(members.split(",")) - {""}


def test_getent_and_id_through_nslcd(site: Site, nslcd: Any) -> None:
    """getent passwd/group and id, run by glibc through libnss_ldap and nslcd with nslcd's
    defaults, after create + group push, rename and delete; and nslcd sent only filters that
    tests/linux_host.py sends for the same lookups."""
    scim, host = site.scim, site.host
    barbara_name, megan_name = "Barbara.Jensen@example.test", "Megan.Bowen@example.test"
    barbara = okta_user(scim, "Barbara", "Jensen")
    megan = entra_user(scim, "Megan", "Bowen")
    okta_group_push(scim, "Linux Admins", [barbara["id"], megan["id"]])
    entra_group(scim, "linux-devs", [megan["id"]])

    barbara_line = (
        f"{barbara_name}:*:{FIRST_UID}:{PRIMARY_GID}:Barbara Jensen:/home/{barbara_name}:{SHELL}"
    )
    megan_line = (
        f"{megan_name}:*:{FIRST_UID + 1}:{PRIMARY_GID}:Megan Bowen:/home/{megan_name}:{SHELL}"
    )
    assert nslcd.getent("passwd", barbara_name) == barbara_line
    assert nslcd.getent("passwd", str(FIRST_UID)) == barbara_line
    # ... and only inside nslcd's namespace: this machine's own NSS does not know the user
    host_nss = subprocess.run(["getent", "passwd", barbara_name], capture_output=True, check=False)
    assert host_nss.returncode == 2, host_nss
    assert nslcd.getent("passwd", megan_name) == megan_line
    admins = ("Linux Admins", "*", FIRST_GID, {barbara_name, megan_name})
    assert _group_line(nslcd.getent("group", "Linux Admins")) == admins
    assert _group_line(nslcd.getent("group", str(FIRST_GID))) == admins
    assert _group_line(nslcd.getent("group", "linux-devs")) == (
        "linux-devs",
        "*",
        FIRST_GID + 1,
        {megan_name},
    )
    # id: the primary gid from passwd, the supplementary groups from initgroups (nslcd's
    # group-by-member search); gid 100 resolves from the host's /etc/group ("files" first)
    for user, uid, groups in (
        (barbara_name, FIRST_UID, {PRIMARY_GID, FIRST_GID}),
        (megan_name, FIRST_UID + 1, {PRIMARY_GID, FIRST_GID, FIRST_GID + 1}),
    ):
        assert nslcd.run("id", "-u", user).stdout.split() == [str(uid)]
        assert nslcd.run("id", "-g", user).stdout.split() == [str(PRIMARY_GID)]
        assert {int(g) for g in nslcd.run("id", "-G", user).stdout.split()} == groups

    # the same lookups through tests/linux_host.py send the filters nslcd sent
    for name in (barbara_name, megan_name):
        host.nslcd_passwd(name)
        host.nslcd_groups_of(name)
    host.nslcd_passwd(FIRST_UID)
    host.nslcd_passwd(FIRST_UID + 1)
    host.nslcd_group("Linux Admins")
    host.nslcd_group("linux-devs")
    host.nslcd_group(FIRST_GID)
    sent = {flt for _, _, flt in host.sent}
    assert set(nslcd.searches()) <= sent, set(nslcd.searches()) - sent
    assert (
        f"(&(objectClass=posixGroup)(|(memberUid={megan_name})(member=uid={megan_name},{site.backend.mapping.resource('User').base_dn})))"
        in nslcd.searches()
    )

    # rename (Entra changes the UPN): the member lists name the new login, never the old one
    new_name = "Megan.Bowen-Li@example.test"
    ops = [{"op": "Replace", "path": "userName", "value": new_name}]
    _send(scim, "PATCH", f"/Users/{megan['id']}", ENTRA, {"schemas": [PATCH], "Operations": ops})
    assert nslcd.getent("passwd", megan_name) is None
    renamed_line = megan_line.replace(f"{megan_name}:", f"{new_name}:", 1)
    assert nslcd.getent("passwd", str(FIRST_UID + 1)) == renamed_line
    want = ("linux-devs", "*", FIRST_GID + 1, {new_name})
    assert eventually(lambda: _group_line(nslcd.getent("group", "linux-devs")), want) == want
    groups = {PRIMARY_GID, FIRST_GID, FIRST_GID + 1}
    assert {int(g) for g in nslcd.run("id", "-G", new_name).stdout.split()} == groups

    # delete: the user is gone for the host, and from the group's member list
    _send(scim, "DELETE", f"/Users/{megan['id']}", ENTRA)
    assert nslcd.getent("passwd", new_name) is None
    assert nslcd.getent("passwd", str(FIRST_UID + 1)) is None
    assert nslcd.run("id", new_name).returncode != 0
    want = ("Linux Admins", "*", FIRST_GID, {barbara_name})
    got = eventually(lambda: _group_line(nslcd.getent("group", "Linux Admins")), want)
    assert got == want
    assert nslcd.getent("passwd", barbara_name) == barbara_line
