"""BER encoders for the request controls ldap3 has no helper for: server-side sort (RFC 2891),
virtual list view (draft-ietf-ldapext-ldapv3-vlv-09), assertion (RFC 4528), dereference
(slapo-deref), post-read (RFC 4527) and matched values (RFC 3876); decoders for the response
controls the clients pass on raw.

The ``*_value`` functions return the bare BER control values, so the python-ldap client wraps
the very same bytes; the ``*_control`` functions wrap them for ldap3."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from ldap3.operation.search import compile_filter, parse_filter
from ldap3.protocol.controls import build_control
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import namedtype, tag, univ

from bridge.directory.base import (
    OID_ASSERTION,
    OID_SORT,
    OID_VLV,
    Deref,
    Entry,
    SortKey,
)
from bridge.directory.syntax import normalize_dn

log = logging.getLogger("bridge.ldap")

OID_VLV_RESPONSE = "2.16.840.1.113730.3.4.10"
OID_SORT_RESPONSE = "1.2.840.113556.1.4.474"


class _SortKey(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("attributeType", univ.OctetString()),
        namedtype.OptionalNamedType(
            "orderingRule",
            univ.OctetString().subtype(
                implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatSimple, 0)
            ),
        ),
        namedtype.DefaultedNamedType(
            "reverseOrder",
            univ.Boolean(False).subtype(
                implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatSimple, 1)
            ),
        ),
    )


class _SortKeyList(univ.SequenceOf):
    componentType = _SortKey()


class _ByOffset(univ.Sequence):
    tagSet = univ.Sequence.tagSet.tagImplicitly(
        tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, 0)
    )
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("offset", univ.Integer()),
        namedtype.NamedType("contentCount", univ.Integer()),
    )


class _Target(univ.Choice):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("byOffset", _ByOffset()),
        namedtype.NamedType(
            "greaterThanOrEqual",
            univ.OctetString().subtype(
                implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatSimple, 1)
            ),
        ),
    )


class _VlvRequest(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("beforeCount", univ.Integer()),
        namedtype.NamedType("afterCount", univ.Integer()),
        namedtype.NamedType("target", _Target()),
        namedtype.OptionalNamedType("contextID", univ.OctetString()),
    )


class _VlvResponse(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("targetPosition", univ.Integer()),
        namedtype.NamedType("contentCount", univ.Integer()),
        namedtype.NamedType("virtualListViewResult", univ.Enumerated()),
        namedtype.OptionalNamedType("contextID", univ.OctetString()),
    )


@lru_cache(maxsize=256)
def _sort_value(keys: tuple[SortKey, ...]) -> bytes:
    value = _SortKeyList()
    for i, key in enumerate(keys):
        item = _SortKey()
        item["attributeType"] = key.attr
        if key.ordering_rule:
            item["orderingRule"] = key.ordering_rule
        if key.reverse:
            item["reverseOrder"] = True
        value[i] = item
    return bytes(encoder.encode(value))


def sort_value(keys: Sequence[SortKey]) -> bytes:
    """BER value of a server-side sort request (RFC 2891 §1.1), shared by every client.  The
    same few sort specs recur on every list call, so their encodings are memoized."""
    return _sort_value(tuple(keys))


def vlv_value(offset: int, count: int) -> bytes:
    """BER value of a VLV request for ``count`` entries starting at 1-based ``offset``."""
    value = _VlvRequest()
    value["beforeCount"] = 0
    value["afterCount"] = max(count - 1, 0)
    target = _Target()
    by_offset = _ByOffset()
    by_offset["offset"] = max(offset, 1)
    by_offset["contentCount"] = 0
    target["byOffset"] = by_offset
    value["target"] = target
    return bytes(encoder.encode(value))


def decode_vlv(raw: bytes | bytearray) -> tuple[int, int, int]:
    """``(targetPosition, contentCount, virtualListViewResult)`` of a VLV response control's
    BER value (whichever client received it)."""
    decoded, _ = decoder.decode(bytes(raw), asn1Spec=_VlvResponse())
    return (
        int(decoded["targetPosition"]),
        int(decoded["contentCount"]),
        int(decoded["virtualListViewResult"]),
    )


def _ldap3(oid: str, critical: bool, value: bytes) -> Any:
    """An ldap3 request control carrying the BER ``value`` as it is."""
    return build_control(oid, critical, value, encode_control_value=False)


def sort_control(keys: Sequence[SortKey], critical: bool = True) -> Any:
    return _ldap3(OID_SORT, critical, sort_value(keys))


def vlv_control(offset: int, count: int) -> Any:
    """A VLV request for ``count`` entries starting at 1-based ``offset``."""
    return _ldap3(OID_VLV, True, vlv_value(offset, count))


def assertion_control(ldap_filter: str) -> Any:
    """RFC 4528: the operation applies only if the entry matches ``ldap_filter``."""
    node = parse_filter(
        ldap_filter, None, auto_escape=False, auto_encode=True, validator=None, check_names=False
    )
    return _ldap3(OID_ASSERTION, True, encoder.encode(compile_filter(node.elements[0])))


# ---------------------------------------------------------------------------- dereference
#: OpenLDAP's dereference control (draft-masarati-ldap-deref, slapo-deref): the attributes of
#: the entries named by a DN-valued attribute come back with the entry, in a per-entry response
#: control, so rendering a user's ``groups`` needs no second search.
OID_DEREF = "1.3.6.1.4.1.4203.666.5.16"


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + body


def deref_value(specs: Sequence[Deref]) -> bytes:
    """BER of ``SEQUENCE OF DerefSpec``; DerefSpec ::= SEQUENCE { derefAttr, attributes
    SEQUENCE OF AttributeDescription } — one per (DN-valued attribute, attributes wanted)."""
    return _deref_value(tuple(specs))


@lru_cache(maxsize=64)
def _deref_value(specs: tuple[Deref, ...]) -> bytes:
    out = b""
    for spec in specs:
        names = b"".join(_tlv(0x04, a.encode()) for a in spec.attributes)
        out += _tlv(0x30, _tlv(0x04, spec.attr.encode()) + _tlv(0x30, names))
    return _tlv(0x30, out)


def _read(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the BER element at ``pos``."""
    if pos + 2 > len(buf):
        raise ValueError("truncated BER")
    tag, first = buf[pos], buf[pos + 1]
    pos += 2
    if first & 0x80:
        size = first & 0x7F
        if not 0 < size <= 4 or pos + size > len(buf):
            raise ValueError("bad BER length")
        length = int.from_bytes(buf[pos : pos + size], "big")
        pos += size
    else:
        length = first
    if pos + length > len(buf):
        raise ValueError("truncated BER")
    return tag, pos, pos + length


def _attributes(raw: bytes, pos: int, end: int) -> dict[str, list[bytes]]:
    """``{attribute (lower-case): values}`` of the PartialAttribute SEQUENCEs (RFC 4511
    §4.1.7: type, SET OF value) between ``pos`` and ``end``.

    A lookup decodes one of these per group of the user, so the short length form (every
    element under 128 bytes, nearly all of them) is read inline instead of through
    :func:`_read`; an element that overruns the one holding it is malformed."""
    attrs: dict[str, list[bytes]] = {}
    try:
        while pos < end:
            size = raw[pos + 1]
            if raw[pos] != 0x30:
                raise ValueError("bad PartialAttribute")
            if size < 0x80:
                ppos, pend = pos + 2, pos + 2 + size
            else:
                _t, ppos, pend = _read(raw, pos)
            size = raw[ppos + 1]
            if size < 0x80:
                t0, t1 = ppos + 2, ppos + 2 + size
            else:
                _t, t0, t1 = _read(raw, ppos)
            if raw[ppos] != 0x04 or raw[t1] != 0x31 or pend > end:
                raise ValueError("bad PartialAttribute")
            size = raw[t1 + 1]
            if size < 0x80:
                vpos, vend = t1 + 2, t1 + 2 + size
            else:
                _t, vpos, vend = _read(raw, t1)
            if vend > pend:
                raise ValueError("truncated BER")
            vals = []
            while vpos < vend:
                size = raw[vpos + 1]
                if size < 0x80:
                    v0, v1 = vpos + 2, vpos + 2 + size
                else:
                    _t, v0, v1 = _read(raw, vpos)
                if v1 > vend:
                    raise ValueError("truncated BER")
                vals.append(raw[v0:v1])
                vpos = v1
            name = raw[t0:t1].decode("utf-8").lower()
            if name in attrs:
                attrs[name].extend(vals)
            else:
                attrs[name] = vals
            pos = pend
    except IndexError:
        raise ValueError("truncated BER") from None
    return attrs


def decode_deref(raw: bytes) -> list[tuple[str, str, dict[str, list[bytes]]]]:
    """``(derefAttr, derefVal DN, {attribute (lower-case): values})`` per DerefRes of a
    dereference response control value.  Malformed input raises ValueError."""
    out: list[tuple[str, str, dict[str, list[bytes]]]] = []
    tag, pos, end = _read(raw, 0)
    if tag != 0x30:
        raise ValueError("not a SEQUENCE OF DerefRes")
    while pos < end:
        tag, rpos, rend = _read(raw, pos)
        pos = rend
        if tag != 0x30 or rend > end:
            raise ValueError("not a DerefRes")
        tag, a0, a1 = _read(raw, rpos)
        tag2, d0, d1 = _read(raw, a1)
        if tag != 0x04 or tag2 != 0x04 or d1 > rend:
            raise ValueError("bad derefAttr / derefVal")
        attrs: dict[str, list[bytes]] = {}
        if d1 < rend:
            tag, lpos, lend = _read(raw, d1)
            if tag != 0xA0 or lend > rend:  # attrVals [0] PartialAttributeList
                raise ValueError("bad attrVals")
            attrs = _attributes(raw, lpos, lend)
        out.append((raw[a0:a1].decode("utf-8"), raw[d0:d1].decode("utf-8"), attrs))
    return out


def linked_entries(values: Iterable[bytes]) -> dict[str, dict[str, list[bytes]]]:
    """normalized DN -> attributes of the entries dereference response controls brought along
    (``Entry.linked``).  A malformed control yields nothing: those references are resolved by
    a search instead."""
    out: dict[str, dict[str, list[bytes]]] = {}
    for value in values:
        try:
            for _attr, dn, attrs in decode_deref(value):
                if attrs:
                    out[normalize_dn(dn)] = attrs
        except (ValueError, UnicodeDecodeError):
            log.warning("ignoring a malformed dereference control")
            return {}
    return out


# ---------------------------------------------------------------------------- post-read
@lru_cache(maxsize=64)
def _post_read_value(attributes: tuple[str, ...]) -> bytes:
    return _tlv(0x30, b"".join(_tlv(0x04, a.encode()) for a in attributes or ("1.1",)))


def post_read_value(attributes: Sequence[str]) -> bytes:
    """BER of a post-read request (RFC 4527 §3.2): the AttributeSelection (RFC 4511 §4.5.1.8)
    of the entry to return after the write.  Sent not critical: a server that ignores it
    still applies the write, and the caller reads the entry instead."""
    return _post_read_value(tuple(attributes))


def read_entry(raw: bytes | bytearray) -> Entry | None:
    """The entry of a post-read response control (a BER SearchResultEntry, RFC 4511 §4.5.2),
    attribute names lower-cased, values raw; None when it is malformed or holds ranged
    attributes (AD's ``member;range=0-1499``, which only a search can complete): the caller
    then reads the entry."""
    raw = bytes(raw)
    try:
        tag, pos, end = _read(raw, 0)
        if tag != 0x64:  # [APPLICATION 4]
            raise ValueError("not a SearchResultEntry")
        tag, d0, d1 = _read(raw, pos)
        ltag, lpos, lend = _read(raw, d1)
        if tag != 0x04 or ltag != 0x30:
            raise ValueError("bad objectName / attributes")
        attrs = _attributes(raw, lpos, min(lend, end))
        dn = raw[d0:d1].decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    if any(";range=" in name for name in attrs):
        return None
    return Entry(dn, attrs)


# ---------------------------------------------------------------------------- matched values
@lru_cache(maxsize=64)
def _matched_values_value(
    attributes: tuple[str, ...], only: tuple[tuple[str, tuple[bytes, ...]], ...]
) -> bytes:
    items = b""
    for attr, values in only:
        for value in values:  # equalityMatch [3] AttributeValueAssertion
            items += _tlv(0xA3, _tlv(0x04, attr.encode()) + _tlv(0x04, value))
    named = {attr.lower() for attr, _ in only}
    for attr in attributes:
        if attr in ("*", "+"):
            raise ValueError("matched values need the attributes named, not * or +")
        if attr != "1.1" and attr.lower() not in named:
            items += _tlv(0x87, attr.encode())  # present [7]: every value of the attribute
            named.add(attr.lower())
    return _tlv(0x30, items)


def matched_values_value(attributes: Sequence[str], only: Mapping[str, Sequence[bytes]]) -> bytes:
    """BER of a ValuesReturnFilter (RFC 3876 §2) that returns, of each attribute in ``only``,
    just the values equal to one listed there, and every value of the other ``attributes``.

    The control filters *every* requested attribute: a value that matches no item of the
    filter is left out, so an attribute no item names comes back empty (§2, step 4.ii; slapd
    does so).  Each other requested attribute therefore gets a present item ``(attr=*)``,
    which every one of its values matches.  Values are raw assertion values in BER, never
    parts of a filter string: there is nothing to escape."""
    key = tuple((attr, tuple(bytes(v) for v in values)) for attr, values in only.items())
    return _matched_values_value(tuple(attributes), key)


def with_matched(attributes: Sequence[str], only: Mapping[str, Sequence[bytes]]) -> list[str]:
    """``attributes`` plus those of ``only`` not already among them (a matched-values search
    requests the attributes it filters)."""
    have = {a.lower() for a in attributes}
    return [*attributes, *(a for a in only if a.lower() not in have)]
