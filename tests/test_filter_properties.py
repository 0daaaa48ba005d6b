"""Laws of the filter translation (hypothesis):

* every LDAP filter it produces parses with ldap3's own RFC 4515 parser and is balanced;
* a random string used as a ``userName eq`` value matches only the entry holding exactly that
  value (embedded directory and real slapd) - escaping never lets a value match more.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ldap3.operation.search import parse_filter
from starlette.testclient import TestClient

from bridge.errors import ScimError
from bridge.mapping.load import load_mapping
from bridge.mapping.model import MappingConfig
from bridge.scim.filter import And, AttrPath, Compare, Filter, Not, Or, Present, ValuePath, render
from bridge.translate.filter import to_ldap
from tests.conftest import OPENLDAP_MAP, Backend
from tests.helpers import SCIM, create_user

MAPPING: MappingConfig = load_mapping(OPENLDAP_MAP)
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

PATHS = [
    AttrPath(None, "userName"),
    AttrPath(None, "title"),
    AttrPath(None, "displayName"),
    AttrPath(None, "externalId"),
    AttrPath(None, "name", "givenName"),
    AttrPath(None, "emails", "value"),
    AttrPath(None, "emails"),
    AttrPath(None, "phoneNumbers", "value"),
    AttrPath(None, "phoneNumbers", "type"),
    AttrPath(None, "active"),
    AttrPath(None, "id"),
    AttrPath(None, "meta", "lastModified"),
    AttrPath(ENTERPRISE, "department"),
    AttrPath(None, "groups", "value"),
    AttrPath(None, "nickName"),  # unmapped: must be refused, never dropped
]
OPS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
values = st.one_of(
    text,
    st.sampled_from(["2024-01-31T12:00:00Z", "6ea39cb4-8003-1041-8352-9b389f75569e", "work"]),
    st.booleans(),
    st.integers(-5, 5),
    st.none(),
)
leaves: st.SearchStrategy[Filter] = st.one_of(
    st.builds(Present, st.sampled_from(PATHS)),
    st.builds(Compare, st.sampled_from(PATHS), st.sampled_from(OPS), values),
)
in_element = st.one_of(
    st.builds(Present, st.sampled_from([AttrPath(None, "value"), AttrPath(None, "type")])),
    st.builds(
        Compare,
        st.sampled_from([AttrPath(None, "value"), AttrPath(None, "type")]),
        st.sampled_from(OPS),
        values,
    ),
)
value_paths = st.builds(
    ValuePath,
    st.sampled_from([AttrPath(None, "emails"), AttrPath(None, "phoneNumbers")]),
    st.recursive(in_element, lambda c: st.builds(And, c, c) | st.builds(Or, c, c), max_leaves=3),
)
filters: st.SearchStrategy[Filter] = st.recursive(
    st.one_of(leaves, value_paths),
    lambda c: st.builds(And, c, c) | st.builds(Or, c, c) | st.builds(Not, c),
    max_leaves=8,
)


def _resolver(targets: Any, rid: str) -> str | None:
    return None if rid.startswith("x") else f"cn={rid},ou=groups,dc=example,dc=org"


@settings(max_examples=400, deadline=None)
@given(filters)
def test_every_generated_filter_parses_back(f: Filter) -> None:
    rmap = MAPPING.resource("User")
    try:
        flt = to_ldap(rmap, f, MAPPING, _resolver)
    except ScimError as exc:
        assert exc.status == 400 and exc.scim_type == "invalidFilter"
        return
    depth = 0
    for ch in flt:
        depth += (ch == "(") - (ch == ")")
        assert depth >= 0
    assert depth == 0
    # ldap3's own parser, without auto-escaping: an unescaped special character fails here
    node = parse_filter(
        f"(&{rmap.base_filter}{flt})",
        None,
        auto_escape=False,
        auto_encode=True,
        validator=None,
        check_names=False,
    )
    assert node.elements
    # and the SCIM side is stable too: translating the rendered filter gives the same LDAP
    assert to_ldap(rmap, render(f), MAPPING, _resolver) == flt


@settings(max_examples=200, deadline=None)
@given(filters)
def test_unmapped_attributes_are_never_dropped(f: Filter) -> None:
    rmap = MAPPING.resource("User")
    mentions = "nickName" in render(f)
    try:
        to_ldap(rmap, f, MAPPING, _resolver)
    except ScimError as exc:
        assert exc.status == 400
        return
    assert not mentions, "a filter naming an unmapped attribute was translated"


def ascii_if_refused(backend: Backend, name: str) -> str:
    """``name``, or with its non-ASCII characters replaced by ``_`` where the directory refuses
    them in the userName (the non-ASCII case runs on the other directories)."""
    if name.isascii() or not backend.refuses_non_ascii("userName"):
        return name
    return "".join(c if c.isascii() else "_" for c in name)


names = st.text(
    st.characters(exclude_categories=("Cs", "Cc", "Cf", "Zl", "Zp", "Co", "Cn")),
    min_size=1,
    max_size=16,
).filter(lambda s: s.strip() == s and "  " not in s and s.strip())


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=names)
def test_random_username_matches_only_itself(
    client: TestClient, backend: Backend, name: str
) -> None:
    """Decoys share the value as prefix/suffix/infix: an escaping bug (``*`` or ``(``) or a
    substring match would return them too.  Where the directory refuses non-ASCII user names
    (389 DS's 7-bit check) they are ASCII with the same special characters."""
    name = ascii_if_refused(backend, name)
    assume(name.lower() not in {"decoy"})
    created: list[str] = []
    for n in (name, f"{name}x", f"x{name}", f"a{name}b"):
        r = client.post(f"{SCIM}/Users", json={"userName": n})
        if r.status_code == 409:
            continue
        assert r.status_code == 201, (n, r.text)
        created.append(r.json()["id"])
    try:
        flt = 'userName eq "' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        r = client.get(f"{SCIM}/Users", params={"filter": flt})
        assert r.status_code == 200, r.text
        found = [u["userName"] for u in r.json()["Resources"]]
        assert [f.lower() for f in found] == [name.lower()], (name, found)
    finally:
        for rid in created:
            client.delete(f"{SCIM}/Users/{rid}")


@pytest.mark.parametrize("name", ["a*", "*", "(", ")", "\\", "a\\2a", "*)(uid=*", "é*ü"])
def test_special_usernames_match_only_themselves(
    client: TestClient, backend: Backend, name: str
) -> None:
    if ascii_if_refused(backend, name) != name:
        r = client.post(f"{SCIM}/Users", json={"userName": name})
        assert r.status_code == 400 and "7-bit" in r.json()["detail"], r.text
        name = ascii_if_refused(backend, name)
    create_user(client, name)
    create_user(client, name + "tail")
    flt = 'userName eq "' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    r = client.get(f"{SCIM}/Users", params={"filter": flt})
    assert [u["userName"] for u in r.json()["Resources"]] == [name]


def _outcome(read: Any, text: str) -> Filter | str:
    try:
        return read(text)  # type: ignore[no-any-return]
    except ScimError:
        return "refused"


_NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,6}", fullmatch=True)
plain_eq = st.builds(
    lambda name, sub, eq, value: f'{name}{sub} {eq} "{value}"',
    _NAMES,
    st.one_of(st.just(""), _NAMES.map(lambda n: "." + n)),
    st.sampled_from(["eq", "EQ", "Eq", "eQ"]),
    st.one_of(  # quotes, escapes, controls and lone surrogates, and any other characters
        st.text(st.sampled_from('\\"\x00\x1f\x7fun\ud800\udfff é'), max_size=6),
        st.text(st.characters(), max_size=10),
    ),
)
near_misses = st.builds(
    lambda name, sub, space, op, quote, value: (
        f"{name}{sub}{space}{op}{space}{quote}{value}{quote}"
    ),
    st.sampled_from(["userName", "1bad", "$ref", "urn:a:b:userName", "a b", ""]),
    st.sampled_from(["", ".givenName", ".", ".a.b"]),
    st.sampled_from([" ", "  ", "\t"]),
    st.sampled_from(["eq", "ne", "pr", "eqq"]),
    st.sampled_from(['"', "'", ""]),
    st.text(st.characters(), max_size=6),
)


@given(st.one_of(plain_eq, near_misses))
def test_the_plain_eq_fast_path_reads_what_the_parser_reads(text: str) -> None:
    """``parse`` reads ``attr eq "value"`` without the tokenizer: for every text, the same AST
    as the full parser, or the same refusal."""
    from bridge.scim.filter_parser import FilterParser, parse

    def full(t: str) -> Filter:
        from bridge.scim._syntax import Problem
        from bridge.scim.filter_parser import FilterSyntaxError

        try:
            return FilterParser(t, "filter", max_depth=32, max_terms=128).whole()
        except Problem as problem:
            raise FilterSyntaxError(t, problem.pos + 1, problem.message()) from None

    assert _outcome(parse, text) == _outcome(full, text)
