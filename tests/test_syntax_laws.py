"""Laws of the one escaping module (bridge/directory/syntax.py), for any Unicode string:

* a value escaped with ``escape_filter`` reaches the wire as exactly its UTF-8 bytes, through
  ldap3's own filter parser and encoder (which strips unescaped whitespace);
* a value escaped with ``rdn_of`` is parsed back identically by our RFC 4514 parser AND by
  ldap3's ``safe_dn`` (which Connection.add/modify_dn run on every DN), and never adds an RDN.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ldap3.operation.search import parse_filter
from ldap3.utils.dn import parse_dn, safe_dn

from bridge.directory.syntax import escape_filter, rdn_of, split_rdn
from tests.test_hostile_values import hostile_text

names = hostile_text.filter(lambda s: "\x00" not in s and s != "")


def unescape(value: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(value):
        if value[i : i + 1] == b"\\":
            out.append(int(value[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(value[i])
            i += 1
    return bytes(out)


@settings(max_examples=500, deadline=None)
@given(value=hostile_text)
def test_filter_value_reaches_the_wire_unchanged(value: str) -> None:
    for flt in (f"(uid={escape_filter(value)})", f"(&(objectClass=*)(uid={escape_filter(value)}))"):
        node = parse_filter(flt, None, True, True, None, False)
        leaf = node.elements[0]
        while leaf.elements:
            leaf = leaf.elements[-1]
        assert leaf.assertion["attr"] == "uid"
        raw = leaf.assertion["value"]
        raw = raw if isinstance(raw, bytes) else raw.encode("utf-8")
        assert unescape(raw) == value.encode("utf-8")


@settings(max_examples=500, deadline=None)
@given(value=names)
def test_rdn_round_trips_through_both_parsers(value: str) -> None:
    dn = f"{rdn_of('uid', value)},ou=people,dc=example,dc=org"
    attr, back, parent = split_rdn(dn)
    assert (attr, back, parent) == ("uid", value, "ou=people,dc=example,dc=org")
    parts = parse_dn(safe_dn(dn), escape=False)
    assert len(parts) == 4, parts
    assert parts[1:] == [("ou", "people", ","), ("dc", "example", ","), ("dc", "org", "")]
    assert split_rdn(safe_dn(dn))[1] == value


_dn_chars = st.sampled_from(list('aZ09 -_.=,+\\"<>;#\t\n\xa0\u2000\x85\x1cİéß'))
_rdn = st.builds(
    lambda a, v: f"{a}={v}",
    st.sampled_from(["cn", "uid", "OU", "dc", "2.5.4.3", " cn"]),
    st.text(alphabet=_dn_chars, max_size=8) | hostile_text,
)


@settings(max_examples=2000, deadline=None)
@given(dn=st.lists(_rdn, min_size=1, max_size=4).map(",".join) | hostile_text)
def test_simple_dn_fast_path_normalizes_like_the_parser(dn: str) -> None:
    """dn_path lower-cases DNs with nothing to (un)escape instead of parsing them: the same
    normalized RDNs as the full RFC 4514 parse, for every DN the fast path accepts."""
    from bridge.directory.syntax import (
        _SIMPLE_DN,
        _parsed_path,
        _rdns,
        dn_path,
        normalize_dn,
        parent_dn,
    )
    from bridge.errors import InvalidValue

    try:
        expected = _parsed_path(dn)
    except InvalidValue:  # e.g. NUL in a value: never a simple DN
        assert not _SIMPLE_DN.fullmatch(dn)
        return
    assert dn_path(dn) == expected
    assert normalize_dn(dn) == ",".join(expected[::-1])  # also when its fast path skips dn_path
    if _SIMPLE_DN.fullmatch(dn):
        assert dn_path(dn) == tuple(p.lower() for p in reversed(dn.split(",")))
        assert parent_dn(dn) == ",".join(text for _, _, text in _rdns(dn)[1:])
        attr, value, _ = _rdns(dn)[0]
        assert split_rdn(dn) == (attr, value, ",".join(text for _, _, text in _rdns(dn)[1:]))


_simple_rdn = st.builds(
    lambda a, v: f"{a}={v}",
    st.sampled_from(["cn", "OU", "dc", "uid"]),
    st.sampled_from(["a", "B", "x y", "é"]),
)


@settings(max_examples=500, deadline=None)
@given(
    dn=st.lists(_simple_rdn | _rdn, min_size=1, max_size=4).map(",".join),
    base=st.lists(_simple_rdn | _rdn, min_size=1, max_size=3).map(",".join),
    scope=st.sampled_from(["one", "sub"]),
    below=st.booleans(),
)
def test_in_scope_fast_path_answers_like_the_rdn_comparison(
    dn: str, base: str, scope: str, below: bool
) -> None:
    """in_scope compares simple DNs as strings; the answer is the RDN-by-RDN one."""
    from bridge.directory.syntax import dn_path, in_scope
    from bridge.errors import InvalidValue

    if below:  # often a DN below (or equal to) the base, with the base's case changed
        dn = f"{dn},{base.upper()}" if dn != base else base.swapcase()
    try:
        pd, pb = dn_path(dn), dn_path(base)
    except InvalidValue:  # NUL: refused either way
        with pytest.raises(InvalidValue):
            in_scope(dn, base, scope)
        return
    expected = pd[: len(pb)] == pb and (len(pd) == len(pb) + 1 if scope == "one" else True)
    assert in_scope(dn, base, scope) is expected
