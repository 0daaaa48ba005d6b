"""The BER of the post-read (RFC 4527) and matched-values (RFC 3876) controls, checked against
the encoders of ldap3 and of libldap (python-ldap's C binding), and the post-read response
decoder against ldap3's ASN.1 model of a SearchResultEntry."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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


def _fill(plist: Any, attrs: dict[str, list[bytes]]) -> Any:
    """``plist`` (a PartialAttributeList, pyasn1) holding ``attrs``."""
    for i, (name, values) in enumerate(attrs.items()):
        attr = PartialAttribute()
        attr["type"] = AttributeDescription(name)
        vals = Vals()
        for j, v in enumerate(values):
            vals[j] = AttributeValue(v)
        attr["vals"] = vals
        plist[i] = attr
    return plist


def _entry_ber(dn: str, attrs: dict[str, list[bytes]]) -> bytes:
    entry = SearchResultEntry()
    entry["object"] = LDAPDN(dn)
    entry["attributes"] = _fill(PartialAttributeList(), attrs)
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


# ---------------------------------------------------------------------------- dereference
def _deref_ber(results: list[tuple[str, str, dict[str, list[bytes]]]]) -> bytes:
    """A dereference response control value (draft-masarati-ldap-deref §3) encoded by pyasn1:
    ``SEQUENCE OF DerefRes``, DerefRes ::= SEQUENCE { derefAttr, derefVal LDAPDN,
    attrVals [0] PartialAttributeList OPTIONAL }."""
    from pyasn1.type import namedtype, tag, univ

    class DerefRes(univ.Sequence):
        componentType = namedtype.NamedTypes(
            namedtype.NamedType("derefAttr", AttributeDescription()),
            namedtype.NamedType("derefVal", LDAPDN()),
            namedtype.OptionalNamedType(
                "attrVals",
                PartialAttributeList().subtype(
                    implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, 0)
                ),
            ),
        )

    class DerefResponse(univ.SequenceOf):
        componentType = DerefRes()

    seq = DerefResponse()
    for i, (attr, dn, attrs) in enumerate(results):
        res = DerefRes()
        res["derefAttr"] = attr
        res["derefVal"] = dn
        if attrs:
            _fill(res["attrVals"], attrs)
        seq[i] = res
    return bytes(encoder.encode(seq))


_names = st.from_regex(r"[a-zA-Z][a-zA-Z0-9-]{0,20}", fullmatch=True)
_deref_results = st.lists(
    st.tuples(
        st.sampled_from(["memberOf", "manager", "member"]),
        st.text(min_size=1, max_size=200).map(lambda s: "cn=" + s),
        st.dictionaries(
            _names, st.lists(st.binary(max_size=300), min_size=1, max_size=4), max_size=4
        ),
    ),
    max_size=5,
)


@given(_deref_results)
@settings(max_examples=150, deadline=None)
def test_deref_response_decodes_what_pyasn1_encodes(results: list) -> None:
    """Short and long BER lengths alike (values up to 300 bytes): each DerefRes comes back
    with its attribute names lower-cased and its values as the raw octets."""
    # names equal but for case would merge: keep one per lower-case name, as a server sends
    results = [
        (a, dn, {n: v for n, v in {k.lower(): v for k, v in attrs.items()}.items()})
        for a, dn, attrs in results
    ]
    assert controls.decode_deref(_deref_ber(results)) == results


def test_deref_merges_an_attribute_sent_twice() -> None:
    raw = _deref_ber([("memberOf", GROUP, {"cn": [b"a"], "CN": [b"b"], "entryUUID": [b"u"]})])
    assert controls.decode_deref(raw) == [
        ("memberOf", GROUP, {"cn": [b"a", b"b"], "entryuuid": [b"u"]})
    ]


@given(st.binary(max_size=200))
@settings(max_examples=400, deadline=None)
def test_malformed_deref_is_a_value_error_never_a_crash(raw: bytes) -> None:
    """Any other exception (IndexError from the inline length reads) fails the test."""
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        controls.decode_deref(raw)


def test_every_truncation_of_a_deref_response_is_refused() -> None:
    raw = _deref_ber(
        [("memberOf", GROUP, {"cn": [b"eng" * 50], "entryUUID": [b"u"]}), ("manager", "x=y", {})]
    )
    for cut in range(len(raw)):
        with pytest.raises(ValueError):
            controls.decode_deref(raw[:cut])
    # and linked_entries, which the clients call, ignores the malformed control
    assert controls.linked_entries([raw[:-1]]) == {}
    assert controls.linked_entries([raw]) == {
        "cn=eng,ou=groups,dc=example,dc=org": {"cn": [b"eng" * 50], "entryuuid": [b"u"]}
    }
