"""Value filters evaluated against one element of a multi-valued attribute (RFC 7644
§3.4.2.2, used by PATCH paths such as ``emails[type eq "work" and value ew "example.com"]``)."""

from __future__ import annotations

import pytest

from bridge.scim import schema as sch
from bridge.scim.path import parse_path
from bridge.scim.valuepath import matches

EMAILS = sch.attr_def(sch.USER, "emails")
ELEMENT = {"value": "Babs@Example.com", "type": "work", "primary": True}


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ('type eq "work"', True),
        ('type eq "WORK"', True),  # caseExact false: case-insensitive
        ('type eq "home"', False),
        ('type ne "home"', True),
        ('value co "example"', True),
        ('value sw "babs@"', True),
        ('value ew ".COM"', True),
        ('value ew ".org"', False),
        ("primary eq true", True),
        ('primary eq "True"', True),  # Entra's boolean strings
        ("primary eq false", False),
        ("display pr", False),
        ("value pr", True),
        ('type eq "work" and value ew "example.com"', True),
        ('type eq "home" or value co "babs"', True),
        ('not (type eq "work")', False),
        ('value gt "a"', True),
        ('value lt "a"', False),
        ("display eq null", True),
    ],
)
def test_value_filter(flt: str, expected: bool) -> None:
    assert EMAILS is not None
    path = parse_path(f"emails[{flt}]")
    assert path.filter is not None
    assert matches(path.filter, ELEMENT, EMAILS) is expected
