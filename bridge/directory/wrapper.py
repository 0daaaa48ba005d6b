"""The base of every Directory decorator (instrumented, dry-run, the tests' fault injector): each
call goes on to ``inner`` unchanged, so a decorator overrides only the calls it changes and the
operations' signatures stay written once, in :mod:`bridge.directory.base`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from bridge.directory.base import (
    Add,
    Capabilities,
    Delete,
    Directory,
    Entry,
    Modify,
    PoolStats,
    Rename,
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

    def run_add(self, op: Add) -> Entry | None:
        return self.inner.run_add(op)

    def run_modify(self, op: Modify) -> Entry | None:
        return self.inner.run_modify(op)

    def run_rename(self, op: Rename) -> str:
        return self.inner.run_rename(op)

    def run_delete(self, op: Delete) -> None:
        self.inner.run_delete(op)

    def check(self) -> None:
        self.inner.check()

    def close(self) -> None:
        self.inner.close()

    def pool_stats(self) -> PoolStats | None:
        return self.inner.pool_stats()
