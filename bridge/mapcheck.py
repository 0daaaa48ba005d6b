"""``check-mapping --connect``: check a mapping against a live directory.

Binds with the BRIDGE_* settings, then checks that every base DN exists, and that every
mapped attribute and object class is defined in the server's schema (RFC 4512 §4.4: the
``subschemaSubentry`` named by the root DSE).  Every problem is reported, each located by its
YAML path.  Works through the Directory seam, so no LDAP library is imported here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bridge.config import MappingConfig
from bridge.directory.base import Directory
from bridge.errors import DirectoryError, Problem

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
    attrs, classes = _schema(directory, problems)
    if attrs is None or classes is None:
        return problems
    for name, rmap in mapping.resources.items():
        where = f"resources.{name}"
        for i, oc in enumerate(rmap.object_classes):
            if oc.lower() not in classes:
                problems.append(
                    Problem(f"{where}.object_classes[{i}]", f"no object class {oc!r} in schema")
                )
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
        for path, attr in named:
            if attr.lower() not in attrs:
                problems.append(Problem(f"{where}.{path}", f"no attribute type {attr!r} in schema"))
    return problems


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
