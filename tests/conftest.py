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
    #: LDAP attributes (lower case) whose non-ASCII values the directory refuses: 389 DS's
    #: 7-bit check plugin (uid and mail on a new instance)
    seven_bit: frozenset[str] = frozenset()

    def refuses_non_ascii(self, path: str, kind: str = "User") -> bool:
        """Whether the directory refuses a non-ASCII value of the SCIM attribute ``path``."""
        return any(
            a.ldap.lower() in self.seven_bit for a in self.mapping.resource(kind).maps_for(path)
        )

    # The directory's own names, from the mapping, for tests that look around the bridge
    # (groupOfNames/member and entryUUID/entryCSN on slapd; groupOfUniqueNames/uniqueMember
    # and nsUniqueId/entryusn on 389 DS).
    @property
    def member_attr(self) -> str:
        members = self.mapping.resource("Group").member_map
        assert members is not None
        return members.ldap

    def id_attr(self, kind: str = "User") -> str:
        return self.mapping.resource(kind).id.ldap

    def version_attr(self, kind: str = "User") -> str:
        return self.mapping.resource(kind).version

    @property
    def placeholder(self) -> str | None:
        """The member an empty group holds (groupOfNames needs one; groupOfUniqueNames not)."""
        return self.mapping.resource("Group").empty_member

    def dn_of(self, kind: str, rid: str) -> str:
        """The DN of the resource with SCIM id ``rid``, found around the service layer."""
        rmap = self.mapping.resource(kind)
        found = self.directory.search(
            rmap.base_dn, f"({rmap.id.ldap}={rid})", ["1.1"], scope="one"
        ).entries
        assert len(found) == 1, (kind, rid, found)
        return found[0].dn

    def independent_search(self, base: str, flt: str, attrs: list[str]) -> list[Any]:
        """Look at the directory without going through the bridge's service layer."""
        if self.info is None:
            return list(self.directory.search(base, flt, attrs).entries)
        import ldap3

        server = _schema_servers.get(self.info.url)
        if server is None:
            server = _schema_servers[self.info.url] = ldap3.Server(self.info.url)
        conn = ldap3.Connection(server, self.info.admin_dn, self.info.admin_password)
        try:
            # the server's schema is read once per session (389 DS's takes 0.1 s to read)
            conn.open(read_server_info=False)
            conn.bind(read_server_info=server.schema is None)
            conn.search(base, flt, attributes=attrs)
            return list(conn.entries)
        finally:
            conn.unbind()


#: one ldap3 Server per directory URL, holding the schema its first connection read
_schema_servers: dict[str, Any] = {}


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
#: every ``backend`` suite also runs on 389 DS (mappings/389ds.yaml as shipped, both clients)
#: except these, each with the directory reason it cannot (empty: none is excluded).
DS389_EXCLUDED: dict[str, str] = {}


@pytest.fixture(scope="session")
def ds389_mapping() -> MappingConfig:
    return load_mapping(DS389_MAP)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``backend``: embedded, slapd and 389 DS, each directory with both clients, for every
    suite but those in DS389_EXCLUDED.  A test that parametrises ``backend`` itself keeps its
    own list."""
    if "backend" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        if "backend" in str(mark.args[0]).replace(" ", "").split(","):
            return
    names = list(BACKENDS)
    if Path(metafunc.definition.path).stem not in DS389_EXCLUDED:
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


@pytest.fixture(scope="session")
def ds389_seven_bit(ds389_server: Any) -> frozenset[str]:
    """The attributes the 7-bit check plugin of the fixture instance covers (its arguments
    before the ``,`` that separates them from the suffixes)."""
    from devtools.ds389 import admin_connection

    conn = admin_connection(ds389_server)
    try:
        conn.search(
            "cn=7-bit check,cn=plugins,cn=config",
            "(nsslapd-pluginEnabled=on)",
            "BASE",
            attributes=["*"],
        )
        if not conn.entries:
            return frozenset()
        args = conn.entries[0].entry_attributes_as_dict
    finally:
        conn.unbind()
    values = [
        str(args[k][0]) for k in sorted(args, key=lambda k: (len(k), k)) if "pluginarg" in k.lower()
    ]
    attrs = values[: values.index(",")] if "," in values else values
    return frozenset(v.lower() for v in attrs)


def _ds389_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    info = request.getfixturevalue("ds389_server")
    mapping = request.getfixturevalue("ds389_mapping")
    seven_bit = request.getfixturevalue("ds389_seven_bit")
    directory = ds389_directory(info, "libldap" if request.param.endswith("libldap") else "ldap3")
    _empty(directory, mapping)
    yield Backend("ds389", directory, mapping, info, seven_bit)
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
