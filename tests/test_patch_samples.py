"""PATCH samples (tests/samples/patch/<source>-<name>.json), run on every backend.

Each sample holds the setup (users and groups to create, ``target`` = the resource patched), the
PATCH request, the expected status and resource fields afterwards (checked on the response and
again on a GET), and ``ldap``: the exact list of modify calls the bridge sends, each a list of
``[op, attribute, values]`` (a retry after a no-op value shows up as a second call).  Strings
``@alias`` stand for the id of a created resource (its DN inside ``ldap``); ``@placeholder`` is
the mapping's empty-group placeholder.  ``ldap`` is what mappings/openldap.yaml sends;
``ldap_389ds`` what mappings/389ds.yaml sends where that differs (uniqueMember and no
placeholder, nsAccountLock for ``active``).  Adding a case needs no code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.directory.base import Change, Modify
from bridge.directory.syntax import normalize_dn
from devtools.faults import Masked
from tests.conftest import Backend, make_client
from tests.helpers import GROUP_SCHEMA, SCIM, USER_SCHEMA

SAMPLES = sorted((Path(__file__).parent / "samples" / "patch").glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


class Aliases:
    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.dns: dict[str, str] = {}

    def ids_in(self, value: Any) -> Any:
        return _walk(value, lambda s: self._sub(s, self.ids))

    def dns_in(self, value: Any) -> Any:
        return _walk(value, lambda s: self._sub(s, self.dns))

    @staticmethod
    def _sub(text: str, table: dict[str, str]) -> str:
        if text.startswith("@") and text[1:] in table:
            return table[text[1:]]
        for alias, repl in sorted(table.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(f"@{alias}", repl)
        return text


def _walk(value: Any, fn: Any) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [_walk(v, fn) for v in value]
    if isinstance(value, dict):
        return {fn(k): _walk(v, fn) for k, v in value.items()}
    return value


def _setup(client: TestClient, backend: Backend, setup: dict[str, Any]) -> Aliases:
    al = Aliases()
    al.dns["placeholder"] = backend.mapping.resource("Group").empty_member or ""
    for spec in setup.get("users", []):
        body = {k: v for k, v in spec.items() if k != "alias"}
        r = client.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], **al.ids_in(body)})
        assert r.status_code == 201, r.text
        al.ids[spec["alias"]] = r.json()["id"]
        al.dns[spec["alias"]] = _dn(backend, "User", r.json()["id"])
    for spec in setup.get("groups", []):
        body = {k: v for k, v in spec.items() if k not in ("alias", "members")}
        body["members"] = [{"value": m} for m in al.ids_in(spec.get("members", []))]
        r = client.post(f"{SCIM}/Groups", json={"schemas": [GROUP_SCHEMA], **body})
        assert r.status_code == 201, r.text
        al.ids[spec["alias"]] = r.json()["id"]
        al.dns[spec["alias"]] = _dn(backend, "Group", r.json()["id"])
    return al


def _dn(backend: Backend, name: str, rid: str) -> str:
    rmap = backend.mapping.resource(name)
    flt = f"({rmap.id.ldap}={rid})"
    return backend.directory.search(rmap.base_dn, flt, ["1.1"], scope="one").entries[0].dn


def _endpoint(setup: dict[str, Any], al: Aliases) -> str:
    alias = setup["target"][1:]
    kind = "Groups" if any(g["alias"] == alias for g in setup.get("groups", [])) else "Users"
    return f"{SCIM}/{kind}/{al.ids[alias]}"


@pytest.fixture
def recorder(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[Change]]]:
    """A thin wrapper around the directory's modify that records every call."""
    calls: list[list[Change]] = []
    original = backend.directory.run_modify

    def run_modify(op: Modify) -> Any:
        calls.append(list(op.changes))
        return original(op)

    monkeypatch.setattr(backend.directory, "run_modify", run_modify)
    yield calls


def _subset(expected: Any, actual: Any, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        for k, v in expected.items():
            assert k in actual, f"{where}.{k} missing in {actual!r}"
            _subset(v, actual[k], f"{where}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (
            f"{where}: expected {expected!r}, got {actual!r}"
        )
        if where.endswith(("members", "groups")):  # membership order is the directory's
            expected = sorted(expected, key=lambda e: e["value"])
            actual = sorted(actual, key=lambda e: e["value"])
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            _subset(e, a, f"{where}[{i}]")
    else:
        assert expected == actual, f"{where}: expected {expected!r}, got {actual!r}"


def _check_resource(sample: dict[str, Any], al: Aliases, resource: dict[str, Any]) -> None:
    _subset(al.ids_in(sample.get("expect", {})), resource, "resource")
    for key in sample.get("absent", []):
        assert key not in resource, f"{key} should be absent: {resource.get(key)!r}"


def _ldap_calls(calls: list[list[Change]], members: str) -> list[list[list[Any]]]:
    out = []
    for call in calls:
        shown = []
        for ch in call:
            values = [v.decode() for v in ch.values]
            if ch.attr.lower() == members.lower():
                values = [normalize_dn(v) for v in values]
            shown.append([ch.op, ch.attr, values])
        out.append(shown)
    return out


def _expected_calls(sample: dict[str, Any], al: Aliases, backend: Backend) -> list[list[list[Any]]]:
    out = []
    key = f"ldap_{Path(backend.mapping.source).stem}"
    for call in sample.get(key, sample["ldap"]):
        shown = []
        for op, attr, values in call:
            values = al.dns_in(values)
            if attr.lower() == backend.member_attr.lower():
                values = [normalize_dn(v) for v in values]
            shown.append([op, attr, values])
        out.append(shown)
    return out


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_patch_sample(
    path: Path, client: TestClient, backend: Backend, recorder: list[list[Change]]
) -> None:
    _run_sample(path, client, backend, recorder)


@pytest.mark.parametrize(
    "backend", ["slapd", "slapd-libldap", "ds389", "ds389-libldap"], indirect=True
)
@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_patch_sample_from_the_post_read(
    path: Path, backend: Backend, recorder: list[list[Change]]
) -> None:
    """The same on slapd and 389 DS without the dereference control: every PATCH that ends in
    one modify renders the entry that modify's post-read returned (RFC 4527) instead of
    reading it."""
    directory = Masked(backend.directory, deref=False)
    _run_sample(path, make_client(replace(backend, directory=directory)), backend, recorder)
    ops = directory.ops()
    if "modify" in ops and "rename" not in ops:
        assert "post_read" in directory.asked


def _run_sample(
    path: Path, client: TestClient, backend: Backend, recorder: list[list[Change]]
) -> None:
    sample = _load(path)
    setup = sample["setup"]
    al = _setup(client, backend, setup)
    url = _endpoint(setup, al)
    if setup.get("patch_first"):
        from tests.helpers import PATCH_SCHEMA

        first = {"schemas": [PATCH_SCHEMA], "Operations": al.ids_in(setup["patch_first"])}
        assert client.patch(url, json=first).status_code == 200
    before = client.get(url).json()
    recorder.clear()

    r = client.patch(url, json=al.ids_in(sample["request"]))

    status = sample.get("status", 200)
    if status == 200 and "/Groups/" in url:
        status = 204  # a group PATCH that asks for no representation (issue 15)
    assert r.status_code == status, r.text
    if "error" in sample:
        body = r.json()
        assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        assert body.get("scimType") == sample["error"]["scimType"], body
        for text in al.ids_in(sample["error"]["detail_contains"]):
            assert text in body["detail"], body["detail"]
        after = client.get(url).json()
        assert after == before, "a failed PATCH must not change anything"
    else:
        got = client.get(url)
        assert got.status_code == 200
        _check_resource(sample, al, got.json())
        assert got.json()["id"] == before["id"]
        if status == 204:
            assert r.content == b""
            assert r.headers["ETag"] == got.json()["meta"]["version"], "the new version"
        else:
            _check_resource(sample, al, r.json())
            response, now = r.json(), got.json()
            if _bookkeeping_after_password(backend, recorder, url):
                now = client.get(url).json()  # after the server's own write
                later = int(now["meta"].pop("version").strip('W/"'))
                assert later > int(response["meta"].pop("version").strip('W/"'))
            assert response == now, "the PATCH response is the new state"
    if "ldap" in sample:
        assert _ldap_calls(recorder, backend.member_attr) == _expected_calls(sample, al, backend)


def _bookkeeping_after_password(backend: Backend, recorder: list[list[Change]], url: str) -> bool:
    """389 DS answers an entry's first password change, then writes ``passwordGraceUserTime:
    0`` to it itself (its password policy's bookkeeping, update_pw_info), which moves
    ``entryusn``: the version the response carries can be older than the entry's a moment
    later, through nobody's fault.  True (once that write has landed) when this happened."""
    if backend.name != "ds389" or not any(
        ch.attr.lower() == "userpassword" for call in recorder for ch in call
    ):
        return False
    dn = backend.dn_of("User", url.rsplit("/", 1)[1])
    for _ in range(100):
        if backend.independent_search(dn, "(passwordGraceUserTime=0)", ["1.1"]):
            return True
        time.sleep(0.05)
    return False
