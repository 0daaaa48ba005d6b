"""Fault injection for any Directory (embedded or slapd): fail the Nth call of an operation."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from bridge.directory.base import (
    Add,
    Capabilities,
    Delete,
    Directory,
    Entry,
    Modify,
    Rename,
    Search,
    SearchResult,
)
from bridge.directory.wrapper import Wrapper
from bridge.errors import DirectoryError


class FaultyDirectory(Wrapper):
    """Delegates to ``inner``; ``fail(op, code, nth=1)`` makes the nth next call of ``op``
    (add/modify/rename/delete/search) raise DirectoryError(code) *instead of* running it, or
    run ``before`` first (e.g. to delete the target behind the service's back)."""

    name = "faulty"

    def __init__(self, inner: Directory):
        super().__init__(inner)
        self.calls: list[tuple[str, str]] = []
        self._plan: dict[str, list[tuple[int, str, Callable[[], None] | None]]] = {}
        self._lock = threading.Lock()

    def fail(
        self, op: str, code: str, nth: int = 1, before: Callable[[], None] | None = None
    ) -> None:
        seen = sum(1 for o, _ in self.calls if o == op)
        self._plan.setdefault(op, []).append((seen + nth, code, before))

    def _hit(self, op: str, dn: str) -> None:
        with self._lock:
            self.calls.append((op, dn))
            count = sum(1 for o, _ in self.calls if o == op)
            plan = self._plan.get(op, [])
            due = [p for p in plan if p[0] == count]
        for p in due:
            plan.remove(p)
            if p[2] is not None:
                p[2]()
            raise DirectoryError(p[1], "injected fault", dn=dn, operation=op)

    def run(self, search: Search) -> SearchResult:
        self._hit("search", search.base)
        return self.inner.run(search)

    def stream(self, search: Search) -> Iterator[Entry]:
        self._hit("search", search.base)
        yield from self.inner.stream(search)

    #: a read is a search here (counted and failed as one), as the base class reads
    read = Directory.read

    def run_add(self, op: Add) -> Entry | None:
        self._hit("add", op.dn)
        return self.inner.run_add(op)

    def run_modify(self, op: Modify) -> Entry | None:
        self._hit("modify", op.dn)
        return self.inner.run_modify(op)

    def run_rename(self, op: Rename) -> str:
        self._hit("rename", op.dn)
        return self.inner.run_rename(op)

    def run_delete(self, op: Delete) -> None:
        self._hit("delete", op.dn)
        self.inner.run_delete(op)


class Masked(FaultyDirectory):
    """``inner`` with capabilities turned off (``Masked(d, deref=False)``), for the path the
    service takes on a directory without them.  Every call is in ``calls``; ``asked`` notes
    the searches sent with matched values (``matched_values``), the modifies sent with a
    post-read (``post_read``) and the adds sent with one (``add_post_read``)."""

    name = "masked"

    def __init__(self, inner: Directory, **off: bool):
        super().__init__(inner)
        #: the Capabilities flags to turn off (bool values; Any for ``dataclasses.replace``)
        self.off: dict[str, Any] = dict(off)
        self.asked: list[str] = []

    @property
    def capabilities(self) -> Capabilities:
        return replace(self.inner.capabilities, **self.off)

    def run(self, search: Search) -> SearchResult:
        if search.matched_values:
            self.asked.append("matched_values")
        return super().run(search)

    def run_add(self, op: Add) -> Entry | None:
        if op.post_read is not None:
            self.asked.append("add_post_read")
        return super().run_add(op)

    def run_modify(self, op: Modify) -> Entry | None:
        if op.post_read is not None:
            self.asked.append("post_read")
        return super().run_modify(op)

    def ops(self) -> list[str]:
        """The operations so far, in order (a read is a search)."""
        return [op for op, _ in self.calls]
