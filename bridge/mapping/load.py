"""Mapping YAML -> the frozen typed objects of mapping/model.py.

The file is keyed by SCIM path, because filters and PATCH paths arrive in SCIM terms; the reverse
index (LDAP attribute -> mappings) is built here once.  Loading is strict and reports *every*
problem at once, each located by its YAML path, so ``check-mapping`` can show them all.
Directory differences are data: ``dialect:`` selects defaults, ``type:`` selects codecs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from bridge.errors import ConfigError, Problem
from bridge.mapping import policy as dp
from bridge.mapping import posix
from bridge.mapping.codecs import CODECS, Codec, ReferenceCodec
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
from bridge.scim import schema as sch

# ---------------------------------------------------------------------------- loading

_KEY = re.compile(
    r"""^(?:(?P<urn>urn:[^\s\[\]]+):)?          # optional schema URN
        (?P<attr>[A-Za-z$][\w$-]*)               # attribute
        (?:\[\s*type\s+eq\s+"(?P<type>[^"]*)"\s*\])?   # optional [type eq "x"]
        (?:\.(?P<sub>[A-Za-z$][\w$-]*))?$        # optional .sub
    """,
    re.X | re.I,
)
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
_ATTR_KEYS = {
    "ldap",
    "type",
    "required",
    "mutability",
    "returned",
    "unique",
    "primary",
    "to",
    "case_exact",
    "fallback",
    "from_member",
    "member_value",
}
#: what a ``from_member`` member attribute may hold of the member (memberUid's uid: later)
MEMBER_VALUES = ("dn",)
_MUTABILITY = {"readWrite", "readOnly", "immutable", "writeOnly"}
_RETURNED = {"default", "always", "never", "request"}
_DEFAULT_SCHEMA = {"User": sch.USER, "Group": sch.GROUP}


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (attribute mapped twice?)", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _p(base: str, *parts: str | int) -> str:
    """Extend the YAML path ``base`` with keys/indexes: ``a.b``, ``a[0]``, ``a['x[y]']``."""
    out = base
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_$][\w$-]*", part):
            out += ("." if out else "") + part
        else:
            out += f"[{part!r}]"
    return out


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def typed(self, value: Any, kind: type | tuple[type, ...], path: str, what: str) -> bool:
        if isinstance(value, kind) and not (
            kind is not bool and isinstance(value, bool) and kind is int
        ):
            return True
        self.add(path, f"expected {what}, got {type(value).__name__} {value!r}")
        return False

    def unknown(self, data: Mapping[str, Any], allowed: set[str], path: str) -> None:
        for key in data:
            if key not in allowed:
                self.add(
                    _p(path, str(key)) if path else str(key),
                    f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})",
                )


def load_mapping(path: str | Path) -> MappingConfig:
    text = Path(path).read_text(encoding="utf-8")
    return parse_mapping(text, source=str(path))


def parse_mapping(text: str, source: str = "<mapping>") -> MappingConfig:
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            [Problem(where, str(getattr(exc, "problem", exc)) or str(exc))], source
        ) from None
    c = _Collector()
    mapping = _build(data, c, source)
    if c.problems or mapping is None:
        raise ConfigError(c.problems, source)
    return mapping


def _build(data: Any, c: _Collector, source: str) -> MappingConfig | None:
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
                _p("resources", name, "endpoint"),
                f"endpoint {res.endpoint} is also used by {endpoints[res.endpoint.lower()]}",
            )
        endpoints[res.endpoint.lower()] = name
        resources[name] = res
    return MappingConfig(dialect, resources, source)


def _resource(
    name: str, data: Any, names: set[str], dialect: Dialect, c: _Collector
) -> ResourceMap | None:
    here = _p("resources", name)
    if not isinstance(data, dict):
        c.add(here, "expected a mapping")
        return None
    c.unknown(data, _RES_KEYS, here)
    schema_urn = data.get("schema", _DEFAULT_SCHEMA.get(name))
    if not isinstance(schema_urn, str) or sch.canonical_schema(schema_urn) is None:
        c.add(
            _p(here, "schema"),
            f"unknown or missing core schema {schema_urn!r} (known: {', '.join(sch.SCHEMAS)})",
        )
        return None
    schema_urn = sch.canonical_schema(schema_urn) or schema_urn
    extensions: list[str] = []
    for i, ext in enumerate(data.get("extensions") or []):
        canon = sch.canonical_schema(ext) if isinstance(ext, str) else None
        if canon is None or canon == schema_urn:
            c.add(_p(here, "extensions", i), f"unknown schema extension {ext!r}")
        else:
            extensions.append(canon)
    endpoint = data.get("endpoint", f"/{name}s")
    if not isinstance(endpoint, str) or not re.fullmatch(r"/[A-Za-z][\w-]*", endpoint):
        c.add(_p(here, "endpoint"), f"expected a path such as /{name}s, got {endpoint!r}")
        endpoint = f"/{name}s"
    base_dn = data.get("base_dn")
    if not isinstance(base_dn, str) or "=" not in base_dn:
        c.add(
            _p(here, "base_dn"),
            f"expected a DN such as ou=people,dc=example,dc=org, got {base_dn!r}",
        )
        base_dn = ""
    scope = data.get("scope", "sub")
    if scope not in ("sub", "one"):
        c.add(_p(here, "scope"), f"expected 'sub' or 'one', got {scope!r}")
    ocs = data.get("object_classes")
    if not isinstance(ocs, list) or not ocs or not all(isinstance(o, str) for o in ocs):
        c.add(_p(here, "object_classes"), "expected a non-empty list of object class names")
        ocs = []
    base_filter = data.get("base_filter") or (
        f"(objectClass={ocs[-1]})" if ocs else "(objectClass=*)"
    )
    if not isinstance(base_filter, str) or not _balanced(base_filter):
        c.add(_p(here, "base_filter"), f"not a valid LDAP filter: {base_filter!r}")
        base_filter = "(objectClass=*)"
    id_map = _id(data.get("id"), _p(here, "id"), c)
    attributes = _attributes(
        data.get("attributes"), _p(here, "attributes"), (schema_urn, *extensions), names, c
    )
    rdn = _rdn(data.get("rdn"), _p(here, "rdn"), attributes, c)
    meta = data.get("meta") or {}
    if not isinstance(meta, dict):
        c.add(_p(here, "meta"), "expected a mapping with created, last_modified, version")
        meta = {}
    c.unknown(meta, {"created", "last_modified", "version"}, _p(here, "meta"))
    empty_member = data.get("empty_member")
    if empty_member is not None and (not isinstance(empty_member, str) or "=" not in empty_member):
        c.add(_p(here, "empty_member"), f"expected a DN, got {empty_member!r}")
        empty_member = None
    writes = _write_options(data, here, attributes, dialect, c)
    policy = dp.parse_policy(
        data.get("deprovision"),
        _p(here, "deprovision"),
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
    data: dict[str, Any], here: str, attributes: list[AttributeMap], dialect: Dialect, c: _Collector
) -> dict[str, Any]:
    """constants, derived, create_steps, password_must_change, transitive_groups."""
    out: dict[str, Any] = {}
    constants = []
    for attr, value in (data.get("constants") or {}).items():
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values):
            c.add(_p(here, "constants", attr), f"expected a string or a list, got {value!r}")
            continue
        constants.append((str(attr), tuple(str(v).encode() for v in values)))
    out["constants"] = tuple(constants)
    out["derived"] = _derived(data.get("derived"), here, attributes, c)
    steps = data.get("create_steps", [list(s) for s in dialect.create_steps])
    if not isinstance(steps, list) or not all(
        isinstance(s, list) and s and all(isinstance(a, str) for a in s) for s in steps
    ):
        c.add(_p(here, "create_steps"), "expected a list of lists of LDAP attribute names")
        steps = []
    out["create_steps"] = tuple(tuple(s) for s in steps)
    for flag in ("password_must_change", "generate_missing_password", "transitive_groups"):
        value = data.get(flag, False)
        if not isinstance(value, bool):
            c.add(_p(here, flag), f"expected true or false, got {value!r}")
            value = False
        out[flag] = value
    if out["transitive_groups"] and dialect.name != "active-directory":
        c.add(
            _p(here, "transitive_groups"),
            "needs dialect active-directory (LDAP_MATCHING_RULE_IN_CHAIN)",
        )
    if out["password_must_change"] and dialect.must_change is None:
        c.add(_p(here, "password_must_change"), f"not supported by dialect {dialect.name}")
    return out


def _derived(
    data: Any, here: str, attributes: list[AttributeMap], c: _Collector
) -> tuple[DerivedMap, ...]:
    """``derived: {<ldap>: {from: <scim path>, type: <codec>, unique: base|domain}}``."""
    if data is None:
        return ()
    if not isinstance(data, dict):
        c.add(_p(here, "derived"), "expected a mapping of LDAP attribute -> {from: ..., type: ...}")
        return ()
    out = []
    paths = {a.path.lower() for a in attributes}
    for attr, spec in data.items():
        where = _p(here, "derived", str(attr))
        if not isinstance(spec, dict) or not isinstance(spec.get("from"), str):
            c.add(where, "expected {from: <scim path>, type: <codec>, unique: base|domain}")
            continue
        c.unknown(spec, {"from", "type", "unique"}, where)
        if spec["from"].lower() not in paths:
            c.add(_p(where, "from"), f"{spec['from']!r} is not a mapped attribute")
        unique = spec.get("unique")
        if unique is not None and unique not in DERIVED_UNIQUE:
            c.add(
                _p(where, "unique"),
                f"expected one of {', '.join(DERIVED_UNIQUE)}, got {unique!r}",
            )
            unique = None
        codec = _codec(spec.get("type"), _p(where, "type"), c)
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


def _codec(value: Any, path: str, c: _Collector, default: str = "string") -> Codec | None:
    name = default if value is None else value
    codec = CODECS.get(name) if isinstance(name, str) else None
    if codec is None:
        c.add(path, f"unknown type {name!r} (choose one of: {', '.join(sorted(CODECS))})")
    return codec


def _id(data: Any, path: str, c: _Collector) -> IdMap | None:
    if not isinstance(data, dict) or not isinstance(data.get("ldap"), str):
        c.add(path, "expected {ldap: <attribute>, type: uuid|guid|string}")
        return None
    c.unknown(data, {"ldap", "type"}, path)
    codec = _codec(data.get("type"), _p(path, "type"), c)
    return IdMap(data["ldap"], codec) if codec else None


def _rdn(data: Any, path: str, attributes: list[AttributeMap], c: _Collector) -> RdnMap | None:
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
        c.add(_p(path, "from"), f"{source!r} is not a mapped attribute of this resource")
    return RdnMap(data["ldap"], source)


def _attributes(
    data: Any, path: str, schemas: tuple[str, ...], names: set[str], c: _Collector
) -> list[AttributeMap]:
    if not isinstance(data, dict) or not data:
        c.add(path, "expected a mapping of SCIM path -> {ldap: ...}")
        return []
    out: list[AttributeMap] = []
    writers: dict[str, str] = {}
    for key, spec in data.items():
        here = _p(path, str(key))
        amap = _attribute(str(key), spec, here, schemas, names, c)
        if amap is None:
            continue
        if (amap.writable and not amap.is_reference) or amap.attr.lower() == "members":
            prev = writers.get(amap.ldap.lower())
            if prev is not None:
                c.add(
                    _p(here, "ldap"), f"LDAP attribute {amap.ldap} is already written by {prev!r}"
                )
            writers[amap.ldap.lower()] = amap.path
        out.append(amap)
    _check_duplicates(out, path, c)
    known = {a.path.lower() for a in out}
    for a in out:
        for i, fb in enumerate(a.fallback):
            if fb.lower() not in known:
                c.add(_p(path, a.path, "fallback", i), f"{fb!r} is not a mapped attribute")
    return out


def _check_duplicates(maps: list[AttributeMap], path: str, c: _Collector) -> None:
    seen: dict[tuple[str, str, str, str], str] = {}
    for a in maps:
        k = (a.schema.lower(), a.attr.lower(), (a.sub or "").lower(), (a.type_value or "").lower())
        if k in seen:
            c.add(_p(path, a.path), f"maps the same SCIM attribute as {seen[k]!r}")
        seen[k] = a.path


def _attribute(
    key: str, spec: Any, here: str, schemas: tuple[str, ...], names: set[str], c: _Collector
) -> AttributeMap | None:
    m = _KEY.match(key)
    if not m:
        c.add(
            here,
            'not a SCIM path of the form attr, attr.sub, attr[type eq "x"].sub or urn:...:attr',
        )
        return None
    if isinstance(spec, dict) and "from_member" in spec:
        spec = _from_member(spec, here, c)
        if spec is None:
            return None
    if not isinstance(spec, dict) or not isinstance(spec.get("ldap"), str):
        c.add(here, "expected {ldap: <attribute>, ...}")
        return None
    c.unknown(spec, _ATTR_KEYS, here)
    if spec.get("from_member") and m["attr"] != "groups":
        c.add(_p(here, "from_member"), "only groups can be read from the group side")
        return None
    urn = m["urn"]
    if urn is not None:
        schema = sch.canonical_schema(urn)
        if schema is None or schema not in schemas:
            c.add(here, f"schema {urn} is not this resource's schema or one of its extensions")
            return None
    else:
        schema = schemas[0]
    parent = sch.attr_def(schema, m["attr"])
    if parent is None or parent.name in ("id", "meta"):
        c.add(
            here,
            f"{m['attr']!r} is not an attribute of {schema}"
            if parent is None
            else f"{parent.name} is managed by the bridge (see id:/meta:)",
        )
        return None
    definition = parent
    sub = m["sub"]
    if sub is not None:
        sd = parent.sub(sub)
        if sd is None:
            c.add(here, f"{parent.name} has no sub-attribute {sub!r}")
            return None
        definition, sub = sd, sd.name
    elif parent.type == "complex":
        if parent.multi_valued:
            sub, definition = "value", parent.sub("value") or parent
        else:
            c.add(
                here,
                f"{parent.name} is complex: map its sub-attributes (e.g. {parent.name}."
                f"{parent.sub_attributes[0].name})",
            )
            return None
    if m["type"] is not None and not parent.multi_valued:
        c.add(here, f"[type eq ...] only applies to multi-valued attributes, not {parent.name}")
    default_codec = {"boolean": "boolean", "integer": "integer", "dateTime": "datetime"}.get(
        definition.type, "string"
    )
    if parent.name in ("members", "groups") or (parent.name == "manager" and sub == "value"):
        default_codec = "reference"
    codec = _codec(spec.get("type"), _p(here, "type"), c, default_codec)
    if parent.name == "password" and spec.get("type") is None:
        codec = CODECS["password"]
    mutability = spec.get(
        "mutability", definition.mutability if parent.name != "groups" else "readOnly"
    )
    if mutability not in _MUTABILITY:
        c.add(_p(here, "mutability"), f"expected one of {sorted(_MUTABILITY)}, got {mutability!r}")
        mutability = "readWrite"
    returned = spec.get("returned", definition.returned if parent.name != "password" else "never")
    if returned not in _RETURNED:
        c.add(_p(here, "returned"), f"expected one of {sorted(_RETURNED)}, got {returned!r}")
        returned = "default"
    to = spec.get(
        "to",
        ["User", "Group"]
        if parent.name in ("members", "groups")
        else ["User"]
        if parent.name == "manager"
        else [],
    )
    if not isinstance(to, list) or any(t not in names for t in to):
        c.add(_p(here, "to"), f"expected a list of resource names from {sorted(names)}, got {to!r}")
        to = []
    if isinstance(codec, ReferenceCodec) and not to:
        c.add(_p(here, "to"), "a reference needs 'to: [User, Group]'")
    for flag in ("required", "unique", "primary", "case_exact"):
        if flag in spec and not isinstance(spec[flag], bool):
            c.add(_p(here, flag), f"expected true or false, got {spec[flag]!r}")
    fallback = spec.get("fallback", [])
    if not isinstance(fallback, list) or not all(isinstance(f, str) for f in fallback):
        c.add(_p(here, "fallback"), f"expected a list of SCIM paths, got {fallback!r}")
        fallback = []
    if codec is None:
        return None
    return AttributeMap(
        path=key,
        schema=schema,
        attr=parent.name,
        sub=sub,
        type_value=m["type"],
        ldap=spec["ldap"],
        codec=codec,
        definition=definition,
        parent=parent,
        required=spec.get("required", parent.required) is True,
        mutability=mutability,
        returned=returned,
        unique=spec.get("unique", parent.uniqueness != "none") is True,
        primary=spec.get("primary", False) is True,
        to=tuple(to),
        fallback=tuple(fallback),
        from_member=bool(spec.get("from_member")),
        member_value=spec.get("member_value", "dn"),
    )


def _from_member(spec: dict[str, Any], here: str, c: _Collector) -> dict[str, Any] | None:
    """``groups: {from_member: member, to: [Group]}``: a user's groups are the groups whose
    ``member`` holds the user's DN (a directory without the memberof overlay).  Normalised to
    an attribute spec whose ``ldap`` is the member attribute, flagged ``from_member``."""
    attr, value = spec["from_member"], spec.get("member_value", "dn")
    if "ldap" in spec:
        c.add(here, "give either ldap (read from this entry) or from_member, not both")
        return None
    if not isinstance(attr, str) or not attr:
        c.add(_p(here, "from_member"), f"expected the groups' member attribute, got {attr!r}")
        return None
    if value not in MEMBER_VALUES:
        c.add(
            _p(here, "member_value"),
            f"expected one of {list(MEMBER_VALUES)}, got {value!r} (memberUid is not supported "
            f"yet: use groupOfNames/member)",
        )
        return None
    if "to" not in spec:
        c.add(_p(here, "to"), "from_member needs 'to: [Group]': the resources holding the member")
        return None
    return {**spec, "ldap": attr, "from_member": True}


def iter_problems(path: str | Path) -> Iterator[Problem]:
    """Every problem in a mapping file (empty when it loads)."""
    try:
        load_mapping(path)
    except ConfigError as exc:
        yield from exc.problems
