"""POST with the post-read control (RFC 4527) on the add: a create is two LDAP operations.

Where the directory offers post-read (slapd, 389 DS) and AD's extended-DN control is not in
use, the create's last write (the add, or with ``create_steps`` the last step's modify) asks for
the response's attributes, and the response is rendered from the entry it returns: the unique
check and the add, no read-back.  Each test runs on the embedded directory (no post-read: the
read-back path) and on slapd and 389 DS with both clients, with the control offered, masked
off, and with the dereference control masked off (which does not matter to a create: its
read-back never used it), and checks the response against a GET through a client that reads
the entry the old way — the very body the read-back path renders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.directory.base import OID_EXTENDED_DN, Add, Entry
from bridge.directory.syntax import normalize_dn
from bridge.mapping.load import parse_mapping
from bridge.service.facade import Service
from devtools.faults import Masked
from tests.conftest import Backend
from tests.helpers import ENTERPRISE, GROUP_SCHEMA, SCIM, USER_SCHEMA

#: what the directory offers, as the tests ask for it
OFFERS: dict[str, dict[str, Any]] = {
    "offered": {},
    "none": {"post_read": False},
    "no-deref": {"deref": False},
    # as on AD: DN values read with their GUIDs, which a post-read would not bring
    "extended-dn": {"controls": frozenset({OID_EXTENDED_DN})},
}


@pytest.fixture(params=list(OFFERS))
def offer(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def masked(backend: Backend, offer: str) -> Masked:
    off = dict(OFFERS[offer])
    if "controls" in off:
        off["controls"] = backend.directory.capabilities.controls | off["controls"]
    return Masked(backend.directory, **off)


def _post_read(backend: Backend, offer: str) -> bool:
    """Whether a create is answered from the add's post-read here: the directory offers the
    control (slapd, 389 DS; not the embedded one) and the test case does not mask it."""
    return backend.directory.capabilities.post_read and offer in ("offered", "no-deref")


def _same_as_a_read(r: Any, plain: TestClient, kind: str) -> dict[str, Any]:
    """The POST's body and headers are those of the resource read back."""
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    got = plain.get(f"{SCIM}/{kind}/{body['id']}")
    assert got.status_code == 200, got.text
    assert body == got.json()
    assert r.headers["ETag"] == got.headers["ETag"] == body["meta"]["version"]
    assert r.headers["Location"] == body["meta"]["location"]
    return body


def _dn(backend: Backend, kind: str, rid: str) -> str:
    return backend.dn_of(kind, rid)


FULL_USER = {
    "externalId": "ext-7",
    "name": {"givenName": "Zoë", "familyName": "Ünal", "formatted": "Zoë Ünal"},
    "displayName": "Zoë",
    "title": "Engineer",
    "preferredLanguage": "de-CH",
    "emails": [{"type": "work", "value": "zoe@example.org", "primary": True}],
    "phoneNumbers": [
        {"type": "work", "value": "+41 44 000 00 00"},
        {"type": "mobile", "value": "+41 79 000 00 00"},
    ],
    "addresses": [{"type": "work", "streetAddress": "Weg 1", "locality": "Zürich"}],
    "active": False,
    "password": "Secret-Pw-123",
    ENTERPRISE: {"employeeNumber": "42", "department": "R&D", "organization": "Example"},
}


@pytest.mark.parametrize("extra", [{}, FULL_USER], ids=["minimal", "full"])
def test_create_user_is_the_unique_check_and_the_add(
    backend: Backend,
    scim: TestClient,
    plain: TestClient,
    masked: Masked,
    offer: str,
    extra: dict[str, Any],
) -> None:
    r = scim.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": "zoe", **extra})
    body = _same_as_a_read(r, plain, "Users")
    post = _post_read(backend, offer)
    # the userName's unique check, the add, [the read-back]
    assert masked.ops() == ["search", "add"] + ["search"] * (not post)
    assert masked.asked == ["add_post_read"] * post
    assert body["userName"] == "zoe" and "password" not in body
    if extra:
        assert body["active"] is False and body["name"]["givenName"] == "Zoë"
        assert body[ENTERPRISE]["department"] == "R&D"
    if backend.directory.capabilities.post_read and offer == "offered":
        assert masked.ops() == ["search", "add"]  # two operations, no read-back


def test_create_user_with_a_manager(
    backend: Backend, scim: TestClient, plain: TestClient, masked: Masked, offer: str
) -> None:
    """The manager reference is resolved by rendering, from the post-read entry as from the
    read-back (neither carries the dereference control)."""
    boss = plain.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": "boss"})
    assert boss.status_code == 201, boss.text
    masked.calls.clear()
    r = scim.post(
        f"{SCIM}/Users",
        json={
            "schemas": [USER_SCHEMA, ENTERPRISE],
            "userName": "worker",
            ENTERPRISE: {"manager": {"value": boss.json()["id"]}},
        },
    )
    body = _same_as_a_read(r, plain, "Users")
    assert body[ENTERPRISE]["manager"]["value"] == boss.json()["id"]
    post = _post_read(backend, offer)
    # the manager id's DN, the unique check, the add, [the read-back], the manager DN's id
    assert masked.ops() == ["search", "search", "add"] + ["search"] * (not post) + ["search"]
    assert masked.asked == ["add_post_read"] * post


def test_create_empty_group_holds_the_placeholder(
    backend: Backend, scim: TestClient, plain: TestClient, masked: Masked, offer: str
) -> None:
    r = scim.post(f"{SCIM}/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": "Empty"})
    body = _same_as_a_read(r, plain, "Groups")
    assert "members" not in body
    post = _post_read(backend, offer)
    # the displayName's unique check, the add, [the read-back]; the placeholder is no resource
    assert masked.ops() == ["search", "add"] + ["search"] * (not post)
    assert masked.asked == ["add_post_read"] * post
    members = backend.member_attr
    entry = backend.directory.read(_dn(backend, "Group", body["id"]), [members])
    assert entry is not None
    # groupOfNames needs its placeholder; groupOfUniqueNames (389 DS) holds no value at all
    placeholder = backend.placeholder
    want = [normalize_dn(placeholder)] if placeholder else []
    assert [normalize_dn(v.decode()) for v in entry.get(members)] == want


def test_create_group_with_members(
    backend: Backend, scim: TestClient, plain: TestClient, masked: Masked, offer: str
) -> None:
    users = [
        plain.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": f"m{i}"}).json()
        for i in range(2)
    ]
    masked.calls.clear()
    r = scim.post(
        f"{SCIM}/Groups",
        json={
            "schemas": [GROUP_SCHEMA],
            "displayName": "Crew",
            "externalId": "crew-1",
            "members": [{"value": u["id"]} for u in users],
        },
    )
    body = _same_as_a_read(r, plain, "Groups")
    assert sorted(m["value"] for m in body["members"]) == sorted(u["id"] for u in users)
    post = _post_read(backend, offer)
    # the member ids' DNs, the unique check, the add, [the read-back], the member DNs' ids
    assert masked.ops() == ["search", "search", "add"] + ["search"] * (not post) + ["search"]
    assert masked.asked == ["add_post_read"] * post
    # the memberof overlay wrote the users, not the group: their groups list it now
    for u in users:
        groups = plain.get(f"{SCIM}/Users/{u['id']}").json()["groups"]
        assert [g["value"] for g in groups] == [body["id"]]


def test_create_of_a_taken_name_is_409_and_adds_nothing(
    backend: Backend, scim: TestClient, plain: TestClient, masked: Masked
) -> None:
    first = plain.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": "taken"})
    assert first.status_code == 201, first.text
    masked.calls.clear()
    r = scim.post(
        f"{SCIM}/Users",
        json={"schemas": [USER_SCHEMA], "userName": "taken", "displayName": "Second"},
    )
    assert r.status_code == 409, r.text
    assert r.json()["scimType"] == "uniqueness"
    assert masked.ops() == ["search"]  # the unique check found it: nothing sent
    assert masked.asked == []
    listed = plain.get(f"{SCIM}/Users", params={"filter": 'userName eq "taken"'}).json()
    assert listed["totalResults"] == 1
    assert listed["Resources"][0] == plain.get(f"{SCIM}/Users/{first.json()['id']}").json()
    assert "displayName" not in listed["Resources"][0]


def test_a_name_taken_after_the_check_fails_the_add_with_its_post_read(
    backend: Backend, scim: TestClient, plain: TestClient, masked: Masked, offer: str
) -> None:
    """A racer adds the name between the unique check and the add: the directory refuses the
    add (entryAlreadyExists, 409), its post-read brings nothing, the racer's entry stays."""
    real = masked.inner
    racer = {
        "objectClass": [b"inetOrgPerson"],
        "uid": [b"raced"],
        "cn": [b"racer"],
        "sn": [b"racer"],
    }

    class Racing:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def run_add(self, op: Add) -> Entry | None:
            real.add(op.dn, racer)
            return real.run_add(op)

    masked.inner = Racing()  # type: ignore[assignment]
    r = scim.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": "raced"})
    masked.inner = real
    assert r.status_code == 409, r.text
    assert masked.ops() == ["search", "add"]
    assert masked.asked == ["add_post_read"] * _post_read(backend, offer)
    rmap = backend.mapping.resource("User")
    found = backend.directory.search(rmap.base_dn, "(uid=raced)", ["cn"], scope="one").entries
    assert [e.get("cn") for e in found] == [[b"racer"]]


def _staged(backend: Backend) -> str:
    """The backend's mapping with the password and the title written in steps after the add."""
    return (
        Path(backend.mapping.source)
        .read_text()
        .replace(
            "    rdn: {ldap: uid, from: userName}",
            "    rdn: {ldap: uid, from: userName}\n    create_steps: [[userPassword], [title]]",
        )
    )


def test_staged_create_takes_the_post_read_with_its_last_step(
    backend: Backend, masked: Masked, offer: str
) -> None:
    """With ``create_steps`` the add is not the last write: the last step's modify asks for
    the post-read (the entry as the create leaves it), never the add."""
    mapping = parse_mapping(_staged(backend))
    svc = Service(mapping, masked)
    plain = Service(mapping, Masked(backend.directory, post_read=False, deref=False))
    user = svc.create(
        "User", {"userName": "staged", "password": "Secret-Pw-1", "title": "Late"}, ""
    )
    assert user == plain.get("User", user["id"], "")
    assert user["title"] == "Late" and "password" not in user
    post = _post_read(backend, offer)
    # the unique check, the add, one modify per step, [the read-back]
    assert masked.ops() == ["search", "add", "modify", "modify"] + ["search"] * (not post)
    assert masked.asked == ["post_read"] * post


def test_staged_create_with_nothing_held_back_takes_it_with_the_add(
    backend: Backend, masked: Masked, offer: str
) -> None:
    mapping = parse_mapping(_staged(backend))
    svc = Service(mapping, masked)
    plain = Service(mapping, Masked(backend.directory, post_read=False, deref=False))
    user = svc.create("User", {"userName": "unstaged"}, "")
    assert user == plain.get("User", user["id"], "")
    post = _post_read(backend, offer)
    assert masked.ops() == ["search", "add"] + ["search"] * (not post)
    assert masked.asked == ["add_post_read"] * post


def test_a_failed_step_removes_the_entry_whatever_the_post_read(
    backend: Backend, masked: Masked, offer: str
) -> None:
    svc = Service(parse_mapping(_staged(backend)), masked)
    masked.fail("modify", "constraintViolation", nth=2)
    with pytest.raises(Exception) as info:
        svc.create("User", {"userName": "half", "password": "Secret-Pw-1", "title": "T"}, "")
    assert getattr(info.value, "code", None) == "constraintViolation"
    # the unique check, the add, the first step, the refused last step, the compensation
    assert masked.ops() == ["search", "add", "modify", "modify", "delete"]
    rmap = backend.mapping.resource("User")
    assert backend.directory.search(rmap.base_dn, "(uid=half)", ["1.1"], scope="one").entries == []
