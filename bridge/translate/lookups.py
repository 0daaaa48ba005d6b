"""What planning a PATCH may ask of the directory (translate/patch.py, translate/members.py):
a Protocol, which the service implements, so the planner itself stays pure (no import of the
service, no LDAP library)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bridge.translate import entry as tr


@dataclass(frozen=True)
class Member:
    """A resolved member: its DN, resource type and, when asked for, its value of the
    attribute a value member attribute holds (the uid of a memberUid); None if it has none."""

    dn: str
    resource: str
    value: str | None = None


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

    def resolve_members(
        self,
        ids: Iterable[str],
        targets: Sequence[str],
        what: str,
        value_attr: str,
        *,
        missing_ok: bool = False,
    ) -> dict[str, Member]:
        """SCIM id -> Member with its value of ``value_attr`` (as :meth:`resolve_ids`)."""
        ...

    def resolve_values(
        self, values: Iterable[str], targets: Sequence[str], attr: str
    ) -> dict[str, tr.Ref]:
        """tr.value_key(attr, value) -> Ref for every member value (a memberUid's uid) that
        names a mapped resource of ``targets`` by its ``attr``."""
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
