"""Issue 15: a filter never widens through NUL, and substring operators work on every
string-valued attribute whatever its codec.

NUL (``\\u0000``) in a filter value is refused (400 ``invalidFilter`` pointing at it) in list
filters, ``.search`` bodies and PATCH value-path filters; an id or member id holding NUL finds
nothing.  Runs on the embedded directory and on slapd with both clients; the same checks on
Samba AD (where ``"alice\\u0000x"`` compared equal to ``alice``) are in
tests/integration/test_filter_shapes_ad.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.errors import InvalidFilter
from bridge.mapping.load import load_mapping
from bridge.scim.filter import AttrPath, Compare
from bridge.scim.filter_parser import FilterSyntaxError, parse
from bridge.translate.filter import to_ldap
from tests.conftest import OPENLDAP_MAP, ROOT
from tests.helpers import SCIM, create_group, create_user, patch

NUL_FILTERS = [
    'userName eq "alice\\u0000x"',
    'userName eq "alice\\u0000"',
    'userName sw "ali\\u0000ce"',
    'emails[value eq "alice@example.com\\u0000"]',
    'displayName eq "x" or userName eq "alice\\u0000x"',
    'userName eq "alice\\U0000x"',  # \U is not a JSON escape: refused as a syntax error
]


def _refused_filter(r: Any) -> dict[str, Any]:
    assert r.status_code == 400, r.text
    body: dict[str, Any] = r.json()
    assert body["scimType"] == "invalidFilter", body
    return body


@pytest.mark.parametrize("flt", NUL_FILTERS)
def test_nul_in_a_list_filter_is_refused_with_a_caret(client: TestClient, flt: str) -> None:
    create_user(client, "alice", emails=[{"value": "alice@example.com", "type": "work"}])
    body = _refused_filter(client.get(f"{SCIM}/Users", params={"filter": flt}))
    assert "^" in body["detail"] and "column" in body["detail"], body["detail"]
    if "\\u0000" in flt:
        assert "NUL" in body["detail"]
        # the caret sits under the backslash of the escape
        column = int(body["detail"].split("column ")[1].split(":")[0])
        assert flt[column - 1 : column + 5] == "\\u0000"


def test_nul_in_search_bodies_is_refused(client: TestClient) -> None:
    create_user(client, "alice")
    for url in (f"{SCIM}/Users/.search", f"{SCIM}/.search"):
        r = client.post(url, json={"filter": 'userName eq "alice\\u0000x"'})
        assert "NUL" in _refused_filter(r)["detail"]


def test_nul_in_a_patch_value_filter_is_refused_and_writes_nothing(client: TestClient) -> None:
    u = create_user(client, "alice", emails=[{"value": "a@example.com", "type": "work"}])
    r = patch(
        client,
        f"/Users/{u['id']}",
        {"op": "remove", "path": 'emails[value eq "a@example.com\\u0000x"]'},
    )
    assert r.status_code == 400, r.text
    assert "NUL" in r.json()["detail"]
    assert client.get(f"{SCIM}/Users/{u['id']}").json()["emails"][0]["value"] == "a@example.com"


def test_an_id_holding_nul_finds_nobody(client: TestClient) -> None:
    u = create_user(client, "alice")
    bad = u["id"] + "\x00x"
    assert client.get(f"{SCIM}/Users/{u['id']}%00x").status_code == 404
    g = create_group(client, "ops")
    r = patch(client, f"/Groups/{g['id']}", {"op": "add", "path": "members", "value": [
        {"value": bad}]})  # fmt: skip
    assert r.status_code == 400, r.text
    got = client.get(f"{SCIM}/Groups/{g['id']}").json()
    assert not got.get("members"), got


def test_a_plain_value_still_matches(client: TestClient) -> None:
    u = create_user(client, "alice")
    r = client.get(f"{SCIM}/Users", params={"filter": 'userName eq "alice"'})
    assert [x["id"] for x in r.json()["Resources"]] == [u["id"]]


def test_the_translator_refuses_nul_from_any_ast() -> None:
    """An AST built in code (not parsed) cannot smuggle NUL to the directory either."""
    mapping = load_mapping(OPENLDAP_MAP)
    ast = Compare(AttrPath(None, "userName"), "eq", "alice\x00x")
    with pytest.raises(InvalidFilter, match="NUL"):
        to_ldap(mapping.resource("User"), ast, mapping)
    with pytest.raises(FilterSyntaxError, match="NUL"):
        parse('title co "\\u0000"')


# ---------------------------------------------------------------------------- substrings
SUBSTRINGS = [("sw", "ali", True), ("ew", "ice", True), ("co", "lic", True), ("sw", "bob", False)]


@pytest.mark.parametrize(("op", "value", "hit"), SUBSTRINGS)
def test_substring_operators_on_string_attributes(
    client: TestClient, op: str, value: str, hit: bool
) -> None:
    u = create_user(
        client,
        "alice",
        displayName="alice",
        title="alice",
        externalId="alice",
        emails=[{"value": "alice", "type": "work"}],
    )
    for attr in (
        "userName",
        "displayName",
        "title",
        "externalId",
        "emails.value",
        "name.familyName",
    ):
        flt = f"{attr} {op} {json.dumps(value)}"
        r = client.get(f"{SCIM}/Users", params={"filter": flt})
        assert r.status_code == 200, (flt, r.text)
        assert [x["id"] for x in r.json()["Resources"]] == ([u["id"]] if hit else []), flt


@pytest.mark.parametrize("attr", ["active", "id", "meta.created", "meta.lastModified"])
def test_substring_on_non_string_values_is_a_clear_invalid_filter(
    client: TestClient, attr: str
) -> None:
    create_user(client, "alice")
    r = client.get(f"{SCIM}/Users", params={"filter": f'{attr} sw "a"'})
    body = _refused_filter(r)
    assert "'sw'" in body["detail"], body


def _ad_mapping() -> Any:
    return load_mapping(ROOT / "mappings" / "active-directory.yaml")


@pytest.mark.parametrize("op", ["sw", "ew", "co"])
def test_substrings_translate_on_every_string_codec_of_the_shipped_ad_mapping(op: str) -> None:
    """Every attribute of the shipped AD map whose codec maps strings to strings takes
    co/sw/ew (userName's ``ad-samaccountname`` codec was refused before issue 15)."""
    mapping = _ad_mapping()
    user = mapping.resource("User")
    pattern = {"co": "*x*", "sw": "x*", "ew": "*x"}[op]
    checked = 0
    for a in user.attributes:
        if a.is_reference or a.codec.scim_type != "string" or a.codec.binary or a.codec.write_only:
            continue
        flt = to_ldap(user, f'{a.path} {op} "x"', mapping)
        assert f"({a.ldap}={pattern})" in flt, (a.path, flt)
        checked += 1
    assert checked >= 5
    with pytest.raises(InvalidFilter, match="'sw'"):
        to_ldap(user, 'active sw "t"', mapping)
