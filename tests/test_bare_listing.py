"""A list page reads only the page's entries with attributes (issue 19 item 2), also where the
directory has no VLV (a bare slapd: no sssvlv): the walk that counts the matches asks for no
attributes (``1.1``), then one search reads the page's entries.  Pages are stable and complete
in the directory's order.  Embedded, tuned slapd and bare slapd, both clients."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from bridge.directory.base import Entry, Search, SearchResult
from devtools.faults import FaultyDirectory
from tests.conftest import Backend, make_client
from tests.helpers import SCIM, create_user


class Transfers(FaultyDirectory):
    """Counts the entries each search returns with attributes (not ``1.1`` nor only the
    sort attributes of a bridge-side sort)."""

    def __init__(self, inner: Any):
        super().__init__(inner)
        self.with_attrs = 0

    def _note(self, attributes: Sequence[str], n: int) -> None:
        if len(attributes) > 2:  # the page's attributes (id, meta, mapped ones)
            self.with_attrs += n

    def run(self, search: Search) -> SearchResult:
        res = super().run(search)
        self._note(search.attributes, len(res.entries))
        return res

    def stream(self, search: Search) -> Iterator[Entry]:
        for e in super().stream(search):
            self._note(search.attributes, 1)
            yield e


def test_a_page_transfers_only_its_entries(any_backend: Backend) -> None:
    counted = Transfers(any_backend.directory)
    client = make_client(replace(any_backend, directory=counted))
    for i in range(7):
        create_user(client, f"lst-{i}")
    seen: list[str] = []
    for start in (1, 4, 7):
        counted.with_attrs = 0
        r = client.get(
            f"{SCIM}/Users",
            params={"filter": 'userName sw "lst-"', "startIndex": start, "count": 3},
        )
        body = r.json()
        assert r.status_code == 200 and body["totalResults"] == 7
        assert len(body["Resources"]) == (3 if start < 7 else 1)
        users = [u for u in body["Resources"]]
        seen += [u["userName"] for u in users]
        assert counted.with_attrs == len(users), counted.with_attrs
    assert sorted(seen) == [f"lst-{i}" for i in range(7)]  # complete, no repeats
    again: list[str] = []
    for start in (1, 4, 7):
        params = {"filter": 'userName sw "lst-"', "startIndex": start, "count": 3}
        again += [
            u["userName"] for u in client.get(f"{SCIM}/Users", params=params).json()["Resources"]
        ]
    assert again == seen  # the same order every time
