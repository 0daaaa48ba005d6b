"""SCIM attribute values as they arrive (RFC 7643 §2.3), before any mapping sees them."""

from __future__ import annotations

from bridge.errors import InvalidValue

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_bool(value: object) -> bool:
    """SCIM booleans; Entra (non-aadOptscim062020 apps) sends ``"True"``/``"False"`` strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidValue(f"expected a boolean, got {value!r}")
