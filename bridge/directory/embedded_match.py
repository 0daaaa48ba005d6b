"""How the embedded directory matches and orders entries: RFC 4515 filters evaluated with the
equality rules slapd applies to the attributes the bridge uses (caseIgnore, distinguishedName;
userPassword compared exactly), and server-side sorting (RFC 2891)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ldap3.core.exceptions import LDAPInvalidFilterError
from ldap3.operation.search import (
    AND,
    MATCH_APPROX,
    MATCH_EQUAL,
    MATCH_EXTENSIBLE,
    MATCH_GREATER_OR_EQUAL,
    MATCH_LESS_OR_EQUAL,
    MATCH_PRESENT,
    MATCH_SUBSTRING,
    NOT,
    OR,
    ROOT,
    parse_filter,
)

from bridge.directory.base import SortKey
from bridge.directory.syntax import normalize_dn
from bridge.errors import DirectoryError

DN_VALUED = {
    "member",
    "uniquemember",
    "manager",
    "memberof",
    "owner",
    "seealso",
    "secretary",
    "entrydn",
    "creatorsname",
    "modifiersname",
}


def norm_value(attr: str, raw: bytes) -> str:
    """Equality key per the attribute's matching rule (caseIgnore / distinguishedName)."""
    text = raw.decode("utf-8", "replace")
    if attr in DN_VALUED:
        return normalize_dn(text)
    if attr == "userpassword":
        return text
    return " ".join(text.split()).lower()


def matches(entry: Mapping[str, Any], node: Any) -> bool:
    """Whether ``entry`` (lower-cased keys) matches the parsed filter ``node``."""
    tag = node.tag
    if tag == ROOT:
        return matches(entry, node.elements[0])
    if tag == AND:
        return all(matches(entry, e) for e in node.elements)
    if tag == OR:
        return any(matches(entry, e) for e in node.elements)
    if tag == NOT:
        return not matches(entry, node.elements[0])
    attr = node.assertion["attr"].lower()
    vals: list[bytes] = entry.get(attr, [])
    if tag == MATCH_PRESENT:
        return attr == "objectclass" or bool(vals)
    if tag in (MATCH_EQUAL, MATCH_APPROX):
        want = norm_value(attr, _raw(node.assertion["value"]))
        return any(norm_value(attr, v) == want for v in vals)
    if tag == MATCH_SUBSTRING:
        return any(_substring(norm_value(attr, v), node.assertion, attr) for v in vals)
    if tag in (MATCH_GREATER_OR_EQUAL, MATCH_LESS_OR_EQUAL):
        want = norm_value(attr, _raw(node.assertion["value"]))
        ge = tag == MATCH_GREATER_OR_EQUAL
        return any(_ordered(norm_value(attr, v), want, ge) for v in vals)
    rule = str(node.assertion.get("matchingRule") or "").lower()
    if tag == MATCH_EXTENSIBLE and rule == "caseignoreorderingmatch" and attr:
        # an ORDERING rule in an extensible match holds when value < assertion (X.501);
        # slapd answers string gt/lt this way (uid, cn have no ORDERING rule of their own)
        want = norm_value(attr, _raw(node.assertion["value"]))
        return any(norm_value(attr, v) < want for v in vals)
    if tag == MATCH_EXTENSIBLE:
        raise DirectoryError(
            "inappropriateMatching",
            "extensible match is not supported by the embedded directory",
            operation="search",
        )
    return False


def _raw(value: Any) -> bytes:
    """An assertion value as bytes, with RFC 4515 ``\\XX`` escapes decoded."""
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
    if b"\\" not in raw:
        return raw
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i : i + 1] == b"\\" and i + 2 < len(raw) + 1:
            try:
                out.append(int(raw[i + 1 : i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        out.append(raw[i])
        i += 1
    return bytes(out)


def parse(text: str) -> Any:
    try:
        return parse_filter(
            text, None, auto_escape=False, auto_encode=True, validator=None, check_names=False
        )
    except LDAPInvalidFilterError as exc:
        raise DirectoryError("filterError", str(exc), operation="search") from None


def _substring(value: str, assertion: Mapping[str, Any], attr: str) -> bool:
    def norm(x: Any) -> str:
        return norm_value(attr, _raw(x)) if x is not None else ""

    pos = 0
    initial = assertion.get("initial")
    if initial is not None:
        init = norm(initial)
        if not value.startswith(init):
            return False
        pos = len(init)
    for middle in assertion.get("any") or ():
        idx = value.find(norm(middle), pos)
        if idx < 0:
            return False
        pos = idx + len(norm(middle))
    final = assertion.get("final")
    if final is not None:
        fin = norm(final)
        return value.endswith(fin) and len(value) - len(fin) >= pos
    return True


def _ordered(value: str, want: str, ge: bool) -> bool:
    try:
        a, b = int(value), int(want)
        return a >= b if ge else a <= b
    except ValueError:
        return value >= want if ge else value <= want


def sort_entries(
    entries: Iterable[dict[str, Any]], keys: Sequence[SortKey]
) -> list[dict[str, Any]]:
    out = list(entries)
    for key in reversed(keys):
        attr = key.attr.lower()
        present = [e for e in out if e.get(attr)]
        absent = [e for e in out if not e.get(attr)]
        present.sort(
            key=lambda e, a=attr: norm_value(a, min(e[a])),  # type: ignore[misc]
            reverse=key.reverse,
        )
        out = present + absent  # entries without the key sort last (RFC 2891 §1.1)
    return out
