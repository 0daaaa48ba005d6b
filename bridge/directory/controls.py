"""BER encoders for the request controls ldap3 has no helper for: server-side sort (RFC 2891),
virtual list view (draft-ietf-ldapext-ldapv3-vlv-09) and assertion (RFC 4528).

The ``*_value`` functions return the bare BER control values, so the python-ldap client wraps
the very same bytes; the ``*_control`` functions wrap them for ldap3."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from ldap3.operation.search import compile_filter, parse_filter
from ldap3.protocol.controls import build_control
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import namedtype, tag, univ

from bridge.directory.base import OID_ASSERTION, OID_SORT, OID_VLV, SortKey

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


def sort_control(keys: Sequence[SortKey], critical: bool = True) -> Any:
    return build_control(OID_SORT, critical, sort_value(keys), encode_control_value=False)


def vlv_control(offset: int, count: int) -> Any:
    """A VLV request for ``count`` entries starting at 1-based ``offset``."""
    return build_control(OID_VLV, True, vlv_value(offset, count), encode_control_value=False)


def vlv_total(result_controls: Mapping[str, Any]) -> int | None:
    """contentCount from a VLV response control (ldap3 leaves unknown controls as raw bytes)."""
    ctrl = result_controls.get(OID_VLV_RESPONSE)
    if not ctrl:
        return None
    raw = ctrl.get("value")
    if not isinstance(raw, bytes | bytearray):
        return None
    _pos, total, result = decode_vlv(raw)
    return total if result == 0 else None


def vlv_response(result_controls: Mapping[str, Any]) -> tuple[int, int, int] | None:
    """``(targetPosition, contentCount, virtualListViewResult)`` of a VLV response control."""
    ctrl = result_controls.get(OID_VLV_RESPONSE)
    raw = ctrl.get("value") if ctrl else None
    if not isinstance(raw, bytes | bytearray):
        return None
    return decode_vlv(raw)


def vlv_result_code(result_controls: Mapping[str, Any]) -> int | None:
    ctrl = result_controls.get(OID_VLV_RESPONSE)
    raw = ctrl.get("value") if ctrl else None
    if not isinstance(raw, bytes | bytearray):
        return None
    return decode_vlv(raw)[2]


def assertion_control(ldap_filter: str) -> Any:
    """RFC 4528: the operation applies only if the entry matches ``ldap_filter``."""
    node = parse_filter(
        ldap_filter, None, auto_escape=False, auto_encode=True, validator=None, check_names=False
    )
    return build_control(
        OID_ASSERTION,
        True,
        encoder.encode(compile_filter(node.elements[0])),
        encode_control_value=False,
    )
