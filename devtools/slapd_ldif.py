"""The content and configuration of the throwaway slapd servers of :mod:`devtools.slapd`: the
cn=config, overlay, base and password-policy LDIF, and ``generate_seed_ldif`` for the users and
groups a test or benchmark loads.  Standard library only.

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

import base64
import hashlib
import os

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
    "MODULES",
    "PEOPLE_DN",
    "POLICIES_DN",
    "SEED_PASSWORD",
    "SIZE_LIMIT",
    "generate_seed_ldif",
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

#: the slapd modules the configuration loads
MODULES = ("back_mdb", "memberof", "refint", "ppolicy", "sssvlv", "deref")
_SCHEMAS = ("core", "cosine", "inetorgperson", "nis")


def _ssha(password: str, salt: bytes | None = None) -> str:
    salt = os.urandom(8) if salt is None else salt
    digest = hashlib.sha1(password.encode("utf-8") + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode("ascii")


def _tool_threads() -> int:
    # slapadd -q indexes with olcToolThreads threads
    return max(2, min(os.cpu_count() or 2, 8))


def config_ldif(
    moddir: str, schemadir: str, profile: str = "tuned", config_readable: bool = False
) -> str:
    peercred = f"gidNumber={os.getgid()}+uidNumber={os.getuid()},cn=peercred,cn=external,cn=auth"
    schema_includes = "\n".join(f"include: file://{schemadir}/{name}.ldif\n" for name in _SCHEMAS)
    bare = profile == "bare"
    module_loads = "\n".join(f"olcModuleLoad: {m}" for m in (MODULES[:1] if bare else MODULES))
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
        "uidNumber",
        "gidNumber",
        "memberUid",
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


def base_ldif(profile: str = "tuned") -> str:
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
