"""Throwaway OpenLDAP (slapd 2.5) servers for the integration tests.

Self-contained: standard library + ldap3 only, no pytest import, so fixtures, benchmarks
and ad-hoc scripts can all use it::

    from devtools.slapd import Slapd, generate_seed_ldif

    with Slapd(seed_ldif=generate_seed_ldif(users=1000, groups=10, members_per_group=20)) as s:
        info = s.info                 # SlapdInfo: urls, DNs, passwords, CA file, ports
        ...                           # s.stop() / s.start() / s.restart() / s.kill()

    s = Slapd(); info = s.start(); ...; s.stop(); s.cleanup()    # without ``with``

What an instance is
-------------------
* A fresh directory ``/tmp/slapd-XXXXXXXX`` (``workdir`` = another parent) holding
  ``slapd.d/`` (cn=config), ``data/`` (back_mdb), ``tls/`` (CA + server cert) and
  ``slapd.log`` (slapd's stderr at ``-d none``: errors and "slapd starting" only; set env
  ``SLAPD_DEBUG=stats`` for a verbose log).  ``-d 0`` would print nothing at all, not even
  why a start failed.
* All paths in cn=config are *relative* and slapd/slapadd run with the instance directory as
  cwd, so a built directory is relocatable: once per process a template (config + certs +
  base entries, via ``slapadd`` while stopped) is built and every instance is a ``cp -a`` of
  it.  Seeded templates are cached as well (key: SHA-256 of the LDIF, LRU of 4), so another
  instance with the same seed costs one ``cp -a`` instead of a ``slapadd``.
* Listens on ``ldap://127.0.0.1:PORT``, ``ldaps://127.0.0.1:LDAPS_PORT`` and
  ``ldapi://<socket>``.  Ports are random, below the kernel's ephemeral range (so an outgoing
  connection cannot take them while an instance is stopped for a restart), checked free
  before use; a first start that loses a port race is retried with new ports.
  ``stop()``/``start()``/``restart()`` keep ports and data; ``kill()`` is SIGKILL (LMDB keeps
  every committed write: verified by the tests).
* ldapi + SASL EXTERNAL as the current uid/gid has ``manage`` on cn=config, so tests can
  change the configuration at runtime.  ldap3 needs ``sasl_credentials=""`` for EXTERNAL
  (``None`` ends in saslBindInProgress).
* The TLS certificate (EC P-256, signed by a per-process test CA = ``SlapdInfo.ca_file``)
  carries ``DNS:localhost, DNS:<hostname>, IP:127.0.0.1``.  With Python 3.11 + ldap3 2.9.1,
  ``Tls(ca_certs_file=info.ca_file, validate=ssl.CERT_REQUIRED)`` validates
  ``ldaps://127.0.0.1`` through the IP SAN; StartTLS on ``url`` works too.  (Python >= 3.12:
  ldap3's fallback ``match_hostname`` ignores IP SANs; use ``valid_names=["localhost"]``.)
* Instances still alive at interpreter exit are killed and their directories removed
  (``SLAPD_KEEP=1`` keeps the directories for post-mortem); templates are removed too.
* Timings on the 2-vCPU dev VM (heavily loaded by parallel sessions, load avg 5-8):
  first start in a process (certs + template) 0.2-0.7 s, every further fresh start
  0.1-0.2 s (slapd itself answers ~40 ms after exec), stop 20-70 ms, start after stop
  0.06-0.16 s.  Seeded first starts (slapadd with the substring indexes dominates):
  1000 users 0.5 s, 10k users 5 s, 100k users 53 s under that load (~12-15 s idle, see
  the reference notes); the same seed again (cached template): 0.2 / 0.25 / 0.8 s.
  ``generate_seed_ldif(100_000, ...)``: 0.65-1.5 s.

Directory content and configuration
-----------------------------------
Suffix ``dc=example,dc=org`` with ``ou=people``, ``ou=groups``, ``ou=policies`` (holding the
default password policy ``cn=default,ou=policies,dc=example,dc=org``) and the service account
``cn=scim,dc=example,dc=org`` (password ``BIND_PASSWORD``) that the bridge binds as.
``cn=admin,dc=example,dc=org`` is the rootdn (no entry; ignores ACLs and limits).

* back_mdb, ``olcDbMaxSize`` 4 GiB (the default 10 MiB is far too small for 100k users;
  the file is sparse), ``olcDbNoSync``; schemas core, cosine, inetorgperson, nis (the
  ppolicy schema is built into the 2.5 module).
* Indexes: eq on objectClass, entryUUID, entryCSN, uid, cn, mail, sn, givenName, displayName,
  member, memberOf, employeeNumber; eq+sub on uid, cn, mail, displayName.
* Overlays, in cn=config order: memberof (groupOfNames/member -> memberOf,
  ``olcMemberOfRefInt: TRUE``), refint (member, manager; ``olcRefintNothing`` =
  ``EMPTY_GROUP_MEMBER_DN``), ppolicy (default policy above,
  ``olcPPolicyHashCleartext: TRUE``), sssvlv (``olcSssVlvMax`` 256,
  ``olcSssVlvMaxKeys`` 10, ``olcSssVlvMaxPerConn`` 64).
* ``EMPTY_GROUP_MEMBER_DN`` = ``cn=empty-membership-placeholder,dc=example,dc=org`` (no
  such entry), the same DN as ``empty_member`` in mappings/openldap.yaml.  refint writes
  it when it removes the *last* value of ``member`` (groupOfNames MUST have one) -- and,
  because ``olcRefintNothing`` is global, also when it removes the last ``manager`` value:
  a user whose only manager is deleted gets ``manager: <placeholder>``, not an empty
  attribute.  The bridge must treat that DN as "no value" for both.  Without
  ``olcRefintNothing`` the last member is not removed at all (the group keeps a dangling
  DN, slapd logs err=65), which is worse.
* Default policy: ``pwdLockout: TRUE`` -- REQUIRED for ``pwdAccountLockedTime`` to be
  honoured at all (2.5's ppolicy ignores the lock attribute when pwdLockout is FALSE) --
  but ``pwdMaxFailure: 0`` so failed binds never lock anybody, and ``pwdLockoutDuration: 0``
  so an administrative lock never expires.  No quality checks, no history, no expiry, no
  must-change.
* Limits: frontend ``olcSizeLimit: 500``; cn=scim gets
  ``size.soft=500 size.hard=500 size.prtotal=unlimited``: an unpaged search matching more
  than 500 entries returns 500 entries + result 4 sizeLimitExceeded; a paged search returns
  everything (a page size above 500 is accepted too).  The rootdn ignores all limits:
  don't test paging as admin.
* ACLs (mdb database)::

      to attrs=userPassword  by dn.exact="cn=scim,..." write  by anonymous auth  by * none
      to *                   by dn.exact="cn=scim,..." write  by * none

  i.e. the scim account can write everything under the suffix (``write``; ``manage`` is not
  needed for anything below), users can bind but read nothing (not even their own entry),
  anonymous gets nothing.  The root DSE and cn=Subschema stay world-readable.

Verified facts (asserted in test_slapd_fixture.py; slapd 2.5.13 Debian 12, ldap3 2.9.1)
------------------------------------------------------------------------------------
(a) **SCIM active=false:** the scim account with plain ``write`` access -- no ``manage``,
    no relax control: ``pwdAccountLockedTime`` is user-modifiable in 2.5 -- can
    ``MODIFY_REPLACE pwdAccountLockedTime: 000001010000Z`` (``LOCKED_FOREVER``) on a user.
    The user's simple bind then fails with 49 invalidCredentials (the lock is only revealed
    to clients sending the ppolicy control).  ``MODIFY_DELETE`` of the attribute (no
    values) re-enables the bind.  It is operational: request it by name or ``+``.
    Passwords written in clear text are stored ``{SSHA}``-hashed
    (``olcPPolicyHashCleartext``) and binding with the clear text works.
(b) **memberOf / refint:** adding a user to a groupOfNames makes ``memberOf`` appear on the
    user -- operational, returned when requested by name or with ``+``, never for ``*``.
    Renaming a member (modify_dn) rewrites the group's ``member`` value (and ``manager``
    values pointing at it) to the new DN, memberOf stays on the renamed entry; deleting a
    member removes the value from the group; deleting the last member leaves
    ``EMPTY_GROUP_MEMBER_DN``.  These rewrites are *asynchronous* (visible a few ms after
    the operation returned): poll in tests.  Writing ``memberOf`` over LDAP fails with 19
    constraintViolation; removing a group's last member by hand with 65
    objectClassViolation.
(c) **Sort / VLV:** the root DSE ``supportedControl`` lists 1.2.840.113556.1.4.473
    (sort request, RFC 2891) and 2.16.840.1.113730.3.4.9 (VLV request); the response OIDs
    (...474, ...3.4.10) are not listed, as usual.  Both work *without* the paged-results
    control: sort alone returns the sort-response control (result 0); sort + VLV by offset
    over all 1000 seeded users works for the scim account and returns targetPosition /
    contentCount -- the VLV window (before + 1 + after) is what counts against the 500 size
    limit (a 600-entry window -> sizeLimitExceeded with 500 entries), not the list size.
    Caveats: sorting needs an ORDERING rule and uid/cn/mail/sn have none in the stock
    schema: send ``orderingRule`` (e.g. ``caseIgnoreOrderingMatch``), else 18
    inappropriateMatching.  An unpaged sort matching > 500 entries as scim ->
    sizeLimitExceeded like any unpaged search.  VLV without a sort control -> result 76
    (virtualListViewError, "Sort control is required with VLV"), a code ldap3 2.9.1 does not
    know: it raises ``KeyError: 76`` while decoding the response.
(d) **Sort + paged results combine:** sort + the paged-results control works (sssvlv then
    does the paging itself): pages arrive in sort order and ``size.prtotal=unlimited`` is
    honoured, so the scim account gets all 1000 entries in pages of 300 (a page of 600 is
    also fine).  **VLV + paged results** in one request is refused with 53
    unwillingToPerform: they are alternatives.  Paged results alone (no sort) is handled by
    back_mdb as usual.

Seeding
-------
``generate_seed_ldif`` writes users/groups for ``slapadd -q``, loaded into a stopped
directory before the first start.  slapadd does not run overlays, so the generator writes
``memberOf`` on every member itself (slapadd accepts NO-USER-MODIFICATION attributes) --
verified: seeded users carry the right memberOf, ``(memberOf=...)`` searches use it, and
online changes to seeded groups keep it up to date.  slapadd generates entryUUID, entryCSN,
create/modify timestamps and creators/modifiersName.  All seeded users share one ``{SSHA}``
of ``SEED_PASSWORD`` (per-user hashing would dominate the time).
"""

from __future__ import annotations

import atexit
import base64
import collections
import contextlib
import hashlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import ldap3

__all__ = [
    "ADMIN_DN",
    "ADMIN_PASSWORD",
    "BASE_DN",
    "BIND_DN",
    "BIND_PASSWORD",
    "DEFAULT_POLICY_DN",
    "EMPTY_GROUP_MEMBER_DN",
    "GROUPS_DN",
    "LOCKED_FOREVER",
    "PEOPLE_DN",
    "POLICIES_DN",
    "SEED_PASSWORD",
    "SIZE_LIMIT",
    "Slapd",
    "SlapdInfo",
    "generate_seed_ldif",
    "require_slapd",
]

BASE_DN = "dc=example,dc=org"
PEOPLE_DN = f"ou=people,{BASE_DN}"
GROUPS_DN = f"ou=groups,{BASE_DN}"
POLICIES_DN = f"ou=policies,{BASE_DN}"
DEFAULT_POLICY_DN = f"cn=default,{POLICIES_DN}"
BIND_DN = f"cn=scim,{BASE_DN}"
BIND_PASSWORD = "scim-Secret-42"
ADMIN_DN = f"cn=admin,{BASE_DN}"
ADMIN_PASSWORD = "admin-Secret-42"
#: refint's ``olcRefintNothing``: the value left behind when refint removes the last value of
#: ``member`` (groupOfNames MUST have one) -- or of ``manager``, the setting is global.  Same
#: DN as ``empty_member`` in mappings/openldap.yaml, so the bridge hides it; no such entry
#: exists.  Also used by ``generate_seed_ldif`` for groups that would otherwise be empty.
EMPTY_GROUP_MEMBER_DN = f"cn=empty-membership-placeholder,{BASE_DN}"
#: Password of every seeded user.
SEED_PASSWORD = "Passw0rd!"
#: ``pwdAccountLockedTime`` value meaning "locked until an administrator unlocks".
LOCKED_FOREVER = "000001010000Z"
SIZE_LIMIT = 500

_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/local/libexec", "/usr/libexec")
_MODULE_DIRS = (
    "/usr/lib/ldap",
    "/usr/lib64/openldap",
    "/usr/lib/openldap",
    "/usr/libexec/openldap",
    "/usr/local/libexec/openldap",
)
_SCHEMA_DIRS = ("/etc/ldap/schema", "/etc/openldap/schema", "/usr/local/etc/openldap/schema")
_MODULES = ("back_mdb", "memberof", "refint", "ppolicy", "sssvlv", "deref")
_SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
_INSTALL_HINT = (
    "Install OpenLDAP's server and tools, e.g. on Debian/Ubuntu: "
    "`sudo DEBIAN_FRONTEND=noninteractive apt-get install -y slapd ldap-utils openssl` "
    "(then stop the system service: `sudo service slapd stop`), or run `.ci/run`."
)
_START_TIMEOUT = float(os.environ.get("SLAPD_START_TIMEOUT", "20"))
_STOP_TIMEOUT = 10.0
_SUN_PATH_MAX = 100  # sizeof(sun_path) is 108 incl. NUL; keep a margin


@dataclass(frozen=True)
class SlapdInfo:
    """Everything a test needs to talk to one running instance."""

    url: str  # ldap://127.0.0.1:PORT
    ldaps_url: str  # ldaps://127.0.0.1:LDAPS_PORT
    ldapi_url: str  # ldapi://%2F...%2Fldapi  (SASL EXTERNAL as the current uid)
    base_dn: str
    people_dn: str
    groups_dn: str
    bind_dn: str  # the service account the bridge uses (cn=scim)
    bind_password: str
    admin_dn: str  # rootdn: ignores ACLs and size limits
    admin_password: str
    ca_file: str  # PEM of the test CA that signed the server certificate
    directory: str  # the instance directory (slapd.d/, data/, tls/, slapd.log)
    port: int
    ldaps_port: int


# --------------------------------------------------------------------------- binaries


def _find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in _SBIN_DIRS:
        candidate = os.path.join(d, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _find_dir(candidates: tuple[str, ...], marker: str) -> str | None:
    for d in candidates:
        if os.path.exists(os.path.join(d, marker)):
            return d
    return None


def require_slapd() -> None:
    """Raise RuntimeError (with an install hint) unless slapd can be run here."""
    missing = [b for b in ("slapd", "slapadd", "openssl") if _find_binary(b) is None]
    if missing:
        raise RuntimeError(
            f"OpenLDAP test server unavailable: {', '.join(missing)} not found in PATH or "
            f"{', '.join(_SBIN_DIRS)}. {_INSTALL_HINT}"
        )
    moddir = _find_dir(_MODULE_DIRS, "memberof.so")
    if moddir is None:
        raise RuntimeError(
            "OpenLDAP test server unavailable: slapd modules (memberof.so, ...) not found in "
            f"{', '.join(_MODULE_DIRS)}. {_INSTALL_HINT}"
        )
    absent = [m for m in _MODULES if not os.path.exists(os.path.join(moddir, m + ".so"))]
    if absent:
        raise RuntimeError(
            f"OpenLDAP test server unavailable: modules {absent} missing in {moddir}. "
            f"{_INSTALL_HINT}"
        )
    if _find_dir(_SCHEMA_DIRS, "inetorgperson.ldif") is None:
        raise RuntimeError(
            "OpenLDAP test server unavailable: schema LDIFs (inetorgperson.ldif) not found "
            f"in {', '.join(_SCHEMA_DIRS)}. {_INSTALL_HINT}"
        )


def _run(cmd: list[str], cwd: Path | str, what: str, stdin: bytes | None = None) -> None:
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        input=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
        env=_tool_env(),
    )
    if proc.returncode != 0:
        out = proc.stdout.decode("utf-8", "replace")[-4000:]
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{out}")


def _tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env["LDAPCONF"] = "/dev/null"  # don't let /etc/ldap/ldap.conf interfere
    env.pop("LDAPRC", None)
    return env


# --------------------------------------------------------------------------- LDIF bits


def _ssha(password: str, salt: bytes | None = None) -> str:
    salt = os.urandom(8) if salt is None else salt
    digest = hashlib.sha1(password.encode("utf-8") + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode("ascii")


def _tool_threads() -> int:
    # slapadd -q indexes with olcToolThreads threads
    return max(2, min(os.cpu_count() or 2, 8))


def _config_ldif(
    moddir: str, schemadir: str, profile: str = "tuned", config_readable: bool = False
) -> str:
    peercred = f"gidNumber={os.getgid()}+uidNumber={os.getuid()},cn=peercred,cn=external,cn=auth"
    schema_includes = "\n".join(f"include: file://{schemadir}/{name}.ldif\n" for name in _SCHEMAS)
    bare = profile == "bare"
    module_loads = "\n".join(f"olcModuleLoad: {m}" for m in (_MODULES[:1] if bare else _MODULES))
    eq = [
        "objectClass",
        "entryUUID",
        "entryCSN",
        "uid",
        "cn",
        "mail",
        "sn",
        "givenName",
        "displayName",
        "member",
        "memberOf",
        "employeeNumber",
    ]
    sub = {"uid", "cn", "mail", "displayName"}
    if bare:
        eq, sub = ["objectClass"], set()
    indexes = "\n".join(f"olcDbIndex: {a} {'eq,sub' if a in sub else 'eq'}" for a in eq)
    mdb = "olcDatabase={1}mdb,cn=config"
    # the narrow read grant that lets ``check-mapping --connect`` see indexes and overlays as
    # the service account (docs/directories/openldap.md)
    config_acl = (
        f'olcAccess: {{1}}to dn.subtree="cn=config" '
        f"attrs=entry,objectClass,olcDatabase,olcSuffix,olcDbIndex,olcOverlay "
        f'by dn.exact="{BIND_DN}" read\n'
        if config_readable
        else ""
    )
    multival = "" if bare else "olcDbMultival: member 100,10\n"
    return f"""\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: slapd.pid
olcArgsFile: slapd.args
olcToolThreads: {_tool_threads()}
olcTLSCACertificateFile: tls/ca.crt
olcTLSCertificateFile: tls/server.crt
olcTLSCertificateKeyFile: tls/server.key

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {moddir}
{module_loads}

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{schema_includes}
dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: {SIZE_LIMIT}

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by dn.exact={peercred} manage by * break
{config_acl}
dn: {mdb}
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcDbDirectory: data
olcSuffix: {BASE_DN}
olcRootDN: {ADMIN_DN}
olcRootPW: {_ssha(ADMIN_PASSWORD)}
olcDbMaxSize: 4294967296
olcDbNoSync: TRUE
{multival}{indexes}
olcLimits: {{0}}dn.exact="{BIND_DN}" size.soft={SIZE_LIMIT} size.hard={SIZE_LIMIT} \
size.prtotal=unlimited
olcAccess: {{0}}to attrs=userPassword by dn.exact="{BIND_DN}" write by anonymous auth by * none
olcAccess: {{1}}to * by dn.exact="{BIND_DN}" write by * none
{"" if bare else _overlays_ldif(mdb)}"""


def _overlays_ldif(mdb: str) -> str:
    return f"""
dn: olcOverlay={{0}}memberof,{mdb}
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {{0}}memberof
olcMemberOfRefInt: TRUE
olcMemberOfGroupOC: groupOfNames
olcMemberOfMemberAD: member
olcMemberOfMemberOfAD: memberOf

dn: olcOverlay={{1}}refint,{mdb}
objectClass: olcOverlayConfig
objectClass: olcRefintConfig
olcOverlay: {{1}}refint
olcRefintAttribute: member
olcRefintAttribute: manager
olcRefintNothing: {EMPTY_GROUP_MEMBER_DN}

dn: olcOverlay={{2}}ppolicy,{mdb}
objectClass: olcOverlayConfig
objectClass: olcPPolicyConfig
olcOverlay: {{2}}ppolicy
olcPPolicyDefault: {DEFAULT_POLICY_DN}
olcPPolicyHashCleartext: TRUE

dn: olcOverlay={{3}}sssvlv,{mdb}
objectClass: olcOverlayConfig
objectClass: olcSssVlvConfig
olcOverlay: {{3}}sssvlv
olcSssVlvMax: 256
olcSssVlvMaxKeys: 10
olcSssVlvMaxPerConn: 64

dn: olcOverlay={{4}}deref,{mdb}
objectClass: olcOverlayConfig
olcOverlay: {{4}}deref
"""


def _base_ldif(profile: str = "tuned") -> str:
    policy = "" if profile == "bare" else _POLICY_LDIF
    return f"""\
dn: {BASE_DN}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: {PEOPLE_DN}
objectClass: organizationalUnit
ou: people

dn: {GROUPS_DN}
objectClass: organizationalUnit
ou: groups

dn: {POLICIES_DN}
objectClass: organizationalUnit
ou: policies

{policy}dn: {BIND_DN}
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: scim
description: service account of scim-ldap-bridge
userPassword: {_ssha(BIND_PASSWORD)}
"""


_POLICY_LDIF = f"""\
dn: {DEFAULT_POLICY_DN}
objectClass: organizationalRole
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdLockout: TRUE
pwdMaxFailure: 0
pwdLockoutDuration: 0
pwdMaxAge: 0
pwdMinAge: 0
pwdInHistory: 0
pwdCheckQuality: 0
pwdMinLength: 0
pwdMustChange: FALSE
pwdAllowUserChange: TRUE
pwdSafeModify: FALSE

"""


def generate_seed_ldif(
    users: int,
    groups: int,
    members_per_group: int = 0,
    big_group_members: int = 0,
    *,
    member_of: bool = True,
) -> str:
    """LDIF (for slapadd, loaded before start) with ``users`` users and ``groups`` groups.

    * users ``uid=user{i:06d},ou=people,dc=example,dc=org`` (inetOrgPerson) with
      ``cn "Test User{i:06d}"``, ``sn "User{i:06d}"``, ``givenName "Test"``,
      ``displayName "Test User {i:06d}"``, ``mail user{i:06d}@example.org``,
      ``employeeNumber "{i}"`` and ``userPassword`` = ``{SSHA}`` of ``SEED_PASSWORD``;
    * groups ``cn=group{j:04d},ou=groups,...`` (groupOfNames): group j holds the
      ``members_per_group`` consecutive users starting at ``j * members_per_group``
      (wrapping around modulo ``users``); with ``groups * members_per_group <= users`` every
      user is in at most one group.  A group without members gets ``EMPTY_GROUP_MEMBER_DN``
      (groupOfNames MUST have a member);
    * if ``big_group_members`` > 0: ``cn=biggroup,ou=groups,...`` with users
      ``0 .. big_group_members-1``;
    * ``memberOf`` is written on each user (slapadd does not run the memberof overlay),
      unless ``member_of`` is False (for the bare profile, whose schema has no memberOf).
    """
    if min(users, groups, members_per_group, big_group_members) < 0:
        raise ValueError("counts must be >= 0")
    if groups and members_per_group > users:
        raise ValueError(f"members_per_group={members_per_group} > users={users}")
    if big_group_members > users:
        raise ValueError(f"big_group_members={big_group_members} > users={users}")

    people, groups_dn = PEOPLE_DN, GROUPS_DN
    udn = [f"uid=user{i:06d},{people}" for i in range(users)]
    groups_of: list[list[str]] = [[] for _ in range(users)]
    out: list[str] = []

    group_chunks: list[str] = []
    for j in range(groups):
        gdn = f"cn=group{j:04d},{groups_dn}"
        if members_per_group:
            start = j * members_per_group
            idx = [(start + k) % users for k in range(members_per_group)]
            for i in idx:
                groups_of[i].append(gdn)
            members = "".join(f"member: {udn[i]}\n" for i in idx)
        else:
            members = f"member: {EMPTY_GROUP_MEMBER_DN}\n"
        group_chunks.append(
            f"dn: {gdn}\nobjectClass: groupOfNames\ncn: group{j:04d}\n"
            f"description: seeded group {j}\n{members}\n"
        )
    if big_group_members:
        bdn = f"cn=biggroup,{groups_dn}"
        for i in range(big_group_members):
            groups_of[i].append(bdn)
        members = "".join(f"member: {udn[i]}\n" for i in range(big_group_members))
        group_chunks.append(f"dn: {bdn}\nobjectClass: groupOfNames\ncn: biggroup\n{members}\n")

    pw = _ssha(SEED_PASSWORD)
    for i in range(users):
        n = f"{i:06d}"
        mo = "".join(f"memberOf: {g}\n" for g in groups_of[i]) if member_of else ""
        out.append(
            f"dn: {udn[i]}\nobjectClass: inetOrgPerson\nuid: user{n}\ncn: Test User{n}\n"
            f"sn: User{n}\ngivenName: Test\ndisplayName: Test User {n}\n"
            f"mail: user{n}@example.org\nemployeeNumber: {i}\nuserPassword: {pw}\n{mo}\n"
        )
    out.extend(group_chunks)
    return "".join(out)


# --------------------------------------------------------------------------- templates

_lock = threading.RLock()
_owner_pid = os.getpid()  # a forked child must not delete its parent's templates at exit
#: unseeded templates by (profile, config_readable)
_templates: dict[tuple[str, bool], Path] = {}
_seeded: collections.OrderedDict[str, Path] = collections.OrderedDict()
_SEEDED_CACHE_SIZE = 4
# Strong references: an instance dropped without cleanup() must still be stopped at exit.
_instances: set[Slapd] = set()


def _make_certs(tls: Path) -> None:
    tls.mkdir(parents=True, exist_ok=True)
    openssl = _find_binary("openssl") or "openssl"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _run(
        [
            openssl,
            "req",
            "-x509",
            *ec,
            "-days",
            "3650",
            "-subj",
            "/CN=scim-ldap-bridge test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        tls,
        "openssl (CA)",
    )
    _run(
        [
            openssl,
            "req",
            *ec,
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        tls,
        "openssl (server CSR)",
    )
    sans = ["DNS:localhost", "IP:127.0.0.1"]
    host = socket.gethostname()
    if host and host != "localhost":
        sans.insert(1, f"DNS:{host}")
    (tls / "ext.cnf").write_text(
        f"subjectAltName={','.join(sans)}\nextendedKeyUsage=serverAuth\n"
        "keyUsage=critical,digitalSignature,keyAgreement\n"
    )
    _run(
        [
            openssl,
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ],
        tls,
        "openssl (server cert)",
    )
    os.chmod(tls / "server.key", 0o600)
    os.chmod(tls / "ca.key", 0o600)


def _build_template(profile: str = "tuned", config_readable: bool = False) -> Path:
    require_slapd()
    slapadd = _find_binary("slapadd")
    assert slapadd
    moddir = _find_dir(_MODULE_DIRS, "memberof.so")
    schemadir = _find_dir(_SCHEMA_DIRS, "inetorgperson.ldif")
    assert moddir and schemadir
    d = Path(tempfile.mkdtemp(prefix="slapd-template-", dir="/tmp"))
    try:
        (d / "slapd.d").mkdir()
        (d / "data").mkdir()
        _make_certs(d / "tls")
        _run(
            [slapadd, "-n0", "-F", "slapd.d"],
            d,
            "slapadd (cn=config)",
            _config_ldif(moddir, schemadir, profile, config_readable).encode(),
        )
        _run(
            [slapadd, "-q", "-n1", "-F", "slapd.d"],
            d,
            "slapadd (base entries)",
            _base_ldif(profile).encode(),
        )
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise
    return d


def _copy_tree(src: Path, dst: Path) -> None:
    """``cp -a src/. dst/`` (dst exists)."""
    if not (src / "slapd.d").is_dir() or not dst.is_dir():
        raise RuntimeError(f"refusing to copy {src!s} -> {dst!s}: not a slapd template")
    _run(["cp", "-a", f"{src}/.", f"{dst}/"], "/", "cp -a")


def _populate(
    dst: Path, seed_ldif: str | None, profile: str = "tuned", config_readable: bool = False
) -> None:
    """Fill ``dst`` with a copy of the (seeded) template; under the lock, so that the LRU
    cannot evict the template while it is being copied."""
    with _lock:
        _copy_tree(_template_dir(seed_ldif, profile, config_readable), dst)


def _template_dir(
    seed_ldif: str | None, profile: str = "tuned", config_readable: bool = False
) -> Path:
    with _lock:
        variant = (profile, config_readable)
        template = _templates.get(variant)
        if template is None or not template.is_dir():
            template = _templates[variant] = _build_template(profile, config_readable)
        if not seed_ldif:
            return template
        key = hashlib.sha256(f"{variant}{seed_ldif}".encode()).hexdigest()
        cached = _seeded.get(key)
        if cached is not None and cached.is_dir():
            _seeded.move_to_end(key)
            return cached
        d = Path(tempfile.mkdtemp(prefix="slapd-template-seeded-", dir="/tmp"))
        try:
            _copy_tree(template, d)
            slapadd = _find_binary("slapadd")
            assert slapadd
            _run(
                [slapadd, "-q", "-n1", "-F", "slapd.d"],
                d,
                "slapadd (seed LDIF)",
                seed_ldif.encode("utf-8"),
            )
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        _seeded[key] = d
        while len(_seeded) > _SEEDED_CACHE_SIZE:
            _, old = _seeded.popitem(last=False)
            shutil.rmtree(old, ignore_errors=True)
        return d


def _cleanup_at_exit() -> None:
    if os.getpid() != _owner_pid:  # forked child: the instances are the parent's
        return
    for inst in list(_instances):
        try:
            inst.kill()
            if not os.environ.get("SLAPD_KEEP"):
                inst.cleanup()
        except Exception:
            pass
    with _lock:
        for d in [*_templates.values(), *_seeded.values()]:
            if d is not None:
                shutil.rmtree(d, ignore_errors=True)
        _seeded.clear()


atexit.register(_cleanup_at_exit)


# --------------------------------------------------------------------------- ports


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # slapd does the same
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_ports(n: int) -> list[int]:
    """n distinct free ports on 127.0.0.1, preferably outside the ephemeral range (so no
    outgoing connection grabs them while an instance is stopped for a restart)."""
    lo, _hi = _ephemeral_range()
    ports: list[int] = []
    low, high = (10000, lo - 1) if lo > 11000 else (1024, lo - 1)
    for _ in range(500):
        if len(ports) == n:
            return ports
        p = random.randint(low, high) if high > low else 0
        if p == 0:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                p = s.getsockname()[1]
        if p not in ports and _port_is_free(p):
            ports.append(p)
    raise RuntimeError("could not find free TCP ports on 127.0.0.1")


# --------------------------------------------------------------------------- Slapd


class Slapd:
    """One throwaway slapd.  ``start()`` -> SlapdInfo; ``stop()``/``start()``/``restart()``
    keep ports and data; ``kill()`` = SIGKILL; ``cleanup()`` stops and removes the directory.

    ``workdir``: parent directory for the instance directory (default ``/tmp``).
    ``seed_ldif``: LDIF (e.g. from ``generate_seed_ldif``) loaded with ``slapadd -q`` before
    the first start; entries must lie below ``ou=people``/``ou=groups`` (the suffix, the OUs,
    the policy and cn=scim already exist).

    ``profile``: ``"tuned"`` (default: the configuration described in the module doc) or
    ``"bare"``: what a default install has -- back_mdb, the core/cosine/inetorgperson/nis
    schemas, no overlays (so no memberOf, ppolicy, sort/VLV, deref or refint), no default
    password policy entry, and only ``objectClass eq`` indexed; the same suffix, OUs, service
    account, ACLs and limits.  Seed it with ``generate_seed_ldif(..., member_of=False)``
    (its schema has no memberOf).
    ``config_readable``: also let the service account read the index and overlay settings
    in cn=config (``olcSuffix``, ``olcDbIndex``, ``olcOverlay``), as ``check-mapping
    --connect`` needs; default False (cn=config is invisible to it).

    As a context manager: ``with Slapd() as s:`` starts (``s.info``) and cleans up.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        seed_ldif: str | None = None,
        *,
        profile: str = "tuned",
        config_readable: bool = False,
    ) -> None:
        if profile not in ("tuned", "bare"):
            raise ValueError(f"profile must be 'tuned' or 'bare', not {profile!r}")
        self._workdir = Path(workdir) if workdir is not None else Path("/tmp")
        self._seed_ldif = seed_ldif
        self.profile = profile
        self._config_readable = config_readable
        self._dir: Path | None = None
        self._sockdir: Path | None = None  # only when dir is too long for sun_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._info: SlapdInfo | None = None
        self._log_offset = 0
        self.last_start_seconds: float | None = None

    # -- properties
    @property
    def info(self) -> SlapdInfo:
        if self._info is None:
            raise RuntimeError("Slapd has not been started")
        return self._info

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        if self._dir is None:
            raise RuntimeError("Slapd has not been started")
        return self._dir / "slapd.log"

    # -- lifecycle
    def start(self) -> SlapdInfo:
        """Start (first call: create the directory, seed, pick ports; later calls: same
        ports and data).  Returns once slapd answers a root DSE search."""
        if self.running:
            raise RuntimeError(f"slapd already running (pid {self.pid})")
        t0 = time.perf_counter()
        if self._info is None:
            self._create()
            for attempt in range(5):
                port, ldaps_port = _pick_ports(2)
                self._info = self._make_info(port, ldaps_port)
                try:
                    self._launch()
                    break
                except _PortInUse:
                    if attempt == 4:
                        raise
        else:
            self._launch()
        self.last_start_seconds = time.perf_counter() - t0
        return self.info

    def stop(self) -> None:
        """SIGTERM and wait for exit (SIGKILL after 10 s)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL (simulated crash) and reap."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._proc = None

    def restart(self) -> SlapdInfo:
        """stop() + start(): same ports, same data."""
        if self._info is None:
            raise RuntimeError("Slapd has not been started")
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        """Stop (SIGKILL if needed) and remove the instance directory."""
        self.stop()
        for d in (self._dir, self._sockdir):
            if d is not None:
                shutil.rmtree(d, ignore_errors=True)
        self._dir = self._sockdir = None
        self._info = None
        _instances.discard(self)

    def __enter__(self) -> Slapd:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        where = self._info.url if self._info else "not started"
        return f"<Slapd {where} {state} dir={self._dir}>"

    # -- helpers for tests
    def connection(
        self, user: str | None = None, password: str | None = None, **kwargs: object
    ) -> ldap3.Connection:
        """A bound ldap3 Connection over ldap:// (default: the scim service account)."""
        info = self.info
        server = ldap3.Server(info.url, connect_timeout=5)
        return ldap3.Connection(
            server,
            user if user is not None else info.bind_dn,
            password if password is not None else info.bind_password,
            auto_bind=True,
            raise_exceptions=False,
            receive_timeout=30,
            **kwargs,
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- internals
    def _create(self) -> None:
        require_slapd()
        self._workdir.mkdir(parents=True, exist_ok=True)
        d = Path(tempfile.mkdtemp(prefix="slapd-", dir=self._workdir))
        try:
            _populate(d, self._seed_ldif, self.profile, self._config_readable)
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        self._dir = d
        _instances.add(self)
        if len(str(d / "ldapi")) > _SUN_PATH_MAX:
            self._sockdir = Path(tempfile.mkdtemp(prefix="sl-", dir="/tmp"))

    def _make_info(self, port: int, ldaps_port: int) -> SlapdInfo:
        assert self._dir is not None
        sock = (self._sockdir or self._dir) / "ldapi"
        return SlapdInfo(
            url=f"ldap://127.0.0.1:{port}",
            ldaps_url=f"ldaps://127.0.0.1:{ldaps_port}",
            ldapi_url="ldapi://" + quote(str(sock), safe=""),
            base_dn=BASE_DN,
            people_dn=PEOPLE_DN,
            groups_dn=GROUPS_DN,
            bind_dn=BIND_DN,
            bind_password=BIND_PASSWORD,
            admin_dn=ADMIN_DN,
            admin_password=ADMIN_PASSWORD,
            ca_file=str(self._dir / "tls" / "ca.crt"),
            directory=str(self._dir),
            port=port,
            ldaps_port=ldaps_port,
        )

    def _launch(self) -> None:
        info, d = self.info, self._dir
        assert d is not None
        slapd = _find_binary("slapd")
        if slapd is None:
            require_slapd()
            raise RuntimeError("slapd not found")
        log_path = d / "slapd.log"
        with open(log_path, "ab") as log:
            self._log_offset = log.tell()
            log.write(f"==== starting slapd on {info.url} {info.ldaps_url}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                [
                    slapd,
                    "-d",
                    _debug_level(),
                    "-F",
                    "slapd.d",
                    "-h",
                    f"{info.url}/ {info.ldaps_url}/ {info.ldapi_url}",
                ],
                cwd=d,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_tool_env(),
                start_new_session=True,
            )
        deadline = time.monotonic() + _START_TIMEOUT
        announced = False  # "slapd starting" is printed once the listeners accept
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                tail = self._new_log_text()
                if "errno=98" in tail or "Address already in use" in tail:
                    raise _PortInUse(
                        f"slapd could not bind its ports (dir {d}).\n"
                        f"--- slapd output (tail) ---\n{tail}"
                    )
                raise RuntimeError(
                    f"slapd exited with code {code} during startup (dir {d}).\n"
                    f"--- slapd output (tail) ---\n{tail}"
                )
            if not announced:
                announced = "slapd starting" in self._new_log_text(1000) or _quiet_debug()
            if announced and _answers(info.url):
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"slapd did not answer on {info.url} within {_START_TIMEOUT:.0f} s "
                    f"(dir {d}).\n--- slapd output (tail) ---\n{self._new_log_text()}"
                )
            time.sleep(0.005)

    def _new_log_text(self, max_lines: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-max_lines:])


class _PortInUse(RuntimeError):
    pass


def _debug_level() -> str:
    # "none": only messages logged at level "any" (errors, "slapd starting") reach stderr;
    # "-d 0" would print nothing at all, not even why slapd failed to start.
    return os.environ.get("SLAPD_DEBUG", "none")


def _quiet_debug() -> bool:
    return _debug_level() in ("0", "")


def _answers(url: str) -> bool:
    # A new Server each time: ldap3 remembers a refused address as unavailable for a while.
    server = ldap3.Server(url, connect_timeout=1, get_info=ldap3.NONE)
    conn = ldap3.Connection(server, receive_timeout=1)
    try:
        conn.open()
        return bool(conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["1.1"]))
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            conn.unbind()
