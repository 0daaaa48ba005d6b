"""Directory connections against real slapd: failover, recovery after a restart, LDAPS and
StartTLS with a generated CA, refusal of a certificate for another name, pool bounds."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.directory.base import Directory
from bridge.errors import ConfigError, DirectoryError
from tests.conftest import OPENLDAP_MAP, TOKEN, slapd_directory, unavailable
from tests.helpers import create_user

pytestmark = pytest.mark.slapd


def _slapd() -> Any:
    try:
        from devtools.slapd import Slapd, require_slapd

        require_slapd()
    except (ImportError, RuntimeError) as exc:
        unavailable(f"slapd is not available: {exc}")
    return Slapd()


@pytest.fixture
def slapd() -> Iterator[Any]:
    server = _slapd()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def two_slapds() -> Iterator[tuple[Any, Any]]:
    a, b = _slapd(), _slapd()
    a.start()
    b.start()
    yield a, b
    a.cleanup()
    b.cleanup()


def _directory(info: Any, *urls: str, client: str = "ldap3", **kw: Any) -> Any:
    return slapd_directory(
        info,
        client,
        urls=urls or (info.url,),
        connect_timeout=3,
        operation_timeout=10,
        **kw,
    )


@pytest.fixture(params=["ldap3", "libldap"])
def client_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _people(d: Directory, info: Any) -> list[str]:
    return [
        e.dn for e in d.search(info.people_dn, "(objectClass=*)", ["1.1"], scope="base").entries
    ]


def _add_user(d: Directory, info: Any, uid: str) -> str:
    dn = f"uid={uid},{info.people_dn}"
    d.add(
        dn, {"objectClass": [b"inetOrgPerson"], "uid": [uid.encode()], "cn": [b"x"], "sn": [b"x"]}
    )
    return dn


# ---------------------------------------------------------------------------------- failover
def test_failover_to_second_server_when_first_is_stopped(
    two_slapds: tuple[Any, Any], client_name: str
) -> None:
    a, b = two_slapds
    d = _directory(a.info, a.info.url, b.info.url, client=client_name)
    try:
        d.check()
        assert d.pool_stats().current_url == a.info.url
        _add_user(d, a.info, "on-a")  # pooled connection to a
        a.stop()
        # the pooled connection to a is dead: it is discarded, the next connect goes to b,
        # and even a write (never retried) succeeds
        dn = _add_user(d, a.info, "on-b")
        stats = d.pool_stats()
        assert stats.current_url == b.info.url and stats.failovers == 1
        found = b.connection().search(dn, "(objectClass=*)", "BASE")
        assert found, "the write went to the second server"
        assert d.read(f"uid=on-a,{a.info.people_dn}", ["uid"]) is None  # b never had it
    finally:
        d.close()


def test_failback_when_first_server_returns(two_slapds: tuple[Any, Any], client_name: str) -> None:
    a, b = two_slapds
    d = _directory(
        a.info, a.info.url, b.info.url, client=client_name, server_backoff=0.2, idle_timeout=0.1
    )
    try:
        d.check()
        a.stop()
        d.check()
        assert d.pool_stats().current_url == b.info.url
        a.start()
        time.sleep(0.3)  # backoff over, idle connection to b aged out
        d.check()
        assert d.pool_stats().current_url == a.info.url
        assert d.pool_stats().failovers == 2
    finally:
        d.close()


def test_all_servers_down_is_a_fast_503_then_recovers(
    two_slapds: tuple[Any, Any], client_name: str
) -> None:
    a, b = two_slapds
    d = _directory(a.info, a.info.url, b.info.url, client=client_name)
    try:
        d.check()
        a.stop()
        b.stop()
        started = time.monotonic()
        with pytest.raises(DirectoryError) as err:
            d.check()
        assert err.value.transient and err.value.to_scim().status == 503
        assert a.info.url in err.value.message and b.info.url in err.value.message
        assert time.monotonic() - started < 2  # no ldap3 ServerPool 10 s sleep
        b.start()
        d.check()  # no waiting for an availability timeout either
        assert d.pool_stats().current_url == b.info.url
    finally:
        d.close()


# ---------------------------------------------------------------------------------- recovery
def test_recovery_after_slapd_restart_without_bridge_restart(slapd: Any) -> None:
    info = slapd.info
    d = _directory(info, pool_size=4)
    try:
        # fill the pool with several live connections
        barrier = threading.Barrier(4)

        def use() -> None:
            barrier.wait()
            d.check()

        threads = [threading.Thread(target=use) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert d.pool_stats().idle >= 2
        slapd.restart()
        # every pooled connection is now dead; writes are not retried, yet none fails
        for i in range(6):
            _add_user(d, info, f"after-restart-{i}")
        assert len(d.search(info.people_dn, "(uid=after-restart-*)", ["uid"]).entries) == 6
    finally:
        d.close()


def test_directory_down_then_up_through_the_app(slapd: Any) -> None:
    from starlette.testclient import TestClient

    from bridge.mapping.load import load_mapping
    from bridge.settings import Settings, Token
    from bridge.web.app import build_app

    info = slapd.info
    settings = Settings(
        ldap_urls=(info.url,),
        bind_dn=info.bind_dn,
        bind_password=info.bind_password,
        tokens=(Token("t", TOKEN),),
        connect_timeout=2,
    )
    app = build_app(settings, mapping=load_mapping(OPENLDAP_MAP))
    app.state.readiness.ttl = 0  # this test follows each change at once: no cached answer
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        assert client.get("/readyz").status_code == 200
        user = create_user(client, "survivor")
        where = f"/scim/v2/Users/{user['id']}"
        assert client.get(where).status_code == 200
        slapd.stop()
        down = client.get(where)
        assert down.status_code == 503 and down.headers["Retry-After"]
        assert down.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json() == {"status": "unavailable"}
        assert client.get("/healthz").status_code == 200  # the process is fine
        slapd.start()
        assert client.get("/readyz").status_code == 200
        assert client.get(where).json()["userName"] == "survivor"


def test_pool_is_bounded(slapd: Any) -> None:
    d = _directory(slapd.info, pool_size=2)
    peak = 0
    lock = threading.Lock()
    try:

        def work() -> None:
            nonlocal peak
            for _ in range(10):
                d.check()
                with lock:
                    peak = max(peak, d.pool_stats().in_use)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = d.pool_stats()
        assert peak <= 2 and stats.in_use == 0 and stats.idle <= 2
    finally:
        d.close()


def test_bad_credentials_do_not_fail_over(two_slapds: tuple[Any, Any], client_name: str) -> None:
    a, b = two_slapds
    d = _directory(a.info, a.info.url, b.info.url, client=client_name, bind_password="wrong")
    with pytest.raises(DirectoryError) as err:
        d.check()
    assert err.value.code == "invalidCredentials" and d.pool_stats().failovers == 0


# ---------------------------------------------------------------------------------- TLS
def _reissue(slapd: Any, *names: str) -> None:
    """Replace the server certificate with one for other names, signed by the same test CA."""
    tls = Path(slapd.info.directory) / "tls"
    sans = ",".join(f"DNS:{n}" for n in names)
    (tls / "other.cnf").write_text(f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *cmd: subprocess.run(cmd, cwd=tls, check=True, capture_output=True)  # noqa: E731
    run(
        "openssl",
        "req",
        *ec,
        "-subj",
        f"/CN={names[0]}",
        "-keyout",
        "server.key",
        "-out",
        "other.csr",
    )
    run(
        "openssl",
        "x509",
        "-req",
        "-in",
        "other.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        "other.cnf",
        "-out",
        "server.crt",
    )
    slapd.restart()


def test_ldaps_with_ca_file(slapd: Any) -> None:
    info = slapd.info
    d = _directory(info, info.ldaps_url, ca_file=info.ca_file)
    try:
        d.check()
        _add_user(d, info, "over-ldaps")
    finally:
        d.close()


def test_starttls_with_ca_file(slapd: Any) -> None:
    info = slapd.info
    d = _directory(info, info.url, start_tls=True, ca_file=info.ca_file)
    try:
        d.check()
        idle = d._slots.pop_idle()
        assert idle is not None
        conn, _ = idle
        assert conn.tls_started
        d._slots.take(0)
        d._slots.give((conn, time.monotonic()))
    finally:
        d.close()


@pytest.mark.parametrize("mode", ["ldaps", "starttls"])
def test_certificate_without_the_ca_is_refused(slapd: Any, mode: str) -> None:
    info = slapd.info
    url = info.ldaps_url if mode == "ldaps" else info.url
    d = _directory(info, url, start_tls=mode == "starttls")  # system CAs only
    with pytest.raises(DirectoryError) as err:
        d.check()
    assert err.value.code == "connectError" and "certificate" in err.value.message.lower()


@pytest.mark.parametrize("mode", ["ldaps", "starttls"])
def test_certificate_for_another_name_is_refused(slapd: Any, mode: str) -> None:
    _reissue(slapd, "directory.other.example")
    info = slapd.info
    url = info.ldaps_url if mode == "ldaps" else info.url
    d = _directory(info, url, start_tls=mode == "starttls", ca_file=info.ca_file)
    with pytest.raises(DirectoryError) as err:
        d.check()
    assert err.value.code == "connectError"
    assert "doesn't match any name" in err.value.message  # the hostname check, not the chain
    # the same chain is accepted when the operator names the expected host explicitly
    ok = _directory(
        info,
        url,
        start_tls=mode == "starttls",
        ca_file=info.ca_file,
        tls_hostname="directory.other.example",
    )
    try:
        ok.check()
    finally:
        ok.close()


def test_verification_off_is_explicit_and_logged(
    slapd: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _reissue(slapd, "directory.other.example")
    info = slapd.info
    with caplog.at_level(logging.WARNING, logger="bridge.ldap"):
        d = _directory(info, info.ldaps_url, verify=False)
    assert any("verification is OFF" in r.getMessage() for r in caplog.records)
    try:
        d.check()  # works, as asked, against a certificate that does not match
    finally:
        d.close()


def test_unreadable_ca_file_is_a_config_error(slapd: Any) -> None:
    with pytest.raises(ConfigError) as err:
        _directory(slapd.info, slapd.info.ldaps_url, ca_file="/nonexistent/ca.pem")
    assert "BRIDGE_LDAP_CA_FILE" in str(err.value)
