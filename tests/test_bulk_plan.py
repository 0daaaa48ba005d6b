"""The pure parts of bulk (bridge/scim/bulk.py): parsing, ordering, cycle splitting, substitution."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.errors import InvalidSyntax, InvalidValue, PayloadTooLarge
from bridge.scim.bulk import (
    BULK_REQUEST,
    Limits,
    parse_request,
    plan,
    split_deferred,
    substitute,
)

LIMITS = Limits(max_operations=10_000, max_payload_bytes=1 << 20)


def request(*ops: dict[str, Any], **extra: Any) -> Any:
    return parse_request({"schemas": [BULK_REQUEST], "Operations": list(ops), **extra}, LIMITS)


def post(bulk_id: str, *refs: str) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": "/Groups",
        "bulkId": bulk_id,
        "data": {"displayName": bulk_id, "members": [{"value": f"bulkId:{r}"} for r in refs]},
    }


def test_request_order_is_kept_without_references() -> None:
    ops = request(post("a"), {"method": "DELETE", "path": "/Users/x"}, post("b"), post("c"))
    assert plan(ops.operations) == [(0,), (1,), (2,), (3,)]


def test_a_post_runs_before_the_operations_that_reference_it() -> None:
    ops = request(
        post("g", "u"),
        {"method": "DELETE", "path": "/Users/old"},
        {"method": "PUT", "path": "/Users/bulkId:u", "data": {}},
        post("u"),
    )
    assert plan(ops.operations) == [(1,), (3,), (0,), (2,)]


def test_cycles_are_one_unit() -> None:
    ops = request(post("a", "b"), post("b", "c"), post("c", "a"), post("d", "a"), post("e", "e"))
    assert plan(ops.operations) == [(0, 1, 2), (3,), (4,)]


def test_a_long_chain_of_references_needs_no_recursion() -> None:
    n = 5000
    ops = request(*[post(f"n{i}", f"n{i + 1}") for i in range(n - 1)], post(f"n{n - 1}"))
    order = plan(ops.operations)
    assert order == [(i,) for i in reversed(range(n))]
    ring = request(*[post(f"n{i}", f"n{(i + 1) % n}") for i in range(n)])
    assert plan(ring.operations) == [tuple(range(n))]


def test_references_are_collected_from_data_and_path_only_as_whole_values() -> None:
    ops = request(
        {
            "method": "PATCH",
            "path": "/Groups/bulkId:g",
            "data": {
                "Operations": [{"op": "add", "path": "members", "value": [{"value": "bulkId:u"}]}],
                "displayName": "not bulkId:x, nor a/bulkId:y",
            },
        },
        {"method": "DELETE", "path": "/Users/bulkId:d", "data": {"value": "bulkId:ignored"}},
    )
    assert ops.operations[0].refs == {"g", "u"}
    assert ops.operations[1].refs == {"d"}


def test_split_deferred_moves_reference_values_whole() -> None:
    ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    data = {
        "userName": "p",
        "members": [{"value": "bulkId:a"}, {"value": "bulkId:b"}, "bulkId:a"],
        ext: {"employeeNumber": "7", "manager": {"value": "bulkId:a", "displayName": "A"}},
    }
    now, deferred = split_deferred(data, {"a"})
    assert now == {
        "userName": "p",
        "members": [{"value": "bulkId:b"}],
        ext: {"employeeNumber": "7"},
    }
    assert deferred == {
        "members": [{"value": "bulkId:a"}, "bulkId:a"],
        ext: {"manager": {"value": "bulkId:a", "displayName": "A"}},
    }
    assert split_deferred(data, {"zzz"}) == (data, {})


def test_substitute_replaces_whole_reference_strings() -> None:
    ids = {"a": "id-a"}
    data = {"members": [{"value": "bulkId:a"}, {"value": "bulkId:b"}], "note": "x bulkId:a"}
    assert substitute(data, ids) == {
        "members": [{"value": "id-a"}, {"value": "bulkId:b"}],
        "note": "x bulkId:a",
    }


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([], InvalidSyntax),
        ({"Operations": []}, InvalidSyntax),
        ({"schemas": [BULK_REQUEST], "Operations": None}, InvalidSyntax),
        ({"schemas": [BULK_REQUEST], "Operations": [], "failOnErrors": -1}, InvalidValue),
        ({"schemas": [BULK_REQUEST], "Operations": [post("a"), post("a")]}, InvalidValue),
        ({"schemas": [BULK_REQUEST], "Operations": [post(str(i)) for i in range(11)]}, None),
    ],
)
def test_whole_request_errors(body: Any, error: type[Exception] | None) -> None:
    if error is None:
        with pytest.raises(PayloadTooLarge, match="11 operations; maxOperations is 10"):
            parse_request(body, Limits(10, 1000))
        return
    with pytest.raises(error):
        parse_request(body, LIMITS)


def test_member_names_are_case_insensitive() -> None:
    body = {"SCHEMAS": [BULK_REQUEST.upper()], "operations": [post("a")], "FailOnErrors": 3}
    parsed = parse_request(body, LIMITS)
    assert parsed.fail_on_errors == 3 and parsed.operations[0].defines == "a"
