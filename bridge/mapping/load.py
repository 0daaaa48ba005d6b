"""Mapping YAML -> the frozen typed objects of mapping/model.py.

The file is keyed by SCIM path, because filters and PATCH paths arrive in SCIM terms; the reverse
index (LDAP attribute -> mappings) is built here once.  Loading is strict and reports *every*
problem at once, each located by its YAML path, so ``check-mapping`` can show them all.
Directory differences are data: ``dialect:`` selects defaults, ``type:`` selects codecs.

This module checks the file and its resources; each resource's ``attributes:`` are checked by
:mod:`bridge.mapping.attributes`, its ``deprovision:`` by :mod:`bridge.mapping.policy`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from bridge.errors import ConfigError, Problem
from bridge.mapping import members as member_values
from bridge.mapping import policy as dp
from bridge.mapping import posix
from bridge.mapping.attributes import attribute_maps
from bridge.mapping.dialects import DIALECTS, Dialect
from bridge.mapping.model import (
    DERIVED_UNIQUE,
    AttributeMap,
    DerivedMap,
    IdMap,
    MappingConfig,
    RdnMap,
    ResourceMap,
)
from bridge.mapping.problems import Collector, StrictLoader, at, codec_of
from bridge.scim import schema as sch

_TOP_KEYS = {"version", "dialect", "resources", "$schema"}
_RES_KEYS = {
    "endpoint",
    "schema",
    "extensions",
    "base_dn",
    "scope",
    "object_classes",
    "base_filter",
    "id",
    "rdn",
    "meta",
    "attributes",
    "empty_member",
    "description",
    "constants",
    "derived",
    "create_steps",
    "password_must_change",
    "generate_missing_password",
    "transitive_groups",
    "deprovision",
    *posix.KEYS,
}
_DEFAULT_SCHEMA = {"User": sch.USER, "Group": sch.GROUP}


def load_mapping(path: str | Path) -> MappingConfig:
    text = Path(path).read_text(encoding="utf-8")
    return parse_mapping(text, source=str(path))


def parse_mapping(text: str, source: str = "<mapping>") -> MappingConfig:
    try:
        data = yaml.load(text, Loader=StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            [Problem(where, str(getattr(exc, "problem", exc)) or str(exc))], source
        ) from None
    c = Collector()
    mapping = _build(data, c, source)
    if c.problems or mapping is None:
        raise ConfigError(c.problems, source)
    return mapping


def _build(data: Any, c: Collector, source: str) -> MappingConfig | None:
    if not isinstance(data, dict):
        c.add("", "the mapping file must be a YAML mapping with version, dialect and resources")
        return None
    c.unknown(data, _TOP_KEYS, "")
    if data.get("version") != 1:
        c.add("version", f"expected 1, got {data.get('version')!r}")
    dialect_name = data.get("dialect", "openldap")
    dialect = DIALECTS.get(dialect_name) if isinstance(dialect_name, str) else None
    if dialect is None:
        c.add("dialect", f"unknown dialect {dialect_name!r} (choose one of: {', '.join(DIALECTS)})")
        dialect = DIALECTS["openldap"]
    resources_data = data.get("resources")
    if not isinstance(resources_data, dict) or not resources_data:
        c.add("resources", "expected a mapping of resource types (User, Group)")
        return None
    names = set(resources_data)
    resources: dict[str, ResourceMap] = {}
    endpoints: dict[str, str] = {}
    for name, rdata in resources_data.items():
        res = _resource(str(name), rdata, names, dialect, c)
        if res is None:
            continue
        if res.endpoint.lower() in endpoints:
            c.add(
                at("resources", name, "endpoint"),
                f"endpoint {res.endpoint} is also used by {endpoints[res.endpoint.lower()]}",
            )
        endpoints[res.endpoint.lower()] = name
        resources[name] = res
    resources = member_values.check(resources, c)
    return MappingConfig(dialect, resources, source)


def _resource(
    name: str, data: Any, names: set[str], dialect: Dialect, c: Collector
) -> ResourceMap | None:
    here = at("resources", name)
    if not isinstance(data, dict):
        c.add(here, "expected a mapping")
        return None
    c.unknown(data, _RES_KEYS, here)
    schema_urn = data.get("schema", _DEFAULT_SCHEMA.get(name))
    if not isinstance(schema_urn, str) or sch.canonical_schema(schema_urn) is None:
        c.add(
            at(here, "schema"),
            f"unknown or missing core schema {schema_urn!r} (known: {', '.join(sch.SCHEMAS)})",
        )
        return None
    schema_urn = sch.canonical_schema(schema_urn) or schema_urn
    extensions: list[str] = []
    for i, ext in enumerate(data.get("extensions") or []):
        canon = sch.canonical_schema(ext) if isinstance(ext, str) else None
        if canon is None or canon == schema_urn:
            c.add(at(here, "extensions", i), f"unknown schema extension {ext!r}")
        else:
            extensions.append(canon)
    endpoint = data.get("endpoint", f"/{name}s")
    if not isinstance(endpoint, str) or not re.fullmatch(r"/[A-Za-z][\w-]*", endpoint):
        c.add(at(here, "endpoint"), f"expected a path such as /{name}s, got {endpoint!r}")
        endpoint = f"/{name}s"
    base_dn = data.get("base_dn")
    if not isinstance(base_dn, str) or "=" not in base_dn:
        c.add(
            at(here, "base_dn"),
            f"expected a DN such as ou=people,dc=example,dc=org, got {base_dn!r}",
        )
        base_dn = ""
    scope = data.get("scope", "sub")
    if scope not in ("sub", "one"):
        c.add(at(here, "scope"), f"expected 'sub' or 'one', got {scope!r}")
    ocs = data.get("object_classes")
    if not isinstance(ocs, list) or not ocs or not all(isinstance(o, str) for o in ocs):
        c.add(at(here, "object_classes"), "expected a non-empty list of object class names")
        ocs = []
    base_filter = data.get("base_filter") or (
        f"(objectClass={ocs[-1]})" if ocs else "(objectClass=*)"
    )
    if not isinstance(base_filter, str) or not _balanced(base_filter):
        c.add(at(here, "base_filter"), f"not a valid LDAP filter: {base_filter!r}")
        base_filter = "(objectClass=*)"
    id_map = _id(data.get("id"), at(here, "id"), c)
    attributes = attribute_maps(
        data.get("attributes"), at(here, "attributes"), (schema_urn, *extensions), names, c
    )
    rdn = _rdn(data.get("rdn"), at(here, "rdn"), attributes, c)
    meta = data.get("meta") or {}
    if not isinstance(meta, dict):
        c.add(at(here, "meta"), "expected a mapping with created, last_modified, version")
        meta = {}
    c.unknown(meta, {"created", "last_modified", "version"}, at(here, "meta"))
    empty_member = data.get("empty_member")
    if empty_member is not None and (not isinstance(empty_member, str) or "=" not in empty_member):
        c.add(at(here, "empty_member"), f"expected a DN, got {empty_member!r}")
        empty_member = None
    writes = _write_options(data, here, attributes, dialect, c)
    policy = dp.parse_policy(
        data.get("deprovision"),
        at(here, "deprovision"),
        c.add,
        base_dn=base_dn,
        scope=str(scope),
        has_active=any(a.attr == "active" for a in attributes),
    )
    if id_map is None or rdn is None:
        return None
    return ResourceMap(
        name=name,
        endpoint=endpoint,
        schema=schema_urn,
        extensions=tuple(extensions),
        base_dn=base_dn,
        scope="one" if scope == "one" else "sub",
        object_classes=tuple(ocs),
        base_filter=base_filter,
        id=id_map,
        rdn=rdn,
        created=str(meta.get("created", dialect.created)),
        last_modified=str(meta.get("last_modified", dialect.last_modified)),
        version=str(meta.get("version", dialect.version)),
        attributes=tuple(attributes),
        empty_member=empty_member,
        description=str(data.get("description", "")),
        deprovision=policy,
        posix=posix.parse(data, here, attributes, c.add),
        **writes,
    )


def _write_options(
    data: dict[str, Any], here: str, attributes: list[AttributeMap], dialect: Dialect, c: Collector
) -> dict[str, Any]:
    """constants, derived, create_steps, password_must_change, transitive_groups."""
    out: dict[str, Any] = {}
    constants = []
    for attr, value in (data.get("constants") or {}).items():
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values):
            c.add(at(here, "constants", attr), f"expected a string or a list, got {value!r}")
            continue
        constants.append((str(attr), tuple(str(v).encode() for v in values)))
    out["constants"] = tuple(constants)
    out["derived"] = _derived(data.get("derived"), here, attributes, c)
    steps = data.get("create_steps", [list(s) for s in dialect.create_steps])
    if not isinstance(steps, list) or not all(
        isinstance(s, list) and s and all(isinstance(a, str) for a in s) for s in steps
    ):
        c.add(at(here, "create_steps"), "expected a list of lists of LDAP attribute names")
        steps = []
    out["create_steps"] = tuple(tuple(s) for s in steps)
    for flag in ("password_must_change", "generate_missing_password", "transitive_groups"):
        value = data.get(flag, False)
        if not isinstance(value, bool):
            c.add(at(here, flag), f"expected true or false, got {value!r}")
            value = False
        out[flag] = value
    if out["transitive_groups"] and dialect.name != "active-directory":
        c.add(
            at(here, "transitive_groups"),
            "needs dialect active-directory (LDAP_MATCHING_RULE_IN_CHAIN)",
        )
    if out["password_must_change"] and dialect.must_change is None:
        c.add(at(here, "password_must_change"), f"not supported by dialect {dialect.name}")
    return out


def _derived(
    data: Any, here: str, attributes: list[AttributeMap], c: Collector
) -> tuple[DerivedMap, ...]:
    """``derived: {<ldap>: {from: <scim path>, type: <codec>, unique: base|domain}}``."""
    if data is None:
        return ()
    if not isinstance(data, dict):
        c.add(at(here, "derived"), "expected a mapping of LDAP attribute -> {from: ..., type: ...}")
        return ()
    out = []
    paths = {a.path.lower() for a in attributes}
    for attr, spec in data.items():
        where = at(here, "derived", str(attr))
        if not isinstance(spec, dict) or not isinstance(spec.get("from"), str):
            c.add(where, "expected {from: <scim path>, type: <codec>, unique: base|domain}")
            continue
        c.unknown(spec, {"from", "type", "unique"}, where)
        if spec["from"].lower() not in paths:
            c.add(at(where, "from"), f"{spec['from']!r} is not a mapped attribute")
        unique = spec.get("unique")
        if unique is not None and unique not in DERIVED_UNIQUE:
            c.add(
                at(where, "unique"),
                f"expected one of {', '.join(DERIVED_UNIQUE)}, got {unique!r}",
            )
            unique = None
        codec = codec_of(spec.get("type"), at(where, "type"), c)
        if codec is not None:
            out.append(DerivedMap(str(attr), spec["from"], codec, unique))
    return tuple(out)


def _balanced(f: str) -> bool:
    depth = 0
    for ch in f:
        depth += (ch == "(") - (ch == ")")
        if depth < 0:
            return False
    return depth == 0 and f.startswith("(") and f.endswith(")")


def _id(data: Any, path: str, c: Collector) -> IdMap | None:
    if not isinstance(data, dict) or not isinstance(data.get("ldap"), str):
        c.add(path, "expected {ldap: <attribute>, type: uuid|guid|string}")
        return None
    c.unknown(data, {"ldap", "type"}, path)
    codec = codec_of(data.get("type"), at(path, "type"), c)
    return IdMap(data["ldap"], codec) if codec else None


def _rdn(data: Any, path: str, attributes: list[AttributeMap], c: Collector) -> RdnMap | None:
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("ldap"), str)
        or not isinstance(data.get("from"), str)
    ):
        c.add(path, "expected {ldap: <rdn attribute>, from: <scim path>}")
        return None
    c.unknown(data, {"ldap", "from"}, path)
    source = data["from"]
    if not any(a.path.lower() == source.lower() for a in attributes):
        c.add(at(path, "from"), f"{source!r} is not a mapped attribute of this resource")
    return RdnMap(data["ldap"], source)


def iter_problems(path: str | Path) -> Iterator[Problem]:
    """Every problem in a mapping file (empty when it loads)."""
    try:
        load_mapping(path)
    except ConfigError as exc:
        yield from exc.problems
