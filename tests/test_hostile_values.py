"""Injection laws (hypothesis), on the embedded directory AND a real slapd, through HTTP.

* Any Unicode string given as ``userName`` (the RDN of a User) or ``displayName`` (the RDN of a
  Group, and a plain attribute of a User) is stored and read back exactly, or refused with a
  400 before anything is written.  The bridge refuses NUL (U+0000) in every string value, and
  any control or format character (Cc, Cf) in these two identifier-like attributes.
* Every entry a write creates or renames lies directly below the mapped base DN: checked by an
  independent search of the whole suffix, not through the bridge.
* A filter value never matches an entry whose value does not match it literally: decoys full of
  LDAP filter metacharacters are never returned for a value they do not equal / contain.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from bridge.directory.syntax import dn_equal, parent_dn
from tests.conftest import Backend
from tests.helpers import GROUP_SCHEMA, SCIM, USER_SCHEMA

SUFFIX = "dc=example,dc=org"
PEOPLE = "ou=people,dc=example,dc=org"
GROUPS = "ou=groups,dc=example,dc=org"

#: the characters that matter to RFC 4514/4515 and to whitespace handling, heavily weighted
SPECIAL = [*'*()\\\x00,+="<>;#/ \n\r\t', "\\2a", "\\5c", "\\00", "\u00a0", "\u200b"]
hostile_text = st.lists(
    st.one_of(
        st.sampled_from(SPECIAL),
        st.characters(exclude_categories=("Cs",)),  # any code point incl. astral, controls
        st.sampled_from(["é", "\U0001d518", "日本", "ﬁ", "İ", "ß", "a", "Z"]),
    ),
    min_size=1,
    max_size=24,
).map("".join)

#: examples per law; the nightly-style run sets BRIDGE_FUZZ_EXAMPLES (e.g. 2000)
EXAMPLES = int(os.environ.get("BRIDGE_FUZZ_EXAMPLES", "60"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def suffix_dns(backend: Backend) -> set[str]:
    """Every DN under the suffix, read without the bridge's service layer."""
    if backend.info is None:
        found = backend.directory.search(SUFFIX, "(objectClass=*)", ["1.1"]).entries
        return {e.dn for e in found}
    return {e.entry_dn for e in backend.independent_search(SUFFIX, "(objectClass=*)", ["1.1"])}


def assert_refused(client: TestClient, r: Any, value: str) -> None:
    if r.status_code == 201:  # clean up before failing, so the next example starts clean
        made = r.json()
        client.delete(f"{SCIM}/{made['meta']['resourceType']}s/{made['id']}")
    assert r.status_code == 400, (value, r.status_code, r.text)
    body = r.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body.get("scimType") in ("invalidValue", "invalidSyntax"), body


def has_control(value: str) -> bool:
    """C0/C1 controls, DEL (Cc) or invisible format characters (Cf): refused in the
    identifier-like userName and displayName (issue 16)."""
    return any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value)


def expected_refusal(value: str) -> bool:
    """What the bridge refuses up front in a userName or a group's displayName: NUL or
    another control or format character anywhere, or nothing left to name an entry."""
    return "\x00" in value or has_control(value) or value.strip() == ""


def check_new_entries(before: set[str], after: set[str], base: str) -> set[str]:
    new = after - before
    for dn in new:
        assert dn_equal(parent_dn(dn), base), f"write landed outside {base}: {dn!r}"
    return new


def seven_bit_refusal(backend: Backend, user_name: str) -> bool:
    """389 DS's 7-bit check plugin refuses a non-ASCII uid (the userName) with a 400."""
    return not user_name.isascii() and backend.refuses_non_ascii("userName")


def _user_roundtrip(client: TestClient, backend: Backend, user_name: str, display: str) -> None:
    before = suffix_dns(backend)
    body = {"schemas": [USER_SCHEMA], "userName": user_name, "displayName": display}
    r = client.post(f"{SCIM}/Users", json=body)
    if expected_refusal(user_name) or has_control(display):
        assert_refused(client, r, user_name)
        assert suffix_dns(backend) == before, "a refused request wrote something"
        return
    if seven_bit_refusal(backend, user_name):
        assert_refused(client, r, user_name)
        assert "7-bit" in r.json()["detail"], r.text
        assert suffix_dns(backend) == before, "a refused request wrote something"
        # the same name with its non-ASCII characters replaced still goes the whole way
        folded = "".join(c if c.isascii() else "_" for c in user_name)
        if not expected_refusal(folded):
            _user_roundtrip(client, backend, folded, display)
        return
    assert r.status_code == 201, (user_name, display, r.text)
    created = r.json()
    try:
        assert created["userName"] == user_name
        assert created["displayName"] == display
        new = check_new_entries(before, suffix_dns(backend), PEOPLE)
        assert len(new) == 1
        got = client.get(f"{SCIM}/Users/{created['id']}").json()
        assert (got["userName"], got["displayName"]) == (user_name, display)
        flt = f"userName eq {json.dumps(user_name)}"
        found = client.get(f"{SCIM}/Users", params={"filter": flt}).json()["Resources"]
        assert [u["id"] for u in found] == [created["id"]], (user_name, found)
        # a rename to another hostile value stays below the base DN too
        renamed = user_name[::-1] + "~"
        r = client.put(
            f"{SCIM}/Users/{created['id']}",
            json={"schemas": [USER_SCHEMA], "userName": renamed, "displayName": display},
        )
        assert r.status_code == 200, (renamed, r.text)
        assert r.json()["userName"] == renamed
        check_new_entries(before, suffix_dns(backend), PEOPLE)
    finally:
        assert client.delete(f"{SCIM}/Users/{created['id']}").status_code == 204
    assert suffix_dns(backend) == before


def test_any_username_and_display_name_round_trip(client: TestClient, backend: Backend) -> None:
    @SETTINGS
    @given(user_name=hostile_text, display=hostile_text)
    def run(user_name: str, display: str) -> None:
        _user_roundtrip(client, backend, user_name, display)

    run()


def _group_roundtrip(client: TestClient, backend: Backend, name: str) -> None:
    before = suffix_dns(backend)
    r = client.post(f"{SCIM}/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": name})
    if expected_refusal(name):
        assert_refused(client, r, name)
        assert suffix_dns(backend) == before
        return
    assert r.status_code == 201, (name, r.text)
    gid = r.json()["id"]
    try:
        assert r.json()["displayName"] == name
        check_new_entries(before, suffix_dns(backend), GROUPS)
        assert client.get(f"{SCIM}/Groups/{gid}").json()["displayName"] == name
        flt = f"displayName eq {json.dumps(name)}"
        found = client.get(f"{SCIM}/Groups", params={"filter": flt}).json()["Resources"]
        assert [g["id"] for g in found] == [gid]
    finally:
        assert client.delete(f"{SCIM}/Groups/{gid}").status_code == 204


def test_any_group_display_name_round_trips(client: TestClient, backend: Backend) -> None:
    @SETTINGS
    @given(name=hostile_text)
    def run(name: str) -> None:
        _group_roundtrip(client, backend, name)

    run()


# ----------------------------------------------------------------------------- filter values
DECOYS = [
    "*",
    "a*",
    "(",
    ")",
    "\\",
    "\\2a",
    "a)(uid=*",
    "*)(objectClass=*",
    "x\\",
    "alice",
    "bob smith",
    "Zoë",
    "\U0001d518nicode",
    "#hash",
    "semi;colon",
    "a,b=c+d",
    ' "quoted" ',
]


def loose(text: str) -> str:
    """A deliberately forgiving comparison key (case folded, compatibility-normalized, all
    space/control/format characters dropped): the directory's matching rules (RFC 4518) are
    never *looser* than this, so an entry failing even this test was returned by injection."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in "CZ")


PREDICATES: dict[str, Callable[[str, str], bool]] = {
    "eq": lambda have, want: have == want,
    "co": lambda have, want: want in have,
    "sw": lambda have, want: have.startswith(want),
    "ew": lambda have, want: have.endswith(want),
}


def _filter_never_widens(client: TestClient, value: str, op: str, decoys: list[str]) -> None:
    flt = f"userName {op} {json.dumps(value, ensure_ascii=len(value) % 2 == 0)}"
    r = client.get(f"{SCIM}/Users", params={"filter": flt, "count": "1000"})
    assert r.status_code in (200, 400), (flt, r.text)
    if r.status_code == 400:
        assert r.json()["scimType"] == "invalidFilter", r.text
        return
    want = loose(value)
    for user in r.json()["Resources"]:
        have = loose(user["userName"])
        assert PREDICATES[op](have, want), f"{flt!r} returned {user['userName']!r}"
    if op == "eq" and value in decoys:
        assert [u["userName"] for u in r.json()["Resources"]] == [value]


def test_filter_values_never_widen_a_search(client: TestClient, backend: Backend) -> None:
    decoys = []
    for name in DECOYS:
        r = client.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": name})
        if seven_bit_refusal(backend, name):  # the filter values stay non-ASCII below
            assert r.status_code == 400 and "7-bit" in r.json()["detail"], (name, r.text)
            continue
        assert r.status_code == 201, (name, r.text)
        decoys.append(name)

    @SETTINGS
    @given(
        value=st.one_of(hostile_text, st.sampled_from(DECOYS)),
        op=st.sampled_from(list(PREDICATES)),
    )
    def run(value: str, op: str) -> None:
        _filter_never_widens(client, value, op, decoys)

    run()
