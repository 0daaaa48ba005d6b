"""``attributes`` / ``excludedAttributes`` (RFC 7644 §3.4.2.5, §3.9) as one decision object.

Paths are compared case-insensitively, with an optional schema URN prefix; ``name`` selects all of
``name.*`` and ``name.givenName`` selects the sub-attribute and therefore its parent.
"""

from __future__ import annotations

from dataclasses import dataclass


def _split(path: str, schemas: tuple[str, ...]) -> tuple[str, str | None]:
    low = path.strip().lower()
    for urn in sorted(schemas, key=len, reverse=True):
        if low.startswith(urn.lower() + ":"):
            low = low[len(urn) + 1 :]
            break
    top, _, sub = low.partition(".")
    return top, sub or None


@dataclass(frozen=True)
class Projection:
    include: frozenset[tuple[str, str | None]] = frozenset()
    exclude: frozenset[tuple[str, str | None]] = frozenset()

    @classmethod
    def parse(
        cls,
        attributes: str | list[str] | None,
        excluded: str | list[str] | None,
        schemas: tuple[str, ...],
    ) -> Projection:
        def items(value: str | list[str] | None) -> frozenset[tuple[str, str | None]]:
            if not value:
                return frozenset()
            parts = value.split(",") if isinstance(value, str) else value
            return frozenset(_split(p, schemas) for p in parts if p.strip())

        return cls(items(attributes), items(excluded))

    def wants(self, attr: str, sub: str | None = None, returned: str = "default") -> bool:
        """Whether ``attr[.sub]`` goes into the response."""
        if returned == "never":
            return False
        if returned == "always":
            return True
        a, s = attr.lower(), sub.lower() if sub else None
        if self.include:
            return (
                (a, None) in self.include
                or (a, s) in self.include
                or (s is None and any(t == a for t, _ in self.include))
            )
        if returned == "request":
            return False
        return not ((a, None) in self.exclude or (s is not None and (a, s) in self.exclude))

    @property
    def is_default(self) -> bool:
        return not self.include and not self.exclude


DEFAULT = Projection()
