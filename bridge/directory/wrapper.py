"""The base of every Directory decorator (instrumented, dry-run, the tests' fault injector): each
call goes on to ``inner`` unchanged, so a decorator overrides only the calls it changes and the
operations' signatures stay written once, in :mod:`bridge.directory.base`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from bridge.directory.base import (
    Capabilities,
    Change,
    Directory,
    Entry,
    PoolStats,
    Search,
    SearchResult,
)


class Wrapper(Directory):
    """A Directory that forwards everything to ``inner``."""

    def __init__(self, inner: Directory):
        self.inner = inner

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    @property
    def secure(self) -> bool:
        return self.inner.secure

    def run(self, search: Search) -> SearchResult:
        return self.inner.run(search)

    def stream(self, search: Search) -> Iterator[Entry]:
        return self.inner.stream(search)

    def read(self, dn: str, attributes: Sequence[str]) -> Entry | None:
        return self.inner.read(dn, attributes)

    def add(
        self,
        dn: str,
        attributes: Mapping[str, Sequence[bytes]],
        *,
        post_read: Sequence[str] | None = None,
    ) -> Entry | None:
        return self.inner.add(dn, attributes, post_read=post_read)

    def modify(
        self,
        dn: str,
        changes: Sequence[Change],
        *,
        assertion: str | None = None,
        post_read: Sequence[str] | None = None,
    ) -> Entry | None:
        return self.inner.modify(dn, changes, assertion=assertion, post_read=post_read)

    def rename(
        self,
        dn: str,
        new_rdn: str,
        new_superior: str | None = None,
        *,
        assertion: str | None = None,
    ) -> str:
        return self.inner.rename(dn, new_rdn, new_superior, assertion=assertion)

    def delete(self, dn: str, *, assertion: str | None = None) -> None:
        self.inner.delete(dn, assertion=assertion)

    def check(self) -> None:
        self.inner.check()

    def close(self) -> None:
        self.inner.close()

    def pool_stats(self) -> PoolStats | None:
        return self.inner.pool_stats()
