"""BER encoders for the request controls ldap3 has no helper for: server-side sort (RFC 2891),
virtual list view (draft-ietf-ldapext-ldapv3-vlv-09) and assertion (RFC 4528)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def sort_control(keys: Sequence[SortKey], critical: bool = True) -> Any:
    value = _SortKeyList()
    for i, key in enumerate(keys):
        item = _SortKey()
        item["attributeType"] = key.attr
        if key.ordering_rule:
            item["orderingRule"] = key.ordering_rule
        if key.reverse:
            item["reverseOrder"] = True
        value[i] = item
    return build_control(OID_SORT, critical, value)


def vlv_control(offset: int, count: int) -> Any:
    """A VLV request for ``count`` entries starting at 1-based ``offset``."""
    value = _VlvRequest()
    value["beforeCount"] = 0
    value["afterCount"] = max(count - 1, 0)
    target = _Target()
    by_offset = _ByOffset()
    by_offset["offset"] = max(offset, 1)
    by_offset["contentCount"] = 0
    target["byOffset"] = by_offset
    value["target"] = target
    return build_control(OID_VLV, True, value)


def vlv_total(result_controls: Mapping[str, Any]) -> int | None:
    """contentCount from a VLV response control (ldap3 leaves unknown controls as raw bytes)."""
    ctrl = result_controls.get(OID_VLV_RESPONSE)
    if not ctrl:
        return None
    raw = ctrl.get("value")
    if not isinstance(raw, bytes | bytearray):
        return None
    decoded, _ = decoder.decode(bytes(raw), asn1Spec=_VlvResponse())
    if int(decoded["virtualListViewResult"]) != 0:
        return None
    return int(decoded["contentCount"])


def vlv_response(result_controls: Mapping[str, Any]) -> tuple[int, int, int] | None:
    """``(targetPosition, contentCount, virtualListViewResult)`` of a VLV response control."""
    ctrl = result_controls.get(OID_VLV_RESPONSE)
    raw = ctrl.get("value") if ctrl else None
    if not isinstance(raw, bytes | bytearray):
        return None
    decoded, _ = decoder.decode(bytes(raw), asn1Spec=_VlvResponse())
    return (
        int(decoded["targetPosition"]),
        int(decoded["contentCount"]),
        int(decoded["virtualListViewResult"]),
    )


def vlv_result_code(result_controls: Mapping[str, Any]) -> int | None:
    ctrl = result_controls.get(OID_VLV_RESPONSE)
    raw = ctrl.get("value") if ctrl else None
    if not isinstance(raw, bytes | bytearray):
        return None
    decoded, _ = decoder.decode(bytes(raw), asn1Spec=_VlvResponse())
    return int(decoded["virtualListViewResult"])


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
