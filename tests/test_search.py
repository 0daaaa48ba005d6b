"""Result sets: filters evaluated by the directory (embedded AND slapd) give exactly the answer of
evaluating the SCIM filter over the seed in Python (tests/scim_eval.py); plus sorting, paging,
count=0, cursors (RFC 9865) and POST /.search (RFC 7644 §3.4.3)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from bridge.directory.base import Capabilities, Directory, Search, SearchResult
from bridge.directory.wrapper import Wrapper
from bridge.errors import DirectoryError
from bridge.mapping.load import parse_mapping
from bridge.scim.filter import (
    And,
    AttrPath,
    Compare,
    Filter,
    Not,
    Or,
    Present,
    ValuePath,
    render,
)
from bridge.scim.filter_parser import parse
from tests.conftest import OPENLDAP_MAP, Backend, make_client
from tests.helpers import ENTERPRISE, SCIM, USER_SCHEMA, create_group
from tests.scim_eval import matches, values

TITLES = ["Tour Guide", "Engineer", "engineer", "Manager", None]
DEPTS = ["Tour Operations", "R&D (core)", None]
N_USERS = 24


def seed_user(i: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": f"user{i:02d}" if i % 7 else f"User*{i:02d}(x)",
        "name": {"givenName": ["Ann", "Bob", "Zoë", "Émile"][i % 4], "familyName": f"Fam{i % 5}"},
        "displayName": f"Display {i:02d}",
        "active": i % 6 != 0,
    }
    if TITLES[i % 5]:
        body["title"] = TITLES[i % 5]
    if i % 3:
        body["emails"] = [{"value": f"u{i}@{'x' if i % 2 else 'y'}.example.org", "type": "work"}]
    if i % 4 == 1:
        body["phoneNumbers"] = [
            {"value": f"+33 1 {i:02d}", "type": "work"},
            {"value": f"+44 7 {i:02d}", "type": "mobile"},
        ]
    elif i % 4 == 2:
        body["phoneNumbers"] = [{"value": f"+33 6 {i:02d}", "type": "mobile"}]
    if DEPTS[i % 3]:
        body[ENTERPRISE] = {"department": DEPTS[i % 3], "employeeNumber": str(1000 + i)}
    return body


@pytest.fixture
def seeded(client: TestClient) -> dict[str, Any]:
    users = []
    for i in range(N_USERS):
        r = client.post(f"{SCIM}/Users", json=seed_user(i))
        assert r.status_code == 201, r.text
        users.append(r.json())
    g1 = create_group(client, "Group One", [u["id"] for u in users[:5]])
    g2 = create_group(client, "Group Two", [users[5]["id"]])
    # a second later some users change, so meta.lastModified splits the seed
    time.sleep(1.1)
    for i, u in enumerate(users[18:], 18):
        r = client.put(f"{SCIM}/Users/{u['id']}", json={**seed_user(i), "title": "Late"})
        assert r.status_code == 200, r.text
    listed = client.get(f"{SCIM}/Users", params={"count": 1000}).json()["Resources"]
    assert len(listed) == N_USERS
    return {"users": listed, "groups": [g1, g2]}


def _names(resources: list[dict[str, Any]]) -> set[str]:
    return {r["userName"] for r in resources}


def _filters(seed: dict[str, Any]) -> list[str]:
    users = seed["users"]
    early = max(u["meta"]["lastModified"] for u in users if u.get("title") != "Late")
    first = min(u["meta"]["created"] for u in users)
    u3 = next(u for u in users if u["userName"] == "user03")
    g1 = seed["groups"][0]
    return [
        'userName eq "user03"',
        'USERNAME eq "USER03"',
        'userName eq "User*07(x)"',
        'userName ne "user03"',
        'userName co "er1"',
        'userName sw "user0"',
        'userName ew "(x)"',
        'userName gt "user15"',
        'userName ge "user15"',
        'userName lt "user05"',
        'userName le "user05"',
        "userName pr",
        'title eq "engineer"',
        'title ne "Engineer"',
        "title pr",
        "title eq null",
        'not (title eq "Engineer")',
        "not (title pr)",
        'title gt "f"',
        'title lt "f"',
        'name.givenName eq "zoë"',
        'name.givenName sw "É"',
        'name.familyName ew "3"',
        'displayName co "1"',
        "active eq true",
        "active eq false",
        "active ne true",
        "not (active eq false) and title pr",
        'emails[type eq "work"].value ew "x.example.org"',
        'emails.value co "@y."',
        'emails eq "u1@x.example.org"',
        "emails pr",
        "not (emails pr)",
        'emails[type eq "work" and value co "u1"]',
        'emails[type eq "home"]',
        'phoneNumbers[type eq "mobile"].value sw "+33"',
        'phoneNumbers.value co "1"',
        'phoneNumbers[type eq "work"]',
        'phoneNumbers pr and not (phoneNumbers[type eq "work"])',
        f'{ENTERPRISE}:department eq "R&D (core)"',
        f'{ENTERPRISE}:employeeNumber sw "100"',
        f'{ENTERPRISE}:department pr or title eq "Manager"',
        '(title eq "Engineer" or title eq "Manager") and active eq true',
        'title eq "Engineer" or title eq "Manager" and active eq true',
        'not (not (userName sw "user1") or emails pr)',
        f'id eq "{u3["id"]}"',
        f'id ne "{u3["id"]}"',
        'id eq "00000000-0000-0000-0000-000000000000"',
        f'meta.lastModified gt "{early}"',
        f'meta.lastModified le "{early}"',
        f'meta.created ge "{first}"',
        'meta.lastModified lt "2000-01-01T00:00:00Z"',
        f'groups.value eq "{g1["id"]}"',
        f'not (groups[value eq "{g1["id"]}"])',
    ]


def test_filters_match_python_evaluation(client: TestClient, seeded: dict[str, Any]) -> None:
    users = seeded["users"]
    for text in _filters(seeded):
        expected = {u["userName"] for u in users if matches(u, parse(text))}
        r = client.get(f"{SCIM}/Users", params={"filter": text, "count": 1000})
        assert r.status_code == 200, (text, r.text)
        body = r.json()
        assert _names(body["Resources"]) == expected, text
        assert body["totalResults"] == len(expected), text


def test_group_filters(client: TestClient, seeded: dict[str, Any]) -> None:
    users = seeded["users"]
    g2 = seeded["groups"][1]
    ids = {u["userName"]: u["id"] for u in users}
    cases = {
        f'members.value eq "{ids["user01"]}"': {"Group One"},
        f'members[value eq "{ids["user05"]}"]': {"Group Two"},
        f'members eq "{ids["user05"]}" or displayName eq "Group One"': {"Group One", "Group Two"},
        'members.value eq "00000000-0000-0000-0000-000000000000"': set(),
        'members.value eq "not-an-id"': set(),
        f'members.value ne "{ids["user05"]}"': {"Group One"},
        "members pr": {"Group One", "Group Two"},
        'displayName sw "group"': {"Group One", "Group Two"},
        f'id eq "{g2["id"]}"': {"Group Two"},
    }
    for text, expected in cases.items():
        r = client.get(f"{SCIM}/Groups", params={"filter": text})
        assert r.status_code == 200, (text, r.text)
        assert {g["displayName"] for g in r.json()["Resources"]} == expected, text


@pytest.mark.parametrize(
    "text",
    [
        'nickName eq "x"',
        'userName eq "a" or nickName pr',
        "active gt true",
        "userName eq",
        'emails[display eq "x"]',
        'password eq "x"',
        'id co "a"',
    ],
)
def test_inexpressible_filters_are_400(client: TestClient, text: str) -> None:
    r = client.get(f"{SCIM}/Users", params={"filter": text})
    assert r.status_code == 400
    assert r.json()["scimType"] == "invalidFilter"


def test_search_endpoint_and_root_search(client: TestClient, seeded: dict[str, Any]) -> None:
    r = client.post(
        f"{SCIM}/Users/.search",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'userName sw "user0"',
            "attributes": ["userName"],
            "sortBy": "userName",
            "sortOrder": "descending",
            "startIndex": 2,
            "count": 3,
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [u["userName"] for u in body["Resources"]] == ["user08", "user06", "user05"]
    assert set(body["Resources"][0]) == {"schemas", "id", "userName"}
    assert body["totalResults"] == 8
    # root search: Users then Groups; an attribute a type lacks is absent on it
    flt = 'userName eq "user03" or displayName sw "Group"'
    r = client.post(f"{SCIM}/.search", json={"filter": flt})
    assert r.status_code == 200, r.text
    body = r.json()
    kinds = sorted(x["meta"]["resourceType"] for x in body["Resources"])
    assert kinds == ["Group", "Group", "User"] and body["totalResults"] == 3
    flt = 'meta.resourceType eq "Group"'
    r = client.post(f"{SCIM}/.search", json={"filter": flt, "count": 1, "startIndex": 2})
    assert r.json()["totalResults"] == 2
    assert [x["displayName"] for x in r.json()["Resources"]] == ["Group Two"]
    r = client.post(f"{SCIM}/.search", json={"startIndex": N_USERS, "count": 2})
    assert [x["meta"]["resourceType"] for x in r.json()["Resources"]] == ["User", "Group"]
    # sortBy that only Users map: Users sorted by it, Groups in their default order
    r = client.post(f"{SCIM}/.search", json={"sortBy": "userName", "sortOrder": "descending"})
    assert r.status_code == 200, r.text
    got = [x.get("userName") for x in r.json()["Resources"] if "userName" in x]
    assert got == sorted(got, key=str.lower, reverse=True) and len(got) == N_USERS
    r = client.post(f"{SCIM}/.search", json={"sortBy": "nickName"})
    assert r.status_code == 400 and r.json()["scimType"] == "invalidValue"
    r = client.post(f"{SCIM}/.search", json={"filter": 'nickName eq "x"'})
    assert r.status_code == 400 and "nickName" in r.json()["detail"]


def test_sorting(client: TestClient, seeded: dict[str, Any]) -> None:
    users = seeded["users"]
    names = sorted((u["userName"] for u in users), key=str.lower)
    r = client.get(f"{SCIM}/Users", params={"sortBy": "userName", "count": 100})
    assert [u["userName"] for u in r.json()["Resources"]] == names
    r = client.get(f"{SCIM}/Users", params={"sortBy": "userName", "sortOrder": "descending"})
    assert [u["userName"] for u in r.json()["Resources"]] == names[::-1]
    # sortBy a multi-valued attribute: by its (primary) value; entries without one come last
    r = client.get(f"{SCIM}/Users", params={"sortBy": "emails", "count": 100})
    got = [(u.get("emails") or [{}])[0].get("value") for u in r.json()["Resources"]]
    with_mail = [g for g in got if g]
    assert with_mail == sorted(with_mail)
    assert got[len(with_mail) :] == [None] * (len(got) - len(with_mail))
    r = client.get(f"{SCIM}/Users", params={"sortBy": "nickName"})
    assert r.status_code == 400 and "nickName" in r.json()["detail"]


def test_index_pagination(client: TestClient, seeded: dict[str, Any]) -> None:
    seen: list[str] = []
    for start in range(1, N_USERS + 1, 5):
        body = client.get(f"{SCIM}/Users", params={"startIndex": start, "count": 5}).json()
        assert body["totalResults"] == N_USERS and body["startIndex"] == start
        assert body["itemsPerPage"] == len(body["Resources"]) <= 5
        seen += [u["id"] for u in body["Resources"]]
    assert len(seen) == len(set(seen)) == N_USERS  # the default order is stable
    body = client.get(f"{SCIM}/Users", params={"count": 0}).json()
    assert body["totalResults"] == N_USERS and body["Resources"] == []
    body = client.get(f"{SCIM}/Users", params={"count": 0, "filter": 'title eq "Late"'}).json()
    assert body["totalResults"] == N_USERS - 18 and body["Resources"] == []
    r = client.get(f"{SCIM}/Users", params={"startIndex": 1000, "count": 5})
    assert r.status_code == 200 and r.json()["totalResults"] == N_USERS
    assert r.json()["Resources"] == []
    r = client.get(f"{SCIM}/Users", params={"startIndex": 0, "count": -3})
    assert r.json()["startIndex"] == 1 and r.json()["Resources"] == []


def test_count_is_capped_at_max_results(backend: Backend, seeded: dict[str, Any]) -> None:
    small = make_client(backend, max_results=7)
    r = small.get(f"{SCIM}/Users", params={"count": 500})
    assert r.status_code == 200 and len(r.json()["Resources"]) == 7
    assert r.json()["totalResults"] == N_USERS


def test_cursor_walk_survives_restart(backend: Backend, seeded: dict[str, Any]) -> None:
    """RFC 9865: follow nextCursor with a NEW app (a restart, another replica: the same
    BRIDGE_CURSOR_SECRET) for every page."""
    seen: list[str] = []
    cursor = ""
    pages = 0
    params: dict[str, Any] = {"count": 5, "filter": "userName pr"}
    while True:
        c = make_client(backend, cursor_secret="same-config")
        r = c.get(f"{SCIM}/Users", params={**params, "cursor": cursor})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["totalResults"] == N_USERS
        seen += [u["id"] for u in body["Resources"]]
        pages += 1
        assert ("previousCursor" in body) == (pages > 1)
        if "nextCursor" not in body:
            break
        cursor = body["nextCursor"]
    assert pages == 5 and len(seen) == len(set(seen)) == N_USERS
    # the previous cursor of the last page leads back one page
    c = make_client(backend, cursor_secret="same-config")
    r = c.get(f"{SCIM}/Users", params={**params, "cursor": body["previousCursor"]})
    assert [u["id"] for u in r.json()["Resources"]] == seen[15:20]


def test_bad_cursors(backend: Backend, seeded: dict[str, Any]) -> None:
    c = make_client(backend, cursor_secret="same-config")
    cursor = c.get(f"{SCIM}/Users", params={"cursor": "", "count": 5}).json()["nextCursor"]
    body, _, mac = cursor.partition(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    for bad in [f"{body}.{flipped}", "garbage", "a.b", f"{body[:-4]}.{mac}", "%%%"]:
        r = c.get(f"{SCIM}/Users", params={"cursor": bad, "count": 5})
        assert r.status_code == 400 and r.json()["scimType"] == "invalidCursor", bad
    # a cursor for another query is refused, as is one signed by another configuration
    r = c.get(f"{SCIM}/Users", params={"cursor": cursor, "count": 5, "filter": "title pr"})
    assert r.status_code == 400 and r.json()["scimType"] == "invalidCursor"
    other = make_client(backend, cursor_secret="other-config")
    r = other.get(f"{SCIM}/Users", params={"cursor": cursor, "count": 5})
    assert r.status_code == 400 and r.json()["scimType"] == "invalidCursor"
    r = c.get(f"{SCIM}/Users", params={"cursor": cursor, "startIndex": 3})
    assert r.status_code == 400 and r.json()["scimType"] == "invalidValue"


def test_excluded_members_are_not_read(
    backend: Backend, client: TestClient, seeded: dict[str, Any]
) -> None:
    asked: list[list[str]] = []
    real = backend.directory.run

    def spy(search: Search) -> Any:
        asked.append([a.lower() for a in search.attributes])
        return real(search)

    backend.directory.run = spy  # type: ignore[method-assign]
    try:
        r = client.get(f"{SCIM}/Groups", params={"excludedAttributes": "members"})
    finally:
        backend.directory.run = real  # type: ignore[method-assign]
    assert r.status_code == 200 and all("members" not in g for g in r.json()["Resources"])
    assert asked and not any("member" in attrs for attrs in asked)


class NoVlv(Wrapper):
    """The same directory without VLV (and optionally without sort): the bridge must fall back
    to an RFC 2696 paged walk with the same answers."""

    def __init__(self, inner: Directory, sort: bool = True):
        super().__init__(inner)
        self.sort = sort

    @property
    def capabilities(self) -> Capabilities:
        return replace(self.inner.capabilities, vlv=False, sort=self.sort)

    def run(self, search: Search) -> SearchResult:
        assert search.window is None, "VLV used although not offered"
        return self.inner.run(search)


def test_paged_fallback_without_vlv(backend: Backend, client: TestClient, seeded: Any) -> None:
    paged = make_client(replace(backend, directory=NoVlv(backend.directory)))
    for params in [
        {"startIndex": 3, "count": 4, "sortBy": "userName"},
        {"startIndex": 20, "count": 10, "sortBy": "userName", "sortOrder": "descending"},
        {"count": 0, "filter": "title pr"},
        {"startIndex": 100, "count": 5},
        {"filter": 'emails pr and userName lt "user10"', "sortBy": "userName"},
    ]:
        a = client.get(f"{SCIM}/Users", params=params).json()
        b = paged.get(f"{SCIM}/Users", params=params).json()
        assert b["totalResults"] == a["totalResults"], params
        assert [u["id"] for u in b["Resources"]] == [u["id"] for u in a["Resources"]], params
    unsorted = make_client(replace(backend, directory=NoVlv(backend.directory, sort=False)))
    # no sort control: the bridge sorts (issue 19 item 4), in the directory's order
    for params in [
        {"startIndex": 3, "count": 4, "sortBy": "userName"},
        {"startIndex": 20, "count": 10, "sortBy": "userName", "sortOrder": "descending"},
        {"filter": 'emails pr and userName lt "user10"', "sortBy": "userName"},
    ]:
        a = client.get(f"{SCIM}/Users", params=params).json()
        r = unsorted.get(f"{SCIM}/Users", params=params)
        assert r.status_code == 200, r.text
        assert r.json()["totalResults"] == a["totalResults"], params
        assert [u["id"] for u in r.json()["Resources"]] == [u["id"] for u in a["Resources"]]
    seen: list[str] = []
    for start in (1, 11, 21):
        body = unsorted.get(f"{SCIM}/Users", params={"startIndex": start, "count": 10}).json()
        seen += [u["id"] for u in body["Resources"]]
    assert len(seen) == len(set(seen)) == N_USERS


RANDOM_PATHS = [
    ("userName", None, None),
    ("title", None, None),
    ("displayName", None, None),
    ("name", "givenName", None),
    ("name", "familyName", None),
    ("emails", "value", None),
    ("emails", None, None),
    ("active", None, None),
    ("department", None, ENTERPRISE),
    ("employeeNumber", None, ENTERPRISE),
]


@st.composite
def seed_filters(draw: st.DrawFn, users: list[dict[str, Any]]) -> Filter:
    """Random filters over the seed's own values (so they hit), in random case, or fragments
    of them, combined with and/or/not and value paths."""

    def leaf() -> Filter:
        attr, sub, schema = draw(st.sampled_from(RANDOM_PATHS))
        path = AttrPath(schema, attr, sub)
        op = draw(st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr"]))
        if op == "pr":
            return Present(path)
        seen = [v for u in users for v in values(u, path)]
        if attr == "active":
            return Compare(path, draw(st.sampled_from(["eq", "ne"])), draw(st.booleans()))
        if attr == "emails" and op in ("gt", "ge", "lt", "le"):
            op = "eq"  # mail has no ordering rule on OpenLDAP (refused with a 400)
        value = str(draw(st.sampled_from(seen))) if seen else "x"
        cut = draw(st.integers(0, 3))
        value = value[cut:] if op in ("co", "ew") else value[: len(value) - cut] or value
        if draw(st.booleans()):
            value = value.upper()
        return Compare(path, op, value)

    def tree(depth: int) -> Filter:
        kind = draw(st.sampled_from(["leaf", "leaf", "and", "or", "not", "vpath"]))
        if depth <= 0 or kind == "leaf":
            return leaf()
        if kind == "not":
            return Not(tree(depth - 1))
        if kind == "vpath":
            inner = Compare(
                AttrPath(None, "value"), "co", draw(st.sampled_from(["u1", "@x", "y."]))
            )
            if draw(st.booleans()):
                inner = And(Compare(AttrPath(None, "type"), "eq", "work"), inner)  # type: ignore[assignment]
            return ValuePath(AttrPath(None, "emails"), inner)
        node = And if kind == "and" else Or
        return node(tree(depth - 1), tree(depth - 1))

    return tree(3)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_filters_match_python_evaluation(
    client: TestClient, seeded: dict[str, Any], data: st.DataObject
) -> None:
    users = seeded["users"]
    f = data.draw(seed_filters(users))
    text = render(f)
    expected = {u["userName"] for u in users if matches(u, parse(text))}
    r = client.get(f"{SCIM}/Users", params={"filter": text, "count": 1000})
    assert r.status_code == 200, (text, r.text)
    assert _names(r.json()["Resources"]) == expected, text


class RefusesVlv(NoVlv):
    """Advertises VLV but refuses it (as an AD account without the right, or a busy sssvlv)."""

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def run(self, search: Search) -> SearchResult:
        if search.window is not None:
            raise DirectoryError("unwillingToPerform", "no VLV for you", operation="search")
        return self.inner.run(search)


def test_refused_vlv_falls_back_to_paging(
    backend: Backend, client: TestClient, seeded: Any
) -> None:
    refusing = make_client(replace(backend, directory=RefusesVlv(backend.directory)))
    params = {"startIndex": 4, "count": 6, "sortBy": "userName", "filter": "userName pr"}
    a = client.get(f"{SCIM}/Users", params=params).json()
    b = refusing.get(f"{SCIM}/Users", params=params).json()
    assert b["totalResults"] == a["totalResults"] == N_USERS
    assert [u["id"] for u in b["Resources"]] == [u["id"] for u in a["Resources"]]


def test_sort_without_ordering_rule_sorts_in_the_bridge(backend: Backend, seeded: Any) -> None:
    """A mapping that types employeeNumber as integer asks slapd to sort it without an ordering
    rule (employeeNumber is a directoryString with none): slapd answers 18
    inappropriateMatching, and the bridge sorts the (bounded) result set itself, numerically as
    the mapping types it (issue 19 item 4; it was a 400).  The embedded directory orders
    anything."""
    text = OPENLDAP_MAP.read_text(encoding="utf-8").replace(
        "employeeNumber: {ldap: employeeNumber}",
        "employeeNumber: {ldap: employeeNumber, type: integer}",
    )
    mapping = parse_mapping(text)
    c = make_client(replace(backend, mapping=mapping))
    r = c.get(f"{SCIM}/Users", params={"sortBy": f"{ENTERPRISE}:employeeNumber", "count": 3})
    assert r.status_code == 200 and len(r.json()["Resources"]) == 3, r.text
    numbers = sorted(
        int(u[ENTERPRISE]["employeeNumber"])
        for u in seeded["users"]
        if u.get(ENTERPRISE, {}).get("employeeNumber")
    )
    got = [int(u[ENTERPRISE]["employeeNumber"]) for u in r.json()["Resources"]]
    assert got == numbers[:3]
