"""POST /Bulk (RFC 7644 §3.7) over SCIM, run against the embedded directory and a real slapd.

Results are checked through the SCIM API and, for what reaches the directory, with independent
LDAP searches (``backend.independent_search``) that bypass the bridge's service layer.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.settings import Settings, Token
from bridge.web.app import build_app
from tests.conftest import Backend, make_client
from tests.helpers import ENTERPRISE, GROUP_SCHEMA, SCIM, USER_SCHEMA, create_group, create_user

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PEOPLE = "ou=people,dc=example,dc=org"
GROUPS = "ou=groups,dc=example,dc=org"
BASE = "https://scim.example.test" + SCIM


def bulk(client: TestClient, *ops: dict[str, Any], **extra: Any) -> Any:
    r = client.post(
        f"{SCIM}/Bulk", json={"schemas": [BULK_REQUEST], "Operations": list(ops), **extra}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/scim+json")
    body = r.json()
    assert body["schemas"] == [BULK_RESPONSE]
    return body["Operations"]


def post_user(bulk_id: str, user_name: str, **extra: Any) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": "/Users",
        "bulkId": bulk_id,
        "data": {"schemas": [USER_SCHEMA], "userName": user_name, **extra},
    }


def post_group(bulk_id: str, name: str, *member_refs: str, type_: str = "User") -> dict[str, Any]:
    return {
        "method": "POST",
        "path": "/Groups",
        "bulkId": bulk_id,
        "data": {
            "schemas": [GROUP_SCHEMA],
            "displayName": name,
            "members": [{"type": type_, "value": m} for m in member_refs],
        },
    }


def id_of(result: dict[str, Any]) -> str:
    return str(result["location"].rsplit("/", 1)[1])


def ldap(backend: Backend, base: str, flt: str, attr: str) -> dict[str, set[str]]:
    """DN -> lower-cased values of ``attr``, read by an independent LDAP search."""
    out: dict[str, set[str]] = {}
    for e in backend.independent_search(base, flt, [attr]):
        if backend.info is None:
            out[e.dn.lower()] = {v.decode().lower() for v in e.get(attr)}
        else:
            values = e.entry_attributes_as_dict.get(attr, [])
            out[e.entry_dn.lower()] = {str(v).lower() for v in values}
    return out


def user_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}".lower()


def group_dn(cn: str) -> str:
    return f"cn={cn},{GROUPS}".lower()


def assert_ok(
    result: dict[str, Any],
    method: str,
    status: str,
    bulk_id: str | None = None,
    endpoint: str = "Users",
) -> None:
    assert result["method"] == method
    assert result["status"] == status
    assert "response" not in result
    if bulk_id is not None:
        assert result["bulkId"] == bulk_id
    # an entryUUID (slapd) or a nsUniqueId (389 DS): groups of hex digits
    assert re.fullmatch(rf"{re.escape(BASE)}/{endpoint}/[0-9a-f]+(-[0-9a-f]+)+", result["location"])
    if method != "DELETE":
        assert result["version"].startswith('W/"')


def assert_error(result: dict[str, Any], status: int, scim_type: str | None = None) -> None:
    assert result["status"] == str(status), result
    response = result["response"]
    assert response["schemas"] == [ERROR]
    assert response["status"] == str(status)
    assert response["detail"]
    if scim_type is not None:
        assert response["scimType"] == scim_type, response


# --------------------------------------------------------------------------- RFC examples
def test_rfc_3_7_2_user_and_group_that_contains_it(client: TestClient, backend: Backend) -> None:
    """§3.7.2: create Alice and, in the same request, a group whose member is ``bulkId:qwerty``."""
    results = bulk(
        client,
        post_user("qwerty", "Alice"),
        post_group("ytrewq", "Tour Guides", "bulkId:qwerty"),
    )
    assert len(results) == 2
    assert_ok(results[0], "POST", "201", "qwerty")
    assert_ok(results[1], "POST", "201", "ytrewq", endpoint="Groups")
    alice, guides = id_of(results[0]), id_of(results[1])
    assert client.get(f"{SCIM}/Users/{alice}").json()["userName"] == "Alice"
    group = client.get(f"{SCIM}/Groups/{guides}").json()
    assert [(m["value"], m["type"]) for m in group["members"]] == [(alice, "User")]
    assert results[1]["version"] == group["meta"]["version"]
    assert ldap(backend, GROUPS, "(cn=Tour Guides)", backend.member_attr) == {
        group_dn("Tour Guides"): {user_dn("Alice")}
    }


def test_rfc_3_7_3_mixed_results_and_errors(client: TestClient, backend: Backend) -> None:
    """§3.7.3: per-operation status, location and version; failures carry a SCIM error body and
    do not stop the others (no failOnErrors)."""
    kept = create_user(client, "kept", displayName="Kept")
    gone = create_user(client, "gone")
    stale = create_user(client, "stale")
    results = bulk(
        client,
        post_user("qwerty", "Alice"),
        {
            "method": "POST",
            "path": "/Users",
            "bulkId": "bad",
            "data": {"schemas": [USER_SCHEMA], "displayName": "no userName"},
        },
        {
            "method": "PUT",
            "path": f"/Users/{kept['id']}",
            "version": kept["meta"]["version"],
            "data": {"schemas": [USER_SCHEMA], "userName": "kept", "displayName": "Kept Again"},
        },
        {
            "method": "PUT",
            "path": f"/Users/{stale['id']}",
            "version": 'W/"not-the-version"',
            "data": {"schemas": [USER_SCHEMA], "userName": "stale", "displayName": "x"},
        },
        {"method": "DELETE", "path": f"/Users/{gone['id']}"},
        {"method": "DELETE", "path": "/Users/00000000-0000-0000-0000-000000000000"},
    )
    assert [r["method"] for r in results] == ["POST", "POST", "PUT", "PUT", "DELETE", "DELETE"]
    assert_ok(results[0], "POST", "201", "qwerty")
    assert_error(results[1], 400, "invalidValue")
    assert results[1]["bulkId"] == "bad" and "location" not in results[1]  # a failed POST
    assert_ok(results[2], "PUT", "200")
    assert results[2]["location"] == kept["meta"]["location"]
    assert results[2]["version"] != kept["meta"]["version"]
    assert_error(results[3], 412)
    assert results[3]["location"] == stale["meta"]["location"]  # §3.7.3: failed PUT has one
    assert_ok(results[4], "DELETE", "204")
    assert "version" not in results[4]
    assert_error(results[5], 404)
    assert client.get(f"{SCIM}/Users/{kept['id']}").json()["displayName"] == "Kept Again"
    assert client.get(f"{SCIM}/Users/{stale['id']}").json().get("displayName") is None
    assert client.get(f"{SCIM}/Users/{gone['id']}").status_code == 404
    uids = ldap(backend, PEOPLE, "(objectClass=inetOrgPerson)", "uid")
    assert set(uids) == {user_dn("alice"), user_dn("kept"), user_dn("stale")}


def test_rfc_3_7_3_patch_operations(client: TestClient, backend: Backend) -> None:
    """§3.7.3's PATCH of a group, with a member added by ``bulkId``."""
    old = create_user(client, "old")
    group = create_group(client, "Tour Guides", [old["id"]])
    results = bulk(
        client,
        {
            "method": "PATCH",
            "path": f"/Groups/{group['id']}",
            "version": group["meta"]["version"],
            "data": {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    {"op": "remove", "path": f'members[value eq "{old["id"]}"]'},
                    {"op": "add", "path": "members", "value": [{"value": "bulkId:new"}]},
                ],
            },
        },
        post_user("new", "new"),
    )
    assert_ok(results[0], "PATCH", "200", endpoint="Groups")
    assert_ok(results[1], "POST", "201", "new")
    members = client.get(f"{SCIM}/Groups/{group['id']}").json()["members"]
    assert [m["value"] for m in members] == [id_of(results[1])]
    assert ldap(backend, GROUPS, "(cn=Tour Guides)", backend.member_attr) == {
        group_dn("Tour Guides"): {user_dn("new")}
    }


# --------------------------------------------------------------------------- references
def test_forward_references_in_data_and_paths(client: TestClient, backend: Backend) -> None:
    """A reference may precede the POST that declares it: that POST runs first; results come
    back in request order.  References work in members, manager and paths."""
    results = bulk(
        client,
        post_group("g", "Early", "bulkId:u1", "bulkId:u2"),
        {
            "method": "PUT",
            "path": "/Users/bulkId:u2",
            "data": {
                "schemas": [USER_SCHEMA],
                "userName": "u2",
                "displayName": "Second",
                ENTERPRISE: {"manager": {"value": "bulkId:u1"}},
            },
        },
        post_user("u1", "u1"),
        post_user("u2", "u2", **{ENTERPRISE: {"manager": {"value": "bulkId:u1"}}}),
        {"method": "DELETE", "path": "/Groups/bulkId:gone"},
        post_group("gone", "Gone"),
    )
    assert [r.get("bulkId") for r in results] == ["g", None, "u1", "u2", None, "gone"]
    assert [r["status"] for r in results] == ["201", "200", "201", "201", "204", "201"]
    u1, u2, g = id_of(results[2]), id_of(results[3]), id_of(results[0])
    assert results[1]["location"] == f"{BASE}/Users/{u2}"
    assert results[4]["location"] == results[5]["location"]
    assert {m["value"] for m in client.get(f"{SCIM}/Groups/{g}").json()["members"]} == {u1, u2}
    second = client.get(f"{SCIM}/Users/{u2}").json()
    assert second["displayName"] == "Second" and second[ENTERPRISE]["manager"]["value"] == u1
    assert ldap(
        backend, GROUPS, backend.mapping.resource("Group").base_filter, backend.member_attr
    ) == {group_dn("Early"): {user_dn("u1"), user_dn("u2")}}
    assert ldap(backend, PEOPLE, "(uid=u2)", "manager") == {user_dn("u2"): {user_dn("u1")}}


def test_circular_references_two_groups_containing_each_other(
    client: TestClient, backend: Backend
) -> None:
    """§3.7.1: both groups are created, then each gets the other as a member."""
    results = bulk(
        client,
        post_group("a", "Group A", "bulkId:b", type_="Group"),
        post_group("b", "Group B", "bulkId:a", type_="Group"),
    )
    assert_ok(results[0], "POST", "201", "a", endpoint="Groups")
    assert_ok(results[1], "POST", "201", "b", endpoint="Groups")
    a, b = id_of(results[0]), id_of(results[1])
    group_a = client.get(f"{SCIM}/Groups/{a}").json()
    group_b = client.get(f"{SCIM}/Groups/{b}").json()
    assert [(m["value"], m["type"]) for m in group_a["members"]] == [(b, "Group")]
    assert [(m["value"], m["type"]) for m in group_b["members"]] == [(a, "Group")]
    assert results[0]["version"] == group_a["meta"]["version"]  # the version after completion
    assert ldap(
        backend, GROUPS, backend.mapping.resource("Group").base_filter, backend.member_attr
    ) == {
        group_dn("Group A"): {group_dn("Group B")},
        group_dn("Group B"): {group_dn("Group A")},
    }


def test_circular_references_longer_cycles_and_users(client: TestClient, backend: Backend) -> None:
    """A three-group cycle that also holds a user, and two users managing each other."""
    results = bulk(
        client,
        post_group("x", "X", "bulkId:y", type_="Group"),
        post_group("y", "Y", "bulkId:z", type_="Group"),
        {
            "method": "POST",
            "path": "/Groups",
            "bulkId": "z",
            "data": {
                "schemas": [GROUP_SCHEMA],
                "displayName": "Z",
                "members": [{"value": "bulkId:x", "type": "Group"}, {"value": "bulkId:p"}],
            },
        },
        post_user(
            "p",
            "p",
            password="s3cret-Pw!",
            **{ENTERPRISE: {"manager": {"value": "bulkId:q"}, "employeeNumber": "7"}},
        ),
        post_user("q", "q", **{ENTERPRISE: {"manager": {"value": "bulkId:p"}}}),
    )
    assert [r["status"] for r in results] == ["201"] * 5, results
    x, y, z, p, q = (id_of(r) for r in results)
    members = {
        name: {m["value"] for m in client.get(f"{SCIM}/Groups/{gid}").json()["members"]}
        for name, gid in (("x", x), ("y", y), ("z", z))
    }
    assert members == {"x": {y}, "y": {z}, "z": {x, p}}
    user_p = client.get(f"{SCIM}/Users/{p}").json()
    assert user_p[ENTERPRISE] == {
        "employeeNumber": "7",
        "manager": {"value": q, "$ref": f"{BASE}/Users/{q}"},
    }
    assert client.get(f"{SCIM}/Users/{q}").json()[ENTERPRISE]["manager"]["value"] == p
    assert ldap(backend, PEOPLE, "(|(uid=p)(uid=q))", "manager") == {
        user_dn("p"): {user_dn("q")},
        user_dn("q"): {user_dn("p")},
    }
    assert ldap(backend, GROUPS, "(cn=Z)", backend.member_attr) == {
        group_dn("Z"): {group_dn("X"), user_dn("p")}
    }


def test_unknown_failed_and_duplicate_bulk_ids(client: TestClient, backend: Backend) -> None:
    results = bulk(
        client,
        post_group("g1", "Refers to nothing", "bulkId:nobody"),
        {
            "method": "POST",
            "path": "/Users",
            "bulkId": "broken",
            "data": {"schemas": [USER_SCHEMA], "userName": ""},
        },
        post_group("g2", "Refers to a failure", "bulkId:broken"),
        {"method": "DELETE", "path": "/Users/bulkId:nobody"},
        post_user("fine", "fine"),
    )
    assert_error(results[0], 409, "invalidValue")
    assert "nobody" in results[0]["response"]["detail"]
    assert_error(results[1], 400)
    assert_error(results[2], 409, "invalidValue")
    assert "broken" in results[2]["response"]["detail"]
    assert_error(results[3], 409, "invalidValue")
    assert_ok(results[4], "POST", "201", "fine")
    assert ldap(backend, GROUPS, backend.mapping.resource("Group").base_filter, "cn") == {}

    # bulkId must be unique within a request: the request is refused before anything runs
    r = client.post(
        f"{SCIM}/Bulk",
        json={
            "schemas": [BULK_REQUEST],
            "Operations": [post_user("dup", "one"), post_user("dup", "two")],
        },
    )
    assert r.status_code == 400
    assert r.json()["scimType"] == "invalidValue" and r.json()["schemas"] == [ERROR]
    assert set(ldap(backend, PEOPLE, "(objectClass=inetOrgPerson)", "uid")) == {user_dn("fine")}


# --------------------------------------------------------------------------- failOnErrors
def test_fail_on_errors_stops_after_n_errors(client: TestClient, backend: Backend) -> None:
    create_user(client, "taken")
    ops = [
        post_user("a", "a"),
        post_user("b", ""),  # error 1: empty userName
        post_user("c", "c"),
        post_user("d", "taken"),  # error 2: uniqueness
        post_user("e", "e"),  # never runs
        post_user("f", "f"),
    ]
    results = bulk(client, *ops, failOnErrors=2)
    assert [r["bulkId"] for r in results] == ["a", "b", "c", "d"]
    assert [r["status"] for r in results] == ["201", "400", "201", "409"]
    assert_error(results[3], 409, "uniqueness")
    uids = set(ldap(backend, PEOPLE, "(objectClass=inetOrgPerson)", "uid"))
    assert uids == {user_dn(u) for u in ("taken", "a", "c")}

    # failOnErrors=1 stops at the first error; without it every operation runs
    results = bulk(
        client, post_user("g", "g"), post_user("h", "taken"), post_user("i", "i"), failOnErrors=1
    )
    assert [r["status"] for r in results] == ["201", "409"]
    results = bulk(client, post_user("j", "taken"), post_user("k", "k"), post_user("l", "taken"))
    assert [r["status"] for r in results] == ["409", "201", "409"]


# --------------------------------------------------------------------------- limits
def test_too_many_operations_is_413(backend: Backend) -> None:
    client = make_client(backend, bulk_max_operations=3)
    r = client.post(
        f"{SCIM}/Bulk",
        json={
            "schemas": [BULK_REQUEST],
            "Operations": [post_user(f"u{i}", f"u{i}") for i in range(4)],
        },
    )
    assert r.status_code == 413
    assert r.json()["schemas"] == [ERROR] and r.json()["status"] == "413"
    assert "maxOperations" in r.json()["detail"]
    assert ldap(backend, PEOPLE, "(objectClass=inetOrgPerson)", "uid") == {}
    results = bulk(client, *[post_user(f"u{i}", f"u{i}") for i in range(3)])
    assert [r["status"] for r in results] == ["201"] * 3


def test_payload_limit_is_413_and_independent_of_the_body_limit(backend: Backend) -> None:
    client = make_client(backend, bulk_max_payload_bytes=4000, max_body_bytes=1000)
    ops = [post_user(f"user{i:03}", f"user{i:03}", displayName="x" * 40) for i in range(40)]
    r = client.post(f"{SCIM}/Bulk", json={"schemas": [BULK_REQUEST], "Operations": ops})
    assert r.status_code == 413
    assert r.json() == {
        "schemas": [ERROR],
        "status": "413",
        "detail": "The size of the bulk operation exceeds the maxPayloadSize (4000).",
    }

    # a body sent without Content-Length (chunked) is cut off at the same limit
    import orjson

    raw = orjson.dumps({"schemas": [BULK_REQUEST], "Operations": ops})
    r = client.post(
        f"{SCIM}/Bulk",
        content=iter([raw[:3000], raw[3000:]]),
        headers={"content-type": "application/scim+json"},
    )
    assert r.status_code == 413 and r.json()["status"] == "413"
    assert ldap(backend, PEOPLE, "(objectClass=inetOrgPerson)", "uid") == {}

    # a bulk larger than max_body_bytes but within maxPayloadSize is fine
    results = bulk(client, *ops[:12])
    assert [r["status"] for r in results] == ["201"] * 12
    # ... while a single-resource POST keeps the general body limit
    r = client.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": "y" * 1200})
    assert r.status_code == 413


# --------------------------------------------------------------------------- invalid input
@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"", 400),
        (b"{not json", 400),
        (b"[]", 400),
        (b'"text"', 400),
        (b'{"Operations": []}', 400),
        (b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": []}', 400),
        (
            b'{"schemas": "urn:ietf:params:scim:api:messages:2.0:BulkRequest", "Operations": []}',
            400,
        ),
        (b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"]}', 400),
        (
            b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": {}}',
            400,
        ),
        (
            b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [],'
            b' "failOnErrors": 0}',
            400,
        ),
        (
            b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [],'
            b' "failOnErrors": "1"}',
            400,
        ),
        (
            b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [],'
            b' "failOnErrors": true}',
            400,
        ),
    ],
)
def test_invalid_requests_are_scim_errors(client: TestClient, raw: bytes, status: int) -> None:
    r = client.post(f"{SCIM}/Bulk", content=raw, headers={"content-type": "application/scim+json"})
    assert r.status_code == status, r.text
    assert r.json()["schemas"] == [ERROR] and r.json()["status"] == str(status)


def test_invalid_operations_fail_alone(client: TestClient, backend: Backend) -> None:
    deep: Any = "leaf"
    for _ in range(200):
        deep = {"x": deep}
    results = bulk(
        client,
        "not an object",  # type: ignore[arg-type]
        {"method": "GET", "path": "/Users"},
        {"path": "/Users", "bulkId": "m", "data": {}},
        {"method": "POST", "bulkId": "p", "data": {"userName": "nopath"}},
        {"method": "POST", "path": "/Users", "data": {"userName": "no-bulk-id"}},
        {"method": "POST", "path": "/Users", "bulkId": 7, "data": {"userName": "n"}},
        {"method": "POST", "path": "/Users", "bulkId": "d", "data": ["not", "an", "object"]},
        {"method": "POST", "path": "/Widgets", "bulkId": "w", "data": {"userName": "w"}},
        {"method": "POST", "path": "/Users/123", "bulkId": "i", "data": {"userName": "i"}},
        {"method": "PUT", "path": "/Users", "data": {"userName": "i"}},
        {"method": "PUT", "path": "/Users/a/b", "data": {"userName": "i"}},
        {"method": "DELETE", "path": "/"},
        {"method": "DELETE", "path": "/Users/nope", "version": 5},
        {
            "method": "post",
            "path": "Users/",
            "bulkId": "deep",
            "data": {"userName": "deep", "x": deep},
        },
        {"method": "PUT", "path": "/Users/not-a-uuid", "data": {"userName": "z"}},
        {"method": "POST", "path": "/Users", "bulkId": "ok", "data": {"userName": "ok"}},
    )
    statuses = [r["status"] for r in results]
    assert statuses == [
        "400",
        "400",
        "400",
        "400",
        "400",
        "400",
        "400",
        "404",
        "400",
        "400",
        "400",
        "400",
        "400",
        "400",
        "404",
        "201",
    ]
    for r in results[:-1]:
        assert_error(r, int(r["status"]))
    assert (
        results[1]["method"] == "GET"
        and "POST, PUT, PATCH, DELETE" in results[1]["response"]["detail"]
    )
    assert results[13]["method"] == "POST"
    assert set(ldap(backend, PEOPLE, "(objectClass=inetOrgPerson)", "uid")) == {user_dn("ok")}


def test_bulk_endpoint_methods_and_read_only_tokens(client: TestClient, backend: Backend) -> None:
    r = client.get(f"{SCIM}/Bulk")
    assert r.status_code == 405 and r.json()["schemas"] == [ERROR]
    settings = Settings(tokens=(Token("ro", "read-only-Tk3", read_only=True),))
    ro = TestClient(
        build_app(settings, directory=backend.directory, mapping=backend.mapping),
        base_url="https://scim.example.test",
    )
    r = ro.post(
        f"{SCIM}/Bulk",
        json={"schemas": [BULK_REQUEST], "Operations": [post_user("u", "u")]},
        headers={"Authorization": "Bearer read-only-Tk3"},
    )
    assert r.status_code == 403
    assert ldap(backend, PEOPLE, "(objectClass=inetOrgPerson)", "uid") == {}


# --------------------------------------------------------------------------- users and groups
def test_bulk_mixing_users_and_groups(client: TestClient, backend: Backend) -> None:
    """A realistic migration batch, checked with independent LDAP searches."""
    leaving = create_user(client, "leaving")
    staying = create_user(client, "staying")
    sales = create_group(client, "Sales", [leaving["id"], staying["id"]])
    results = bulk(
        client,
        post_user(
            "ann",
            "ann",
            name={"givenName": "Ann", "familyName": "Lee"},
            emails=[{"value": "ann@example.com", "type": "work"}],
        ),
        post_user("bob", "bob", title="Engineer"),
        post_group("eng", "Engineering", "bulkId:ann", "bulkId:bob"),
        {
            "method": "PUT",
            "path": f"/Groups/{sales['id']}",
            "data": {
                "schemas": [GROUP_SCHEMA],
                "displayName": "Sales",
                "members": [{"value": staying["id"]}, {"value": "bulkId:ann"}],
            },
        },
        {"method": "DELETE", "path": f"/Users/{leaving['id']}"},
        post_group("all", "Everyone", "bulkId:eng", f"{sales['id']}", type_="Group"),
    )
    assert [r["status"] for r in results] == ["201", "201", "201", "200", "204", "201"], results
    assert ldap(backend, PEOPLE, "(objectClass=inetOrgPerson)", "mail") == {
        user_dn("ann"): {"ann@example.com"},
        user_dn("bob"): set(),
        user_dn("staying"): set(),
    }
    assert ldap(backend, PEOPLE, "(uid=ann)", "sn") == {user_dn("ann"): {"lee"}}
    assert ldap(
        backend, GROUPS, backend.mapping.resource("Group").base_filter, backend.member_attr
    ) == {
        group_dn("Engineering"): {user_dn("ann"), user_dn("bob")},
        group_dn("Sales"): {user_dn("staying"), user_dn("ann")},
        group_dn("Everyone"): {group_dn("Engineering"), group_dn("Sales")},
    }


def test_a_group_that_contains_itself(client: TestClient, backend: Backend) -> None:
    """The shortest cycle: a POST that references its own bulkId."""
    results = bulk(client, post_group("self", "Ouroboros", "bulkId:self", type_="Group"))
    assert_ok(results[0], "POST", "201", "self", endpoint="Groups")
    gid = id_of(results[0])
    members = client.get(f"{SCIM}/Groups/{gid}").json()["members"]
    assert [m["value"] for m in members] == [gid]
    assert ldap(backend, GROUPS, "(cn=Ouroboros)", backend.member_attr) == {
        group_dn("Ouroboros"): {group_dn("Ouroboros")}
    }


def test_every_operation_gets_its_audit_record(
    client: TestClient, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """Each operation runs through the Service like a single request and is audited like one
    (its own LDAP writes); the record of the whole bulk request lists them all."""
    caplog.set_level("INFO", logger="bridge.audit")
    results = bulk(
        client,
        post_user("u", "audited", password="Secret-Pw-123"),
        post_group("a", "Audit A", "bulkId:b", type_="Group"),
        post_group("b", "Audit B", "bulkId:a", "bulkId:u", type_="Group"),
        post_user("bad", ""),
        {"method": "DELETE", "path": "/Users/bulkId:u"},
    )
    assert [r["status"] for r in results] == ["201", "201", "201", "400", "204"]
    records = [r for r in caplog.records if r.name == "bridge.audit"]
    per_op = [(r.scim_op, r.resource_type, r.status) for r in records[:-1]]  # type: ignore[attr-defined]
    assert per_op == [
        ("create", "User", 201),
        ("create", "Group", 201),
        ("create", "Group", 201),
        ("patch", "Group", 201),  # §3.7.1: group A gets B as a member once B exists
        ("create", "User", 400),
        ("delete", "User", 204),
    ]
    ops = [[(o["op"], o["dn"].lower()) for o in r.ldap_ops] for r in records[:-1]]  # type: ignore[attr-defined]
    assert ops[0] == [("add", user_dn("audited"))]
    assert ops[3] == [("modify", group_dn("Audit A"))]
    assert ops[4] == []
    assert ops[5] == [("delete", user_dn("audited"))]
    assert records[0].resource_id == id_of(results[0])  # type: ignore[attr-defined]
    whole = records[-1]
    assert (whole.scim_op, whole.status) == ("bulk", 200)  # type: ignore[attr-defined]
    assert len(whole.ldap_ops) == sum(len(o) for o in ops)  # type: ignore[attr-defined]
    assert "Secret-Pw-123" not in caplog.text


def test_limits_are_advertised(backend: Backend) -> None:
    """RFC 7644 §3.7.4 / RFC 7643 §5: the limits the endpoint enforces are the advertised ones."""
    client = make_client(backend, bulk_max_operations=17, bulk_max_payload_bytes=123_456)
    spc = client.get(f"{SCIM}/ServiceProviderConfig").json()
    assert spc["bulk"] == {"supported": True, "maxOperations": 17, "maxPayloadSize": 123_456}


def test_failed_operations_on_unknown_ids_keep_a_well_formed_location(client: TestClient) -> None:
    results = bulk(
        client,
        {"method": "DELETE", "path": "/Users/no%20such id"},
        {"method": "PUT", "path": "/Groups/x?y#z", "data": {"displayName": "x"}},
    )
    assert_error(results[0], 404)
    assert results[0]["location"] == f"{BASE}/Users/no%20such%20id"
    assert_error(results[1], 404)
    assert results[1]["location"] == f"{BASE}/Groups/x%3Fy%23z"
