"""The flow runner and the directory inspector must be able to fail: a check that cannot fail
would let the IdP suite pass while asserting nothing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bridge.directory.embedded import EmbeddedDirectory
from bridge.mapping.model import MappingConfig
from bridge.runtime import seed_structure
from tests.conftest import Backend, make_client
from tests.idp.conftest import _openldap_inspector
from tests.idp.inspect import Inspector, directory_search, guid_filter
from tests.idp.runner import MISSING, Context, check, resolve, run_flow, same

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def test_same_keeps_json_types_apart() -> None:
    assert same(0, 0) and same("404", "404") and same({"a": 1, "b": 2}, {"a": 1})
    assert not same(1, True) and not same(True, 1) and not same("404", 404)
    assert not same(0.0, 0) and not same([1, 2], [1]) and not same({"a": 1}, {"a": 1, "b": 2})


def test_pointers() -> None:
    doc = {"Resources": [{"id": "x"}], "urn:a:b:2.0:User": {"manager": {"value": "m"}}}
    assert resolve(doc, "Resources/0/id") == "x"
    assert resolve(doc, "urn:a:b:2.0:User/manager/value") == "m"
    assert resolve(doc, "Resources/1/id") is MISSING and resolve(doc, "") is doc


@pytest.mark.parametrize(
    "expect",
    [
        {"status": 201},
        {"equals": {"totalResults": "0"}},
        {"equals": {"missing": None}},
        {"present": ["Resources"]},
        {"absent": ["totalResults"]},
        {"empty": ["schemas"]},
        {"length": {"schemas": 2}},
        {"contains": {"schemas": ["urn:other"]}},
        {"excludes": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]}},
        {"no_body": True},
    ],
)
def test_every_expectation_can_fail(expect: dict[str, Any]) -> None:
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 0,
        "Resources": [],
    }
    with pytest.raises(AssertionError):
        check(expect, 200, body, "here")


def test_placeholders() -> None:
    ctx = Context()
    ctx.values.update(u="abc", doc={"id": "abc"})
    assert ctx.fill({"k ${u}": ["${u}", "x-${u}", "${doc}"]}) == {
        "k abc": ["abc", "x-abc", {"id": "abc"}]
    }
    with pytest.raises(AssertionError, match="not captured"):
        ctx.fill("${nobody}")


def test_guid_filter_is_little_endian() -> None:
    flt = guid_filter("objectGUID", "00112233-4455-6677-8899-aabbccddeeff")
    assert flt == r"(objectGUID=\33\22\11\00\55\44\77\66\88\99\aa\bb\cc\dd\ee\ff)"


@pytest.fixture
def embedded(openldap_mapping: MappingConfig) -> tuple[Any, Inspector]:
    directory = EmbeddedDirectory()
    seed_structure(directory, openldap_mapping)
    client = make_client(Backend("embedded", directory, openldap_mapping))
    return client, _openldap_inspector(openldap_mapping, directory_search(directory))


@pytest.mark.parametrize(
    "wrong",
    [
        {"verify": "user", "id": "${u}", "givenName": "Someone"},
        {"verify": "user", "id": "${u}", "userName": "other@example.test"},
        {"verify": "user", "id": "${u}", "active": False},
        {"verify": "user", "id": "${u}", "title": "Boss"},
        {"verify": "user", "id": "${u}", "mail": None},
        {"verify": "user", "id": "${u}", "givenname": "Ann"},
        {"verify": "group", "id": "${g}", "members": []},
        {"verify": "group", "id": "${g}", "displayName": "Other"},
        {"verify": "gone", "id": "${u}"},
        {"verify": "gone", "id": "${g}"},
        {"verify": "users", "id": "${u}"},
    ],
    ids=lambda w: "-".join(f"{k}" for k in w if k not in ("verify", "id")) or w["verify"],
)
def test_inspector_sees_what_landed(embedded: tuple[Any, Inspector], wrong: dict[str, Any]) -> None:
    client, inspect = embedded
    right: list[dict[str, Any]] = [
        {"verify": "user", "id": "${u}", "userName": "ann@example.test", "givenName": "Ann"},
        {"verify": "user", "id": "${u}", "mail": "ann@example.test", "title": None, "active": True},
        {"verify": "group", "id": "${g}", "displayName": "G", "members": ["${u}"]},
    ]
    flow = {"idp": "t", "steps": [*_setup(), *[{"name": "ok", **s} for s in right]]}
    ctx = run_flow(flow, client, inspect)
    with pytest.raises(AssertionError, match=r"step 1 \(wrong"):
        run_flow({"idp": "t", "steps": [{"name": "wrong", **wrong}]}, client, inspect, ctx)


def test_stable_attributes_must_not_change(embedded: tuple[Any, Inspector]) -> None:
    """AD keeps sAMAccountName through a UPN rename; the inspector checks such attributes."""
    client, inspect = embedded
    inspect = replace(inspect, profile=replace(inspect.profile, stable=("uid",)))
    rename = {
        "name": "rename", "method": "PATCH", "path": "/Users/${u}",
        "body": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                 "Operations": [{"op": "replace", "path": "userName", "value": "bob@example.test"}]},
        "expect": {"status": 200},
    }  # fmt: skip
    steps = [*_setup(), {"name": "first look", "verify": "user", "id": "${u}"}, rename]
    ctx = run_flow({"idp": "t", "steps": steps}, client, inspect)
    with pytest.raises(AssertionError, match="uid changed"):
        run_flow(
            {"idp": "t", "steps": [{"name": "again", "verify": "user", "id": "${u}"}]},
            client,
            inspect,
            ctx,
        )


def _setup() -> list[dict[str, Any]]:
    user = {
        "schemas": [USER],
        "userName": "ann@example.test",
        "name": {"givenName": "Ann", "familyName": "Lee"},
        "emails": [{"value": "ann@example.test", "type": "work"}],
    }
    return [
        {"name": "u", "method": "POST", "path": "/Users", "body": user,
         "expect": {"status": 201}, "capture": {"u": "id"}},
        {"name": "g", "method": "POST", "path": "/Groups",
         "body": {"schemas": [GROUP], "displayName": "G", "members": [{"value": "${u}"}]},
         "expect": {"status": 201}, "capture": {"g": "id"}},
    ]  # fmt: skip
