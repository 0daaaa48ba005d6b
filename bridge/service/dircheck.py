"""Is the directory prepared for the mapping?  Indexes, overlays/plugins and controls.

``check-mapping --connect`` prints these findings and the bridge logs them once at start-up.
Each finding says what the missing piece costs, in words, and the exact LDIF or command that
adds it (docs/directories/).  Only a finding that breaks a mapped feature is an ``error``
(``active`` on ppolicy without the overlay; ``groups`` from memberOf without the overlay); a
missing index or control is a ``warning``: slow or refused, not wrong.

:func:`needed_indexes` and :func:`findings` are pure; :mod:`bridge.dirfacts` reads the facts.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from bridge.directory.base import OID_SORT, OID_VLV, Directory
from bridge.mapping.model import MappingConfig, ResourceMap
from bridge.service.dirfacts import OID_DEREF, OID_PPOLICY, Facts, read_facts

log = logging.getLogger("bridge.dircheck")
DOCS = "docs/directories/"
_CLASS = re.compile(r"\(\s*objectClass\s*=", re.I)
#: SCIM attributes IdPs commonly search with sw/co (Okta's and Entra's people pickers)
_SUBSTRING = {"username", "displayname", "emails"}


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" breaks a mapped feature; "warning" is slow or refused
    topic: str
    effect: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.severity}: {self.topic}: {self.effect}"


@dataclass(frozen=True)
class IndexNeed:
    attr: str
    kinds: tuple[str, ...]  # ("eq",) or ("eq", "sub")
    uses: tuple[str, ...]  # what scans every entry without the index


def needed_indexes(mapping: MappingConfig) -> tuple[IndexNeed, ...]:
    """Every index the bridge's searches want, derived from the mapping."""
    wants: dict[str, tuple[str, set[str], list[str]]] = {}

    def want(attr: str, kind: str, use: str) -> None:
        _, kinds, uses = wants.setdefault(attr.lower(), (attr, set(), []))
        kinds.add(kind)
        if use not in uses:
            uses.append(use)

    for rmap in mapping.resources.values():
        for attr, kind, use in _needs(rmap):
            want(attr, kind, use)
    return tuple(
        IndexNeed(name, tuple(k for k in ("eq", "sub") if k in kinds), tuple(uses))
        for name, kinds, uses in wants.values()
    )


def _needs(rmap: ResourceMap) -> list[tuple[str, str, str]]:
    kind = rmap.name
    out = [(rmap.id.ldap, "eq", f"GET/PUT/PATCH/DELETE of a {kind} by id")]
    for m in _CLASS.finditer(rmap.base_filter):
        out.append((rmap.base_filter[m.start() + 1 : m.end() - 1].strip(), "eq", "every search"))
    for a in rmap.attributes:
        if a.unique:
            out.append((a.ldap, "eq", f"the uniqueness check of {a.path} on create and rename"))
        if a.attr.lower() == "username":
            out.append((a.ldap, "eq", f"looking a {kind} up by userName"))
        if a.attr.lower() in _SUBSTRING and a.attr.lower() != "groups":
            out.append((a.ldap, "eq", f"filters on {a.path}"))
            out.append((a.ldap, "sub", f"{a.path} sw/co filters"))
        if a.attr.lower() in ("members", "groups") and a.is_reference:
            out.append((a.ldap, "eq", f"finding the groups of a member ({kind} {a.path})"))
        if a.mirror is not None:  # a rename's and a delete's (memberUid=<uid>)
            out.append((a.mirror.ldap, "eq", f"finding the groups of a member ({kind} {a.path})"))
        if a.by_value:  # resolving a group's values to members, in batched ORs
            for t in a.to:
                out.append((a.member_value, "eq", f"resolving {kind} {a.path} values to {t}s"))
    for d in rmap.derived:
        if d.unique:  # numbered until free: one search of candidates per create
            out.append((d.ldap, "eq", f"finding a free {d.ldap} for a new {kind}"))
    # POSIX numbers: one search of candidates over the whole naming context per create
    allocations = list(rmap.posix.allocations)
    if rmap.posix.private_group is not None:
        allocations.append(rmap.posix.private_group.gid)
    for n in allocations:
        out.append((n.ldap, "eq", f"allocating a {n.ldap} for a new {kind}"))
    return out


def findings(mapping: MappingConfig, facts: Facts) -> list[Finding]:
    """What the directory lacks for this mapping, most severe first."""
    out = _config_access(facts) + _controls(mapping, facts) + _overlays(mapping, facts)
    out += _indexes(mapping, facts)
    return sorted(out, key=lambda f: f.severity != "error")


def check(directory: Directory, mapping: MappingConfig) -> list[Finding]:
    """Read the directory's facts and list the findings."""
    indexed = [n.attr for n in needed_indexes(mapping)]
    return findings(mapping, read_facts(directory, mapping, indexed))


def breaking(found: Sequence[Finding]) -> bool:
    return any(f.severity == "error" for f in found)


def log_at_startup(directory: Directory, mapping: MappingConfig) -> threading.Thread:
    """Log the findings once, as warnings, in the background: the inspection never delays or
    fails a start (an error in it is one log line)."""

    def run() -> None:
        try:
            found = check(directory, mapping)
        except Exception as exc:  # a failed inspection must not stop serving
            log.warning("directory inspection failed: %s: %s", type(exc).__name__, exc)
            return
        for f in found:
            log.warning("directory: %s", f, extra={"severity": f.severity, "topic": f.topic})

    thread = threading.Thread(target=run, name="dircheck", daemon=True)
    thread.start()
    return thread


# ------------------------------------------------------------------------------ findings


def _config_access(facts: Facts) -> list[Finding]:
    if not facts.unreadable:
        return []
    page = {"active-directory": "active-directory.md", "389ds": "389ds.md"}.get(
        facts.server, "openldap.md"
    )
    return [
        Finding(
            "warning",
            "configuration",
            f"{facts.unreadable}: indexes and overlays were not checked, only the controls "
            f"the root DSE lists (server: {facts.server})",
            f"grant the bind account read access to the configuration, or run the check with "
            f"an account that has it: see {DOCS}{page}",
        )
    ]


def _controls(mapping: MappingConfig, facts: Facts) -> list[Finding]:
    out = []
    if not {OID_SORT, OID_VLV} <= facts.controls:
        out.append(
            _feature(
                mapping,
                facts,
                "sssvlv",
                "warning",
                "no server-side sort / VLV control: the bridge sorts sortBy itself, only for "
                "result sets of at most maxResults (larger ones are a 400 tooMany), and every "
                "list page walks every match (without attributes) to count them",
            )
        )
    if facts.server != "active-directory" and OID_DEREF not in facts.controls:
        out.append(
            _feature(
                mapping,
                facts,
                "deref",
                "warning",
                "no dereference control: naming the members and groups in a response costs "
                "extra searches",
            )
        )
    return out


def _overlays(mapping: MappingConfig, facts: Facts) -> list[Finding]:
    out = []
    codecs = {a.codec.name for r in mapping.resources.values() for a in r.attributes}
    present = facts.features or frozenset()
    if "ppolicy-lock" in codecs and OID_PPOLICY not in facts.controls and "ppolicy" not in present:
        out.append(
            _feature(
                mapping,
                facts,
                "ppolicy",
                "error",
                "active maps to pwdAccountLockedTime (ppolicy-lock) but there is no ppolicy: "
                "every deactivation fails: 400 undefinedAttributeType",
            )
        )
    if _groups_from_memberof(mapping) and not _has_memberof(facts):
        out.append(
            _feature(
                mapping,
                facts,
                "memberof",
                "error",
                "groups maps to memberOf but nothing maintains it: a user's groups stay empty",
            )
        )
    out += _memberof_attrs(mapping, facts) + _usn(mapping, facts)
    members = any(r.member_map is not None for r in mapping.resources.values())
    if members and facts.features is not None and "refint" not in facts.features:
        out.append(
            _feature(
                mapping,
                facts,
                "refint",
                "warning",
                "no referential integrity: deleting or renaming a user leaves its old DN in "
                "the groups' member values",
            )
        )
    return out


def _memberof_attrs(mapping: MappingConfig, facts: Facts) -> list[Finding]:
    """389 DS: the MemberOf plugin fills memberOf only from the group attributes it is told
    (``memberOfGroupAttr``, by default just ``member``): a groupOfUniqueNames mapping needs
    ``uniqueMember`` there."""
    followed = facts.memberof_group_attrs
    if followed is None or not _groups_from_memberof(mapping) or not _has_memberof(facts):
        return []
    members = {r.member_map.ldap for r in mapping.resources.values() if r.member_map}
    missing = sorted((m for m in members if m.lower() not in followed), key=str.lower)
    if not missing:
        return []
    attrs = " ".join([*sorted(followed), *missing])
    return [
        Finding(
            "error",
            "memberof",
            f"the MemberOf plugin does not follow {', '.join(missing)}: a user's groups stay empty",
            f"dsconf <instance> plugin memberof set --groupattr {attrs}   # then restart\n"
            f"dsconf <instance> plugin memberof fixup {facts.suffix or '<suffix>'}",
        )
    ]


def _usn(mapping: MappingConfig, facts: Facts) -> list[Finding]:
    """389 DS: ``entryusn`` (a mapping's meta version, the ETag) exists only with the USN
    plugin."""
    if facts.server != "389ds" or facts.features is None or "usn" in facts.features:
        return []
    if not any(r.version.lower() == "entryusn" for r in mapping.resources.values()):
        return []
    return [
        Finding(
            "warning",
            "usn",
            "meta.version maps to entryusn but the USN plugin is off: resources have no "
            "version (no ETag, If-Match cannot be checked)",
            "dsconf <instance> plugin usn enable   # then restart the instance",
        )
    ]


def _groups_from_memberof(mapping: MappingConfig) -> bool:
    return any(
        a.attr.lower() == "groups" and a.ldap.lower() == "memberof"
        for r in mapping.resources.values()
        for a in r.attributes
    )


def _has_memberof(facts: Facts) -> bool:
    if facts.features is not None:
        return "memberof" in facts.features
    return facts.memberof_in_schema  # configuration unreadable: the schema is the best hint


def _indexes(mapping: MappingConfig, facts: Facts) -> list[Finding]:
    if facts.indexes is None:
        return []
    out = []
    for need in needed_indexes(mapping):
        have = facts.indexes.get(need.attr.lower(), frozenset())
        missing = [k for k in need.kinds if k not in have]
        if not missing:
            continue
        effect = f"{', '.join(need.uses)}: scans every entry (no {'+'.join(missing)} index)"
        out.append(
            Finding("warning", f"index {need.attr}", effect, _index_fix(facts, need, missing))
        )
    return out


# ---------------------------------------------------------------------------------- fixes

_LDAPMODIFY = "ldapmodify -Y EXTERNAL -H ldapi:/// <<'EOF'"
_OVERLAY_CLASS = {
    "sssvlv": "olcSssVlvConfig",
    "ppolicy": "olcPPolicyConfig",
    "memberof": "olcMemberOf",
    "refint": "olcRefintConfig",
    "deref": None,
}
_OVERLAY_EXTRA = {
    "ppolicy": "olcPPolicyDefault: cn=default,ou=policies,{suffix}\n"
    "# that policy entry needs pwdLockout: TRUE (docs/directories/openldap.md)\n",
    "memberof": "olcMemberOfRefInt: TRUE\nolcMemberOfGroupOC: groupOfNames\n"
    "olcMemberOfMemberAD: member\nolcMemberOfMemberOfAD: memberOf\n",
    "refint": "olcRefintAttribute: member\n",
}
_389_FIX = {
    "sssvlv": "389 DS has server-side sort and VLV built in (the root DSE of 389-ds-base 2.3 "
    "lists both): see docs/directories/389ds.md",
    "deref": "enable the Deref plugin (nsslapd-pluginEnabled: on in its entry below "
    "cn=plugins,cn=config), then restart the instance",
    "ppolicy": "active: map it to nsAccountLock (type: nsaccountlock, as mappings/389ds.yaml "
    "does) instead of pwdAccountLockedTime",
    "memberof": "dsconf <instance> plugin memberof enable   # then restart the instance\n"
    "dsconf <instance> plugin memberof fixup <suffix>",
    "refint": "dsconf <instance> plugin referential-integrity enable   # then restart",
}


#: the fix without an overlay: read a user's groups from the group side
_FROM_MEMBER = (
    "\n# or, without the overlay, read groups from the group side in the mapping:\n"
    "#   groups: {from_member: member, to: [Group]}   (see mappings/openldap-bare.yaml)"
)


def _feature(
    mapping: MappingConfig, facts: Facts, name: str, severity: str, effect: str
) -> Finding:
    found = _feature_fix(mapping, facts, name, severity, effect)
    if name == "memberof" and facts.server != "active-directory":
        return Finding(found.severity, found.topic, found.effect, found.fix + _FROM_MEMBER)
    return found


def _feature_fix(
    mapping: MappingConfig, facts: Facts, name: str, severity: str, effect: str
) -> Finding:
    suffix = facts.suffix or "<suffix>"
    if facts.server == "389ds":
        return Finding(severity, name, effect, _389_FIX[name].replace("<suffix>", suffix))
    if facts.server == "active-directory":
        return Finding(severity, name, effect, f"see {DOCS}active-directory.md")
    db = facts.config_dn or "olcDatabase={1}mdb,cn=config"
    oc = _OVERLAY_CLASS[name]
    load = (
        ""
        if name in facts.modules
        else "dn: cn=module{0},cn=config\nchangetype: modify\nadd: olcModuleLoad\n"
        f"olcModuleLoad: {name}\n\n"
    )
    extra = _OVERLAY_EXTRA.get(name, "").format(suffix=suffix)
    if name == "refint":
        extra += "".join(f"olcRefintNothing: {dn}\n" for dn in _empty_members(mapping)[:1])
    ldif = (
        f"{_LDAPMODIFY}\n{load}dn: olcOverlay={name},{db}\nchangetype: add\n"
        "objectClass: olcOverlayConfig\n" + (f"objectClass: {oc}\n" if oc else "")
    )
    ldif += f"olcOverlay: {name}\n{extra}EOF"
    return Finding(severity, name, effect, ldif)


def _empty_members(mapping: MappingConfig) -> list[str]:
    """refint must leave the mapping's placeholder when it removes a group's last member."""
    return [r.empty_member for r in mapping.resources.values() if r.empty_member]


def _index_fix(facts: Facts, need: IndexNeed, missing: list[str]) -> str:
    have = facts.indexes.get(need.attr.lower(), frozenset()) if facts.indexes else frozenset()
    kinds = ",".join(sorted(set(need.kinds) | ({"eq", "sub"} & have)))
    if facts.server == "389ds":
        be = facts.config_dn or "userRoot"
        dsconf = "dsconf <instance> backend index"
        reindex = f"{dsconf} reindex --attr {need.attr} {be}"
        if have:
            adds = " ".join(f"--add-type {k}" for k in missing)
            return f"{dsconf} set {adds} --attr {need.attr} {be}\n{reindex}"
        types = " ".join(f"--index-type {k}" for k in need.kinds)
        return f"{dsconf} add {types} --attr {need.attr} {be}\n{reindex}"
    if facts.server == "active-directory":
        dn, flags = facts.schema_flags.get(need.attr.lower(), (f"<schema DN of {need.attr}>", 0))
        return (
            f"# as a Schema Admin (or the Schema snap-in: 'Index this attribute')\n"
            f"Set-ADObject -Identity '{dn}' -Replace @{{searchFlags={flags | 1}}}"
        )
    db = facts.config_dn or "olcDatabase={1}mdb,cn=config"
    line = facts.index_lines.get(need.attr.lower())
    change = f"add: olcDbIndex\nolcDbIndex: {need.attr} {kinds}\n"
    if line and line.split()[0].lower() == need.attr.lower():
        change = f"delete: olcDbIndex\nolcDbIndex: {line}\n-\n" + change
    elif line:
        change = f"# {need.attr} is indexed by 'olcDbIndex: {line}': edit that value instead\n"
    return f"{_LDAPMODIFY}\ndn: {db}\nchangetype: modify\n{change}EOF"


def render(found: Sequence[Finding]) -> list[str]:
    """Lines for ``check-mapping --connect``: each finding, then its fix indented."""
    errors = sum(1 for f in found if f.severity == "error")
    out = [f"directory: {len(found)} finding(s), {errors} breaking a mapped feature"]
    for f in found:
        out.append(f"  {f}")
        out += [f"      {line}" for line in f.fix.splitlines()]
    return out
