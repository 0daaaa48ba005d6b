"""The safety checks both LDAP clients share (bridge/directory/transport.py, run by the one
PooledDirectory in bridge/directory/pooled.py), each run with ldap3
and with python-ldap against a real slapd: the start-up checks of the settings (no URL, CA
file), the warnings (TLS verification off, bind password in clear to another host), TLS
failures in words, and failovers counted (the ``scim_bridge_ldap_failovers_total`` metric)."""

from __future__ import annotations

import logging
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.directory.base import Directory
from bridge.errors import ConfigError, DirectoryError
from tests.conftest import slapd_directory

pytestmark = pytest.mark.slapd

CLIENTS = ["ldap3", "libldap"]


@pytest.fixture(params=CLIENTS)
def client_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def opened() -> Iterator[list[Directory]]:
    """Directories a test made, closed afterwards."""
    made: list[Directory] = []
    yield made
    for d in made:
        d.close()


def _make(info: Any, client: str, opened: list[Directory], **overrides: Any) -> Directory:
    d = slapd_directory(info, client, connect_timeout=3, operation_timeout=10, **overrides)
    opened.append(d)
    return d


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# ---------------------------------------------------------------------------------- settings
def test_no_url_is_the_same_config_error(slapd_server: Any, client_name: str) -> None:
    with pytest.raises(ConfigError) as err:
        slapd_directory(slapd_server, client_name, urls=())
    assert "BRIDGE_LDAP_URL" in str(err.value)


@pytest.mark.parametrize("problem", ["missing", "not-pem"])
def test_bad_ca_file_is_a_config_error_at_start(
    slapd_server: Any, client_name: str, problem: str, tmp_path: Path
) -> None:
    """Not an "option error" 500 on every request (python-ldap) but a refusal to start."""
    ca = tmp_path / "ca.pem"
    if problem == "not-pem":
        ca.write_text("this is no certificate\n")
    with pytest.raises(ConfigError) as err:
        slapd_directory(slapd_server, client_name, urls=(slapd_server.ldaps_url,), ca_file=str(ca))
    assert "BRIDGE_LDAP_CA_FILE" in str(err.value) and str(ca) in str(err.value)


def test_ca_file_gone_after_start_is_a_503_in_words(
    slapd_server: Any, client_name: str, tmp_path: Path, opened: list[Directory]
) -> None:
    ca = tmp_path / "ca.pem"
    shutil.copy(slapd_server.ca_file, ca)
    d = _make(slapd_server, client_name, opened, urls=(slapd_server.ldaps_url,), ca_file=str(ca))
    ca.unlink()
    with pytest.raises(DirectoryError) as err:
        d.check()
    assert err.value.to_scim().status == 503
    assert err.value.code == "connectError"
    assert f"BRIDGE_LDAP_CA_FILE: cannot read {ca}" in err.value.message, err.value.message


def test_verification_off_is_logged(
    slapd_server: Any, client_name: str, caplog: pytest.LogCaptureFixture, opened: list[Directory]
) -> None:
    with caplog.at_level(logging.WARNING, logger="bridge.ldap"):
        d = _make(slapd_server, client_name, opened, urls=(slapd_server.ldaps_url,), verify=False)
    assert any("verification is OFF" in m for m in _warnings(caplog))
    d.check()  # works, as asked, without the CA


def test_verification_on_is_not_logged(
    slapd_server: Any, client_name: str, caplog: pytest.LogCaptureFixture, opened: list[Directory]
) -> None:
    with caplog.at_level(logging.WARNING, logger="bridge.ldap"):
        _make(
            slapd_server,
            client_name,
            opened,
            urls=(slapd_server.ldaps_url,),
            ca_file=slapd_server.ca_file,
        )
    assert not _warnings(caplog)


def test_clear_text_bind_to_another_host_is_logged(
    slapd_server: Any, client_name: str, caplog: pytest.LogCaptureFixture, opened: list[Directory]
) -> None:
    with caplog.at_level(logging.WARNING, logger="bridge.ldap"):
        _make(slapd_server, client_name, opened, urls=("ldap://directory.example.test:389",))
    assert any("bind password is sent in clear text" in m for m in _warnings(caplog))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bridge.ldap"):  # loopback: no warning
        _make(slapd_server, client_name, opened)
        _make(slapd_server, client_name, opened, urls=("ldap://directory.example.test:389",),
              start_tls=True)  # fmt: skip
    assert not _warnings(caplog)


# ---------------------------------------------------------------------------------- TLS
@pytest.mark.parametrize("mode", ["ldaps", "starttls"])
def test_untrusted_certificate_is_refused_in_words(
    slapd_server: Any, client_name: str, mode: str, opened: list[Directory]
) -> None:
    """python-ldap alone says "Can't contact LDAP server (unknown error code)"."""
    url = slapd_server.ldaps_url if mode == "ldaps" else slapd_server.url
    d = _make(slapd_server, client_name, opened, urls=(url,), start_tls=mode == "starttls")
    with pytest.raises(DirectoryError) as err:
        d.check()  # the system CA store does not know the fixture's CA
    assert err.value.code == "connectError" and err.value.to_scim().status == 503
    assert "certificate verify failed" in err.value.message.lower(), err.value.message
    assert "unknown error code" not in err.value.message


def test_tls_with_the_ca_over_ldaps_starttls_and_ldapi(
    slapd_server: Any, client_name: str, opened: list[Directory]
) -> None:
    for overrides in (
        {"urls": (slapd_server.ldaps_url,), "ca_file": slapd_server.ca_file},
        {"start_tls": True, "ca_file": slapd_server.ca_file},
        {"urls": (slapd_server.ldapi_url,), "start_tls": True},  # no StartTLS on a socket
    ):
        d = _make(slapd_server, client_name, opened, **overrides)
        assert d.read(slapd_server.base_dn, ["1.1"]) is not None
        assert d.secure


# ---------------------------------------------------------------------------------- failover
def test_a_first_server_down_from_the_start_is_a_counted_failover(
    slapd_server: Any, client_name: str, opened: list[Directory]
) -> None:
    dead = f"ldap://127.0.0.1:{_free_port()}"
    d = _make(slapd_server, client_name, opened, urls=(dead, slapd_server.url))
    assert d.pool_stats().failovers == 0
    d.check()
    stats = d.pool_stats()
    assert stats.current_url == slapd_server.url and stats.failovers == 1
    d.check()  # the next connection goes to the same (live) server: no new failover
    assert d.pool_stats().failovers == 1


def test_the_failover_metric_counts_them(
    slapd_server: Any, client_name: str, opened: list[Directory]
) -> None:
    from bridge.observability import metrics

    def total() -> float:
        (family,) = [
            m for m in metrics._PoolCollector().collect() if m.name == "scim_bridge_ldap_failovers"
        ]
        return float(family.samples[0].value)

    dead = f"ldap://127.0.0.1:{_free_port()}"
    d = _make(slapd_server, client_name, opened, urls=(dead, slapd_server.url))
    metrics.watch_pool(d)
    before = total()
    d.check()
    assert total() - before == 1
