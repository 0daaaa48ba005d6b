"""``check-mapping --connect`` logic against Samba AD: the shipped AD mapping passes, and a
broken copy reports each problem by its YAML path."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.mapping.load import parse_mapping
from bridge.service.mapcheck import check
from tests.integration.conftest import AD_MAP, ad_directory, ad_mapping_text

pytestmark = pytest.mark.samba


def test_ad_mapping_checks_clean_on_samba(samba_server: Any) -> None:
    directory = ad_directory(samba_server)
    try:
        assert check(directory, parse_mapping(AD_MAP.read_text())) == []
    finally:
        directory.close()


def test_broken_ad_mapping_reports_every_problem(samba_server: Any) -> None:
    text = ad_mapping_text(**{"{ldap: title}": "{ldap: jobTitleX}"})
    text = text.replace(
        "[top, person, organizationalPerson, user]", "[top, person, organizationalPerson, userX]", 1
    )
    directory = ad_directory(samba_server)
    try:
        problems = [str(p) for p in check(directory, parse_mapping(text))]
    finally:
        directory.close()
    assert "resources.User.attributes['title'].ldap: no attribute type 'jobTitleX' in schema" in (
        problems
    )
    assert "resources.User.object_classes[3]: no object class 'userX' in schema" in problems
    assert len(problems) == 2


def test_connect_names_the_forests_upn_suffixes(samba_server: Any) -> None:
    """The shipped profile writes userName to userPrincipalName: --connect says which suffixes
    the forest accepts (the domain's DNS name, plus uPNSuffixes once an admin adds one)."""
    from bridge.service.mapcheck import notes, upn_suffixes
    from tests.integration.conftest import admin

    directory = ad_directory(samba_server)
    partitions = f"CN=Partitions,CN=Configuration,{samba_server.base_dn}"
    conn = admin(samba_server)
    try:
        assert upn_suffixes(directory) == ["example.test"]
        conn.modify(partitions, {"uPNSuffixes": [("MODIFY_ADD", ["Partner.Test"])]})
        said = notes(directory, parse_mapping(AD_MAP.read_text()))
        assert len(said) == 1
        assert said[0].startswith("resources.User.attributes['userName']: ")
        assert "example.test, partner.test" in said[0]
    finally:
        conn.modify(partitions, {"uPNSuffixes": [("MODIFY_DELETE", ["Partner.Test"])]})
        conn.unbind()
        directory.close()


def test_check_mapping_connect_prints_the_upn_suffixes(
    samba_server: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bridge.cli import main

    monkeypatch.setenv("BRIDGE_LDAP_URL", samba_server.url)
    monkeypatch.setenv("BRIDGE_BIND_DN", samba_server.bind_dn)
    monkeypatch.setenv("BRIDGE_BIND_PASSWORD", samba_server.bind_password)
    monkeypatch.setenv("BRIDGE_LDAP_CA_FILE", samba_server.ca_file)
    monkeypatch.setenv("BRIDGE_LDAP_TLS_HOSTNAME", "localhost")
    assert main(["check-mapping", str(AD_MAP), "--connect"]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "OK against" in out
    assert "note: resources.User.attributes['userName']: the forest accepts these UPN " in out
    assert "suffixes: example.test;" in out
