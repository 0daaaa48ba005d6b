"""What a live directory offers the bridge: server kind, controls, indexes, overlays/plugins.

Read through the Directory seam (no LDAP library here) by ``check-mapping --connect`` and at
start-up; :mod:`bridge.dircheck` turns these facts into findings.  Where to look:

* the root DSE for the server kind (OpenLDAP: objectClass ``OpenLDAProotDSE``; 389 DS:
  ``vendorName`` "389 Project"; AD: ``forestFunctionality``) and ``supportedControl``;
* OpenLDAP: ``olcDbIndex`` and the ``olcOverlay`` children of the database in ``cn=config``
  whose ``olcSuffix`` holds the base DNs (readable only when the bind account may read it);
* 389 DS: ``cn=index,cn=<backend>,cn=ldbm database,cn=plugins,cn=config`` (``nsIndexType``)
  and the MemberOf / referential-integrity plugin entries;
* AD: bit 1 (``fATTINDEX``) of ``searchFlags`` on the attributeSchema objects of the schema NC.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bridge.directory.base import Directory, Entry
from bridge.directory.connections import plain_dn
from bridge.directory.syntax import is_under, normalize_dn
from bridge.errors import DirectoryError
from bridge.mapping.model import MappingConfig
from bridge.translate.filter import any_of

#: features a directory may offer, by the OpenLDAP overlay name
FEATURES = ("sssvlv", "deref", "ppolicy", "memberof", "refint")
OID_PPOLICY = "1.3.6.1.4.1.42.2.27.8.5.1"
OID_DEREF = "1.3.6.1.4.1.4203.666.5.16"
_AD_CAPABILITY = "1.2.840.113556.1.4.800"  # LDAP_CAP_ACTIVE_DIRECTORY_OID
_LDBM = "cn=ldbm database,cn=plugins,cn=config"
_389_PLUGINS = {
    "memberof": "cn=MemberOf Plugin,cn=plugins,cn=config",
    "refint": "cn=referential integrity postoperation,cn=plugins,cn=config",
    "usn": "cn=USN,cn=plugins,cn=config",  # entryusn (a mapping's meta version)
}
_CONFIG_LIMIT = 1000  # configuration entries read in one search (databases, indexes)
_SUB_TYPES = {"sub", "subinitial", "subany", "subfinal"}


@dataclass(frozen=True)
class Facts:
    """What was found.  ``indexes``/``features`` are None when they could not be read."""

    server: str  # openldap | 389ds | active-directory | unknown
    controls: frozenset[str] = frozenset()
    #: lower-cased attribute -> index kinds ("eq", "sub", "pres", ...)
    indexes: Mapping[str, frozenset[str]] | None = None
    #: the olcDbIndex values as configured, by lower-cased attribute (to rewrite them)
    index_lines: Mapping[str, str] = field(default_factory=dict)
    #: overlays (OpenLDAP) / enabled plugins (389 DS) among FEATURES
    features: frozenset[str] | None = None
    #: where the configuration lives: the mdb database DN, the 389 backend name, or AD's
    #: schema naming context
    config_dn: str = ""
    #: AD: lower-cased lDAPDisplayName -> (attributeSchema DN, searchFlags)
    schema_flags: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    #: the suffix of that database / backend
    suffix: str = ""
    #: OpenLDAP: the modules loaded in cn=config (lower-cased, without ".so"/".la")
    modules: frozenset[str] = frozenset()
    #: the schema defines memberOf (a hint when the configuration is unreadable)
    memberof_in_schema: bool = False
    #: 389 DS: the group attributes the MemberOf plugin follows (``memberOfGroupAttr``,
    #: lower-cased); None where unknown
    memberof_group_attrs: frozenset[str] | None = None
    #: why the configuration could not be read ("" when it was)
    unreadable: str = ""


def server_kind(root: Entry | None) -> str:
    """Recognise the server from its root DSE."""
    if root is None:
        return "unknown"
    classes = {v.lower() for v in _texts(root, "objectClass")}
    vendor = (root.text("vendorName") or "").lower()
    if "openldaprootdse" in classes or "openldap" in vendor:
        return "openldap"
    if "389" in vendor or "fedora" in vendor or "netscape" in vendor:
        return "389ds"
    caps = set(_texts(root, "supportedCapabilities"))
    if root.get("forestFunctionality") or _AD_CAPABILITY in caps:
        return "active-directory"
    return "unknown"


def read_facts(directory: Directory, mapping: MappingConfig, indexed: Sequence[str]) -> Facts:
    """Gather the facts (``indexed``: the attributes whose indexes matter); a part that cannot
    be read is left None with the reason."""
    attrs = [
        "objectClass",
        "vendorName",
        "supportedControl",
        "supportedCapabilities",
        "forestFunctionality",
        "schemaNamingContext",
        "subschemaSubentry",
    ]
    try:
        root = directory.read("", attrs)
    except DirectoryError as exc:
        return Facts("unknown", unreadable=f"cannot read the root DSE: {exc.code}")
    kind = server_kind(root)
    controls = frozenset(_texts(root, "supportedControl")) if root else frozenset()
    base = Facts(kind, controls, memberof_in_schema=_schema_has(directory, root, "memberOf"))
    bases = [r.base_dn for r in mapping.resources.values()]
    try:
        if kind == "openldap":
            return _openldap(directory, base, bases)
        if kind == "389ds":
            return _ds389(directory, base, bases)
        if kind == "active-directory" and root is not None:
            # AD answers DN values in extended form (<GUID=..>;dn) to the bridge's clients
            schema_nc = plain_dn(root.text("schemaNamingContext") or "")
            return _ad(directory, base, schema_nc, indexed)
    except DirectoryError as exc:
        return _replace(base, unreadable=f"{exc.code} {exc.message}".strip())
    return _replace(base, unreadable="the server is not recognised from its root DSE")


def _openldap(directory: Directory, base: Facts, bases: Sequence[str]) -> Facts:
    found = _search(directory, "cn=config", "(olcSuffix=*)", ["olcSuffix", "olcDbIndex"])
    db = _holding(found, "olcSuffix", bases)
    if db is None:
        return _replace(base, unreadable="cn=config is not readable by the bind account")
    indexes, lines = parse_olc_indexes(_texts(db, "olcDbIndex"))
    overlays = _search(directory, db.dn, "(objectClass=olcOverlayConfig)", ["olcOverlay"])
    names = {re.sub(r"^\{\d+\}", "", e.text("olcOverlay") or "").lower() for e in overlays}
    lists = _search(directory, "cn=config", "(objectClass=olcModuleList)", ["olcModuleLoad"])
    modules = {_module(v) for e in lists for v in _texts(e, "olcModuleLoad")}
    return _replace(
        base,
        indexes=indexes,
        index_lines=lines,
        features=frozenset(names) & set(FEATURES),
        config_dn=db.dn,
        suffix=_suffix(db, "olcSuffix", bases),
        modules=frozenset(modules),
    )


def _module(value: str) -> str:
    """``{1}memberof.la`` / ``/usr/lib/ldap/ppolicy.so`` -> ``memberof`` / ``ppolicy``."""
    name = re.sub(r"^\{\d+\}", "", value).rsplit("/", 1)[-1].lower()
    return re.sub(r"\.(la|so)$", "", name)


def parse_olc_indexes(values: Iterable[str]) -> tuple[dict[str, frozenset[str]], dict[str, str]]:
    """``olcDbIndex`` values (``attr[,attr...] [type[,type...]]``; ``default`` sets the types
    of values that name none) -> kinds per lower-cased attribute, and the raw value of each."""
    default: frozenset[str] = frozenset({"eq"})
    parsed: list[tuple[list[str], frozenset[str] | None, str]] = []
    for value in values:
        parts = value.split()
        attrs = [a.strip().lower() for a in parts[0].split(",") if a.strip()] if parts else []
        kinds = _kinds(parts[1]) if len(parts) > 1 else None
        if attrs == ["default"] and kinds is not None:
            default = kinds
            continue
        parsed.append((attrs, kinds, value))
    out: dict[str, frozenset[str]] = {}
    lines: dict[str, str] = {}
    for attrs, kinds, value in parsed:
        for attr in attrs:
            out[attr] = out.get(attr, frozenset()) | (kinds if kinds is not None else default)
            lines[attr] = value
    return out, lines


def _kinds(text: str) -> frozenset[str]:
    kinds = {k.strip().lower() for k in text.split(",") if k.strip()}
    if kinds & _SUB_TYPES:
        kinds.add("sub")
    return frozenset(kinds)


def _ds389(directory: Directory, base: Facts, bases: Sequence[str]) -> Facts:
    backends = _search(directory, _LDBM, "(nsslapd-suffix=*)", ["cn", "nsslapd-suffix"])
    backend = _holding(backends, "nsslapd-suffix", bases)
    if backend is None:
        return _replace(base, unreadable=f"{_LDBM} is not readable by the bind account")
    name = backend.text("cn") or ""
    entries = _search(directory, f"cn=index,{backend.dn}", "(objectClass=*)", ["cn", "nsIndexType"])
    indexes = {
        (e.text("cn") or "").lower(): _kinds(",".join(_texts(e, "nsIndexType")))
        for e in entries
        if e.get("nsIndexType")
    }
    enabled = set()
    group_attrs: frozenset[str] | None = None
    for feature, dn in _389_PLUGINS.items():
        plugin = directory.read(dn, ["nsslapd-pluginEnabled", "memberOfGroupAttr"])
        if plugin is not None and (plugin.text("nsslapd-pluginEnabled") or "").lower() == "on":
            enabled.add(feature)
        if feature == "memberof" and plugin is not None and plugin.get("memberOfGroupAttr"):
            # (absent = not readable by the bind account: the plugin always names one)
            group_attrs = frozenset(v.lower() for v in _texts(plugin, "memberOfGroupAttr"))
    suffix = _suffix(backend, "nsslapd-suffix", bases)
    return _replace(
        base,
        indexes=indexes,
        features=frozenset(enabled),
        config_dn=name,
        suffix=suffix,
        memberof_group_attrs=group_attrs,
    )


def _ad(directory: Directory, base: Facts, schema_nc: str, names: Sequence[str]) -> Facts:
    found = _search(
        directory,
        schema_nc,
        f"(&(objectClass=attributeSchema){any_of('lDAPDisplayName', names)})",
        ["lDAPDisplayName", "searchFlags", "linkID"],
    )
    flags = {
        (e.text("lDAPDisplayName") or "").lower(): (e.dn, int(e.text("searchFlags") or 0))
        for e in found
    }
    # fATTINDEX (bit 1) indexes the attribute for equality and initial substrings; linked
    # attributes (member/memberOf: a linkID) are searched through AD's link table instead
    linked = {(e.text("lDAPDisplayName") or "").lower() for e in found if e.get("linkID")}
    indexes = {a: frozenset({"eq", "sub"}) for a, (_, f) in flags.items() if f & 1}
    indexes.update({a: frozenset({"eq"}) for a in linked if a not in indexes})
    # AD maintains memberOf (a back-link) and member references itself: no overlay to add
    return _replace(
        base,
        indexes=indexes,
        features=frozenset({"memberof", "refint"}),
        config_dn=schema_nc,
        schema_flags=flags,
    )


def _search(directory: Directory, base: str, flt: str, attrs: Sequence[str]) -> list[Entry]:
    try:
        # bounded, hence unpaged: cn=config refuses the (critical) paged-results control
        return directory.search(base, flt, attrs, scope="sub", size_limit=_CONFIG_LIMIT).entries
    except DirectoryError as exc:
        if exc.code in ("noSuchObject", "insufficientAccessRights"):
            return []
        raise


def _holding(entries: Sequence[Entry], attr: str, bases: Sequence[str]) -> Entry | None:
    """The entry whose suffix (``attr``) holds the base DNs: the longest that holds most."""
    best: tuple[int, int, Entry] | None = None
    for e in entries:
        for suffix in _texts(e, attr):
            held = sum(1 for b in bases if is_under(normalize_dn(b), normalize_dn(suffix)))
            key = (held, len(suffix))
            if held and (best is None or key > best[:2]):
                best = (held, len(suffix), e)
    return best[2] if best else None


def _suffix(entry: Entry, attr: str, bases: Sequence[str]) -> str:
    held = [s for s in _texts(entry, attr) if any(is_under(b, s) for b in bases)]
    return held[0] if held else ""


def _schema_has(directory: Directory, root: Entry | None, attr: str) -> bool:
    subschema = plain_dn(root.text("subschemaSubentry") or "") if root else None
    if not subschema:
        return False
    try:
        entry = directory.read(subschema, ["attributeTypes"])
    except DirectoryError:
        return False
    from bridge.service.mapcheck import schema_names

    return entry is not None and attr.lower() in schema_names(entry.get("attributeTypes"))


def _texts(entry: Entry | None, attr: str) -> list[str]:
    return [v.decode("utf-8", "replace") for v in entry.get(attr)] if entry else []


def _replace(facts: Facts, **changes: object) -> Facts:
    from dataclasses import replace

    return replace(facts, **changes)  # type: ignore[arg-type]
