"""Fuzz the HTTP surface (hypothesis): random JSON bodies for POST/PUT/PATCH, random PATCH
operations, random query strings.  The only answers are 2xx or 4xx SCIM errors - never a 500,
never an exception reaching the ASGI server, never an 'unhandled error' log record.

Runs on the embedded directory (many cases, fast) and on slapd (fewer).  ``-m slow`` runs the
heavy variant (BRIDGE_FUZZ_EXAMPLES, default 20,000 per law there).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.conftest import Backend, make_client
from tests.helpers import ENTERPRISE, GROUP_SCHEMA, PATCH_SCHEMA, SCIM, USER_SCHEMA

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
USER_ATTRS = [
    "userName", "displayName", "name", "emails", "phoneNumbers", "addresses", "active",
    "password", "title", "externalId", "groups", "id", "meta", "schemas", ENTERPRISE,
    "preferredLanguage", "nickName", "x", "",
]  # fmt: skip
GROUP_ATTRS = ["displayName", "members", "externalId", "id", "meta", "schemas", "x"]
PATHS = [
    "userName", "displayName", "name.givenName", "name", 'emails[type eq "work"].value',
    "emails", 'emails[value co "@"]', "active", "members", 'members[value eq "nope"]',
    "members[value eq", f"{ENTERPRISE}:manager", f"{ENTERPRISE}:employeeNumber",
    "urn:ietf:params:scim:schemas:core:2.0:User:title", "meta.version", "id", "groups",
    "password", "", "]", '"',
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["True", "False", "", " ", "*", "\x00", "work", "bjensen"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["value", "type", "primary", "display", "$ref", "x"]) | st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


def resource_bodies(attrs: list[str], schema: str) -> st.SearchStrategy[Any]:
    from tests.test_hostile_values import hostile_text

    shaped = st.dictionaries(st.sampled_from(attrs), json_values, max_size=6).map(
        lambda d: {"schemas": [schema], **d}
    )
    # mostly valid: the naming attribute set, the rest random - reaches the writes
    named = st.builds(
        lambda name, d: {"schemas": [schema], **d, attrs[0]: name},
        hostile_text,
        st.dictionaries(st.sampled_from(attrs[1:]), json_values, max_size=3),
    )
    return st.one_of(named, shaped, json_values)


operations = st.fixed_dictionaries(
    {},
    optional={
        "op": st.sampled_from(["add", "remove", "replace", "Replace", "ADD", "move", ""]) | scalars,
        "path": st.sampled_from(PATHS) | st.text(max_size=24) | scalars,
        "value": json_values,
    },
)
patch_bodies = st.one_of(
    st.fixed_dictionaries(
        {"schemas": st.just([PATCH_SCHEMA]), "Operations": st.lists(operations, max_size=4)}
    ),
    st.fixed_dictionaries({"Operations": json_values}),
    json_values,
)
query_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ['userName eq "a"', "userName pr", 'emails[type eq "work"]', "not (", "a eq", "10", "-1",
         "0", "ascending", "descending", "members", "name.givenName", "9" * 30]
    ),
)  # fmt: skip
queries = st.dictionaries(
    st.sampled_from(
        ["filter", "count", "startIndex", "sortBy", "sortOrder", "attributes",
         "excludedAttributes", "cursor", "x"]
    ),
    query_values,
    max_size=5,
)  # fmt: skip


class _Unhandled(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def watched() -> Iterator[_Unhandled]:
    handler = _Unhandled()
    logger = logging.getLogger("bridge")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    assert not [r for r in handler.records if "unhandled" in r.getMessage()], [
        r.getMessage() for r in handler.records
    ]


def examples(backend: Backend) -> int:
    default = 600 if backend.name == "embedded" else 80
    return int(os.environ.get("BRIDGE_FUZZ_EXAMPLES", default))


def fuzz_settings(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def assert_scim_answer(r: Any, what: str) -> None:
    assert r.status_code < 500, (what, r.status_code, r.text)
    if r.status_code >= 400:
        body = r.json()
        assert body["schemas"] == [ERROR] and body["status"] == str(r.status_code), r.text


def fuzz_client(backend: Backend) -> TestClient:
    c = make_client(backend)
    return TestClient(
        c.app, base_url=str(c.base_url), raise_server_exceptions=False, headers=dict(c.headers)
    )


def seeded(client: TestClient) -> tuple[str, str]:
    r = client.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": "fuzzed"})
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    r = client.post(
        f"{SCIM}/Groups",
        json={"schemas": [GROUP_SCHEMA], "displayName": "fuzzers", "members": [{"value": uid}]},
    )
    assert r.status_code == 201, r.text
    return uid, r.json()["id"]


def run_writes(backend: Backend, n: int) -> None:
    client = fuzz_client(backend)
    uid, gid = seeded(client)

    @fuzz_settings(n)
    @given(
        kind=st.sampled_from(["Users", "Groups"]),
        method=st.sampled_from(["POST", "PUT", "PATCH"]),
        user=resource_bodies(USER_ATTRS, USER_SCHEMA),
        group=resource_bodies(GROUP_ATTRS, GROUP_SCHEMA),
        ops=patch_bodies,
        query=queries,
    )
    def run(kind: str, method: str, user: Any, group: Any, ops: Any, query: Any) -> None:
        body = ops if method == "PATCH" else (user if kind == "Users" else group)
        url = (
            f"{SCIM}/{kind}"
            if method == "POST"
            else f"{SCIM}/{kind}/{uid if kind == 'Users' else gid}"
        )
        r = client.request(method, url, content=json.dumps(body), params=query)
        assert_scim_answer(r, f"{method} {url} {body!r}")
        if method == "POST" and r.status_code == 201:
            assert client.delete(f"{SCIM}/{kind}/{r.json()['id']}").status_code == 204

    run()


def run_queries(backend: Backend, n: int) -> None:
    client = fuzz_client(backend)
    seeded(client)

    @fuzz_settings(n)
    @given(kind=st.sampled_from(["Users", "Groups"]), query=queries, search=st.booleans())
    def run(kind: str, query: dict[str, str], search: bool) -> None:
        if search:
            r = client.post(f"{SCIM}/{kind}/.search", content=json.dumps(query))
        else:
            r = client.get(f"{SCIM}/{kind}", params=query)
        assert_scim_answer(r, f"{kind} {query!r}")

    run()


def test_fuzz_writes_never_500(backend: Backend, watched: _Unhandled) -> None:
    run_writes(backend, examples(backend))


def test_fuzz_queries_never_500(backend: Backend, watched: _Unhandled) -> None:
    run_queries(backend, examples(backend))


@pytest.mark.slow
def test_fuzz_heavy(backend: Backend, watched: _Unhandled) -> None:
    n = int(os.environ.get("BRIDGE_FUZZ_EXAMPLES", "20000"))
    run_writes(backend, n)
    run_queries(backend, n)


# ------------------------------------------------------------- PATCH shaped like real traffic
def shaped_ops(member_ids: list[str]) -> st.SearchStrategy[list[dict[str, Any]]]:
    from tests.test_hostile_values import hostile_text

    ids = st.sampled_from([*member_ids, "00000000-0000-0000-0000-000000000000", "nope", ""])
    member_values = st.lists(
        st.fixed_dictionaries({"value": ids}, optional={"type": st.sampled_from(["User", "x"])}),
        max_size=3,
    )
    user_op = st.one_of(
        st.fixed_dictionaries(
            {
                "op": st.sampled_from(["add", "replace", "Replace", "remove"]),
                "path": st.sampled_from(
                    ["title", "displayName", "name.givenName", 'emails[type eq "work"].value',
                     "userName", "active", f"{ENTERPRISE}:employeeNumber", "externalId"]
                ),
            },
            optional={"value": hostile_text | st.booleans() | st.just("False")},
        ),
        st.fixed_dictionaries(
            {"op": st.sampled_from(["add", "replace"]),
             "value": st.dictionaries(
                 st.sampled_from(["title", "displayName", "active", "name", "emails"]),
                 hostile_text | st.booleans(), max_size=3)}
        ),
    )  # fmt: skip
    group_op = st.one_of(
        st.fixed_dictionaries(
            {"op": st.sampled_from(["add", "replace", "remove"]), "path": st.just("members")},
            optional={"value": member_values},
        ),
        st.builds(
            lambda op, i: {"op": op, "path": f'members[value eq "{i}"]'},
            st.sampled_from(["remove", "replace"]),
            ids,
        ),
        st.fixed_dictionaries(
            {"op": st.just("replace"), "path": st.just("displayName"), "value": hostile_text}
        ),
    )
    return st.lists(st.one_of(user_op, group_op), min_size=1, max_size=4)


def run_shaped_patches(backend: Backend, n: int) -> None:
    client = fuzz_client(backend)
    uid, gid = seeded(client)
    others = [
        client.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": f"m{i}"}).json()[
            "id"
        ]
        for i in range(3)
    ]

    @fuzz_settings(n)
    @given(ops=shaped_ops([uid, *others]), on_group=st.booleans())
    def run(ops: list[dict[str, Any]], on_group: bool) -> None:
        url = f"{SCIM}/Groups/{gid}" if on_group else f"{SCIM}/Users/{uid}"
        before = client.get(url)
        r = client.patch(url, content=json.dumps({"schemas": [PATCH_SCHEMA], "Operations": ops}))
        assert_scim_answer(r, f"PATCH {url} {ops!r}")
        after = client.get(url)
        assert after.status_code == 200, after.text
        if r.status_code >= 400:  # a refused PATCH changes nothing (RFC 7644 §3.5.2)
            a, b = after.json(), before.json()
            a.pop("meta"), b.pop("meta")
            assert a == b, (ops, r.text)
        elif r.status_code == 200:  # the answer is what a GET shows
            a, b = after.json(), r.json()
            assert {k: v for k, v in a.items() if k != "meta"} == {
                k: v for k, v in b.items() if k != "meta"
            }

    run()


def test_fuzz_shaped_patches(backend: Backend, watched: _Unhandled) -> None:
    run_shaped_patches(backend, examples(backend) // 2)
