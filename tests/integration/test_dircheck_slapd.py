"""``check-mapping --connect``'s directory inspection on real slapd servers, with both clients:
a bare one (devtools/slapd.py ``profile="bare"``: no overlays, only objectClass
indexed) and a tuned one (the test configuration), both letting the service account read the
index/overlay settings of cn=config; the session's tuned server, which does not; the embedded
directory; the CLI in a subprocess; the start-up log line."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.directory.embedded import EmbeddedDirectory
from bridge.mapping.load import load_mapping
from bridge.service.dircheck import breaking, check, log_at_startup
from tests.conftest import OPENLDAP_MAP, ROOT, slapd_directory, unavailable

BARE_MAP = ROOT / "mappings" / "openldap-bare.yaml"
CLIENTS = ["ldap3", "libldap"]


def _server(**options: Any) -> Iterator[Any]:
    try:
        from devtools.slapd import Slapd, require_slapd

        require_slapd()
    except (ImportError, RuntimeError) as exc:
        unavailable(f"slapd is not available: {exc}")
    server = Slapd(config_readable=True, **options)
    try:
        yield server.start()
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def bare_slapd() -> Iterator[Any]:
    yield from _server(profile="bare")


@pytest.fixture(scope="module")
def tuned_slapd() -> Iterator[Any]:
    yield from _server()


def _check(info: Any, client: str, mapping: Any = OPENLDAP_MAP) -> list[Any]:
    directory = slapd_directory(info, client)
    try:
        return check(directory, load_mapping(mapping))
    finally:
        directory.close()


@pytest.mark.parametrize("client", CLIENTS)
def test_bare_server_lists_what_to_add(bare_slapd: Any, client: str) -> None:
    found = {f.topic: f for f in _check(bare_slapd, client)}
    assert {"index entryUUID", "sssvlv", "deref", "memberof", "ppolicy", "refint"} <= set(found)
    assert found["ppolicy"].severity == found["memberof"].severity == "error"
    assert found["index entryUUID"].severity == found["sssvlv"].severity == "warning"
    assert "dn: olcDatabase={1}mdb,cn=config" in found["index entryUUID"].fix
    assert "every deactivation fails: 400 undefinedAttributeType" in found["ppolicy"].effect
    assert "a user's groups stay empty" in found["memberof"].effect


@pytest.mark.parametrize("client", CLIENTS)
def test_tuned_server_lists_nothing(tuned_slapd: Any, client: str) -> None:
    assert _check(tuned_slapd, client) == []


@pytest.mark.parametrize("client", CLIENTS)
def test_bare_mapping_breaks_nothing_on_the_bare_server(bare_slapd: Any, client: str) -> None:
    found = _check(bare_slapd, client, BARE_MAP)
    assert not breaking(found)
    assert {f.topic for f in found} == {
        "sssvlv",
        "deref",
        "refint",
        "index entryUUID",
        "index uid",
        "index displayName",
        "index mail",
        "index cn",
        "index member",
    }


@pytest.mark.parametrize("client", CLIENTS)
def test_unreadable_config_says_so_once(slapd_server: Any, client: str) -> None:
    found = _check(slapd_server, client)  # the session's server: cn=config is invisible
    assert [f.topic for f in found] == ["configuration"]
    assert "docs/directories/openldap.md" in found[0].fix
    assert found[0].severity == "warning"


def test_embedded_directory_is_reported_not_crashed() -> None:
    # no root DSE, no controls: an unknown server, said in one finding, nothing proven present
    found = {f.topic: f for f in check(EmbeddedDirectory(), load_mapping(OPENLDAP_MAP))}
    assert "(server: unknown)" in found["configuration"].effect
    assert set(found) == {"configuration", "ppolicy", "memberof", "sssvlv", "deref"}


def _cli(info: Any, mapping: Any) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BRIDGE_LDAP_URL": info.url,
        "BRIDGE_BIND_DN": info.bind_dn,
        "BRIDGE_BIND_PASSWORD": info.bind_password,
    }
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", "check-mapping", str(mapping), "--connect"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def test_cli_on_bare_server_exits_1_with_fixes(bare_slapd: Any) -> None:
    run = _cli(bare_slapd, OPENLDAP_MAP)
    assert run.returncode == 1, run.stderr
    out = run.stdout
    for topic in ("index entryUUID", "sssvlv", "deref", "memberof", "ppolicy"):
        assert f": {topic}: " in out, out
    assert "olcDbIndex: entryUUID eq" in out
    # the schema check still reports what the bare schema lacks
    assert "no attribute type 'pwdAccountLockedTime' in schema" in out


def test_cli_on_tuned_server_is_clean(tuned_slapd: Any) -> None:
    run = _cli(tuned_slapd, OPENLDAP_MAP)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "directory:" not in run.stdout


def test_cli_bare_mapping_on_bare_server_exits_0_with_warnings(bare_slapd: Any) -> None:
    run = _cli(bare_slapd, BARE_MAP)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 breaking a mapped feature" in run.stdout
    assert "error:" not in run.stdout


def test_startup_logs_findings_once_as_warnings(
    bare_slapd: Any, caplog: pytest.LogCaptureFixture
) -> None:
    directory = slapd_directory(bare_slapd)
    try:
        with caplog.at_level(logging.WARNING, logger="bridge.dircheck"):
            log_at_startup(directory, load_mapping(OPENLDAP_MAP)).join(30)
    finally:
        directory.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "bridge.dircheck"]
    assert any("ppolicy" in line for line in lines)
    assert any("index entryUUID" in line for line in lines)
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == "bridge.dircheck")


def test_startup_inspection_error_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(EmbeddedDirectory):
        def run(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("boom")

    with caplog.at_level(logging.WARNING, logger="bridge.dircheck"):
        log_at_startup(Broken(), load_mapping(OPENLDAP_MAP)).join(30)
    lines = [r.getMessage() for r in caplog.records if r.name == "bridge.dircheck"]
    assert lines == ["directory inspection failed: RuntimeError: boom"]


def test_applying_the_printed_fixes_makes_the_bare_server_clean() -> None:
    """Every fix the check prints for the bare server is LDIF that slapd accepts as printed
    (only ``ldapi:///`` pointed at this instance); afterwards the check finds nothing."""
    servers = _server(profile="bare")
    info = next(servers)
    try:
        mapping = load_mapping(OPENLDAP_MAP)
        directory = slapd_directory(info)
        try:
            before = check(directory, mapping)
            for finding in before:
                script = finding.fix.replace("ldapi:///", info.ldapi_url).replace(
                    "ldapmodify ", "ldapmodify -Q "
                )
                run = subprocess.run(
                    ["bash", "-c", script],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                    env={**os.environ, "LDAPCONF": "/dev/null"},
                )
                assert run.returncode == 0, f"{finding.topic}: {run.stderr}\n{script}"
        finally:
            directory.close()
        # a new client: the old one remembers the controls the server had at its first bind
        directory = slapd_directory(info)
        try:
            assert check(directory, mapping) == []
        finally:
            directory.close()
        # five overlays and seven indexes (objectClass eq is there already)
        assert len(before) == 12
    finally:
        next(servers, None)


def _startup_lines(caplog: pytest.LogCaptureFixture, want: int) -> list[str]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = [r.getMessage() for r in caplog.records if r.name == "bridge.dircheck"]
        if len(lines) >= want:
            return lines
        time.sleep(0.05)
    return [r.getMessage() for r in caplog.records if r.name == "bridge.dircheck"]


def test_serve_logs_the_findings_at_start(
    bare_slapd: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from bridge.cli import make_served_app
    from bridge.settings import Settings, Token

    settings = Settings(
        ldap_urls=(bare_slapd.url,),
        bind_dn=bare_slapd.bind_dn,
        bind_password=bare_slapd.bind_password,
        mapping=str(OPENLDAP_MAP),
        tokens=(Token("t", "serve-token-123456"),),
    )
    with caplog.at_level(logging.WARNING, logger="bridge.dircheck"):
        app = make_served_app(settings)
        lines = _startup_lines(caplog, 12)
    app.state.service.directory.close()
    assert len(lines) == 12 and any("error: ppolicy" in line for line in lines)


def test_asgi_factory_logs_the_findings_at_start(
    bare_slapd: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge.web import asgi

    for name, value in {
        "BRIDGE_LDAP_URL": bare_slapd.url,
        "BRIDGE_BIND_DN": bare_slapd.bind_dn,
        "BRIDGE_BIND_PASSWORD": bare_slapd.bind_password,
        "BRIDGE_MAPPING": str(BARE_MAP),
        "BRIDGE_TOKEN": "asgi-token-1234567",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(asgi, "setup_logging", lambda settings: None)  # keep caplog's handler
    with caplog.at_level(logging.WARNING, logger="bridge.dircheck"):
        app = asgi.app()
        lines = _startup_lines(caplog, 9)
    app.state.service.directory.close()
    assert len(lines) == 9 and not any("error:" in line for line in lines)
    assert any("index entryUUID" in line for line in lines)
