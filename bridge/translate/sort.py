"""Sorting in the bridge, for directories without the server-side sort control (RFC 2891).

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
from bridge.mapping.model import ResourceMap

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
