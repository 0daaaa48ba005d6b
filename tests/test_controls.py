"""The BER of the post-read (RFC 4527) and matched-values (RFC 3876) controls, checked against
the encoders of ldap3 and of libldap (python-ldap's C binding), and the post-read response
decoder against ldap3's ASN.1 model of a SearchResultEntry."""

from __future__ import annotations

import pytest
from ldap3.protocol.rfc4511 import (
    LDAPDN,
    AttributeDescription,
    AttributeValue,
    PartialAttribute,
    PartialAttributeList,
    SearchResultEntry,
    Vals,
)
from ldap3.protocol.rfc4527 import post_read_control
from pyasn1.codec.ber import encoder

from bridge.directory import controls
from tests.conftest import unavailable

GROUP = "cn=eng,ou=groups,dc=example,dc=org"
PLACEHOLDER = b"cn=empty-membership-placeholder,dc=example,dc=org"


def _entry_ber(dn: str, attrs: dict[str, list[bytes]]) -> bytes:
    entry = SearchResultEntry()
    entry["object"] = LDAPDN(dn)
    plist = PartialAttributeList()
    for i, (name, values) in enumerate(attrs.items()):
        attr = PartialAttribute()
        attr["type"] = AttributeDescription(name)
        vals = Vals()
        for j, v in enumerate(values):
            vals[j] = AttributeValue(v)
        attr["vals"] = vals
        plist[i] = attr
    entry["attributes"] = plist
    return bytes(encoder.encode(entry))


def test_post_read_request_is_ldap3s_attribute_selection() -> None:
    attrs = ["cn", "entryUUID", "member", "entryCSN"]
    assert controls.post_read_value(attrs) == bytes(post_read_control(attrs)["controlValue"])


def test_post_read_response_decodes_to_raw_bytes_with_lower_case_names() -> None:
    big = [f"uid=u{i:05d},ou=people,dc=example,dc=org".encode() for i in range(3000)]
    raw = _entry_ber(
        GROUP,
        {"cn": [b"eng"], "jpegPhoto": [b"\xff\xd8\x00\x80"], "member": big, "description": []},
    )
    entry = controls.read_entry(raw)
    assert entry is not None and entry.dn == GROUP
    assert entry.attrs == {
        "cn": [b"eng"],
        "jpegphoto": [b"\xff\xd8\x00\x80"],
        "member": big,
        "description": [],
    }


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x30\x03\x04\x01x",  # a SEQUENCE, not [APPLICATION 4]
        _entry_ber(GROUP, {"cn": [b"eng"]})[:-3],  # truncated
        _entry_ber(GROUP, {"member;range=0-1499": [b"cn=a"]}),  # AD: only a search completes it
    ],
    ids=["empty", "not-an-entry", "truncated", "ranged"],
)
def test_a_post_read_that_cannot_be_used_is_none(raw: bytes) -> None:
    assert controls.read_entry(raw) is None


def test_matched_values_filter_is_what_libldap_encodes() -> None:
    """Equality items for the filtered attribute, a present item for every other requested
    one (else RFC 3876 leaves them out), no item twice and none for ``1.1``."""
    try:
        from ldap.controls.libldap import MatchedValuesControl as mv
    except ImportError:
        unavailable("python-ldap (the libldap extra) is not installed")
    got = controls.matched_values_value(
        ["cn", "entryUUID", "CN", "member", "1.1"], {"member": [PLACEHOLDER]}
    )
    text = f"((member={PLACEHOLDER.decode()})(cn=*)(entryUUID=*))"
    assert got == mv(True, text).encodeControlValue()


def test_matched_values_values_are_bytes_not_filter_syntax() -> None:
    """``*``, parentheses and backslashes are assertion-value octets in BER: no escaping."""
    value = b"cn=a*\\29(b),dc=x"
    got = controls.matched_values_value(["cn"], {"member": [value]})
    assert value in got and b"a\\2a" not in got.lower()


def test_matched_values_need_named_attributes() -> None:
    with pytest.raises(ValueError):
        controls.matched_values_value(["*"], {"member": [PLACEHOLDER]})
    assert controls.with_matched(["cn", "MEMBER"], {"member": []}) == ["cn", "MEMBER"]
    assert controls.with_matched(["cn"], {"member": []}) == ["cn", "member"]
