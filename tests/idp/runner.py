"""Replays an IdP's recorded flow (tests/idp/flows/<idp>.json) against the SCIM app.

A flow file is data: ``idp``, ``sources`` (the public documents the requests come from, keys as
in the IdP reference notes), ``headers`` sent with every request, and ``steps``.  A step is either
an HTTP request::

    {"name": ..., "source": "OKTA-REF", "method": "GET", "path": "/Users?filter=...",
     "body": {...}, "headers": {...}, "expect": {...}, "capture": {"alias": "pointer"}}

or an independent look at the directory (tests/idp/inspect.py)::

    {"name": ..., "verify": "user" | "group" | "gone", "id": "${alias}", ...fields}

``path`` is sent exactly as written (percent-encoding included), relative to /scim/v2.
``${name}`` in any string is a value captured by an earlier step (``${run}`` is a per-run token
that keeps names unique); a string that is exactly ``${name}`` is replaced by the captured value
itself (an object, for Okta's GET-then-PUT).  ``edit`` sets pointers in the body after that.
Pointers are JSON-pointer-like without the leading slash: ``Resources/0/id``,
``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User/manager/value``; ``""`` is the
whole document.

``expect``: ``status``; ``equals`` {pointer: value} (numbers and booleans must have the JSON type
written: the IdPs check that ``totalResults`` is an integer and ``status`` a string);
``present`` [pointer] (there and not empty); ``absent`` [pointer] (missing or null); ``empty``
[pointer] (missing, null, "" or []); ``contains`` / ``excludes`` {pointer: [items]} (an item that
is an object matches an element having those fields); ``length`` {pointer: n}; ``no_body``.
Adding a case needs no code.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

FLOWS = Path(__file__).parent / "flows"
SCIM = "/scim/v2"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")
MISSING = object()

Verifier = Callable[[dict[str, Any]], None]


def flow_files() -> list[Path]:
    return sorted(FLOWS.glob("*.json"))


def load_flow(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class Context:
    """Values captured so far; ``run`` keeps names unique per run."""

    values: dict[str, Any] = field(default_factory=lambda: {"run": secrets.token_hex(3)})

    def fill(self, value: Any) -> Any:
        if isinstance(value, str):
            whole = PLACEHOLDER.fullmatch(value)
            if whole:
                return self._get(whole.group(1))
            return PLACEHOLDER.sub(lambda m: str(self._get(m.group(1))), value)
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, dict):
            return {self.fill(k): self.fill(v) for k, v in value.items()}
        return value

    def _get(self, name: str) -> Any:
        assert name in self.values, f"placeholder ${{{name}}} was not captured by an earlier step"
        return self.values[name]


def resolve(doc: Any, pointer: str) -> Any:
    """The value at ``pointer`` (segments split on "/"; list indexes as digits) or MISSING."""
    if pointer == "":
        return doc
    for part in pointer.split("/"):
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return MISSING
    return doc


def assign(doc: dict[str, Any], pointer: str, value: Any) -> None:
    parts = pointer.split("/")
    for part in parts[:-1]:
        doc = doc.setdefault(part, {})
    doc[parts[-1]] = value


def same(actual: Any, expected: Any) -> bool:
    """JSON equality that keeps JSON types apart (1 is not true, "404" is not 404)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            same(actual.get(k, MISSING), v) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(same(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return type(actual) is type(expected) and actual == expected


def matches(element: Any, item: Any) -> bool:
    """A list element matches an expected item: an object matches on the fields it names."""
    if isinstance(item, dict):
        return isinstance(element, dict) and all(
            same(element.get(k, MISSING), v) for k, v in item.items()
        )
    return same(element, item)


def check(expect: dict[str, Any], status: int, body: Any, where: str) -> None:
    """Every expectation of one step, each failure naming the step and the pointer."""
    shown = json.dumps(body)[:1500] if body is not None else "(no body)"
    want = expect.get("status")
    assert want is None or status == want, f"{where}: status {status}, expected {want}: {shown}"
    if expect.get("no_body"):
        assert body is None, f"{where}: expected no body, got {shown}"
    for ptr, value in expect.get("equals", {}).items():
        got = resolve(body, ptr)
        assert same(got, value), f"{where}: {ptr!r} is {_show(got)}, expected {value!r}: {shown}"
    for ptr in expect.get("present", []):
        got = resolve(body, ptr)
        assert got not in (MISSING, None, "", [], {}), f"{where}: {ptr!r} missing: {shown}"
    for ptr in expect.get("absent", []):
        got = resolve(body, ptr)
        assert got is MISSING or got is None, f"{where}: {ptr!r} is {_show(got)}: {shown}"
    for ptr in expect.get("empty", []):
        got = resolve(body, ptr)
        assert got in (MISSING, None, "", []), f"{where}: {ptr!r} is {_show(got)}: {shown}"
    for ptr, n in expect.get("length", {}).items():
        got = resolve(body, ptr)
        assert isinstance(got, list) and len(got) == n, f"{where}: len({ptr!r}) != {n}: {shown}"
    for ptr, items in expect.get("contains", {}).items():
        got = resolve(body, ptr)
        for item in items:
            assert isinstance(got, list) and any(matches(e, item) for e in got), (
                f"{where}: {ptr!r} lacks {item!r}: {shown}"
            )
    for ptr, items in expect.get("excludes", {}).items():
        got = resolve(body, ptr)
        for item in items:
            assert not (isinstance(got, list) and any(matches(e, item) for e in got)), (
                f"{where}: {ptr!r} still has {item!r}: {shown}"
            )


def _show(value: Any) -> str:
    return "missing" if value is MISSING else repr(value)


def run_flow(
    flow: dict[str, Any], client: TestClient, verify: Verifier, ctx: Context | None = None
) -> Context:
    """Every step in order; a failing step stops the flow with its name in the message."""
    ctx = ctx or Context()
    headers = flow.get("headers", {})
    for number, step in enumerate(flow["steps"], 1):
        where = f"{flow['idp']} step {number} ({step['name']}; {step.get('source', '-')})"
        if "verify" in step:
            verify({**ctx.fill(step), "where": where})
            continue
        _request(client, step, ctx, headers, where)
    return ctx


def _request(
    client: TestClient, step: dict[str, Any], ctx: Context, headers: dict[str, str], where: str
) -> None:
    body = ctx.fill(step["body"]) if "body" in step else None
    for ptr, value in ctx.fill(step.get("edit", {})).items():
        assert isinstance(body, dict), f"{where}: 'edit' needs an object body"
        assign(body, ptr, value)
    sent = {**headers, **step.get("headers", {})}
    content = json.dumps(body).encode() if body is not None else None
    response = client.request(
        step["method"], SCIM + ctx.fill(step["path"]), content=content, headers=sent
    )
    parsed = response.json() if response.content else None
    check(ctx.fill(step.get("expect", {})), response.status_code, parsed, where)
    for alias, ptr in step.get("capture", {}).items():
        value = resolve(parsed, ptr)
        assert value is not MISSING, f"{where}: nothing at {ptr!r} to capture as {alias}"
        ctx.values[alias] = value
