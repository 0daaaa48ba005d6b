"""``sortBy`` follows the directory (issue 19 item 4).  Where the server sorts (embedded, the
tuned slapd with sssvlv) it does; on a bare slapd (no sort control) the bridge sorts result sets
of at most ``maxResults`` and refuses larger ones with 400 tooMany.  Either way the order uses
the SCIM attribute's semantics (``userName`` is caseExact=false) and ``/ServiceProviderConfig``
advertises ``sort.supported`` exactly when sortBy answers."""

from __future__ import annotations

from typing import Any

from bridge.directory.base import Entry, SortKey
from bridge.mapping.load import load_mapping
from bridge.translate.sort import sort_entries
from tests.conftest import BARE_MAP, Backend, make_client
from tests.helpers import SCIM, create_user

NAMES = ["srt-bob", "srt-Alice", "srt-carol", "srt-Dave", "srt-alice2"]
ASCENDING = ["srt-Alice", "srt-alice2", "srt-bob", "srt-carol", "srt-Dave"]


def _names(client: Any, **params: Any) -> list[str]:
    r = client.get(f"{SCIM}/Users", params={"filter": 'userName sw "srt-"', **params})
    assert r.status_code == 200, r.text
    return [u["userName"] for u in r.json()["Resources"]]


def test_sort_by_username_case_insensitive(any_backend: Backend) -> None:
    client = make_client(any_backend)
    for name in NAMES:
        create_user(client, name)
    assert _names(client, sortBy="userName") == ASCENDING
    down = _names(client, sortBy="userName", sortOrder="descending")
    assert down == ASCENDING[::-1]
    pages = [_names(client, sortBy="userName", startIndex=i, count=2) for i in (1, 3, 5)]
    assert [n for p in pages for n in p] == ASCENDING


def test_unsorted_pages_are_stable_and_complete(any_backend: Backend) -> None:
    client = make_client(any_backend)
    for name in NAMES:
        create_user(client, name)
    pages = [_names(client, startIndex=i, count=2) for i in (1, 3, 5)]
    assert sorted(n for p in pages for n in p) == sorted(NAMES)
    assert [n for p in pages for n in p] == _names(client)


def test_sort_larger_than_max_results(any_backend: Backend) -> None:
    """Above maxResults a directory without sort is a 400 tooMany saying why; one with the
    sort control keeps sorting (it pages on the server)."""
    client = make_client(any_backend, max_results=3)
    for name in NAMES:
        create_user(client, name)
    r = client.get(f"{SCIM}/Users", params={"filter": 'userName sw "srt-"', "sortBy": "userName"})
    if any_backend.directory.capabilities.sort:
        assert r.status_code == 200 and len(r.json()["Resources"]) == 3
        assert [u["userName"] for u in r.json()["Resources"]] == ASCENDING[:3]
    else:
        assert r.status_code == 400 and r.json()["scimType"] == "tooMany"
        assert "at most 3" in r.json()["detail"]
    # count=0 asks only for totalResults: nothing to sort, no limit
    total = client.get(
        f"{SCIM}/Users",
        params={"filter": 'userName sw "srt-"', "sortBy": "userName", "count": 0},
    )
    assert total.status_code == 200 and total.json()["totalResults"] == len(NAMES)
    small = client.get(
        f"{SCIM}/Users",
        params={"filter": 'userName sw "srt-a"', "sortBy": "userName", "sortOrder": "descending"},
    )
    assert small.status_code == 200
    assert [u["userName"] for u in small.json()["Resources"]] == ["srt-alice2", "srt-Alice"]


def test_spc_sort_matches_sortby(any_backend: Backend) -> None:
    client = make_client(any_backend)
    create_user(client, "srt-one")
    spc = client.get(f"{SCIM}/ServiceProviderConfig").json()
    r = client.get(f"{SCIM}/Users", params={"sortBy": "userName"})
    assert spc["sort"]["supported"] is (r.status_code == 200)
    assert spc["sort"]["supported"] is True


def _e(dn: str, **attrs: list[str]) -> Entry:
    return Entry(dn, {k.lower(): [v.encode() for v in vs] for k, vs in attrs.items()})


def test_sort_entries_semantics() -> None:
    rmap = load_mapping(BARE_MAP).resources["User"]
    entries = [
        _e("uid=1", uid=["b"]),
        _e("uid=2"),  # no value: after every value ascending
        _e("uid=3", uid=["A"]),
        _e("uid=4", uid=["a"]),  # equal to uid=3 ignoring case: keeps the directory's order
        _e("uid=5", uid=["z", "0"]),  # multi-valued: smallest ascending, largest descending
    ]
    up = sort_entries(rmap, entries, [SortKey("uid")])
    assert [e.dn for e in up] == ["uid=5", "uid=3", "uid=4", "uid=1", "uid=2"]
    down = sort_entries(rmap, entries, [SortKey("uid", reverse=True)])
    assert [e.dn for e in down] == ["uid=2", "uid=5", "uid=1", "uid=3", "uid=4"]
    by_id = sort_entries(rmap, entries[2:4], [SortKey("uid"), SortKey("entryUUID")])
    assert [e.dn for e in by_id] == ["uid=3", "uid=4"]
