"""BRIDGE_LDAP_CLIENT (issue 17): ``auto``, the default, runs python-ldap when it imports and
ldap3 otherwise; the explicit values are kept; the bridge logs which client runs."""

from __future__ import annotations

import logging
import sys

import pytest

import bridge.directory
from bridge.cli import _banner
from bridge.directory.ldap3_client import Ldap3Directory
from bridge.errors import ConfigError
from bridge.mapping.load import load_mapping
from bridge.mapping.model import MappingConfig
from bridge.runtime import make_directory, resolve_client
from bridge.settings import Settings
from tests.conftest import OPENLDAP_MAP, unavailable

URL = ("ldap://127.0.0.1:9",)  # never contacted: the pool connects on first use


@pytest.fixture(scope="module")
def mapping() -> MappingConfig:
    return load_mapping(OPENLDAP_MAP)


@pytest.fixture
def libldap() -> type:
    try:
        from bridge.directory.libldap_client import LibldapDirectory
    except ImportError as exc:
        unavailable(f"python-ldap is not installed: {exc}")
    return LibldapDirectory


@pytest.fixture
def without_python_ldap(monkeypatch: pytest.MonkeyPatch) -> None:
    """python-ldap fails to import, as when the libldap extra is not installed."""
    monkeypatch.setitem(sys.modules, "ldap", None)
    monkeypatch.setitem(sys.modules, "bridge.directory.libldap_client", None)
    monkeypatch.delattr(bridge.directory, "libldap_client", raising=False)


def test_auto_is_the_default() -> None:
    assert Settings().client == "auto"
    assert Settings.from_env({}).client == "auto"
    assert Settings.from_env({"BRIDGE_LDAP_CLIENT": ""}).client == "auto"
    for value in ("auto", "ldap3", "libldap"):
        assert Settings.from_env({"BRIDGE_LDAP_CLIENT": value}).client == value


def test_an_unknown_client_names_the_choices() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"BRIDGE_LDAP_CLIENT": "openldap"})
    assert "BRIDGE_LDAP_CLIENT" in str(err.value)
    assert "auto, ldap3, libldap" in str(err.value) and "'openldap'" in str(err.value)


def test_auto_runs_python_ldap_when_it_imports(
    libldap: type, mapping: MappingConfig, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(ldap_urls=URL)
    assert resolve_client(settings) == "libldap"
    with caplog.at_level(logging.INFO, logger="bridge"):
        directory = make_directory(settings, mapping)
    try:
        assert isinstance(directory, libldap)
    finally:
        directory.close()
    assert "LDAP client: libldap (BRIDGE_LDAP_CLIENT=auto)" in caplog.messages
    assert "(client libldap)" in "\n".join(_banner(settings, 1, [], False))


@pytest.mark.usefixtures("without_python_ldap")
def test_auto_falls_back_to_ldap3(mapping: MappingConfig, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(ldap_urls=URL)
    assert resolve_client(settings) == "ldap3"
    with caplog.at_level(logging.INFO, logger="bridge"):
        directory = make_directory(settings, mapping)
    try:
        assert type(directory) is Ldap3Directory
    finally:
        directory.close()
    assert "LDAP client: ldap3 (BRIDGE_LDAP_CLIENT=auto)" in caplog.messages
    assert "(client ldap3)" in "\n".join(_banner(settings, 1, [], False))


def test_explicit_clients_are_kept(libldap: type, mapping: MappingConfig) -> None:
    chosen = make_directory(Settings(ldap_urls=URL, client="ldap3"), mapping)
    try:
        assert type(chosen) is Ldap3Directory  # although python-ldap imports here
    finally:
        chosen.close()
    chosen = make_directory(Settings(ldap_urls=URL, client="libldap"), mapping)
    try:
        assert isinstance(chosen, libldap)
    finally:
        chosen.close()


def test_the_embedded_directory_needs_no_client(mapping: MappingConfig) -> None:
    banner = "\n".join(_banner(Settings(), 1, [], False))
    assert "EMBEDDED" in banner and "(client" not in banner
