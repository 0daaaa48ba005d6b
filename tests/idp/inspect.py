"""What landed in the directory, read without the bridge: the ``verify`` steps of the IdP flows.

slapd and Samba AD are read over a raw ldap3 connection as the directory's administrator; the
embedded directory (which has no wire protocol) through its own search.  Ids are turned into
filters here (entryUUID as text, objectGUID as escaped little-endian bytes), not by the bridge's
codecs, so a codec bug cannot hide itself.  A verify step names fields in directory-neutral terms
(``userName``, ``mail``, ``givenName``, ``familyName``, ``active``, ``manager``, ...; for groups
``displayName``, ``externalId`` and ``members``); each profile says which LDAP attribute holds each one.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

Attrs = dict[str, list[str]]
Search = Callable[[str, str, Sequence[str]], list[tuple[str, Attrs]]]

STEP_KEYS = {"name", "verify", "id", "where"}
AD_FORBIDDEN = re.compile(r'["/\\\[\]:;|=,+*?<>@\x00-\x1f]')


def guid_filter(attr: str, value: str) -> str:
    raw = uuid.UUID(value).bytes_le
    return f"({attr}=" + "".join(f"\\{b:02x}" for b in raw) + ")"


@dataclass(frozen=True)
class Profile:
    """Where a directory keeps what the IdP sent (the shipped mapping's choices)."""

    people_dn: str
    groups_dn: str
    id_filter: Callable[[str], str]
    user_attrs: Mapping[str, str]
    group_attrs: Mapping[str, str]
    is_disabled: Callable[[Attrs], bool]
    #: what a user read asks for ("*" plus the operational attribute holding the lock)
    read_attrs: tuple[str, ...] = ("*",)
    ignored_members: frozenset[str] = frozenset()
    #: checks a user entry the first time a flow verifies it (AD: the derived sAMAccountName)
    check_user: Callable[[Attrs, str], None] | None = None
    #: attributes that must never change once set (AD: sAMAccountName survives a UPN rename)
    stable: tuple[str, ...] = ()
    #: RFC 2307(bis) groups: (the group attribute holding member values, the user attribute
    #: whose value it holds), e.g. ("memberUid", "uid"): checked with every ``members``
    member_values: tuple[str, str] | None = None


def _locked(attrs: Attrs) -> bool:
    return bool(attrs.get("pwdaccountlockedtime"))


def _uac_disabled(attrs: Attrs) -> bool:
    return bool(int(attrs["useraccountcontrol"][0]) & 0x2)


def _sam_derived(attrs: Attrs, where: str) -> None:
    """AD: sAMAccountName derived from the UPN's part before @ (issue 15, item 1)."""
    sam = attrs.get("samaccountname", [""])[0]
    upn = attrs.get("userprincipalname", [""])[0]
    local = upn.split("@", 1)[0]
    assert sam and len(sam) <= 20 and not AD_FORBIDDEN.search(sam), (
        f"{where}: sAMAccountName {sam!r}"
    )
    prefix = AD_FORBIDDEN.sub("_", local)[:16].lower()
    assert sam.lower().startswith(prefix), f"{where}: sAMAccountName {sam!r} not from {upn!r}"


def openldap_profile(people_dn: str, groups_dn: str, placeholder: str) -> Profile:
    return Profile(
        people_dn=people_dn,
        groups_dn=groups_dn,
        id_filter=lambda v: f"(entryUUID={uuid.UUID(v)})",
        user_attrs={
            "userName": "uid",
            "externalId": "employeeType",
            "mail": "mail",
            "givenName": "givenName",
            "familyName": "sn",
            "displayName": "displayName",
            "title": "title",
            "employeeNumber": "employeeNumber",
            "department": "departmentNumber",
            "manager": "manager",
        },
        group_attrs={"displayName": "cn", "externalId": "businessCategory", "members": "member"},
        is_disabled=_locked,
        read_attrs=("*", "pwdAccountLockedTime"),
        ignored_members=frozenset({placeholder.lower()}),
    )


def _ns_locked(attrs: Attrs) -> bool:
    return any(v.strip().lower() == "true" for v in attrs.get("nsaccountlock", []))


def ds389_profile(people_dn: str, groups_dn: str, members: str = "uniqueMember") -> Profile:
    """389 DS with mappings/389ds.yaml: nsUniqueId ids, nsAccountLock, uniqueMember (with
    mappings/389ds-posix.yaml: ``member``)."""
    base = openldap_profile(people_dn, groups_dn, "")
    return replace(
        base,
        id_filter=lambda v: f"(nsUniqueId={v})",
        group_attrs={**base.group_attrs, "members": members},
        is_disabled=_ns_locked,
        read_attrs=("*", "nsAccountLock"),
        ignored_members=frozenset(),
    )


def ad_profile(people_dn: str, groups_dn: str) -> Profile:
    return Profile(
        people_dn=people_dn,
        groups_dn=groups_dn,
        id_filter=lambda v: guid_filter("objectGUID", v),
        user_attrs={
            "userName": "userPrincipalName",
            "externalId": "employeeType",
            "mail": "mail",
            "givenName": "givenName",
            "familyName": "sn",
            "displayName": "displayName",
            "title": "title",
            "employeeNumber": "employeeID",
            "department": "department",
            "manager": "manager",
        },
        group_attrs={"displayName": "cn", "externalId": "info", "members": "member"},
        is_disabled=_uac_disabled,
        check_user=_sam_derived,
        stable=("samaccountname",),
    )


@dataclass(frozen=True)
class Inspector:
    """Runs one ``verify`` step: ``user``, ``group`` or ``gone``."""

    profile: Profile
    search: Search
    #: stable attribute values per id, as first seen
    seen: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def __call__(self, step: dict[str, Any]) -> None:
        kind = step["verify"]
        known = {
            "user": self.profile.user_attrs.keys() | {"active"},
            "group": self.profile.group_attrs,
        }
        unknown = set(step) - STEP_KEYS - set(known.get(kind, ()))
        assert kind in ("user", "group", "gone") and not unknown, (
            f"{step['where']}: bad verify step ({kind!r}, unknown fields {sorted(unknown)})"
        )
        if kind == "gone":
            found = self._find(self.profile.people_dn, step["id"], ["1.1"])
            found += self._find(self.profile.groups_dn, step["id"], ["1.1"])
            assert not found, f"{step['where']}: still in the directory: {found}"
        elif kind == "user":
            self._user(step)
        else:
            self._group(step)

    def _find(self, base: str, rid: str, attrs: Sequence[str]) -> list[tuple[str, Attrs]]:
        return self.search(base, self.profile.id_filter(rid), attrs)

    def _one(self, base: str, rid: str, attrs: Sequence[str], where: str) -> Attrs:
        found = self._find(base, rid, attrs)
        assert len(found) == 1, f"{where}: id {rid} found {len(found)} times in {base}"
        return found[0][1]

    def dn_of(self, rid: str, where: str) -> str:
        for base in (self.profile.people_dn, self.profile.groups_dn):
            found = self._find(base, rid, ["1.1"])
            if found:
                return found[0][0].lower()
        raise AssertionError(f"{where}: no entry has id {rid}")

    def _user(self, step: dict[str, Any]) -> None:
        where, p = step["where"], self.profile
        attrs = self._one(p.people_dn, step["id"], p.read_attrs, where)
        for name, expected in step.items():
            if name in p.user_attrs:
                self._field(attrs, p.user_attrs[name], expected, f"{where}: {name}")
        if "active" in step:
            assert p.is_disabled(attrs) is (not step["active"]), f"{where}: active {attrs}"
        if step["id"] not in self.seen:  # the first look at this user: right after its create
            self.seen[step["id"]] = {a: attrs.get(a, []) for a in p.stable}
            if p.check_user:
                p.check_user(attrs, where)
        for name, value in self.seen[step["id"]].items():
            assert attrs.get(name, []) == value, f"{where}: {name} changed from {value}"

    def _group(self, step: dict[str, Any]) -> None:
        where, p = step["where"], self.profile
        attrs = self._one(p.groups_dn, step["id"], ["*"], where)
        for name, expected in step.items():
            if name in p.group_attrs and name != "members":
                self._field(attrs, p.group_attrs[name], expected, f"{where}: {name}")
        if "members" in step:
            stored = attrs.get(p.group_attrs["members"].lower(), [])
            # uniqueMember may carry an optional UID after the DN: dn#'0101'B (RFC 4517)
            got = {re.sub(r"#'[01]*'B$", "", v).lower() for v in stored} - p.ignored_members
            want = {self.dn_of(m, where) for m in step["members"]}
            assert got == want, f"{where}: members {sorted(got)}, expected {sorted(want)}"
            if p.member_values is not None:
                self._member_values(attrs, step["members"], where)

    def _member_values(self, attrs: Attrs, members: Sequence[str], where: str) -> None:
        """The group's memberUid holds exactly the uid of each user member (groups: none)."""
        p = self.profile
        assert p.member_values is not None
        held, value = p.member_values
        want = set()
        for m in members:
            found = self._find(p.people_dn, m, [value])
            if found:
                want |= set(found[0][1].get(value.lower(), []))
        got = set(attrs.get(held.lower(), []))
        assert got == want, f"{where}: {held} {sorted(got)}, expected {sorted(want)}"

    def _field(self, attrs: Attrs, ldap: str, expected: Any, where: str) -> None:
        got = attrs.get(ldap.lower(), [])
        if expected is None:
            assert not got, f"{where}: {ldap} is {got}, expected none"
        elif ldap.lower() == "manager":
            assert [g.lower() for g in got] == [self.dn_of(expected, where)], f"{where}: {got}"
        else:
            assert got == [expected], f"{where}: {ldap} is {got}, expected [{expected!r}]"


def ldap3_search(connect: Callable[[], Any]) -> Search:
    """A search over a fresh raw ldap3 connection (bound as the directory's administrator)."""

    def search(base: str, flt: str, attrs: Sequence[str]) -> list[tuple[str, Attrs]]:
        conn = connect()
        try:
            conn.search(base, flt, attributes=list(attrs))
            return [
                (
                    e["dn"],
                    {k.lower(): [_text(v) for v in vs] for k, vs in e["raw_attributes"].items()},
                )
                for e in conn.response
                if e["type"] == "searchResEntry"
            ]
        finally:
            conn.unbind()

    return search


def directory_search(directory: Any) -> Search:
    """The embedded directory has no wire protocol: read its entries through its own search."""

    def search(base: str, flt: str, attrs: Sequence[str]) -> list[tuple[str, Attrs]]:
        result = directory.search(base, flt, list(attrs), scope="sub")
        return [
            (e.dn, {k.lower(): [_text(v) for v in vs] for k, vs in e.attrs.items()})
            for e in result.entries
        ]

    return search


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")
