"""Range retrieval of large multi-valued attributes (MS-ADTS §3.1.1.3.1.3.3, "range" option).

Active Directory returns at most MaxValRange (1500 on Windows Server 2008+, 5000 on some
configurations) values of an attribute per read.  Beyond that it answers ``member;range=0-1499``
(and an empty ``member``) and the client must ask for ``member;range=1500-*`` and so on until the
returned range ends in ``*``.  ldap3's own loop (``auto_range``) stops silently when a follow-up
read fails and hands back a truncated member list; this loop raises instead, checks that each
answer continues where the previous one ended, and is a pure function so it is tested without a
server.  The ldap3 client calls it with ``auto_range`` off.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bridge.errors import DirectoryError

# "member;range=0-1499", "member;range=1500-*"; other options (";binary") may precede "range".
# Always written in lower case: Samba ignores "Range=" (tests/integration/SAMBA.md).
_RANGED = re.compile(
    r"^(?P<attr>[^;]+(?:;(?!range=)[^;]+)*);range=(?P<lo>\d+)-(?P<hi>\d+|\*)$", re.I
)

#: a safety net against a server that never ends a range (1500 values per round: 15M values)
MAX_ROUNDS = 10_000


@dataclass(frozen=True)
class Ranged:
    attr: str
    low: int
    high: int | None  # None = "*": the last range


def parse_ranged(name: str) -> Ranged | None:
    m = _RANGED.match(name)
    if m is None:
        return None
    hi = m["hi"]
    return Ranged(m["attr"], int(m["lo"]), None if hi == "*" else int(hi))


#: fetch(dn, "member;range=1500-*") -> the raw attributes of the entry at dn
Fetch = Callable[[str, str], Mapping[str, Sequence[bytes]]]


def complete_ranges(
    dn: str, raw: Mapping[str, Sequence[bytes]], fetch: Fetch
) -> dict[str, list[bytes]]:
    """The entry's attributes with every ranged attribute read to the end, keyed by the
    lower-cased attribute name without the range option."""
    out: dict[str, list[bytes]] = {}
    pending: list[Ranged] = []
    for name, values in raw.items():
        ranged = parse_ranged(name)
        key = (ranged.attr if ranged else name).lower()
        out.setdefault(key, []).extend(values)
        if ranged is not None and ranged.high is not None:
            pending.append(ranged)
    for ranged in pending:
        out[ranged.attr.lower()].extend(_rest(dn, ranged, fetch))
    return out


def _rest(dn: str, first: Ranged, fetch: Fetch) -> list[bytes]:
    values: list[bytes] = []
    high = first.high
    for _ in range(MAX_ROUNDS):
        if high is None:
            return values
        start = high + 1
        got = fetch(dn, f"{first.attr};range={start}-*")
        step: Ranged | None = None
        chunk: Sequence[bytes] = ()
        for name, vals in got.items():
            ranged = parse_ranged(name)
            if ranged is not None and ranged.attr.lower() == first.attr.lower():
                step, chunk = ranged, vals
                break
        if step is None:
            # A start past the last value: AD/Samba answer with no ranged attribute at all.
            return values
        if step.low != start or (step.high is not None and (step.high < step.low or not chunk)):
            raise DirectoryError(
                "other",
                f"range retrieval of {first.attr} out of step: asked from {start}, got "
                f"{step.low}-{'*' if step.high is None else step.high}",
                dn=dn,
                operation="search",
            )
        values.extend(chunk)
        high = step.high
    raise DirectoryError(
        "other", f"range retrieval of {first.attr} did not end", dn=dn, operation="search"
    )
