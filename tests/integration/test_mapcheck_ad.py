"""``check-mapping --connect`` logic against Samba AD: the shipped AD mapping passes, and a
broken copy reports each problem by its YAML path."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.config import parse_mapping
from bridge.mapcheck import check
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
