"""``--dry-run``: writes are planned, logged as LDAP change records, answered as if done, and
never applied — checked with an independent search of the directory."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from bridge.observability.logs import JsonFormatter
from bridge.settings import Settings, Token
from bridge.web.app import build_app
from tests.conftest import TOKEN, Backend
from tests.helpers import GROUP_SCHEMA, SCIM, USER_SCHEMA, create_group, create_user

PASSWORD = "Dry-run-secret-9Lm"
PEOPLE = "ou=people,dc=example,dc=org"
GROUPS = "ou=groups,dc=example,dc=org"


def dry_client(backend: Backend) -> TestClient:
    settings = Settings(tokens=(Token("watcher", TOKEN),), dry_run=True)
    app = build_app(settings, directory=backend.directory, mapping=backend.mapping)
    client = TestClient(app, base_url="https://scim.example.test")
    client.headers["Authorization"] = f"Bearer {TOKEN}"
    return client


def real_client(backend: Backend) -> TestClient:
    settings = Settings(tokens=(Token("admin", TOKEN),))
    app = build_app(settings, directory=backend.directory, mapping=backend.mapping)
    client = TestClient(app, base_url="https://scim.example.test")
    client.headers["Authorization"] = f"Bearer {TOKEN}"
    return client


def test_dry_run_writes_nothing(backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge")
    real = real_client(backend)
    existing = create_user(real, "existing", displayName="Existing")
    group = create_group(real, "Staff", [existing["id"]])

    dry = dry_client(backend)
    # create: answered as if done, with an id, and readable afterwards in this process
    planned = create_user(dry, "planned", password=PASSWORD, displayName="Planned")
    assert planned["id"] and planned["meta"]["location"].endswith(planned["id"])
    got = dry.get(f"{SCIM}/Users/{planned['id']}")
    assert got.status_code == 200 and got.json()["userName"] == "planned"
    # a second create of the same userName is still a conflict, as it would be for real
    again = dry.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": "planned"})
    assert again.status_code == 409
    # replace, rename and membership on existing entries
    put = dry.put(
        f"{SCIM}/Users/{existing['id']}",
        json={"schemas": [USER_SCHEMA], "userName": "renamed", "displayName": "Changed"},
    )
    assert put.status_code == 200, put.text
    assert put.json()["userName"] == "renamed" and put.json()["displayName"] == "Changed"
    gput = dry.put(
        f"{SCIM}/Groups/{group['id']}",
        json={
            "schemas": [GROUP_SCHEMA],
            "displayName": "Staff",
            "members": [{"value": existing["id"]}, {"value": planned["id"]}],
        },
    )
    assert gput.status_code == 200, gput.text
    assert {m["value"] for m in gput.json()["members"]} == {existing["id"], planned["id"]}
    # delete: gone for this process
    assert dry.delete(f"{SCIM}/Users/{planned['id']}").status_code == 204
    assert dry.get(f"{SCIM}/Users/{planned['id']}").status_code == 404

    # ... and nothing reached the directory
    assert backend.independent_search(PEOPLE, "(uid=planned)", ["uid"]) == []
    assert backend.independent_search(PEOPLE, "(uid=renamed)", ["uid"]) == []
    assert len(backend.independent_search(PEOPLE, "(uid=existing)", ["uid"])) == 1
    still = real.get(f"{SCIM}/Users/{existing['id']}").json()
    assert still["userName"] == "existing" and still["displayName"] == "Existing"
    members = real.get(f"{SCIM}/Groups/{group['id']}").json()["members"]
    assert [m["value"] for m in members] == [existing["id"]]

    # logged as exact LDAP change records, password redacted; audit says planned
    planned_lines = [r for r in caplog.records if r.name == "bridge.dryrun"]
    ldifs = [r.__dict__["ldif"] for r in planned_lines]
    add = next(x for x in ldifs if "changetype: add" in x)
    assert add.startswith(f"dn: uid=planned,{PEOPLE}\nchangetype: add\n")
    assert "uid: planned" in add and "userPassword: <redacted>" in add
    assert any("changetype: modrdn\nnewrdn: uid=renamed\ndeleteoldrdn: 1" in x for x in ldifs)
    members = backend.member_attr
    assert any(f"add: {members}\n{members}: uid=planned,{PEOPLE}\n-" in x for x in ldifs)
    assert any(x == f"dn: uid=planned,{PEOPLE}\nchangetype: delete" for x in ldifs)
    audits = [r.__dict__ for r in caplog.records if r.name == "bridge.audit"]
    dry_audits = [a for a in audits if a["token"] == "watcher"]
    assert dry_audits and all(a["dry_run"] for a in dry_audits)
    ops = [op for a in dry_audits for op in a["ldap_ops"]]
    assert ops and all(op["planned"] and op["result"] == "planned" for op in ops)
    text = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert PASSWORD not in text and TOKEN not in text


def test_dry_run_list_merges_planned_entries(backend: Backend) -> None:
    real = real_client(backend)
    keep = create_user(real, "keep")
    gone = create_user(real, "gone")
    dry = dry_client(backend)
    create_user(dry, "new")
    assert dry.delete(f"{SCIM}/Users/{gone['id']}").status_code == 204
    service = dry.app.state.service  # type: ignore[attr-defined]
    from bridge.service.facade import ListQuery

    listed = service.search("User", ListQuery(count=10), "")
    names = sorted(r["userName"] for r in listed.resources)
    assert names == ["keep", "new"] and listed.total == 2
    assert real.get(f"{SCIM}/Users/{gone['id']}").status_code == 200
    assert real.get(f"{SCIM}/Users/{keep['id']}").status_code == 200


def test_dry_run_refuses_what_the_directory_would_refuse(backend: Backend) -> None:
    dry = dry_client(backend)
    missing = dry.delete(f"{SCIM}/Users/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404
    from bridge.errors import DirectoryError

    directory = dry.app.state.directory  # type: ignore[attr-defined]
    with pytest.raises(DirectoryError) as err:
        directory.add(
            "uid=orphan,ou=nowhere,dc=example,dc=org",
            {"objectClass": [b"inetOrgPerson"], "uid": [b"orphan"], "cn": [b"o"], "sn": [b"o"]},
        )
    assert err.value.code == "noSuchObject"
