"""Shared fixtures: every behaviour suite runs against the embedded directory AND a real slapd.

``backend`` is parametrised over ``embedded`` and ``slapd``; tests that use ``client`` (the ASGI
app in-process) or ``service`` therefore run twice.  The slapd server is started once per session
by the tests themselves (devtools/slapd.py) and emptied between tests.  In CI
(``CI=true``) a slapd that cannot start is a failure, never a skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.directory.base import Directory
from bridge.directory.embedded import EmbeddedDirectory
from bridge.mapping.load import load_mapping
from bridge.mapping.model import MappingConfig
from bridge.runtime import seed_structure
from bridge.settings import Settings, Token
from bridge.web.app import build_app
from devtools import clients

ROOT = Path(__file__).resolve().parent.parent
OPENLDAP_MAP = ROOT / "mappings" / "openldap.yaml"
BARE_MAP = ROOT / "mappings" / "openldap-bare.yaml"
DS389_MAP = ROOT / "mappings" / "389ds.yaml"
TOKEN = "test-token-Zq8vX2"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str, *, module: bool = False) -> None:
    """Skip locally, fail in CI: a skipped integration suite in CI is a broken setup.
    ``module``: called at import time, for the whole test module."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: integration suites must run)")
    pytest.skip(reason, allow_module_level=module)


def run_bench(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """One of the bench/ scripts against a slapd it starts itself (a CI smoke of it)."""
    try:
        from devtools.slapd import require_slapd

        require_slapd()
    except (ImportError, RuntimeError) as exc:
        unavailable(f"slapd is not available: {exc}")
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Backend:
    name: str
    directory: Directory
    mapping: MappingConfig
    info: Any = None

    def independent_search(self, base: str, flt: str, attrs: list[str]) -> list[Any]:
        """Look at the directory without going through the bridge's service layer."""
        if self.info is None:
            return list(self.directory.search(base, flt, attrs).entries)
        import ldap3

        conn = ldap3.Connection(
            self.info.url, self.info.admin_dn, self.info.admin_password, auto_bind=True
        )
        try:
            conn.search(base, flt, attributes=attrs)
            return list(conn.entries)
        finally:
            conn.unbind()


@pytest.fixture(scope="session")
def openldap_mapping() -> MappingConfig:
    return load_mapping(OPENLDAP_MAP)


@pytest.fixture(scope="session")
def slapd_server() -> Iterator[Any]:
    try:
        from devtools.slapd import Slapd, require_slapd

        require_slapd()
    except (ImportError, RuntimeError) as exc:
        unavailable(f"slapd is not available: {exc}")
    server = Slapd()
    try:
        info = server.start()
    except RuntimeError as exc:
        unavailable(f"slapd did not start: {exc}")
    yield info
    server.stop()
    server.cleanup()


@pytest.fixture(scope="session")
def bare_slapd_server() -> Iterator[Any]:
    """A slapd as a default install has it (no overlays, only objectClass indexed: issue 19)."""
    try:
        from devtools.slapd import Slapd, require_slapd

        require_slapd()
    except (ImportError, RuntimeError) as exc:
        unavailable(f"slapd is not available: {exc}")
    server = Slapd(profile="bare", config_readable=True)
    try:
        info = server.start()
    except RuntimeError as exc:
        server.cleanup()
        unavailable(f"bare slapd did not start: {exc}")
    yield info
    server.stop()
    server.cleanup()


@pytest.fixture(params=["embedded", "slapd", "slapd-libldap", "bare", "bare-libldap"])
def any_backend(
    request: pytest.FixtureRequest, openldap_mapping: MappingConfig
) -> Iterator[Backend]:
    """``backend`` plus the bare slapd (with mappings/openldap-bare.yaml), both clients."""
    if not request.param.startswith("bare"):
        yield from _backend(request, request.param, openldap_mapping)
        return
    info = request.getfixturevalue("bare_slapd_server")
    mapping = load_mapping(BARE_MAP)
    client = "libldap" if request.param.endswith("libldap") else "ldap3"
    directory = encrypted_slapd_directory(info, client)
    _empty(directory, mapping)
    yield Backend("slapd-bare", directory, mapping, info)
    _empty(directory, mapping)
    directory.close()


@pytest.fixture(scope="session")
def samba_server() -> Iterator[Any]:
    """One throwaway Samba AD DC per session (devtools/samba.py); yields SambaInfo."""
    try:
        from devtools.samba import SambaDC, free_loopback_host, require_samba

        require_samba()
    except (ImportError, RuntimeError) as exc:
        unavailable(f"Samba AD is not available: {exc}")
    dc = SambaDC(host=os.environ.get("SCIM_BRIDGE_SAMBA_HOST") or free_loopback_host())
    try:
        info = dc.start()
    except RuntimeError as exc:
        dc.cleanup()
        unavailable(f"Samba AD did not start: {exc}")
    yield info
    dc.cleanup()


@pytest.fixture(scope="session")
def ds389_server() -> Iterator[Any]:
    """One throwaway 389 DS instance per session (devtools/ds389.py); yields
    DS389Info."""
    try:
        from devtools.ds389 import DS389, require_389ds

        require_389ds()
    except (ImportError, RuntimeError) as exc:
        unavailable(f"389 Directory Server is not available: {exc}")
    ds = DS389()
    try:
        info = ds.start()
    except RuntimeError as exc:
        ds.cleanup()
        unavailable(f"389 Directory Server did not start: {exc}")
    yield info
    ds.cleanup()


def ds389_directory(info: Any, client: str = "ldap3") -> Directory:
    """A client of the fixture 389 DS over LDAPS with the fixture's test CA."""
    return slapd_directory(info, client, urls=(info.ldaps_url,), ca_file=info.ca_file)


def slapd_directory(info: Any, client: str = "ldap3", **overrides: Any) -> Directory:
    """devtools' client of the fixture slapd; python-ldap missing skips (fails in CI)."""
    try:
        return clients.slapd_directory(info, client, **overrides)
    except ImportError as exc:
        unavailable(f"python-ldap is not installed: {exc}")
        raise


def encrypted_slapd_directory(info: Any, client: str = "ldap3") -> Directory:
    """A client of the fixture slapd over an encrypted connection, as passwords need
    (bridge/directory/pooled.py): ldap3 over LDAPS with the fixture's CA, python-ldap over
    ldapi (the local socket)."""
    if client == "libldap":
        return slapd_directory(info, "libldap", urls=(info.ldapi_url,))
    return slapd_directory(info, urls=(info.ldaps_url,), ca_file=info.ca_file)


def _empty(directory: Directory, mapping: MappingConfig) -> None:
    for rmap in mapping.resources.values():
        for e in directory.search(rmap.base_dn, "(objectClass=*)", ["1.1"], scope="one").entries:
            directory.delete(e.dn)


BACKENDS = ("embedded", "slapd", "slapd-libldap")
DS389_BACKENDS = ("ds389", "ds389-libldap")
#: the behaviour suites that also run on 389 DS (mappings/389ds.yaml as shipped, both
#: clients), besides tests/idp and tests/integration/test_ds389.py.  Chosen to stay within
#: ~1-2 minutes of CI.  Every other ``backend`` suite was run on 389 DS once (842 tests, 6.6
#: min); what fails there is the suite, not the bridge: tests that write or read slapd's
#: attributes by name (``member``, entryCSN in test_writes/test_bulk/test_membership_noops/
#: test_data_safety), count the searches slapd's placeholder and matched values cost
#: (test_postread, test_create_postread), or use non-ASCII userNames, which 389 DS's 7-bit
#: check plugin refuses on uid/mail with a clean 400 (test_crud, test_hostile_values,
#: test_filter_properties).
DS389_SUITES = frozenset(
    {
        "test_search",
        "test_patch_shapes",
        "test_group_patch_response",
        "test_operations",
        "test_partial_writes",
        "test_filter_nul_substring",
        "test_create_active",
        "test_search_request_types",
        "test_password_transport",
    }
)


@pytest.fixture(scope="session")
def ds389_mapping() -> MappingConfig:
    return load_mapping(DS389_MAP)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``backend``: embedded and slapd with both clients everywhere; 389 DS with both clients
    for the suites in DS389_SUITES.  A test that parametrises ``backend`` itself keeps its own
    list."""
    if "backend" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        if "backend" in str(mark.args[0]).replace(" ", "").split(","):
            return
    names = list(BACKENDS)
    if Path(metafunc.definition.path).stem in DS389_SUITES:
        names += DS389_BACKENDS
    metafunc.parametrize("backend", names, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest, openldap_mapping: MappingConfig) -> Iterator[Backend]:
    if request.param.startswith("ds389"):
        yield from _ds389_backend(request)
        return
    yield from _backend(request, request.param, openldap_mapping)


def _backend(
    request: pytest.FixtureRequest, kind: str, openldap_mapping: MappingConfig
) -> Iterator[Backend]:
    if kind == "embedded":
        directory = EmbeddedDirectory()
        seed_structure(directory, openldap_mapping)
        yield Backend("embedded", directory, openldap_mapping)
        return
    info = request.getfixturevalue("slapd_server")
    directory = encrypted_slapd_directory(info, "libldap" if kind == "slapd-libldap" else "ldap3")
    _empty(directory, openldap_mapping)
    yield Backend("slapd", directory, openldap_mapping, info)  # same server, either client
    _empty(directory, openldap_mapping)
    directory.close()


def _ds389_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    info = request.getfixturevalue("ds389_server")
    mapping = request.getfixturevalue("ds389_mapping")
    directory = ds389_directory(info, "libldap" if request.param.endswith("libldap") else "ldap3")
    _empty(directory, mapping)
    yield Backend("ds389", directory, mapping, info)
    _empty(directory, mapping)
    directory.close()


def make_client(backend: Backend, **settings: Any) -> TestClient:
    s = Settings(tokens=(Token("test", TOKEN),), **settings)
    app = build_app(s, directory=backend.directory, mapping=backend.mapping)
    client = TestClient(app, base_url="https://scim.example.test")
    client.headers["Authorization"] = f"Bearer {TOKEN}"
    return client


@pytest.fixture
def client(backend: Backend) -> TestClient:
    return make_client(backend)


@pytest.fixture
def scim(backend: Backend, masked: Any) -> TestClient:
    """A client through ``masked``: the post-read test modules' own fixture, the directory
    with the controls each test case offers (tests/faults.Masked)."""
    return make_client(replace(backend, directory=masked))


@pytest.fixture
def plain(backend: Backend) -> TestClient:
    """Reads the old way: a directory without post-read, matched values or dereference."""
    from devtools.faults import Masked

    bare = Masked(backend.directory, post_read=False, matched_values=False, deref=False)
    return make_client(replace(backend, directory=bare))


@pytest.fixture
def service(client: TestClient) -> Any:
    return client.app.state.service  # type: ignore[attr-defined]
