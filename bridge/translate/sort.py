"""Sorting (RFC 7644 §3.4.2.3): the server-side sort keys for ``sortBy`` (:func:`sort_keys`,
RFC 2891), and the same order computed in the bridge for directories without the sort control.

A bare OpenLDAP (no sssvlv overlay) cannot order a search, so ``sortBy`` (RFC 7644 §3.4.2.3)
is done here on a result set the caller has bounded (``filter.maxResults``).  The order follows
what the directory's sort would give and the SCIM attribute's semantics:

* strings compare case-insensitively unless the SCIM attribute is ``caseExact``;
* ``integer`` values compare as numbers; other codecs (datetime as GeneralizedTime, uuid,
  boolean) compare as their stored text, which orders them;
* of a multi-valued attribute the smallest value sorts ascending, the largest descending;
* an entry without the attribute sorts after every value (RFC 2891 §2.2: a missing value is
  larger than any other), so last ascending and first descending;
* the sort is stable: entries equal on every key keep the directory's order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bridge.directory.base import Entry, SortKey
from bridge.errors import InvalidValue
from bridge.mapping.model import MappingConfig, ResourceMap
from bridge.scim.filter import AttrPath

Key = Callable[[Entry], tuple[int, Any]]


def sort_entries(
    rmap: ResourceMap, entries: Sequence[Entry], keys: Sequence[SortKey]
) -> list[Entry]:
    """``entries`` ordered by ``keys`` (first key most significant), stable."""
    out = list(entries)
    for key in reversed(keys):  # successive stable sorts: the last applied is the primary key
        out.sort(key=_key(rmap, key), reverse=key.reverse)
    return out


def _key(rmap: ResourceMap, key: SortKey) -> Key:
    maps = rmap.maps_for_ldap(key.attr)
    numeric = any(m.codec.name == "integer" for m in maps)
    case_exact = any(m.definition.case_exact for m in maps)
    pick = max if key.reverse else min

    def norm(raw: bytes) -> Any:
        text = raw.decode("utf-8", "replace")
        if numeric:
            try:
                return (0, int(text))
            except ValueError:
                return (1, text)
        return (0, text if case_exact else text.casefold())

    def of(entry: Entry) -> tuple[int, Any]:
        values = entry.get(key.attr)
        if not values:
            return (1, ())  # missing: larger than any value
        return (0, pick(norm(v) for v in values))

    return of


# ---------------------------------------------------------------------------- sort keys
def _sort_path(text: str) -> AttrPath:
    text = text.strip()
    schema, colon, rest = text.rpartition(":")
    attr, dot, sub = rest.partition(".")
    if not attr or (dot and not sub):
        raise InvalidValue(f"sortBy {text!r} is not an attribute path")
    return AttrPath(schema if colon else None, attr, sub if dot else None)


def sort_attribute(rmap: ResourceMap, sort_by: str) -> str:
    """The LDAP attribute to sort by for ``sortBy`` (RFC 7644 §3.4.2.3).  A multi-valued
    attribute sorts by its primary value (``emails`` -> the primary email mapping) as the RFC
    says; an unmapped or unsortable attribute is a 400 invalidValue naming it."""
    path = _sort_path(sort_by)
    core = path.schema is None or path.schema.lower() == rmap.schema.lower()
    if core and path.attr.lower() == "id" and path.sub is None:
        return rmap.id.ldap
    if core and path.attr.lower() == "meta":
        found = {"lastmodified": rmap.last_modified, "created": rmap.created}.get(
            (path.sub or "").lower()
        )
        if found is None:
            raise InvalidValue(f"sortBy {sort_by}: only meta.created and meta.lastModified sort")
        return found
    schema = None
    if path.schema is not None:
        schema = next((s for s in rmap.schemas if s.lower() == path.schema.lower()), None)
        if schema is None:
            raise InvalidValue(f"sortBy {sort_by}: unknown schema {path.schema}")
    maps = rmap.maps_for(path.attr, schema)
    if maps and maps[0].parent.type == "complex":
        want = (path.sub or ("value" if maps[0].parent.multi_valued else "")).lower()
        maps = tuple(m for m in maps if (m.sub or "").lower() == want)
        maps = tuple(sorted(maps, key=lambda m: not m.primary))  # primary first
    elif path.sub is not None:
        maps = ()
    if not maps:
        raise InvalidValue(f"sortBy {sort_by} is not a mapped attribute of {rmap.name}")
    m = maps[0]
    if m.returned == "never" or m.codec.write_only:
        raise InvalidValue(f"sortBy {sort_by}: {m.path} is never returned: it cannot sort")
    unsortable = m.codec.name in ("password", "ppolicy-lock", "nsaccountlock")
    if m.is_reference or unsortable or m.codec.binary:
        raise InvalidValue(f"sortBy {sort_by}: {m.attr} cannot be sorted by the directory")
    return m.ldap


def sort_keys(
    rmap: ResourceMap, mapping: MappingConfig, sort_by: str | None, descending: bool
) -> tuple[SortKey, ...]:
    """Server-side sort keys (RFC 2891) for a list.  Without ``sortBy`` the order is by the RDN
    attribute; the id is appended as a tie-breaker so pages are stable even when many entries
    share a value (OpenLDAP only: AD accepts a single sort key)."""
    attr = sort_attribute(rmap, sort_by) if sort_by else rmap.rdn.ldap
    keys = [SortKey(attr, descending, _ordering_rule(rmap, mapping, attr))]
    if mapping.dialect.sort_tie_breaker and attr.lower() != rmap.id.ldap.lower():
        keys.append(SortKey(rmap.id.ldap, descending))
    return tuple(keys)


def _ordering_rule(rmap: ResourceMap, mapping: MappingConfig, attr: str) -> str | None:
    rule = mapping.dialect.ordering_rule
    own_order = {rmap.created.lower(), rmap.last_modified.lower()}  # generalizedTimeOrdering
    if rmap.id.codec.name in ("uuid", "guid"):
        own_order.add(rmap.id.ldap.lower())  # entryUUID: UUIDOrderingMatch
    if rule is None or attr.lower() in own_order:
        return None
    codecs = {m.codec.name for m in rmap.maps_for_ldap(attr)}
    return rule if not codecs or codecs <= {"string"} else None
