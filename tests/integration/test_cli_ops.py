"""The CLI against real slapd: ``check-mapping --connect``, ``serve --workers N`` through the
``bridge.web.asgi:app`` factory, and ``serve`` terminating TLS with a required client certificate."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.cli import main
from tests.conftest import OPENLDAP_MAP, ROOT
from tests.integration.test_connections import _slapd

pytestmark = pytest.mark.slapd


@pytest.fixture(scope="module")
def slapd() -> Iterator[Any]:
    server = _slapd()
    server.start()
    yield server
    server.cleanup()


def _env(info: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_LDAP_URL", info.url)
    monkeypatch.setenv("BRIDGE_BIND_DN", info.bind_dn)
    monkeypatch.setenv("BRIDGE_BIND_PASSWORD", info.bind_password)


def test_check_mapping_connect_ok(
    slapd: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(slapd.info, monkeypatch)
    assert main(["check-mapping", str(OPENLDAP_MAP), "--connect"]) == 0, capsys.readouterr()
    assert "OK against" in capsys.readouterr().out


def test_check_mapping_connect_reports_every_problem(
    slapd: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    _env(slapd.info, monkeypatch)
    text = OPENLDAP_MAP.read_text()
    text = text.replace(
        "base_dn: ou=groups,dc=example,dc=org", "base_dn: ou=teams,dc=example,dc=org"
    )
    text = text.replace("{ldap: title}", "{ldap: jobTitleX}")
    text = text.replace("[top, groupOfNames]", "[top, groupOfNamez]")
    broken = tmp_path / "broken.yaml"
    broken.write_text(text)
    assert main(["check-mapping", str(broken), "--connect"]) == 1
    out = capsys.readouterr().out
    assert "3 problem(s)" in out
    assert "resources.Group.base_dn: ou=teams,dc=example,dc=org does not exist" in out
    assert "resources.User.attributes['title'].ldap: no attribute type 'jobTitleX'" in out
    assert "resources.Group.object_classes[1]: no object class 'groupOfNamez'" in out


def test_check_mapping_connect_bad_password(
    slapd: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(slapd.info, monkeypatch)
    monkeypatch.setenv("BRIDGE_BIND_PASSWORD", "wrong-password-xyz")
    assert main(["check-mapping", str(OPENLDAP_MAP), "--connect"]) == 1
    out = capsys.readouterr()
    assert "cannot connect and bind: invalidCredentials" in out.out
    assert "wrong-password-xyz" not in out.out + out.err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "serve", "--port", str(port), *args],
        cwd=ROOT,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return proc, port


def _wait(check: Any, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError((proc.stdout.read() if proc.stdout else b"").decode())
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not come up")


def _stop(proc: subprocess.Popen[bytes]) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out.decode()


def test_serve_with_workers_uses_the_factory(slapd: Any) -> None:
    info = slapd.info
    env = {
        "BRIDGE_LDAP_URL": info.url,
        "BRIDGE_BIND_DN": info.bind_dn,
        "BRIDGE_BIND_PASSWORD": info.bind_password,
        "BRIDGE_TOKEN": "workers-token-1",
        "BRIDGE_MAPPING": str(OPENLDAP_MAP),
        # several workers must share the cursor key (serve refuses to start without it)
        "BRIDGE_CURSOR_SECRET": "workers-cursor-secret",
    }
    proc, port = _serve(env, "--workers", "2")
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: httpx.get(f"{base}/readyz", timeout=2).status_code == 200, proc)
        auth = {"Authorization": "Bearer workers-token-1"}
        ids = set()
        for i in range(6):  # spread over both workers; each has its own pool
            r = httpx.post(
                f"{base}/scim/v2/Users",
                headers=auth,
                timeout=10,
                json={
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": f"worker-user-{i}",
                },
            )
            assert r.status_code == 201, r.text
            ids.add(r.json()["id"])
        assert len(ids) == 6
    finally:
        out = _stop(proc)
    assert "2 worker processes (bridge.web.asgi:app)" in out
    assert info.bind_password not in out and "workers-token-1" not in out


def test_embedded_serve_forces_one_worker() -> None:
    proc, port = _serve({"BRIDGE_LDAP_URL": "", "BRIDGE_TOKEN": "t"}, "--workers", "3")
    try:
        _wait(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).is_success, proc)
    finally:
        out = _stop(proc)
    assert "--workers ignored: the embedded directory lives in one process's memory" in out


def _certs(d: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (openssl)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*cmd: str) -> None:
        subprocess.run(cmd, cwd=d, check=True, capture_output=True)

    run(
        "openssl",
        "req",
        "-x509",
        *ec,
        "-days",
        "2",
        "-subj",
        "/CN=mtls test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        (d / f"{name}.cnf").write_text(ext)
        run(
            "openssl",
            "req",
            *ec,
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
        )
        run(
            "openssl",
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            f"{name}.cnf",
            "-out",
            f"{name}.crt",
        )


def test_serve_mutual_tls(tmp_path: Path) -> None:
    import ssl

    _certs(tmp_path)
    env = {
        "BRIDGE_LDAP_URL": "",
        "BRIDGE_TOKEN": "mtls-token",
        "BRIDGE_TLS_CERT": str(tmp_path / "server.crt"),
        "BRIDGE_TLS_KEY": str(tmp_path / "server.key"),
        "BRIDGE_TLS_CLIENT_CA": str(tmp_path / "ca.crt"),
    }
    proc, port = _serve(env)
    base = f"https://127.0.0.1:{port}"
    with_cert = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    with_cert.load_cert_chain(str(tmp_path / "client.crt"), str(tmp_path / "client.key"))
    without = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    try:
        _wait(lambda: httpx.get(f"{base}/healthz", verify=with_cert, timeout=2).is_success, proc)
        r = httpx.get(
            f"{base}/scim/v2/ServiceProviderConfig",
            verify=with_cert,
            timeout=5,
            headers={"Authorization": "Bearer mtls-token"},
        )
        assert r.status_code == 200
        with pytest.raises(httpx.HTTPError):  # the handshake fails without a client cert
            httpx.get(f"{base}/healthz", verify=without, timeout=5)
    finally:
        _stop(proc)
