"""Codecs: one SCIM value <-> LDAP attribute values (raw bytes), per mapping ``type:``.

A codec sees the *whole* LDAP attribute (all its values) so that codecs whose SCIM value depends on
presence (``ppolicy-lock``) or on other bits of the same value (``ad-enabled``) are expressible as
data in the mapping instead of ``if ad:`` branches.  Codecs are stateless singletons.

``decode(values)``      LDAP values -> SCIM value, one per LDAP value (a list) ; [] when absent
``encode(value, cur)``  one SCIM value -> LDAP bytes; ``cur`` is the current LDAP value list (or
                        None) for codecs that must preserve parts of it
``assertion(value)``    SCIM value -> LDAP assertion value used in filters (unescaped; the filter
                        translator escapes it in one place)
``presence_filter``     an LDAP filter for "this SCIM value is present/true" when it is not simply
                        ``(attr=*)`` (returns None for the default)
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import UTC, datetime

from bridge.errors import InvalidFilter, InvalidValue
from bridge.scim.values import parse_bool


class Codec:
    name = "string"
    scim_type = "string"
    #: the codec's SCIM value when the LDAP attribute is absent (None = attribute absent in SCIM)
    absent: object = None
    #: whether an ordering comparison (gt/ge/lt/le) is meaningful on the LDAP side
    ordered = True
    #: values are binary on the wire (filters need byte escaping)
    binary = False
    #: never read back (passwords): a PUT writes it when given and never compares it
    write_only = False
    #: a secret (every password codec): sent only over an encrypted connection, or to a
    #: loopback directory when the operator allowed it (``Directory.secure``, staged.py)
    secure_transport = False
    #: the LDAP attribute cannot be removed (AD userAccountControl): a PUT without the SCIM
    #: attribute leaves it unchanged instead of clearing it
    keep_when_absent = False

    def decode(self, raw: bytes) -> object:
        return raw.decode("utf-8")

    def encode(self, value: object, current: list[bytes] | None = None) -> list[bytes]:
        if isinstance(value, bool | int | float):
            value = str(value).lower() if isinstance(value, bool) else str(value)
        if not isinstance(value, str):
            raise InvalidValue(f"expected a string, got {type(value).__name__}")
        if value == "":
            return []
        check_text(value)
        return [value.encode("utf-8")]

    def _assertion_bytes(self, value: object) -> list[bytes]:
        """Like ``encode`` but for a filter value: NUL is allowed there (escaped as ``\\00``
        by the translator), since entries written by other tools may hold one."""
        if isinstance(value, str) and "\x00" in value and type(self).encode is Codec.encode:
            check_text(value.replace("\x00", ""))
            return [value.encode("utf-8")]
        return self.encode(value)

    def assertion(self, value: object) -> str | bytes:
        out = self._assertion_bytes(value)
        if not out:
            raise InvalidFilter("an empty string cannot be compared")
        return out[0].decode("utf-8") if not self.binary else out[0]

    def decode_all(self, values: list[bytes]) -> list[object]:
        return [self.decode(v) for v in values]

    def filter_for(self, ldap: str, op: str, value: object) -> str | None:
        """A complete LDAP filter for a comparison this codec handles specially, else None."""
        return None


def check_text(value: str) -> None:
    """Refuse, before anything is written, what must not reach the directory: NUL (U+0000) -
    slapd 2.5 stores it as sent (verified), but every C consumer of the directory (libldap
    tools, NSS/PAM, AD's own APIs) reads it as the end of the string, so ``"admin\x00x"``
    would be ``admin`` to them - and lone surrogates, which are not encodable as UTF-8
    (RFC 4517 §3.3.6: a DirectoryString is UTF-8)."""
    if "\x00" in value:
        raise InvalidValue("a string value must not contain NUL (U+0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue("a string value must be valid Unicode (no lone surrogates)") from None


class StringCodec(Codec):
    pass


class BooleanCodec(Codec):
    name = scim_type = "boolean"
    ordered = False

    def decode(self, raw: bytes) -> object:
        return raw.strip().upper() in (b"TRUE", b"1", b"YES")

    def encode(self, value: object, current: list[bytes] | None = None) -> list[bytes]:
        if value is None:
            return []
        return [b"TRUE" if parse_bool(value) else b"FALSE"]


class IntegerCodec(Codec):
    name = scim_type = "integer"

    def decode(self, raw: bytes) -> object:
        return int(raw)

    def encode(self, value: object, current: list[bytes] | None = None) -> list[bytes]:
        if value is None or value == "":
            return []
        if isinstance(value, bool):
            raise InvalidValue(f"expected an integer, got {value!r}")
        try:
            return [str(int(str(value))).encode()]
        except ValueError:
            raise InvalidValue(f"expected an integer, got {value!r}") from None


_GT = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})?(\d{2})?(?:[.,](\d+))?(Z|[+-]\d{2,4})?$")


def generalized_to_iso(raw: str) -> str:
    """RFC 4517 GeneralizedTime -> RFC 3339 / xsd:dateTime as SCIM wants (RFC 7643 §2.3.5)."""
    m = _GT.match(raw.strip())
    if not m:
        return raw
    y, mo, d, h, mi, s, frac, tz = m.groups()
    out = f"{y}-{mo}-{d}T{h}:{mi or '00'}:{s or '00'}"
    if frac and frac.strip("0"):
        out += "." + frac[:6]
    if tz in (None, "Z"):
        return out + "Z"
    return out + tz[:3] + ":" + (tz[3:5] or "00")


def iso_to_generalized(value: str) -> str:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidValue(
            f"expected an xsd:dateTime such as 2024-01-31T12:00:00Z, got {value!r}"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    frac = f".{dt.microsecond:06d}".rstrip("0") if dt.microsecond else ""
    return dt.strftime("%Y%m%d%H%M%S") + frac.rstrip(".") + "Z"


class DateTimeCodec(Codec):
    """generalizedTime (createTimestamp, modifyTimestamp, whenChanged) <-> xsd:dateTime."""

    name = "datetime"
    scim_type = "dateTime"

    def decode(self, raw: bytes) -> object:
        return generalized_to_iso(raw.decode("ascii", "replace"))

    def encode(self, value: object, current: list[bytes] | None = None) -> list[bytes]:
        if value is None or value == "":
            return []
        if not isinstance(value, str):
            raise InvalidValue(f"expected an xsd:dateTime string, got {value!r}")
        return [iso_to_generalized(value).encode()]


class UuidCodec(Codec):
    """entryUUID (RFC 4530) as the SCIM id."""

    name = "uuid"
    ordered = False

    def encode(self, value: object, current: list[bytes] | None = None) -> list[bytes]:
        try:
            return [str(uuid.UUID(str(value))).encode()]
        except ValueError:
            raise InvalidValue(f"not a valid id: {value!r}") from None


class GuidCodec(Codec):
    """AD objectGUID: 16 bytes little-endian <-> canonical UUID text (MS-DTYP §2.3.4.2)."""

    name = "guid"
    ordered = False
    binary = True

    def decode(self, raw: bytes) -> object:
        return str(uuid.UUID(bytes_le=raw)) if len(raw) == 16 else raw.decode("ascii", "replace")

    def encode(self, value: object, current: list[bytes] | None = None) -> list[bytes]:
        try:
            return [uuid.UUID(str(value)).bytes_le]
        except ValueError:
            raise InvalidValue(f"not a valid id: {value!r}") from None


class PpolicyLockCodec(Codec):
    """SCIM ``active`` on OpenLDAP via the ppolicy overlay: an account is disabled by setting
    ``pwdAccountLockedTime: 000001010000Z`` (locked until an administrator unlocks it) and enabled
    by removing it.  Absent attribute = active."""

    name = "ppolicy-lock"
    scim_type = "boolean"
    absent = True
    ordered = False
    LOCKED = b"000001010000Z"

    def decode_all(self, values: list[bytes]) -> list[object]:
        return [not values]

    def encode(self, value: object, current: list[bytes] | None = None) -> list[bytes]:
        if value is None:
            return []
        return [] if parse_bool(value) else [self.LOCKED]

    def filter_for(self, ldap: str, op: str, value: object) -> str | None:
        if op == "pr":
            return "(objectClass=*)"
        if op in ("eq", "ne"):
            want = parse_bool(value) == (op == "eq")
            return f"(!({ldap}=*))" if want else f"({ldap}=*)"
        raise InvalidFilter(f"operator '{op}' is not supported on a boolean attribute")


class AccountLockCodec(PpolicyLockCodec):
    """SCIM ``active`` on 389 DS: ``nsAccountLock: true`` refuses the account's binds (what
    ``dsidm account lock`` writes); active=true removes the attribute.  Absent, or any value
    other than ``true`` (``dsidm`` may leave ``false``), is active."""

    name = "nsaccountlock"
    LOCKED = b"true"

    def decode_all(self, values: list[bytes]) -> list[object]:
        return [not any(v.strip().lower() == self.LOCKED for v in values)]

    def filter_for(self, ldap: str, op: str, value: object) -> str | None:
        if op in ("eq", "ne"):
            want = parse_bool(value) == (op == "eq")
            locked = f"({ldap}={self.LOCKED.decode()})"
            return f"(!{locked})" if want else locked
        return super().filter_for(ldap, op, value)


class PasswordCodec(Codec):
    """Write-only password (``userPassword``); never decoded (RFC 7643 §4.1.1 returned=never)."""

    name = "password"
    ordered = False
    write_only = True
    secure_transport = True

    def decode_all(self, values: list[bytes]) -> list[object]:
        return []

    def assertion(self, value: object) -> str | bytes:
        raise InvalidFilter("password cannot be used in a filter")


class ReferenceCodec(Codec):
    """A DN on the LDAP side and a SCIM id on the wire.  Conversion needs the directory, so
    translate.entry resolves DNs <-> ids in bulk; the codec itself only moves DN text."""

    name = "reference"
    ordered = False
    #: stored values may carry more than the DN (see NameAndOptionalUidCodec)
    decorated = False

    def dn(self, value: str) -> str:
        """The DN part of a stored value (the whole value: a DN)."""
        return value


#: RFC 4517 §3.3.21 NameAndOptionalUID: ``<dn>#'<bits>'B``
_OPTIONAL_UID = re.compile(r"#'[01]*'B$")


class NameAndOptionalUidCodec(ReferenceCodec):
    """``uniqueMember`` (groupOfUniqueNames, 389 DS): a DN optionally followed by ``#'0101'B``
    (RFC 4517 §3.3.21).  The bridge writes plain DNs; a value another tool wrote with the suffix
    is the same member, and is removed by sending the value as stored (``uniqueMemberMatch``
    does not match a value carrying a UID against an assertion without one)."""

    name = "name-and-optional-uid"
    decorated = True

    def dn(self, value: str) -> str:
        return _OPTIONAL_UID.sub("", value)


# ---------------------------------------------------------------------------- Active Directory
#: userAccountControl flags (MS-ADTS §2.2.16)
UF_ACCOUNTDISABLE = 0x0002
UF_PASSWD_NOTREQD = 0x0020
UF_NORMAL_ACCOUNT = 0x0200
#: LDAP_MATCHING_RULE_BIT_AND (MS-ADTS §3.1.1.3.4.4.1)
BIT_AND = "1.2.840.113556.1.4.803"


class AdEnabledCodec(Codec):
    """SCIM ``active`` <-> bit 0x2 (ACCOUNTDISABLE) of AD's ``userAccountControl``.

    Every other bit (DONT_EXPIRE_PASSWORD, SMARTCARD_REQUIRED, ...) belongs to the directory's
    administrators and is preserved: ``encode`` needs the current value.  Without one (a new
    account) it starts from NORMAL_ACCOUNT (512), so a created account does not inherit the
    PASSWD_NOTREQD bit of AD's placeholder value 546."""

    name = "ad-enabled"
    scim_type = "boolean"
    ordered = False
    keep_when_absent = True

    def decode(self, raw: bytes) -> object:
        try:
            return not int(raw) & UF_ACCOUNTDISABLE
        except ValueError:
            return False

    def encode(self, value: object, current: list[bytes] | None = None) -> list[bytes]:
        if value is None:
            return []
        enabled = parse_bool(value)
        flags = UF_NORMAL_ACCOUNT
        if current and current[0].strip().lstrip(b"-").isdigit():
            flags = int(current[0])
        flags = flags & ~UF_ACCOUNTDISABLE if enabled else flags | UF_ACCOUNTDISABLE
        return [str(flags).encode()]

    def filter_for(self, ldap: str, op: str, value: object) -> str | None:
        """``active eq true`` -> ``(!(userAccountControl:1.2.840.113556.1.4.803:=2))``."""
        disabled = f"({ldap}:{BIT_AND}:={UF_ACCOUNTDISABLE})"
        if op == "pr":
            return f"({ldap}=*)"
        if op in ("eq", "ne"):
            want_enabled = parse_bool(value) == (op == "eq")
            return f"(!{disabled})" if want_enabled else disabled
        raise InvalidFilter(f"operator '{op}' is not supported on a boolean attribute")


class AdPasswordCodec(PasswordCodec):
    """Password -> AD ``unicodePwd``: the password in double quotes, UTF-16LE (MS-ADTS
    §3.1.1.3.1.5.1).  AD accepts it only over an encrypted connection; the bridge refuses to
    send any password over plain LDAP (``secure_transport``, from PasswordCodec), so AD never
    answers with its cryptic unwillingToPerform."""

    name = "ad-password"
    binary = True

    def encode(self, value: object, current: list[bytes] | None = None) -> list[bytes]:
        if value is None or value == "":
            return []
        if not isinstance(value, str):
            raise InvalidValue(f"expected a string password, got {type(value).__name__}")
        return [f'"{value}"'.encode("utf-16-le")]


#: characters AD refuses in sAMAccountName (MS-ADTS §3.1.1.5.2.5 / "Naming conventions")
AD_ACCOUNT_NAME_FORBIDDEN = '"/\\[]:;|=,+*?<>@'


class AdAccountNameCodec(Codec):
    """sAMAccountName ("pre-Windows 2000 logon name"), checked before AD sees it so the client
    gets a 400 that says why: at most 20 characters for users (256 for groups), none of
    ``"/\\[]:;|=,+*?<>@`` or control characters, not ending in a period.

    Filters are not validated: Entra and Okta probe ``userName eq "user@example.com"`` before a
    create, and a name AD would refuse simply matches nobody."""

    def __init__(self, name: str, max_length: int, what: str):
        self.name = name
        self.max_length = max_length
        self.what = what

    def encode(self, value: object, current: list[bytes] | None = None) -> list[bytes]:
        out = super().encode(value, current)
        if not out:
            return out
        text = out[0].decode("utf-8")
        bad = sorted({c for c in text if c in AD_ACCOUNT_NAME_FORBIDDEN or ord(c) < 0x20})
        if bad:
            shown = " ".join(c if ord(c) >= 0x20 else f"U+{ord(c):04X}" for c in bad)
            raise InvalidValue(
                f"{text!r} cannot be an Active Directory sAMAccountName: it contains {shown} "
                f'(AD forbids " / \\ [ ] : ; | = , + * ? < > @ and control characters; map '
                "userName to userPrincipalName to use e-mail style names)"
            )
        if len(text) > self.max_length:
            raise InvalidValue(
                f"{text!r} is {len(text)} characters long; Active Directory allows at most "
                f"{self.max_length} in the sAMAccountName of {self.what}"
            )
        if text.endswith(".") or text.strip() == "":
            raise InvalidValue(
                f"{text!r} cannot be an Active Directory sAMAccountName: it must not be blank "
                "or end with a period"
            )
        return out

    def assertion(self, value: object) -> str | bytes:
        return StringCodec().assertion(value)


class AdSafeNameCodec(Codec):
    """A sAMAccountName *derived* from a free-form name (a group's displayName): characters AD
    forbids become ``_``, trailing periods and spaces go, and it is cut to 256 characters.
    Used for ``derived:`` attributes, never for values a client reads back."""

    name = "ad-safe-name"
    MAX = 256

    def encode(self, value: object, current: list[bytes] | None = None) -> list[bytes]:
        out = super().encode(value, current)
        if not out:
            return out
        text = "".join(
            "_" if c in AD_ACCOUNT_NAME_FORBIDDEN or ord(c) < 0x20 else c
            for c in out[0].decode("utf-8")
        )
        text = text[: self.MAX].rstrip(". ") or "_"
        return [text.encode("utf-8")]


class AdLogonNameCodec(AdSafeNameCodec):
    """A user's sAMAccountName *derived* from an e-mail style userName (Okta's login, Entra's
    userPrincipalName, OneLogin's and JumpCloud's e-mail): the part before the last ``@``,
    characters AD forbids replaced by ``_``, cut to AD's 20 characters.  The mapping's
    ``unique: domain`` then makes it unique with a numeric suffix (jdoe, jdoe1, ...)."""

    name = "ad-logon-name"
    MAX = 20

    def encode(self, value: object, current: list[bytes] | None = None) -> list[bytes]:
        if isinstance(value, str) and "@" in value:
            value = value.rsplit("@", 1)[0] or value.replace("@", "_")
        return super().encode(value, current)


CODECS: dict[str, Codec] = {
    c.name: c
    for c in (
        StringCodec(),
        BooleanCodec(),
        IntegerCodec(),
        DateTimeCodec(),
        UuidCodec(),
        GuidCodec(),
        PpolicyLockCodec(),
        AccountLockCodec(),
        PasswordCodec(),
        ReferenceCodec(),
        NameAndOptionalUidCodec(),
        AdEnabledCodec(),
        AdPasswordCodec(),
        AdAccountNameCodec("ad-samaccountname", 20, "a user"),
        AdAccountNameCodec("ad-group-samaccountname", 256, "a group"),
        AdSafeNameCodec(),
        AdLogonNameCodec(),
    )
}


def register(codec: Codec) -> Codec:
    """Add a codec (used by dialect modules such as the AD codecs)."""
    CODECS[codec.name] = codec
    return codec


#: letters NFKD does not decompose into ASCII, spelled as their usual transliteration
_FOLD = str.maketrans(
    {
        "ß": "ss",
        "ẞ": "SS",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ø": "o",
        "Ø": "O",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "þ": "th",
        "Þ": "Th",
        "\u0131": "i",  # dotless i
        "\t": " ",
        "\n": " ",
        "\r": " ",
        ":": " ",  # the passwd(5) field separator: getent would split gecos on it
    }
)


def fold_ascii(text: str) -> str:
    """``text`` folded to printable ASCII (IA5String, RFC 4517 §3.3.15): Zoë -> Zoe,
    Straße -> Strasse; what cannot fold (CJK, emoji) and control characters are dropped."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(c for c in decomposed if " " <= c <= "~")


class Ia5FoldCodec(Codec):
    """A free-form SCIM value written to an IA5String attribute (posixAccount's ``gecos``):
    folded to printable ASCII by :func:`fold_ascii`, whitespace runs collapsed.  Used for
    ``derived:`` attributes, never for values a client reads back (the fold loses letters)."""

    name = "ia5-fold"

    def encode(self, value: object, current: list[bytes] | None = None) -> list[bytes]:
        out = super().encode(value, current)
        if not out:
            return out
        text = " ".join(fold_ascii(out[0].decode("utf-8")).split())
        return [text.encode("ascii")] if text else []


register(Ia5FoldCodec())
