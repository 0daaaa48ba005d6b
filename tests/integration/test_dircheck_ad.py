"""The directory inspection against Samba AD, with both clients: the server is recognised,
its sort/VLV controls and built-in memberOf count as present, and the indexes come from the
``searchFlags`` (and ``linkID``) of the schema's attributeSchema objects."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.mapping.load import parse_mapping
from bridge.service.dircheck import check
from tests.integration.conftest import ad_directory, ad_mapping_text

pytestmark = pytest.mark.samba


def _check(info: Any, client: str, text: str) -> list[Any]:
    directory = ad_directory(info, client)
    try:
        return check(directory, parse_mapping(text))
    finally:
        directory.close()


@pytest.mark.parametrize("client", ["ldap3", "libldap"])
def test_shipped_ad_mapping_finds_nothing(samba_server: Any, client: str) -> None:
    assert _check(samba_server, client, ad_mapping_text()) == []


@pytest.mark.parametrize("client", ["ldap3", "libldap"])
def test_unindexed_unique_attribute_gets_the_searchflags_fix(
    samba_server: Any, client: str
) -> None:
    text = ad_mapping_text(
        **{
            "externalId:                   {ldap: employeeType}": (
                "externalId:                   {ldap: employeeType, unique: true}"
            )
        }
    )
    (only,) = _check(samba_server, client, text)
    assert only.topic == "index employeeType" and only.severity == "warning"
    assert "uniqueness check of externalId" in only.effect
    assert "Set-ADObject -Identity 'CN=Employee-Type,CN=Schema,CN=Configuration," in only.fix
    assert "-Replace @{searchFlags=" in only.fix
