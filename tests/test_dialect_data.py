"""Directory differences are data (issue 17): the ordering rule, the attributes it applies to and
the sort tie-breaker come from the mapping's Dialect row, not from its name."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bridge.errors import InvalidFilter
from bridge.mapping.dialects import DIALECTS
from bridge.mapping.load import load_mapping
from bridge.mapping.model import MappingConfig
from bridge.translate.filter import to_ldap
from bridge.translate.sort import sort_keys
from tests.conftest import OPENLDAP_MAP


def _with_dialect(**changes: object) -> MappingConfig:
    mapping = load_mapping(OPENLDAP_MAP)
    return replace(mapping, dialect=replace(mapping.dialect, **changes))


def test_a_renamed_openldap_row_translates_as_openldap() -> None:
    renamed = _with_dialect(name="my-slapd")
    user = renamed.resource("User")
    assert to_ldap(user, 'userName gt "m"', renamed) == to_ldap(
        user, 'userName gt "m"', load_mapping(OPENLDAP_MAP)
    )
    assert "uid:caseIgnoreOrderingMatch:=m" in to_ldap(user, 'userName lt "m"', renamed)
    assert [k.attr for k in sort_keys(user, renamed, None, False)] == ["uid", "entryUUID"]
    with pytest.raises(InvalidFilter, match="no ordering rule for mail"):
        to_ldap(user, 'emails.value gt "m"', renamed)


def test_without_an_ordering_rule_plain_comparisons_and_one_sort_key() -> None:
    plain = _with_dialect(ordering_rule=None, ordering_attributes=None, sort_tie_breaker=False)
    user = plain.resource("User")
    assert to_ldap(user, 'userName ge "m"', plain) == "(uid>=m)"
    keys = sort_keys(user, plain, None, False)
    assert [(k.attr, k.ordering_rule) for k in keys] == [("uid", None)]


def test_only_openldap_ships_an_ordering_rule() -> None:
    assert {name for name, d in DIALECTS.items() if d.ordering_rule} == {"openldap"}
    assert {name for name, d in DIALECTS.items() if d.sort_tie_breaker} == {"openldap"}
