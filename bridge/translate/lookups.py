"""What planning a PATCH may ask of the directory (translate/patch.py, translate/members.py):
a Protocol, which the service implements, so the planner itself stays pure (no import of the
service, no LDAP library)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from bridge.translate import entry as tr


class Lookups(Protocol):
    """What planning a PATCH may need to know of the directory beyond the entry and the
    current resource, which the caller gathered first: references resolved in batched
    searches, the member list (read only for a replace, a remove-all or a general member
    filter), whether a value is there.  The service passes an object implementing it, so
    the planner itself stays pure."""

    def resolve_ids(
        self, ids: Iterable[str], targets: Sequence[str], what: str, *, missing_ok: bool = False
    ) -> dict[str, str]:
        """SCIM id -> DN (an unknown id is a 400 naming it, unless ``missing_ok``)."""
        ...

    def resolve_dns(self, dns: Iterable[str], targets: Sequence[str]) -> dict[str, tr.Ref]:
        """normalized DN -> Ref for every DN that is a mapped resource of ``targets``."""
        ...

    def values_of(self, dn: str, attr: str) -> list[str]:
        """The values of ``attr`` of the entry ``dn`` (none if it is gone)."""
        ...

    def has_value(self, dn: str, attr: str, value: str) -> bool:
        """Whether the entry ``dn`` holds ``value`` in ``attr``."""
        ...
