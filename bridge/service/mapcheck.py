"""``check-mapping --connect``: check a mapping against a live directory.

Binds with the BRIDGE_* settings, then checks that every base DN exists, and that every
mapped attribute and object class is defined in the server's schema (RFC 4512 §4.4: the
``subschemaSubentry`` named by the root DSE).  Every problem is reported, each located by its
YAML path.  :func:`notes` adds what the administrator should compare by hand: for a mapping
that writes ``userPrincipalName``, the UPN suffixes the AD forest accepts.  Works through the
Directory seam, so no LDAP library is imported here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bridge.directory.base import Change, Directory
from bridge.directory.connections import plain_dn
from bridge.errors import DirectoryError, Problem
from bridge.mapping.model import MappingConfig, ResourceMap
from bridge.mapping.posix import Allocation

_NAME = re.compile(r"\bNAME\s+(?:\(\s*((?:'[^']*'\s*)+)\)|'([^']*)')", re.I)


def schema_names(definitions: Iterable[bytes]) -> set[str]:
    """Lower-cased NAMEs of RFC 4512 attributeTypes/objectClasses descriptions."""
    out: set[str] = set()
    for raw in definitions:
        m = _NAME.search(raw.decode("utf-8", "replace"))
        if m is None:
            continue
        names = re.findall(r"'([^']*)'", m.group(1)) if m.group(1) else [m.group(2)]
        out.update(n.lower() for n in names)
    return out


def check(directory: Directory, mapping: MappingConfig) -> list[Problem]:
    try:
        directory.check()
    except DirectoryError as exc:
        return [Problem("connection", f"cannot connect and bind: {exc.code} {exc.message}")]
    problems: list[Problem] = []
    for name, rmap in mapping.resources.items():
        where = f"resources.{name}"
        if directory.read(rmap.base_dn, ["1.1"]) is None:
            problems.append(Problem(f"{where}.base_dn", f"{rmap.base_dn} does not exist"))
        pg = rmap.posix.private_group
        if pg is not None and directory.read(pg.base_dn, ["1.1"]) is None:
            problems.append(
                Problem(f"{where}.private_group.base_dn", f"{pg.base_dn} does not exist")
            )
    problems += counters(directory, mapping)
    attrs, classes = _schema(directory, problems)
    if attrs is None or classes is None:
        return problems
    for name, rmap in mapping.resources.items():
        where = f"resources.{name}"
        wanted = [(f"object_classes[{i}]", oc) for i, oc in enumerate(rmap.object_classes)]
        if rmap.posix.private_group is not None:
            wanted += [
                (f"private_group.object_classes[{i}]", oc)
                for i, oc in enumerate(rmap.posix.private_group.object_classes)
            ]
        for path, oc in wanted:
            if oc.lower() not in classes:
                problems.append(Problem(f"{where}.{path}", f"no object class {oc!r} in schema"))
        named = [("id.ldap", rmap.id.ldap), ("rdn.ldap", rmap.rdn.ldap)]
        named += [
            (f"meta.{k}", v)
            for k, v in (
                ("created", rmap.created),
                ("last_modified", rmap.last_modified),
                ("version", rmap.version),
            )
        ]
        named += [(f"attributes[{a.path!r}].ldap", a.ldap) for a in rmap.attributes]
        named += _written(rmap)
        for path, attr in named:
            if attr.lower() not in attrs:
                problems.append(Problem(f"{where}.{path}", f"no attribute type {attr!r} in schema"))
    return problems


def _written(rmap: ResourceMap) -> list[tuple[str, str]]:
    """LDAP attributes a create writes besides the mapped ones: constants, derived values,
    templates and allocated numbers (with their counters' attributes), a members mirror, by
    YAML path."""
    out = [(f"constants.{attr}", attr) for attr, _ in rmap.constants]
    out += [(f"derived.{d.ldap}", d.ldap) for d in rmap.derived]
    out += [(f"templates.{t.ldap}", t.ldap) for t in rmap.posix.templates]
    for a in rmap.posix.allocations:
        out += [(f"allocate.{a.ldap}", a.ldap), (f"allocate.{a.ldap}.counter_attr", a.counter_attr)]
    member = rmap.member_map
    if member is not None and member.mirror is not None:  # RFC 2307bis: memberUid in step
        out += [(f"attributes[{member.path!r}].mirror.ldap", member.mirror.ldap)]
    pg = rmap.posix.private_group
    if pg is not None:
        out += [("private_group.gidNumber", "gidNumber")]
        out += [("private_group.gidNumber.counter_attr", pg.gid.counter_attr)]
    return out


def counters(directory: Directory, mapping: MappingConfig) -> list[Problem]:
    """Each ``allocate:`` counter exists, holds a number, and the bind account may write it.

    The write probe changes nothing: a modify deleting a value the counter does not hold.  The
    directory checks access before it looks at values (slapd, 389 DS), so it answers
    noSuchAttribute (16) when the account may write the attribute and
    insufficientAccessRights (50) when it may not."""
    problems: list[Problem] = []
    for name, rmap in mapping.resources.items():
        found = [(f"allocate.{a.ldap}", a) for a in rmap.posix.allocations]
        if rmap.posix.private_group is not None:
            found.append(("private_group.gidNumber", rmap.posix.private_group.gid))
        for path, a in found:
            problem = _counter_problem(directory, a)
            if problem:
                problems.append(Problem(f"resources.{name}.{path}.counter", problem))
    return problems


def _counter_problem(directory: Directory, a: Allocation) -> str | None:
    entry = directory.read(a.counter, [a.counter_attr])
    if entry is None:
        return f"the counter entry {a.counter} does not exist (or the bind account cannot read it)"
    value = entry.text(a.counter_attr)
    if value is not None and not value.lstrip("-").isdigit():
        return f"{a.counter_attr} of {a.counter} is {value!r}, not a number"
    absent = str(-1 - int(value or 0)).encode()  # a number it cannot hold (it holds one value)
    try:
        directory.modify(a.counter, [Change("delete", a.counter_attr, (absent,))])
    except DirectoryError as exc:
        if exc.code == "noSuchAttribute":
            return None
        if exc.code == "insufficientAccessRights":
            return f"the bind account may not write {a.counter_attr} of {a.counter}"
        return f"cannot tell whether {a.counter} is writable: {exc.code} {exc.message}"
    return f"a probe deleted {a.counter_attr}: {absent!r} from {a.counter}, which should not exist"


def _schema(
    directory: Directory, problems: list[Problem]
) -> tuple[set[str] | None, set[str] | None]:
    root = directory.read("", ["subschemaSubentry"])
    subschema = root.text("subschemaSubentry") if root else None
    if not subschema:
        problems.append(Problem("schema", "the root DSE names no subschemaSubentry"))
        return None, None
    entry = directory.read(subschema, ["attributeTypes", "objectClasses"])
    if entry is None or not entry.get("attributeTypes"):
        problems.append(Problem("schema", f"cannot read the schema at {subschema}"))
        return None, None
    return schema_names(entry.get("attributeTypes")), schema_names(entry.get("objectClasses"))


def notes(directory: Directory, mapping: MappingConfig) -> list[str]:
    """What to compare with the IdP by hand.  For a mapping that writes ``userPrincipalName``
    (the AD profile's userName): the suffixes the forest accepts, read from
    ``CN=Partitions,<configuration naming context>`` (the domains' ``dnsRoot`` and the
    forest's ``uPNSuffixes``).  Whether the IdP's userNames end in one of them cannot be
    detected here, so it is said plainly."""
    paths = [
        f"resources.{name}.attributes[{a.path!r}]"
        for name, rmap in mapping.resources.items()
        for a in rmap.attributes
        if a.ldap.lower() == "userprincipalname"
    ]
    if not paths:
        return []
    suffixes = upn_suffixes(directory)
    if suffixes is None:
        return [f"{paths[0]}: the directory names no configuration naming context (not AD?)"]
    return [
        f"{paths[0]}: the forest accepts these UPN suffixes: {', '.join(suffixes) or '(none)'}; "
        "the userNames the IdP sends (user@suffix) must end in one of them, or users cannot "
        "sign in with their UPN (add the IdP's domain as a UPN suffix in AD Domains and Trusts)"
    ]


def upn_suffixes(directory: Directory) -> list[str] | None:
    """The domains' DNS names and the forest's extra UPN suffixes (MS-ADTS §6.1.1.2.1.1.4:
    ``uPNSuffixes`` of CN=Partitions), or None when the directory is not AD."""
    root = directory.read("", ["configurationNamingContext"])
    config = root.text("configurationNamingContext") if root else None
    if not config:
        return None
    config = plain_dn(config)  # AD may answer in the extended-DN form the bridge asks for
    partitions = f"CN=Partitions,{config}"
    out: list[str] = []
    top = directory.read(partitions, ["uPNSuffixes"])
    domains = directory.search(
        partitions,
        "(&(objectClass=crossRef)(systemFlags:1.2.840.113556.1.4.803:=2))",
        ["dnsRoot"],
        scope="one",
    )
    for e in domains.entries:
        out += [v.decode("utf-8") for v in e.get("dnsRoot")]
    if top is not None:
        out += [v.decode("utf-8") for v in top.get("uPNSuffixes")]
    return list(dict.fromkeys(s.lower() for s in out))
