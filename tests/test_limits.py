"""Input limits and malformed input: each refused with the SCIM error that names the problem
(RFC 7644 §3.12), before the directory is touched; never a 500."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from tests.conftest import Backend, make_client
from tests.helpers import PATCH_SCHEMA, SCIM, USER_SCHEMA, create_user

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIMIT = 2000


@pytest.fixture
def small(backend: Backend) -> TestClient:
    """A bridge configured with a 2,000-byte body limit (settings.max_body_bytes)."""
    return make_client(backend, max_body_bytes=LIMIT)


def scim_error(r: object, status: int, scim_type: str | None = None) -> dict[str, object]:
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    assert r.headers["content-type"].startswith("application/scim+json")  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    return body  # type: ignore[no-any-return]


def big_user(size: int) -> bytes:
    pad = "x" * size
    return f'{{"schemas":["{USER_SCHEMA}"],"userName":"big","title":"{pad}"}}'.encode()


def test_body_over_the_limit_with_content_length_is_413(small: TestClient) -> None:
    r = small.post(
        f"{SCIM}/Users", content=big_user(LIMIT), headers={"content-type": "application/scim+json"}
    )
    body = scim_error(r, 413)
    assert str(LIMIT) in str(body["detail"])
    assert small.get(f"{SCIM}/Users").json()["totalResults"] == 0


def test_chunked_body_over_the_limit_is_413(small: TestClient) -> None:
    """No Content-Length (Transfer-Encoding: chunked): the limit applies while streaming."""
    payload = big_user(LIMIT * 3)

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(payload), 500):
            yield payload[i : i + 500]

    r = small.post(f"{SCIM}/Users", content=chunks())
    assert "content-length" not in {k.lower() for k in r.request.headers}
    scim_error(r, 413)
    assert small.get(f"{SCIM}/Users").json()["totalResults"] == 0


def test_chunked_body_under_the_limit_is_accepted(small: TestClient) -> None:
    payload = big_user(100)
    r = small.post(f"{SCIM}/Users", content=iter([payload[:50], payload[50:]]))
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("method", ["put", "patch"])
def test_limit_applies_to_every_write(small: TestClient, method: str) -> None:
    user = create_user(small, "limited")
    r = small.request(method.upper(), f"{SCIM}/Users/{user['id']}", content=big_user(LIMIT))
    scim_error(r, 413)


@pytest.mark.parametrize(
    "raw",
    [b"{", b"[1,", b"nul", b"\xff\xfe{}", b'{"userName": "a" "b"}', b"{'userName': 'x'}", b""],
)
def test_malformed_json_is_invalid_syntax(client: TestClient, raw: bytes) -> None:
    r = client.post(f"{SCIM}/Users", content=raw, headers={"content-type": "application/scim+json"})
    scim_error(r, 400, "invalidSyntax")


def test_lone_surrogate_is_refused(client: TestClient) -> None:
    r = client.post(
        f"{SCIM}/Users",
        content=b'{"schemas":["' + USER_SCHEMA.encode() + b'"],"userName":"\\ud800"}',
    )
    assert r.status_code == 400, r.text
    assert r.json()["scimType"] in ("invalidSyntax", "invalidValue")


@pytest.mark.parametrize("raw", [b"[]", b'"user"', b"1", b"null", b"true"])
def test_body_that_is_not_an_object_is_invalid_syntax(client: TestClient, raw: bytes) -> None:
    scim_error(client.post(f"{SCIM}/Users", content=raw), 400, "invalidSyntax")


@pytest.mark.parametrize(
    "extra",
    [
        {"userName": {"a": 1}},
        {"userName": ["a", "b"]},
        {"name": "Barbara Jensen"},
        {"active": "maybe"},
        {"active": 3},
        {"displayName": {"value": "x"}},
        {"meta": "not-an-object", "userName": ["x"]},
    ],
)
def test_wrong_json_types_are_invalid_value(client: TestClient, extra: dict[str, object]) -> None:
    body = {"schemas": [USER_SCHEMA], "userName": "typed", **extra}
    scim_error(client.post(f"{SCIM}/Users", json=body), 400, "invalidValue")


def test_filter_length_and_depth_limits(client: TestClient) -> None:
    long = 'userName eq "' + "a" * 5000 + '"'
    scim_error(client.get(f"{SCIM}/Users", params={"filter": long}), 400, "invalidFilter")
    deep = "(" * 40 + 'userName eq "a"' + ")" * 40
    scim_error(client.get(f"{SCIM}/Users", params={"filter": deep}), 400, "invalidFilter")
    many = " or ".join(f'userName eq "u{i}"' for i in range(200))
    scim_error(client.get(f"{SCIM}/Users", params={"filter": many}), 400, "invalidFilter")


def test_count_is_clamped_not_refused(backend: Backend) -> None:
    """RFC 7644 §3.4.2.4: a count above the maximum is answered with at most the maximum;
    a negative count is 0; startIndex below 1 is 1."""
    client = make_client(backend, max_results=3)
    for i in range(5):
        create_user(client, f"c{i}")
    r = client.get(f"{SCIM}/Users", params={"count": "100000"})
    assert r.status_code == 200
    assert (r.json()["itemsPerPage"], r.json()["totalResults"]) == (3, 5)
    r = client.get(f"{SCIM}/Users", params={"count": "-5"})
    assert r.status_code == 200 and r.json()["itemsPerPage"] == 0
    r = client.get(f"{SCIM}/Users", params={"startIndex": "-3", "count": "2"})
    assert r.status_code == 200 and r.json()["startIndex"] == 1
    r = client.get(f"{SCIM}/Users", params={"startIndex": "2200000000"})  # > LDAP maxInt
    assert r.status_code == 200 and r.json()["Resources"] == [], r.text
    scim_error(client.get(f"{SCIM}/Users", params={"count": "ten"}), 400, "invalidValue")
    scim_error(client.get(f"{SCIM}/Users", params={"count": "9" * 5000}), 400, "invalidValue")


def test_client_supplied_id_and_meta_are_ignored(client: TestClient) -> None:
    """RFC 7643 §3.1 / RFC 7644 §3.3: ``id`` and ``meta`` are assigned by the service provider;
    values in a request are ignored (not an error: IdPs echo resources back on PUT)."""
    body = {
        "schemas": [USER_SCHEMA],
        "id": "evil-id",
        "userName": "idtest",
        "meta": {"resourceType": "Group", "created": "1970-01-01T00:00:00Z", "version": 'W/"1"'},
    }
    r = client.post(f"{SCIM}/Users", json=body)
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["id"] != "evil-id"
    assert user["meta"]["resourceType"] == "User" and user["meta"]["version"] != 'W/"1"'
    r = client.put(f"{SCIM}/Users/{user['id']}", json={**body, "id": "other-id"})
    assert r.status_code == 200 and r.json()["id"] == user["id"]
    assert client.get(f"{SCIM}/Users/evil-id").status_code == 404


def test_unknown_attributes_are_ignored_on_create_and_put(client: TestClient) -> None:
    """Decision (docs/errors.md): an attribute the mapping does not know is ignored on POST/PUT
    (RFC 7644 §3.3 lets the provider drop what it does not store; Okta and Entra send attributes
    the directory has no place for), and never echoed back; in a PATCH path it is 400
    invalidPath, because there the client asked for that one change explicitly."""
    body = {"schemas": [USER_SCHEMA], "userName": "unk", "nickName": "n", "favouriteColour": "red"}
    r = client.post(f"{SCIM}/Users", json=body)
    assert r.status_code == 201, r.text
    assert "nickName" not in r.json() and "favouriteColour" not in r.json()
    r = client.put(f"{SCIM}/Users/{r.json()['id']}", json=body)
    assert r.status_code == 200 and "favouriteColour" not in r.json()
    r = client.patch(
        f"{SCIM}/Users/{r.json()['id']}",
        json={
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "path": "favouriteColour", "value": "x"}],
        },
    )
    scim_error(r, 400, "invalidPath")


def test_unknown_schema_urn_with_attributes_is_refused(client: TestClient) -> None:
    """Issue 15: an unknown URN is refused when the body carries attributes under it (they
    could not be stored); one that carries none is ignored (tests/test_patch_shapes.py)."""
    body = {"schemas": [USER_SCHEMA, "urn:example:evil"], "userName": "s",
            "urn:example:evil": {"x": "1"}}  # fmt: skip
    scim_error(client.post(f"{SCIM}/Users", json=body), 400, "invalidValue")
    bare = {"schemas": [USER_SCHEMA, "urn:example:evil"], "userName": "s"}
    assert client.post(f"{SCIM}/Users", json=bare).status_code == 201


@pytest.mark.parametrize("path", ["/Users/" + "a" * 5000, "/Users/%00", "/Nope", "/Users/x/y"])
def test_odd_urls_are_scim_errors(client: TestClient, path: str) -> None:
    r = client.get(f"{SCIM}{path}")
    assert r.status_code in (400, 404), r.text
    assert r.json()["schemas"] == [ERROR]
