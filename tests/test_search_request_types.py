"""Issue 16 item 10: a SearchRequest member of the wrong JSON type is a 400 (invalidValue or
invalidSyntax), never a 500.  Embedded directory and slapd with both clients."""

from __future__ import annotations

import pytest

from tests.conftest import Backend, make_client
from tests.helpers import SCIM

# ---------------------------------------------------------------- 4. mistyped SearchRequests
BAD_SEARCHES = [
    {"attributes": [1]},
    {"attributes": 5},
    {"attributes": {"a": 1}},
    {"excludedAttributes": 5},
    {"excludedAttributes": [None]},
    {"excludedAttributes": True},
    {"count": "many"},
    {"count": [1]},
    {"count": {"n": 1}},
    {"count": True},
    {"count": 1.5},
    {"startIndex": [2]},
    {"startIndex": False},
    {"startIndex": 2.5},
    {"startIndex": "x" * 5000},
    {"filter": 5},
    {"filter": ["userName pr"]},
    {"filter": {"op": "pr"}},
    {"sortBy": 1},
    {"sortBy": ["userName"]},
    {"sortOrder": 1},
    {"sortOrder": ["ascending"]},
    {"cursor": 1},
    {"cursor": ["a", "b"]},
    {"cursor": {"o": 1}},
    {"cursor": True},
    [],
    "a string",
    5,
]


@pytest.mark.parametrize("path", ["/Users/.search", "/.search", "/Groups/.search"])
def test_mistyped_search_requests_are_400(backend: Backend, path: str) -> None:
    client = make_client(backend)
    for body in BAD_SEARCHES:
        r = client.post(SCIM + path, json=body)
        assert r.status_code == 400, (body, r.status_code, r.text)
        assert r.json()["scimType"] in ("invalidValue", "invalidSyntax"), body
    good = client.post(
        SCIM + path,
        json={
            "attributes": ["id"],
            "count": 2,
            "startIndex": 1,
            "sortBy": "id",
            "sortOrder": "descending",
            "filter": "meta.created pr",
            "excludedAttributes": None,
        },
    )
    assert good.status_code == 200, good.text
