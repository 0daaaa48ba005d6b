"""Operations: named tokens, probes, metrics, request ids, the audit log, and no secret in any
log line.  Runs on the embedded directory and on slapd (``backend`` fixture)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from bridge.observability.logs import JsonFormatter
from bridge.settings import Settings
from bridge.web.app import build_app
from tests.conftest import TOKEN, Backend, make_client
from tests.helpers import SCIM, USER_SCHEMA, create_user

PASSWORD = "Pa55w0rd-never-logged-7Qx"
NEW_PASSWORD = "An0ther-secret-never-logged-Zk"
OKTA_TOKEN = "okta-token-value-never-logged-3f9"
AUDITOR_TOKEN = "auditor-token-value-never-logged-8c1"


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger="bridge")
    yield caplog


def all_log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record rendered as the JSON log line the bridge would write."""
    fmt = JsonFormatter()
    return "\n".join(fmt.format(r) for r in caplog.records)


def audit_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "bridge.audit"]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def named(backend: Backend, tmp_path: Path) -> TestClient:
    """An app whose tokens come from the environment: one plain, one from a file, read-only."""
    secret_file = tmp_path / "auditor.token"
    secret_file.write_text(AUDITOR_TOKEN + "\n")
    env = {
        "BRIDGE_TOKEN_OKTA": OKTA_TOKEN,
        "BRIDGE_TOKEN_AUDITOR_FILE": str(secret_file),
        "BRIDGE_TOKEN_AUDITOR_READONLY": "true",
    }
    settings = Settings.from_env(env)
    app = build_app(settings, directory=backend.directory, mapping=backend.mapping)
    return TestClient(app, base_url="https://scim.example.test")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------------------------- auth
def test_named_tokens_and_read_only(
    named: TestClient, backend: Backend, logs: pytest.LogCaptureFixture
) -> None:
    body = {"schemas": [USER_SCHEMA], "userName": "tokened"}
    created = named.post(f"{SCIM}/Users", json=body, headers=bearer(OKTA_TOKEN))
    assert created.status_code == 201
    uid = created.json()["id"]
    assert named.get(f"{SCIM}/Users/{uid}", headers=bearer(AUDITOR_TOKEN)).status_code == 200
    search = named.post(
        f"{SCIM}/Users/.search",
        headers=bearer(AUDITOR_TOKEN),
        json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]},
    )
    assert search.status_code != 403  # POST .search is a read (RFC 7644 §3.4.3)
    if backend.name == "embedded":
        assert search.status_code == 200
    denied = named.delete(f"{SCIM}/Users/{uid}", headers=bearer(AUDITOR_TOKEN))
    assert denied.status_code == 403 and "read-only" in denied.json()["detail"]
    assert named.get(f"{SCIM}/Users/{uid}", headers=bearer(OKTA_TOKEN)).status_code == 200
    for bad in (
        {},
        bearer("nope"),
        {"Authorization": f"Basic {OKTA_TOKEN}"},
        bearer(OKTA_TOKEN + "x"),
    ):
        r = named.get(f"{SCIM}/Users/{uid}", headers=bad)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Bearer realm="scim"'
    records = audit_records(logs)
    tokens = [r.__dict__.get("token") for r in records if r.__dict__["scim_op"] != "authenticate"]
    assert tokens == ["okta", "auditor"]  # the create, and the refused delete
    refused = [r.__dict__ for r in records if r.__dict__["scim_op"] == "authenticate"]
    assert [(r["token"], r["status"]) for r in refused] == [(None, 401)] * 4  # each bad token
    text = all_log_text(logs)
    assert OKTA_TOKEN not in text and AUDITOR_TOKEN not in text


def test_token_settings_from_env(tmp_path: Path) -> None:
    f = tmp_path / "t"
    f.write_text("from-file\n")
    s = Settings.from_env(
        {
            "BRIDGE_TOKEN": "main",
            "BRIDGE_TOKEN_ENTRA_FILE": str(f),
            "BRIDGE_TOKEN_ENTRA_READONLY": "yes",
            "BRIDGE_TOKEN_OKTA": "o",
        }
    )
    got = {(t.name, t.secret, t.read_only) for t in s.tokens}
    assert got == {("default", "main", False), ("entra", "from-file", True), ("okta", "o", False)}
    assert "from-file" not in repr(s) and "main" not in repr(s.tokens)


# ---------------------------------------------------------------------------------- probes
def test_probes_need_no_token(client: TestClient) -> None:
    anonymous = {"Authorization": ""}
    assert client.get("/healthz", headers=anonymous).json() == {"status": "ok"}
    ready = client.get("/readyz", headers=anonymous)
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    metrics = client.get("/metrics", headers=anonymous)
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert "scim_bridge_http_requests_total" in metrics.text


def test_readyz_is_503_when_the_directory_fails(backend: Backend) -> None:
    from bridge.errors import DirectoryError

    client = make_client(backend)

    def down() -> None:
        raise DirectoryError("serverDown", "test", operation="check")

    client.app.state.directory.inner.check = down  # type: ignore[attr-defined]
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json() == {"status": "unavailable"}  # why: in the log only


# ---------------------------------------------------------------------------------- metrics
def test_metrics_counters_move(client: TestClient) -> None:
    route = f"{SCIM}/Users"
    before_create = sample(
        "scim_bridge_http_requests_total", route=route, method="POST", status="201"
    )
    before_get = sample(
        "scim_bridge_http_requests_total", route=f"{SCIM}/Users/{{id}}", method="GET", status="200"
    )
    before_404 = sample(
        "scim_bridge_http_requests_total", route=f"{SCIM}/Users/{{id}}", method="GET", status="404"
    )
    before_add = sample("scim_bridge_ldap_operations_total", operation="add", result="success")
    before_hist = sample(
        "scim_bridge_http_request_duration_seconds_count", route=route, method="POST"
    )
    before_ldap_hist = sample("scim_bridge_ldap_operation_duration_seconds_count", operation="add")
    user = create_user(client, "metered")
    client.get(f"{SCIM}/Users/{user['id']}")
    client.get(f"{SCIM}/Users/does-not-exist")
    assert (
        sample("scim_bridge_http_requests_total", route=route, method="POST", status="201")
        == before_create + 1
    )
    assert (
        sample(
            "scim_bridge_http_requests_total",
            route=f"{SCIM}/Users/{{id}}",
            method="GET",
            status="200",
        )
        == before_get + 1
    )
    assert (
        sample(
            "scim_bridge_http_requests_total",
            route=f"{SCIM}/Users/{{id}}",
            method="GET",
            status="404",
        )
        == before_404 + 1
    )
    assert (
        sample("scim_bridge_http_request_duration_seconds_count", route=route, method="POST")
        == before_hist + 1
    )
    assert (
        sample("scim_bridge_ldap_operations_total", operation="add", result="success")
        == before_add + 1
    )
    assert (
        sample("scim_bridge_ldap_operation_duration_seconds_count", operation="add")
        == before_ldap_hist + 1
    )
    # a failed LDAP operation is counted by its result code
    before_exists = sample(
        "scim_bridge_ldap_operations_total", operation="add", result="entryAlreadyExists"
    )
    before_409 = sample("scim_bridge_http_requests_total", route=route, method="POST", status="409")
    r = client.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": "metered"})
    assert r.status_code == 409
    assert (
        sample("scim_bridge_http_requests_total", route=route, method="POST", status="409")
        == before_409 + 1
    )
    assert (
        sample("scim_bridge_ldap_operations_total", operation="add", result="entryAlreadyExists")
        >= before_exists
    )  # may be caught by a search first
    # unknown paths never become label values
    client.get(f"{SCIM}/NoSuchThing-{'x' * 20}")
    text = client.get("/metrics").text
    assert "NoSuchThing" not in text
    assert 'scim_bridge_ldap_pool_connections{state="in_use"}' in text
    assert "scim_bridge_ldap_failovers_total" in text


def test_odd_methods_do_not_become_label_values(client: TestClient) -> None:
    def others() -> float:
        return sum(
            sample(
                "scim_bridge_http_requests_total",
                route=f"{SCIM}/Users",
                method="other",
                status=str(code),
            )
            for code in (401, 404, 405)
        )

    before = others()
    r = client.request("BREW", f"{SCIM}/Users")
    assert r.status_code in (401, 404, 405)
    assert "BREW" not in client.get("/metrics").text
    assert others() == before + 1


def test_unauthenticated_requests_are_counted_by_route(client: TestClient) -> None:
    route = f"{SCIM}/Users"
    before = sample("scim_bridge_http_requests_total", route=route, method="GET", status="401")
    assert client.get(route, headers={"Authorization": ""}).status_code == 401
    assert (
        sample("scim_bridge_http_requests_total", route=route, method="GET", status="401")
        == before + 1
    )


# ---------------------------------------------------------------------------------- request id
def test_request_id_is_echoed_and_reaches_ldap_log_lines(
    client: TestClient, logs: pytest.LogCaptureFixture
) -> None:
    r = client.post(
        f"{SCIM}/Users",
        json={"schemas": [USER_SCHEMA], "userName": "traced"},
        headers={"X-Request-Id": "idp-req-4711"},
    )
    assert r.status_code == 201 and r.headers["x-request-id"] == "idp-req-4711"
    ldap_lines = [x for x in logs.records if x.name == "bridge.ldap"]
    assert ldap_lines and all(x.__dict__.get("request_id") == "idp-req-4711" for x in ldap_lines)
    assert {x.__dict__["operation"] for x in ldap_lines} >= {"add", "search"}
    # a hostile request id is replaced, not logged
    r = client.get(f"{SCIM}/Users/x", headers={"X-Request-Id": "bad id\nwith newline"})
    assert r.headers["x-request-id"] != "bad id\nwith newline"
    assert len(r.headers["x-request-id"]) == 16


# ---------------------------------------------------------------------------------- audit
def test_one_audit_record_per_write_and_no_secret_anywhere(
    client: TestClient, backend: Backend, logs: pytest.LogCaptureFixture
) -> None:
    user = create_user(client, "audited", password=PASSWORD, displayName="Audited")
    uid = user["id"]
    again = client.put(
        f"{SCIM}/Users/{uid}",
        json={
            "schemas": [USER_SCHEMA],
            "userName": "audited",
            "password": NEW_PASSWORD,
            "displayName": "Audited",
        },
    )
    assert again.status_code == 200, again.text
    put = client.put(
        f"{SCIM}/Users/{uid}",
        json={"schemas": [USER_SCHEMA], "userName": "audited2", "password": PASSWORD},
    )
    assert put.status_code == 200, put.text
    dup = client.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": "audited2"})
    assert dup.status_code == 409
    client.get(f"{SCIM}/Users/{uid}")  # reads are not audited
    assert client.delete(f"{SCIM}/Users/{uid}").status_code == 204

    records = audit_records(logs)
    assert [r.__dict__["scim_op"] for r in records] == [
        "create",
        "replace",
        "replace",
        "create",
        "delete",
    ]
    assert [r.__dict__["status"] for r in records] == [201, 200, 200, 409, 204]
    for r in records:
        d = r.__dict__
        assert d["token"] == "test" and d["client"] == "testclient"
        assert d["resource_type"] == "User" and d["request_id"]
        assert r.levelno == logging.INFO
    created, patched, replaced, refused, deleted = (r.__dict__ for r in records)
    assert created["resource_id"] == uid and patched["resource_id"] == uid
    assert deleted["resource_id"] == uid and refused["resource_id"] is None
    (add,) = [op for op in created["ldap_ops"] if op["op"] == "add"]
    assert add["dn"].lower().startswith("uid=audited,") and add["result"] == "success"
    assert "userPassword" in add["attributes"] and "uid" in add["attributes"]
    (mod,) = patched["ldap_ops"]
    assert mod == {
        "op": "modify",
        "dn": add["dn"],
        "result": "success",
        "attributes": ["userPassword"],
    }
    assert "rename" in [op["op"] for op in replaced["ldap_ops"]]  # userName changed
    assert deleted["ldap_ops"] == [
        {"op": "delete", "dn": deleted["ldap_ops"][0]["dn"], "result": "success"}
    ]
    assert deleted["ldap_ops"][0]["dn"].lower().startswith("uid=audited2,")

    text = all_log_text(logs)
    for secret in (PASSWORD, NEW_PASSWORD, TOKEN):
        assert secret not in text
    assert '"logger":"bridge.audit"' in text and '"time":' in text


def test_unauthenticated_write_attempt_is_audited(
    client: TestClient, logs: pytest.LogCaptureFixture
) -> None:
    r = client.post(
        f"{SCIM}/Users",
        json={"schemas": [USER_SCHEMA], "userName": "x", "password": PASSWORD},
        headers={"Authorization": "Bearer wrong-token-value"},
    )
    assert r.status_code == 401
    (rec,) = audit_records(logs)
    assert rec.__dict__["token"] is None and rec.__dict__["status"] == 401
    assert rec.__dict__["ldap_ops"] == []
    text = all_log_text(logs)
    assert "wrong-token-value" not in text and PASSWORD not in text


def test_search_is_not_a_write(client: TestClient, logs: pytest.LogCaptureFixture) -> None:
    r = client.post(f"{SCIM}/Users/.search", json={"count": 1})
    assert r.status_code != 401
    assert audit_records(logs) == []


def test_served_logging_is_json_with_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    """setup_logging: JSON lines on stderr; the audit logger is on even at WARNING."""
    import json

    from bridge.observability import audit, context
    from bridge.observability.logs import setup_logging

    setup_logging(Settings(log_level="WARNING"))
    try:
        token = context.request_id.set("rid-123")
        logging.getLogger("bridge.ldap").info("hidden at WARNING")
        audit.write(
            audit.AuditRecord("rid-123", "okta", "10.0.0.1", "create", "User", "42", 201, [])
        )
        context.request_id.reset(token)
    finally:
        root = logging.getLogger("bridge")
        root.handlers[:] = []
        root.propagate = True
        root.setLevel(logging.NOTSET)
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(lines) == 1
    (line,) = lines
    assert line["logger"] == "bridge.audit" and line["request_id"] == "rid-123"
    assert line["token"] == "okta" and line["status"] == 201 and line["time"].endswith("Z")


# ---------------------------------------------------------------------------------- factory
@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"BRIDGE_TOKEN": "t"}, "BRIDGE_LDAP_URL"),
        (
            {"BRIDGE_LDAP_URL": "ldap://127.0.0.1:1", "BRIDGE_TOKEN": "t", "BRIDGE_DRY_RUN": "1"},
            "BRIDGE_DRY_RUN",
        ),
        ({"BRIDGE_LDAP_URL": "ldap://127.0.0.1:1"}, "BRIDGE_TOKEN"),
    ],
)
def test_asgi_factory_refuses_single_process_modes(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], problem: str
) -> None:
    from bridge.errors import ConfigError
    from bridge.web import asgi

    for key in [k for k in os.environ if k.startswith("BRIDGE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as err:
        asgi.app()
    assert err.value.problems[0].path == problem


def test_asgi_factory_builds_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.web import asgi

    monkeypatch.setenv("BRIDGE_LDAP_URL", "ldap://127.0.0.1:1")
    monkeypatch.setenv("BRIDGE_TOKEN", "factory-token")
    monkeypatch.setenv(
        "BRIDGE_MAPPING", str(Path(__file__).parent.parent / "mappings" / "openldap.yaml")
    )
    monkeypatch.delenv("BRIDGE_DRY_RUN", raising=False)
    try:
        app = asgi.app()
        client = TestClient(app)
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503  # nothing listens on port 1
    finally:
        root = logging.getLogger("bridge")
        root.handlers[:] = []
        root.propagate = True
        root.setLevel(logging.NOTSET)
