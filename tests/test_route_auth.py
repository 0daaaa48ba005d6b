"""Issue 16 items 2 and 13: read-only tokens and the audit decided by the matched route, reserved
names refused as ids and RDN values, failed authentications logged and audited without the
token, at a bounded rate.  Embedded directory and slapd with both clients."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.mapping.load import parse_mapping
from bridge.observability.logs import Budget, JsonFormatter, TextFormatter
from bridge.settings import Settings, Token
from bridge.web.app import build_app
from bridge.web.auth import AUTH_FAILURES_PER_SECOND
from tests.conftest import OPENLDAP_MAP, TOKEN, Backend, make_client
from tests.helpers import PATCH_SCHEMA, SCIM, USER_SCHEMA, create_user

READER = "reader-token-value-never-logged-5d2"


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger="bridge")
    yield caplog


def audit_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.__dict__ for r in caplog.records if r.name == "bridge.audit"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------ 2. read-only, matched route
@pytest.fixture
def uid_mapped(backend: Backend) -> Backend:
    """The mapping with the SCIM id on uid, a readable attribute: ``.search`` is then a real id
    once an entry named uid=.search exists (put there behind the bridge's back)."""
    text = OPENLDAP_MAP.read_text()
    mapping = parse_mapping(text.replace("id: {ldap: entryUUID, type: uuid}", "id: {ldap: uid}", 1))
    rmap = mapping.resource("User")
    backend.directory.add(
        f"uid=.search,{rmap.base_dn}",
        {
            "objectClass": [b"top", b"person", b"organizationalPerson", b"inetOrgPerson"],
            "uid": [b".search"],
            "cn": [b"Dot Search"],
            "sn": [b"Search"],
            "title": [b"unchanged"],
        },
    )
    return replace(backend, mapping=mapping)


def _two_token_client(backend: Backend) -> TestClient:
    settings = Settings(tokens=(Token("rw", TOKEN), Token("reader", READER, read_only=True)))
    app = build_app(settings, directory=backend.directory, mapping=backend.mapping)
    return TestClient(app, base_url="https://scim.example.test")


def _dot_search_entry(backend: Backend) -> Any:
    rmap = backend.mapping.resource("User")
    return backend.directory.read(f"uid=.search,{rmap.base_dn}", ["title", "userPassword"])


WRITES = [
    ("PATCH", "/Users/.search"),
    ("PUT", "/Users/.search"),
    ("DELETE", "/Users/.search"),
    ("PATCH", "/Users/%2Esearch"),
    ("DELETE", "/Users/.search/"),
    ("PATCH", "/Groups/.search"),
    ("POST", "/Users"),
    ("POST", "/Users/.search/"),
    ("POST", "/Bulk"),
    ("DELETE", "/.search"),
]
PATCH_BODY = {
    "schemas": [PATCH_SCHEMA],
    "Operations": [
        {"op": "replace", "path": "title", "value": "pwned"},
        {"op": "replace", "path": "password", "value": "Pwned-123"},
    ],
}


def _body(method: str, path: str) -> Any:
    if method == "PUT":
        return {"schemas": [USER_SCHEMA], "userName": ".search", "title": "pwned"}
    if path == "/Bulk":
        return {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [{"method": "DELETE", "path": "/Users/.search"}],
        }
    if method == "POST":
        return {"schemas": [USER_SCHEMA], "userName": "intruder"}
    return PATCH_BODY


@pytest.mark.parametrize(("method", "path"), WRITES, ids=[f"{m} {p}" for m, p in WRITES])
def test_read_only_token_cannot_write_through_any_path(
    uid_mapped: Backend, logs: pytest.LogCaptureFixture, method: str, path: str
) -> None:
    client = _two_token_client(uid_mapped)
    r = client.request(method, SCIM + path, json=_body(method, path), headers=bearer(READER))
    assert r.status_code == 403, r.text
    assert r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    entry = _dot_search_entry(uid_mapped)
    assert entry is not None and entry.get("title") == [b"unchanged"]
    assert not entry.get("userPassword")
    assert client.get(f"{SCIM}/Users", headers=bearer(TOKEN)).json()["totalResults"] == 1
    if path.split("/")[1] in ("Users", "Groups", "Bulk"):  # a resource endpoint: audited
        (record,) = audit_records(logs)
        assert record["token"] == "reader" and record["status"] == 403


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_search_paths_never_reach_the_service_as_an_id(
    uid_mapped: Backend, logs: pytest.LogCaptureFixture, method: str
) -> None:
    client = _two_token_client(uid_mapped)
    body = _body(method, "/Users/.search") if method != "GET" else None
    r = client.request(method, f"{SCIM}/Users/.search", json=body, headers=bearer(TOKEN))
    assert r.status_code == 405, r.text
    assert r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    entry = _dot_search_entry(uid_mapped)
    assert entry is not None and entry.get("title") == [b"unchanged"]
    records = audit_records(logs)
    if method == "GET":
        assert records == []
    else:  # every write attempt is audited, also one that no route serves
        (record,) = records
        assert record["token"] == "rw" and record["status"] == 405
        assert record["resource_type"] == "User" and record["ldap_ops"] == []


def test_read_only_token_still_searches(
    uid_mapped: Backend, logs: pytest.LogCaptureFixture
) -> None:
    client = _two_token_client(uid_mapped)
    for path in ("/Users/.search", "/.search"):
        r = client.post(SCIM + path, json={"count": 5}, headers=bearer(READER))
        assert r.status_code == 200, r.text
        assert r.json()["totalResults"] == 1
    assert audit_records(logs) == []  # a search is a read


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
def test_bulk_paths_never_reach_the_service_with_a_reserved_id(
    uid_mapped: Backend, method: str
) -> None:
    """/Bulk parses its operation paths itself: a read-write token's ``DELETE /Users/.search``
    inside a BulkRequest must not find the entry named uid=.search either."""
    client = _two_token_client(uid_mapped)
    op: dict[str, Any] = {"method": method, "path": "/Users/.search"}
    if method != "DELETE":
        op["data"] = _body(method, "/Users/.search")
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [op]}
    r = client.post(f"{SCIM}/Bulk", json=body, headers=bearer(TOKEN))
    assert r.status_code == 200, r.text
    (result,) = r.json()["Operations"]
    assert result["status"] == "404", result
    entry = _dot_search_entry(uid_mapped)
    assert entry is not None and entry.get("title") == [b"unchanged"]
    assert not entry.get("userPassword")


@pytest.mark.parametrize("name", [".search", ".", ".."])
def test_reserved_names_are_refused_as_rdn_values(backend: Backend, name: str) -> None:
    client = make_client(backend)
    r = client.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": name})
    assert r.status_code == 400 and r.json()["scimType"] == "invalidValue"
    assert repr(name) in r.json()["detail"] and "reserved" in r.json()["detail"]
    user = create_user(client, "renamed")
    put = client.put(
        f"{SCIM}/Users/{user['id']}", json={"schemas": [USER_SCHEMA], "userName": name}
    )
    assert put.status_code == 400 and "reserved" in put.json()["detail"]
    r = client.patch(
        f"{SCIM}/Users/{user['id']}",
        json={
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "path": "userName", "value": name}],
        },
    )
    assert r.status_code == 400 and "reserved" in r.json()["detail"]
    assert client.get(f"{SCIM}/Users/{user['id']}").json()["userName"] == "renamed"
    assert client.get(f"{SCIM}/Users").json()["totalResults"] == 1


# ---------------------------------------------------------------- 6. failed authentications
def test_failed_authentications_are_logged_without_the_token(
    backend: Backend, logs: pytest.LogCaptureFixture
) -> None:
    client = make_client(backend)
    secretish = "wrong-" + TOKEN  # contains the real token too
    r = client.patch(f"{SCIM}/Users/abc", json=PATCH_BODY, headers=bearer(secretish))
    assert r.status_code == 401
    (warning,) = [x for x in logs.records if x.name == "bridge.http" and "authentication" in x.msg]
    assert warning.levelno == logging.WARNING
    assert warning.__dict__["client"] == "testclient"
    assert warning.__dict__["path"] == f"{SCIM}/Users/abc"
    assert warning.__dict__["reason"] == "unknown bearer token"
    (record,) = audit_records(logs)
    assert record["scim_op"] == "authenticate" and record["status"] == 401
    assert record["token"] is None and record["path"] == f"{SCIM}/Users/abc"
    text = "\n".join(JsonFormatter().format(x) for x in logs.records)
    text += "\n".join(TextFormatter().format(x) for x in logs.records)
    for part in (TOKEN, secretish, TOKEN[:8], TOKEN[-8:]):
        assert part not in text


def test_failed_authentications_are_rate_limited(
    backend: Backend, logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bridge.web.auth

    # the middleware's bucket on a clock the test moves: the same on a slow, loaded machine
    now = [1000.0]
    monkeypatch.setattr(bridge.web.auth, "Budget", lambda rate: Budget(rate, clock=lambda: now[0]))
    client = make_client(backend)
    for i in range(60):
        assert client.get(f"{SCIM}/Users", headers=bearer(f"guess-{i}")).status_code == 401
    warned = [x for x in logs.records if x.name == "bridge.http" and "authentication" in x.msg]
    assert len(warned) == int(AUTH_FAILURES_PER_SECOND)  # a burst, then nothing
    assert len(audit_records(logs)) == len(warned)
    now[0] += 1.0 / AUTH_FAILURES_PER_SECOND  # one more may be logged
    assert client.get(f"{SCIM}/Users", headers=bearer("one-more")).status_code == 401
    last = [x for x in logs.records if x.name == "bridge.http" and "authentication" in x.msg][-1]
    assert f"{60 - len(warned)} more not logged" in last.getMessage()
    records = audit_records(logs)
    assert records[-1]["suppressed"] == 60 - len(warned)
    assert len(records) + sum(r["suppressed"] for r in records) == 61  # every one counted


def test_budget_refills_at_its_rate() -> None:
    now = [0.0]
    budget = Budget(2.0, clock=lambda: now[0])
    assert [budget.take() for _ in range(4)] == [(True, 0), (True, 0), (False, 0), (False, 0)]
    now[0] += 0.5
    assert budget.take() == (True, 2) and budget.take() == (False, 0)
    now[0] += 10
    assert budget.take() == (True, 1) and budget.take() == (True, 0)


# ------------------------------------------------------------------ a base URL ending in "/"
def test_doubled_slashes_reach_the_same_route(uid_mapped: Backend) -> None:
    """An IdP given a base URL that ends in "/" (Okta's On-Prem Provisioning agent asks for
    one) sends ``/scim/v2//Users``: the same route, auth and read-only rule as ``/Users``."""
    client = _two_token_client(uid_mapped)
    r = client.get(f"{SCIM}//Users", headers=bearer(TOKEN))
    assert r.status_code == 200, r.text
    assert r.json()["totalResults"] == 1
    r = client.request("PATCH", f"{SCIM}//Users//.search", json=PATCH_BODY, headers=bearer(READER))
    assert r.status_code == 403, r.text
    entry = _dot_search_entry(uid_mapped)
    assert entry is not None and entry.get("title") == [b"unchanged"]
