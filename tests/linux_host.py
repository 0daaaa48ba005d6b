"""The LDAP searches a Linux host's name service issues, with the default filters and attribute
maps of nslcd (nss-pam-ldapd 0.9.12, Debian 12) and sssd's LDAP provider (2.8, Debian 12), sent
over an independent ldap3 connection (not the bridge's).  tests/integration/test_linux_view.py
checks their answers for users and groups created over SCIM.

Sources, all for the defaults (nothing here is configured):

nslcd -- nslcd.conf(5), OPTIONS "filter MAP FILTER" ("The default filter is a basic search on
the objectClass for the map (e.g. (objectClass=posixAccount))") and "map MAP ATTRIBUTE
NEWATTRIBUTE" ("the default RFC 2307 attributes"); "base" and "scope" (default subtree).
The key is ANDed to the map filter as nslcd's sources write it (nslcd/passwd.c
``mkfilter_passwd_byname``/``byuid``, nslcd/group.c ``mkfilter_group_byname``/``bygid``/
``bymember``): ``(&(objectClass=posixAccount)(uid=NAME))``,
``(&(objectClass=posixAccount)(uidNumber=N))``, ``(&(objectClass=posixGroup)(cn=NAME))``,
``(&(objectClass=posixGroup)(gidNumber=N))``, and for a user's groups (initgroups, what ``id``
uses) ``(&(objectClass=posixGroup)(|(memberUid=NAME)(member=USER-DN)))`` once the user's DN is
known (else the memberUid half alone).  A group's members are its memberUid values plus, for
each member DN, the uid of that entry, which nslcd reads with the dereference control
(nslcd/group.c getmembers, myldap_get_deref_values) when the server offers it -- slapd's deref
overlay and 389 DS both do; without it nslcd would take the uid from the member DN's RDN
(nslcd/passwd.c dn2uid), which on 389 DS after a rename is the lowercased name its Referential
Integrity plugin wrote, not the login.  gecos is mapped to ``"${gecos:-$cn}"`` (nslcd.conf(5)
"ATTRIBUTE MAPPING EXPRESSIONS"; nslcd/passwd.c).  The private nslcd of devtools/nslcd.py logs
these filters, and the getent test compares them with the ones below.

sssd -- sssd-ldap(5) ``ldap_schema`` ("With rfc2307, group members are listed by name in the
memberUid attribute. With rfc2307bis and IPA, group members are listed by DN and stored in the
member attribute"; default rfc2307) and sssd-ldap-attributes(5) "USER ATTRIBUTES" / "GROUP
ATTRIBUTES": ldap_user_object_class posixAccount, ldap_user_name uid, ldap_user_uid_number
uidNumber, ldap_user_gid_number gidNumber, ldap_user_gecos gecos, ldap_user_home_directory
homeDirectory, ldap_user_shell loginShell, ldap_group_object_class posixGroup, ldap_group_name
cn, ldap_group_gid_number gidNumber, ldap_group_member "memberuid (rfc2307) / member
(rfc2307bis)".  The filter shapes are sssd's (src/providers/ldap/ldap_id.c for users and
groups, sdap_async_initgroups.c for a user's groups): a POSIX lookup also requires the name and
a non-zero id, ``(&(uid=NAME)(objectclass=posixAccount)(uid=*)(&(uidNumber=*)(!(uidNumber=0))))``;
initgroups is ``(&(memberuid=NAME)(objectclass=posixGroup)(cn=*)(&(gidNumber=*)(!(gidNumber=0))))``
with rfc2307 and ``(&(member=USER-DN)(objectClass=posixGroup)(cn=*))`` with rfc2307bis.
gecos falls back to the full name (cn) when absent (sdap_async_users.c).
Search base: the naming context (sssd's ldap_search_base default; nslcd's ``base``), subtree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import ldap3
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

PASSWD_ATTRS = ["uid", "uidNumber", "gidNumber", "gecos", "cn", "homeDirectory", "loginShell"]


@dataclass(frozen=True)
class Passwd:
    """One passwd(5) line as getent prints it: name:*:uid:gid:gecos:home:shell."""

    name: str
    uid: int
    gid: int
    gecos: str
    home: str
    shell: str

    def line(self) -> str:
        return f"{self.name}:*:{self.uid}:{self.gid}:{self.gecos}:{self.home}:{self.shell}"


@dataclass(frozen=True)
class Group:
    """One group(5) line: name, gid and the member names (sorted)."""

    name: str
    gid: int
    members: tuple[str, ...]


def _first(attrs: dict[str, list[Any]], name: str) -> str:
    for key, values in attrs.items():
        if key.lower() == name.lower() and values:
            v = values[0]
            return v.decode() if isinstance(v, bytes) else str(v)
    return ""


def _all(attrs: dict[str, list[Any]], name: str) -> list[str]:
    for key, values in attrs.items():
        if key.lower() == name.lower():
            return [v.decode() if isinstance(v, bytes) else str(v) for v in values]
    return []


class LinuxHost:
    """nslcd's and sssd's default searches through ``connect()`` (a bound ldap3
    Connection, e.g. the directory's administrator), below ``base``.  Every search sent is
    recorded in ``sent`` as (base, scope, filter).

    ``member_attr``: the attribute holding members' DNs, ``member`` by default in both
    clients; a directory whose groups hold them in another (389 DS's ``uniqueMember``) needs
    ``map group member uniqueMember`` in nslcd.conf and ``ldap_group_member = uniqueMember``
    in sssd.conf, which this models."""

    def __init__(
        self, connect: Callable[[], ldap3.Connection], base: str, member_attr: str = "member"
    ) -> None:
        self._connect = connect
        self.base = base
        self.member_attr = member_attr
        self.sent: list[tuple[str, str, str]] = []
        self._open: ldap3.Connection | None = None

    def close(self) -> None:
        if self._open is not None:
            self._open.unbind()
            self._open = None

    @contextmanager
    def _conn(self) -> Iterator[ldap3.Connection]:
        if self._open is None:
            self._open = self._connect()
        yield self._open

    def search(
        self, flt: str, attrs: list[str], base: str | None = None, scope: str = "sub"
    ) -> list[tuple[str, dict[str, list[Any]]]]:
        base = base or self.base
        self.sent.append((base, scope, flt))
        ldap_scope = {"sub": ldap3.SUBTREE, "base": ldap3.BASE}[scope]
        with self._conn() as conn:
            conn.search(base, flt, ldap_scope, attributes=attrs)
            if conn.result["result"] not in (0, 32):  # 32: a base search of a gone DN
                raise AssertionError(f"search {flt!r} under {base}: {conn.result}")
            return [(e["dn"], dict(e["raw_attributes"])) for e in conn.response or []]

    # ----------------------------------------------------------------------------- nslcd
    def nslcd_passwd(self, key: str | int) -> list[Passwd]:
        """getpwnam/getpwuid through nslcd: nslcd/passwd.c mkfilter_passwd_byname/byuid."""
        if isinstance(key, int):
            flt = f"(&(objectClass=posixAccount)(uidNumber={key}))"
        else:
            flt = f"(&(objectClass=posixAccount)(uid={escape_filter_chars(key)}))"
        return [
            self._passwd(attrs, gecos_fallback=True) for _, attrs in self.search(flt, PASSWD_ATTRS)
        ]

    def nslcd_group(self, key: str | int) -> list[Group]:
        """getgrnam/getgrgid through nslcd: nslcd/group.c mkfilter_group_byname/bygid; the
        members are memberUid values plus member DNs made names (getmembers)."""
        if isinstance(key, int):
            flt = f"(&(objectClass=posixGroup)(gidNumber={key}))"
        else:
            flt = f"(&(objectClass=posixGroup)(cn={escape_filter_chars(key)}))"
        out = []
        for _, attrs in self.search(flt, self._group_attrs()):
            names = set(_all(attrs, "memberUid"))
            dns = _all(attrs, self.member_attr)
            names |= {n for n in (self._deref_uid(dn) for dn in dns) if n}
            out.append(
                Group(_first(attrs, "cn"), int(_first(attrs, "gidNumber")), tuple(sorted(names)))
            )
        return out

    def nslcd_groups_of(self, name: str) -> set[str]:
        """initgroups (``id``, login) through nslcd: the user's DN from the passwd search
        (uid2dn), then nslcd/group.c mkfilter_group_bymember."""
        safe = escape_filter_chars(name)
        found = self.search(f"(&(objectClass=posixAccount)(uid={safe}))", ["uid", "uidNumber"])
        if found:
            dn = escape_filter_chars(found[0][0])
            flt = f"(&(objectClass=posixGroup)(|(memberUid={safe})({self.member_attr}={dn})))"
        else:
            flt = f"(&(objectClass=posixGroup)(memberUid={safe}))"
        return {_first(attrs, "cn") for _, attrs in self.search(flt, ["cn", "gidNumber"])}

    def _deref_uid(self, dn: str) -> str | None:
        """What the dereference control returns for one member DN: the entry's uid (none
        for a DN naming no entry or an entry without uid, e.g. a nested group)."""
        found = self.search("(objectClass=*)", ["uid"], base=dn, scope="base")
        return (_first(found[0][1], "uid") or None) if found else None

    @staticmethod
    def rdn_uid(dn: str) -> str | None:
        """nslcd/passwd.c dn2uid's first step, its way without the dereference control: the
        uid in the member DN's RDN, as written in the DN."""
        rdn = parse_dn(dn)[0]
        return str(rdn[1]) if rdn[0].lower() == "uid" else None

    # ------------------------------------------------------------------------------ sssd
    def sssd_user(self, key: str | int) -> list[Passwd]:
        """getpwnam/getpwuid through sssd (ldap_id.c users_get_send, not ID-mapping)."""
        if isinstance(key, int):
            match = f"(uidNumber={key})"
        else:
            match = f"(uid={escape_filter_chars(key)})"
        flt = f"(&{match}(objectclass=posixAccount)(uid=*)(&(uidNumber=*)(!(uidNumber=0))))"
        return [
            self._passwd(attrs, gecos_fallback=True) for _, attrs in self.search(flt, PASSWD_ATTRS)
        ]

    def sssd_group(self, gid: int, schema: str) -> list[Group]:
        """getgrgid through sssd (ldap_id.c groups_get_send); members by ``ldap_schema``:
        memberUid names (rfc2307) or member DNs resolved to users' names (rfc2307bis)."""
        flt = f"(&(gidNumber={gid})(objectClass=posixGroup)(cn=*)(&(gidNumber=*)(!(gidNumber=0))))"
        out = []
        for _, attrs in self.search(flt, self._group_attrs()):
            if schema == "rfc2307":
                names = set(_all(attrs, "memberUid"))
            else:
                names = set()
                for dn in _all(attrs, self.member_attr):
                    found = self.search(
                        "(objectclass=posixAccount)", PASSWD_ATTRS, base=dn, scope="base"
                    )
                    names |= {_first(a, "uid") for _, a in found}
            out.append(
                Group(_first(attrs, "cn"), int(_first(attrs, "gidNumber")), tuple(sorted(names)))
            )
        return out

    def sssd_groups_of(self, name: str, schema: str) -> set[str]:
        """initgroups through sssd (sdap_async_initgroups.c): by memberuid with rfc2307; by
        the user's DN in member with rfc2307bis."""
        safe = escape_filter_chars(name)
        if schema == "rfc2307":
            flt = (
                f"(&(memberuid={safe})(objectclass=posixGroup)(cn=*)"
                "(&(gidNumber=*)(!(gidNumber=0))))"
            )
        else:
            users = self.sssd_user_dns(name)
            if not users:
                return set()
            dn = escape_filter_chars(users[0])
            flt = f"(&({self.member_attr}={dn})(objectClass=posixGroup)(cn=*))"
        return {_first(attrs, "cn") for _, attrs in self.search(flt, ["cn", "gidNumber"])}

    def sssd_user_dns(self, name: str) -> list[str]:
        safe = escape_filter_chars(name)
        flt = f"(&(uid={safe})(objectclass=posixAccount)(uid=*)(&(uidNumber=*)(!(uidNumber=0))))"
        return [dn for dn, _ in self.search(flt, ["uid"])]

    # ------------------------------------------------------------------------------ both
    def _group_attrs(self) -> list[str]:
        return ["cn", "gidNumber", "memberUid", self.member_attr]

    @staticmethod
    def _passwd(attrs: dict[str, list[Any]], *, gecos_fallback: bool) -> Passwd:
        gecos = _first(attrs, "gecos") or (_first(attrs, "cn") if gecos_fallback else "")
        return Passwd(
            name=_first(attrs, "uid"),
            uid=int(_first(attrs, "uidNumber")),
            gid=int(_first(attrs, "gidNumber")),
            gecos=gecos,
            home=_first(attrs, "homeDirectory"),
            shell=_first(attrs, "loginShell"),
        )
