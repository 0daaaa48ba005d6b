"""Issue 15 on Samba AD, shipped AD mapping, both LDAP clients: a filter value holding NUL is
refused (Samba compared ``"alice\\u0000x"`` equal to ``alice`` and returned her), an id holding
NUL finds nobody, ``sw``/``ew``/``co`` work on userName whatever its codec, and the request
shapes of tests/test_patch_shapes.py and tests/test_group_patch_response.py (null values,
``schemas`` inside an extension, Entra ID's extra group schema URI, 204 to a group PATCH)."""

from __future__ import annotations

import json

import pytest

from tests.helpers import (
    ENTERPRISE,
    GROUP_SCHEMA,
    SCIM,
    USER_SCHEMA,
    create_group,
    create_user,
    patch,
)
from tests.integration.conftest import AD

pytestmark = pytest.mark.samba


def test_nul_in_a_filter_value_never_finds_the_prefix(ad: AD) -> None:
    u = create_user(ad.client, "alicenul")
    for flt in ('userName eq "alicenul\\u0000x"', 'userName eq "alicenul\\u0000"'):
        r = ad.client.get(f"{SCIM}/Users", params={"filter": flt})
        assert r.status_code == 400, r.text
        assert r.json()["scimType"] == "invalidFilter"
        assert "NUL" in r.json()["detail"] and "^" in r.json()["detail"]
        r = ad.client.post(f"{SCIM}/Users/.search", json={"filter": flt})
        assert r.status_code == 400, r.text
    plain = ad.client.get(f"{SCIM}/Users", params={"filter": 'userName eq "alicenul"'})
    assert [x["id"] for x in plain.json()["Resources"]] == [u["id"]]


def test_an_id_or_member_id_holding_nul_finds_nobody(ad: AD) -> None:
    u = create_user(ad.client, "bobnul")
    assert ad.client.get(f"{SCIM}/Users/{u['id']}%00x").status_code == 404
    g = create_group(ad.client, "nulgroup")
    r = patch(ad.client, f"/Groups/{g['id']}", {"op": "add", "path": "members", "value": [
        {"value": u["id"] + "\x00x"}]})  # fmt: skip
    assert r.status_code == 400, r.text
    got = ad.client.get(f"{SCIM}/Groups/{g['id']}").json()
    assert not got.get("members"), got


@pytest.mark.parametrize(
    ("op", "value", "hit"),
    [("sw", "carol", True), ("ew", "subs", True), ("co", "olsu", True), ("sw", "subs", False)],
)
def test_substring_operators_on_user_name(ad: AD, op: str, value: str, hit: bool) -> None:
    u = create_user(ad.client, "carolsubs")
    r = ad.client.get(f"{SCIM}/Users", params={"filter": f"userName {op} {json.dumps(value)}"})
    assert r.status_code == 200, r.text
    assert [x["id"] for x in r.json()["Resources"]] == ([u["id"]] if hit else [])


def test_substring_on_active_is_a_clear_invalid_filter(ad: AD) -> None:
    r = ad.client.get(f"{SCIM}/Users", params={"filter": 'active sw "t"'})
    assert r.status_code == 400, r.text
    assert r.json()["scimType"] == "invalidFilter"
    assert "'sw'" in r.json()["detail"]


def test_entra_null_update_and_extension_schemas_key(ad: AD) -> None:
    u = create_user(
        ad.client, "nullad", schemas=[USER_SCHEMA, ENTERPRISE], title="Boss",
        **{ENTERPRISE: {"department": "Ops"}},
    )  # fmt: skip
    for value in ("", None):
        r = patch(
            ad.client, f"/Users/{u['id']}", {"op": "Replace", "path": "title", "value": value}
        )
        assert r.status_code == 200, r.text
        assert "title" not in ad.client.get(f"{SCIM}/Users/{u['id']}").json()
    r = patch(ad.client, f"/Users/{u['id']}", {"op": "add", "path": ENTERPRISE, "value": {
        "schemas": [ENTERPRISE], "department": "Sales"}})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()[ENTERPRISE]["department"] == "Sales"
    r = patch(ad.client, f"/Users/{u['id']}", {"op": "replace", "path": "userName", "value": None})
    assert r.status_code == 400 and r.json()["scimType"] == "mutability", r.text


def test_entra_group_create_and_membership_patch(ad: AD) -> None:
    adscim = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
    u = create_user(ad.client, "memberad")["id"]
    r = ad.client.post(f"{SCIM}/Groups", json={
        "schemas": [GROUP_SCHEMA, adscim], "displayName": "EntraAD", "externalId": "e-ad",
        "members": []})  # fmt: skip
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    r = patch(ad.client, f"/Groups/{gid}", {"op": "Add", "path": "members", "value": [
        {"$ref": None, "value": u}]})  # fmt: skip
    assert r.status_code == 204 and r.content == b"", r.text
    after = ad.client.get(f"{SCIM}/Groups/{gid}").json()
    assert [m["value"] for m in after["members"]] == [u]
    assert r.headers["ETag"] == after["meta"]["version"]
