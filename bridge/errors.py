"""The bridge's one exception tree.

::

    BridgeError
    ├── ScimError                      rendered as a SCIM Error body (RFC 7644 §3.12)
    │   ├── BadRequest (400)           scim_type set per subclass:
    │   │   ├── InvalidFilter          invalidFilter
    │   │   ├── TooMany                tooMany
    │   │   ├── InvalidSyntax          invalidSyntax
    │   │   ├── InvalidPath            invalidPath
    │   │   ├── NoTarget               noTarget
    │   │   ├── InvalidValue           invalidValue
    │   │   ├── InvalidVersion         invalidVers
    │   │   ├── Mutability             mutability
    │   │   └── Sensitive              sensitive
    │   ├── Unauthorized (401)
    │   ├── Forbidden (403)
    │   ├── NotFound (404)
    │   ├── Uniqueness (409)           uniqueness
    │   ├── PreconditionFailed (412)
    │   ├── PayloadTooLarge (413)
    │   ├── NotImplemented_ (501)
    │   ├── BadGateway (502)           the directory failed (not transient, not the client)
    │   └── Unavailable (503)          carries retry_after
    ├── ConfigError                    a mapping/settings file is wrong; lists every problem
    └── DirectoryError                 raised by directory clients; ``code`` is the LDAP result name
                                       and ``to_scim()`` is the ONE table from LDAP results to SCIM

Only ``directory/`` clients raise DirectoryError (one translation point per client); the HTTP
layer renders ScimError and converts DirectoryError through :func:`DirectoryError.to_scim`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


class BridgeError(Exception):
    """Root of every error the bridge raises on purpose."""


class ScimError(BridgeError):
    status: int = 500
    scim_type: str | None = None

    def __init__(self, detail: str, *, scim_type: str | None = None, status: int | None = None):
        super().__init__(detail)
        self.detail = detail
        if scim_type is not None:
            self.scim_type = scim_type
        if status is not None:
            self.status = status

    def body(self) -> dict[str, object]:
        """The RFC 7644 §3.12 error body."""
        out: dict[str, object] = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": str(self.status),
            "detail": self.detail,
        }
        if self.scim_type:
            out["scimType"] = self.scim_type
        return out


class BadRequest(ScimError):
    status = 400


class InvalidFilter(BadRequest):
    scim_type = "invalidFilter"


class TooMany(BadRequest):
    scim_type = "tooMany"


class InvalidSyntax(BadRequest):
    scim_type = "invalidSyntax"


class InvalidPath(BadRequest):
    scim_type = "invalidPath"


class NoTarget(BadRequest):
    scim_type = "noTarget"


class InvalidValue(BadRequest):
    scim_type = "invalidValue"


class InvalidVersion(BadRequest):
    scim_type = "invalidVers"


class Mutability(BadRequest):
    scim_type = "mutability"


class Sensitive(BadRequest):
    scim_type = "sensitive"


class Unauthorized(ScimError):
    status = 401


class Forbidden(ScimError):
    status = 403


class NotFound(ScimError):
    status = 404


class Uniqueness(ScimError):
    status = 409
    scim_type = "uniqueness"


class PreconditionFailed(ScimError):
    status = 412


class PayloadTooLarge(ScimError):
    status = 413


class NotImplemented_(ScimError):
    status = 501


class BadGateway(ScimError):
    """The directory failed in a way that is neither the client's fault nor a transient
    outage (LDAP operationsError/other/protocolError...): the bridge is a gateway, so 502."""

    status = 502


class Unavailable(ScimError):
    status = 503

    def __init__(self, detail: str, *, retry_after: int = 5):
        super().__init__(detail)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Problem:
    """One problem in a config file, located by its YAML path (``resources.User.attributes``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(BridgeError):
    def __init__(self, problems: Sequence[Problem], source: str = ""):
        self.problems = tuple(problems)
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(head + "; ".join(str(p) for p in self.problems))


# LDAP result name -> (SCIM error class, scimType override or None).  The one table; it is
# documented, row by row, in docs/errors.md.  Results not listed are BadGateway (502), except the
# transient ones in _UNAVAILABLE (503 + Retry-After).
_LDAP_TO_SCIM: dict[str, tuple[type[ScimError], str | None]] = {
    "entryAlreadyExists": (Uniqueness, None),
    # the *target* is gone; the service turns it into a 400 when a referenced entry is meant
    "noSuchObject": (NotFound, None),
    "constraintViolation": (InvalidValue, None),
    "objectClassViolation": (InvalidValue, None),
    "namingViolation": (InvalidValue, None),
    "invalidAttributeSyntax": (InvalidValue, None),
    "undefinedAttributeType": (InvalidValue, None),
    "attributeOrValueExists": (InvalidValue, None),
    "noSuchAttribute": (InvalidValue, None),
    "invalidDNSyntax": (InvalidValue, None),
    "notAllowedOnRDN": (Mutability, None),
    "notAllowedOnNonLeaf": (InvalidValue, None),
    "unwillingToPerform": (InvalidValue, None),
    "insufficientAccessRights": (Forbidden, None),
    "strongerAuthRequired": (Forbidden, None),
    "assertionFailed": (PreconditionFailed, None),
    "sizeLimitExceeded": (TooMany, None),
    "adminLimitExceeded": (TooMany, None),
    "resultsTooLarge": (TooMany, None),
    "inappropriateMatching": (InvalidFilter, None),
    "filterError": (InvalidFilter, None),
    "affectsMultipleDSAs": (InvalidValue, None),
    "virtualListViewError": (InvalidValue, None),
}
# Active Directory (and Samba AD) put a Win32 error code in front of the diagnostic
# ("0000052D: Constraint violation - check_password_restrictions ...", "0000052D: SvcErr:
# DSID-031A12D2, problem 5003 (WILL_NOT_PERFORM)").  It says more than the LDAP result code, so it
# refines the answer: the code -> (SCIM error class, what it means in plain words).
_AD_CODES: dict[int, tuple[type[ScimError], str]] = {
    # ERROR_PASSWORD_RESTRICTION (1325).  Windows AD also answers so when an account is enabled
    # before it has a password.
    0x52D: (
        InvalidValue,
        "the password does not meet the domain's password policy (too short, not complex "
        "enough, used before, or changed too recently), or the account was to be enabled "
        "without a password",
    ),
    0x524: (Uniqueness, "an account with this sAMAccountName already exists in the domain"),
    0x2071: (Uniqueness, "an account with this sAMAccountName already exists in the domain"),
    # Windows Server 2012 R2 and later keep UPNs and SPNs unique in the whole forest (MS-ADTS
    # 3.1.1.5.1.3), also outside the bridge's base_dn, where its own check does not look:
    # ERROR_DS_UPN_VALUE_NOT_UNIQUE_IN_FOREST (8648) and ..._SPN_... (8647).
    0x21C8: (Uniqueness, "another account in the forest already has this userPrincipalName"),
    0x21C7: (Uniqueness, "another account in the forest already has this servicePrincipalName"),
    0x5: (Forbidden, "the bridge's service account lacks the permission for this change"),
    0x57: (InvalidValue, "AD rejected a value as invalid"),
    0x202F: (InvalidValue, "AD's constraints reject a value"),
    0x2035: (InvalidValue, "AD is unwilling to perform this change"),
    0x2077: (InvalidValue, "AD does not allow this change to the attribute"),
    0x208D: (NotFound, "the directory object does not exist"),
}
#: results of a modify that may add a present value or delete an absent one: RFC 4511's
#: attributeOrValueExists (20) and noSuchAttribute (16), as slapd and 389 DS answer.  Active
#: Directory and Samba answer entryAlreadyExists (68) for a member that is already in the group
#: (Windows with 00000562 ERROR_MEMBER_IN_GROUP), and unwillingToPerform (53) for deleting one
#: that is not (Windows: 00000561, "problem 5003 WILL_NOT_PERFORM"; Samba 4: no Win32 code,
#: "Attribute member doesn't exist for target GUID ..." or "... already deleted ...", and
#: 00002035 for a member DN whose entry is gone).  unwillingToPerform also means other things,
#: which is why the caller probes the values before it retries.
_VALUE_NOOP = frozenset(
    {"attributeOrValueExists", "noSuchAttribute", "entryAlreadyExists", "unwillingToPerform"}
)
#: Win32 codes AD puts in front of such refusals whatever the LDAP result: 0x561
#: ERROR_MEMBER_NOT_IN_GROUP (Windows: unwillingToPerform, "problem 5003 WILL_NOT_PERFORM", for
#: deleting a member that is not in the group) and 0x562 ERROR_MEMBER_IN_GROUP.
_AD_VALUE_NOOP = frozenset({0x561, 0x562})
_AD_CODE = re.compile(r"^\s*([0-9A-Fa-f]{8}):")
_UNAVAILABLE = {
    "busy",
    "unavailable",
    "serverDown",
    "timeout",
    "timeLimitExceeded",
    "connectError",
    "other-unavailable",
    "cancelled",
}
# The bridge's own bind is refused (rotated secret, TLS required): nothing a SCIM client can fix,
# so it answers 503 and the readiness probe reports it; but it is not *transient*: retrying the
# same credentials or failing over to another replica cannot help.
_MISCONFIGURED = {"invalidCredentials", "inappropriateAuthentication", "confidentialityRequired"}


class DirectoryError(BridgeError):
    """An LDAP operation failed.  ``code`` is the RFC 4511 result name (e.g. ``noSuchObject``),
    or one of ``serverDown``/``timeout``/``connectError`` for transport failures."""

    def __init__(self, code: str, message: str = "", *, dn: str = "", operation: str = ""):
        self.code = code
        self.message = message
        self.dn = dn
        self.operation = operation
        super().__init__(f"{operation} {dn}: {code} {message}".strip())

    @property
    def ad_code(self) -> int | None:
        """The Win32 error code Active Directory puts in front of its message, if any."""
        m = _AD_CODE.match(self.message or "")
        return int(m.group(1), 16) if m else None

    @property
    def value_noop(self) -> bool:
        """Whether a failed modify may have been refused only because it adds a value that is
        there or deletes one that is not (the caller checks which values and retries without
        them: a retried membership change is a no-op, RFC 7644 §3.5.2)."""
        return self.code in _VALUE_NOOP or self.ad_code in _AD_VALUE_NOOP

    @property
    def transient(self) -> bool:
        return self.code in _UNAVAILABLE

    def to_scim(self, detail: str | None = None) -> ScimError:
        """Map this LDAP failure to the SCIM answer (RFC 7644 §3.12); the detail names the
        directory's own diagnostic so an admin can act on it (no secrets ever reach here)."""
        if self.transient or self.code in _MISCONFIGURED:
            return Unavailable(detail or f"directory unavailable ({self.code})")
        cls, scim_type = _LDAP_TO_SCIM.get(self.code, (BadGateway, None))
        text = detail or f"directory refused the {self.operation or 'operation'}: {self.code}"
        ad = self.ad_code
        if ad is not None and ad in _AD_CODES:
            cls, meaning = _AD_CODES[ad]
            scim_type = None
            if not detail:
                text = f"directory refused the {self.operation or 'operation'}: {meaning}"
        if self.message and not detail:
            text += f" ({self.message.strip()})"
        err = cls(text)
        if scim_type:
            err.scim_type = scim_type
        return err
