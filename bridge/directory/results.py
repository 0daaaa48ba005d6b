"""LDAP result codes -> the names :class:`bridge.errors.DirectoryError` carries.

The names are RFC 4511 §4.1.9 / Appendix A result names, spelled exactly as ldap3 reports them in
``result['description']`` (``noSuchObject``, ``entryAlreadyExists``, ...), so the one
LDAP -> SCIM table in ``bridge/errors.py`` sees the same code whichever client produced it.
Clients that get numeric codes (python-ldap) translate through :func:`result_name` and nowhere
else.  Negative codes are libldap's client-side ("API") errors (RFC 1823 / ldap.h); the transport
ones become the bridge's ``serverDown``/``timeout``/``connectError``, which errors.py treats as
transient (503 + Retry-After).
"""

from __future__ import annotations

RESULT_NAMES: dict[int, str] = {
    0: "success",
    1: "operationsError",
    2: "protocolError",
    3: "timeLimitExceeded",
    4: "sizeLimitExceeded",
    5: "compareFalse",
    6: "compareTrue",
    7: "authMethodNotSupported",
    8: "strongerAuthRequired",
    9: "reserved",
    10: "referral",
    11: "adminLimitExceeded",
    12: "unavailableCriticalExtension",
    13: "confidentialityRequired",
    14: "saslBindInProgress",
    16: "noSuchAttribute",
    17: "undefinedAttributeType",
    18: "inappropriateMatching",
    19: "constraintViolation",
    20: "attributeOrValueExists",
    21: "invalidAttributeSyntax",
    32: "noSuchObject",
    33: "aliasProblem",
    34: "invalidDNSyntax",
    36: "aliasDereferencingProblem",
    48: "inappropriateAuthentication",
    49: "invalidCredentials",
    50: "insufficientAccessRights",
    51: "busy",
    52: "unavailable",
    53: "unwillingToPerform",
    54: "loopDetected",
    64: "namingViolation",
    65: "objectClassViolation",
    66: "notAllowedOnNonLeaf",
    67: "notAllowedOnRDN",
    68: "entryAlreadyExists",
    69: "objectClassModsProhibited",
    71: "affectMultipleDSAs",
    76: "virtualListViewError",  # draft-ietf-ldapext-ldapv3-vlv-09 §6
    80: "other",
    118: "canceled",
    119: "noSuchOperation",
    120: "tooLate",
    121: "cannotCancel",
    122: "assertionFailed",
    123: "authorizationDenied",
}

#: libldap API errors (negative codes).  Transport failures map to the bridge's transient names.
LOCAL_NAMES: dict[int, str] = {
    -1: "serverDown",  # LDAP_SERVER_DOWN: connection lost or never made
    -2: "serverDown",  # LDAP_LOCAL_ERROR: e.g. a TLS session torn down mid-operation
    -3: "encodingError",
    -4: "serverDown",  # LDAP_DECODING_ERROR: garbage on the wire; the connection is unusable
    -5: "timeout",  # LDAP_TIMEOUT
    -6: "authMethodNotSupported",
    -7: "filterError",  # LDAP_FILTER_ERROR: a bridge bug, never user input (filters are built)
    -8: "canceled",
    -9: "paramError",
    -10: "noMemory",
    -11: "connectError",  # LDAP_CONNECT_ERROR: includes failed TLS handshakes
    -12: "notSupported",
    -13: "controlNotFound",
    -14: "noResultsReturned",
    -15: "moreResultsToReturn",
    -16: "clientLoop",
    -17: "referralLimitExceeded",
}


def result_name(code: int | None) -> str:
    """The DirectoryError code for an LDAP result code (``other`` when unknown)."""
    if code is None:
        return "other"
    if code < 0:
        return LOCAL_NAMES.get(code, "serverDown")
    return RESULT_NAMES.get(code, "other")
