"""``check-mapping --connect`` for the shipped POSIX mappings (issue 18 item 6): the schema
must define what a create writes besides the mapped attributes (constants, derived values,
templates, allocated numbers and their counters' attributes), and every ``allocate:`` counter
must exist, hold a number and be writable by the bind account -- mappings/openldap-posix.yaml
on the embedded directory and slapd, mappings/389ds-posix.yaml on 389 DS (its rfc2307compat
schema), each with both clients; and the whole command on 389 DS."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence

import pytest

from bridge.directory.base import Change, Entry
from bridge.directory.wrapper import Wrapper
from bridge.errors import DirectoryError
from bridge.mapping.load import parse_mapping
from bridge.mapping.model import MappingConfig
from bridge.service.mapcheck import check
from tests.conftest import Backend
from tests.posix_support import (
    DS389_POSIX_MAP,
    GID_COUNTER,
    POSIX_BACKENDS,
    UID_COUNTER,
    drop_counters,
    mapping_file,
    posix_backend,
)

ALL = pytest.mark.parametrize("backend", POSIX_BACKENDS, indirect=True)
#: the embedded directory publishes no subschema (it reports "the root DSE names no
#: subschemaSubentry"), so the schema half of the check runs on slapd and 389 DS only
WITH_SCHEMA = pytest.mark.parametrize(
    "backend", ["slapd", "slapd-libldap", "ds389", "ds389-libldap"], indirect=True
)
DS389 = pytest.mark.parametrize("backend", ["ds389", "ds389-libldap"], indirect=True)
UID_WHERE = "resources.User.allocate.uidNumber.counter"
GID_WHERE = "resources.Group.allocate.gidNumber.counter"


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    yield from posix_backend(request, request.param)


def _found(backend: Backend, mapping: MappingConfig | None = None) -> dict[str, str]:
    found = {p.path: p.message for p in check(backend.directory, mapping or backend.mapping)}
    if backend.name == "embedded":
        assert found.pop("schema") == "the root DSE names no subschemaSubentry"
    return found


@ALL
def test_shipped_posix_mapping_checks_clean(backend: Backend) -> None:
    assert _found(backend) == {}
    # the probe changed nothing
    counter = backend.directory.read(UID_COUNTER, ["uidNumber"])
    assert counter is not None and counter.text("uidNumber") == "10000"


@ALL
def test_missing_counters_are_reported(backend: Backend) -> None:
    drop_counters(backend.directory)
    found = _found(backend)
    assert set(found) == {UID_WHERE, GID_WHERE}
    assert f"{UID_COUNTER} does not exist" in found[UID_WHERE]
    assert f"{GID_COUNTER} does not exist" in found[GID_WHERE]


@ALL
def test_counter_holding_no_number_is_reported(backend: Backend) -> None:
    backend.directory.modify(UID_COUNTER, [Change("replace", "description", (b"x",))])
    text = mapping_file(backend.name).read_text("utf-8")
    text = text.replace(
        'counter: "cn=uidNext,ou=counters,dc=example,dc=org"}',
        'counter: "cn=uidNext,ou=counters,dc=example,dc=org", counter_attr: description}',
    )
    found = _found(backend, parse_mapping(text))
    assert found == {UID_WHERE: f"description of {UID_COUNTER} is 'x', not a number"}


@WITH_SCHEMA
def test_unknown_written_attributes_are_reported(backend: Backend) -> None:
    text = mapping_file(backend.name).read_text("utf-8")
    text = text.replace("homeDirectory: ", "homeDirectoryX: ").replace("gecos:", "gecosX:")
    text = text.replace("loginShell:", "loginShellX:")
    text = text.replace(
        "[top, person, organizationalPerson, inetOrgPerson, posixAccount]",
        "[top, person, organizationalPerson, inetOrgPerson, posixAccountX]",
    )
    found = _found(backend, parse_mapping(text))
    assert found == {
        "resources.User.object_classes[4]": "no object class 'posixAccountX' in schema",
        "resources.User.constants.loginShellX": "no attribute type 'loginShellX' in schema",
        "resources.User.derived.gecosX": "no attribute type 'gecosX' in schema",
        "resources.User.templates.homeDirectoryX": "no attribute type 'homeDirectoryX' in schema",
    }


@WITH_SCHEMA
def test_unknown_mirror_attribute_is_reported(backend: Backend) -> None:
    """RFC 2307bis: the memberUid a group's mirror writes must be in the schema too."""
    text = mapping_file(backend.name).read_text("utf-8")
    mirror = "mirror: {ldap: memberUid, member_value: uid}"
    assert mirror in text
    found = _found(backend, parse_mapping(text.replace(mirror, mirror.replace("d,", "dX,"))))
    assert found == {
        "resources.Group.attributes['members'].mirror.ldap": (
            "no attribute type 'memberUidX' in schema"
        )
    }


class _ReadOnly(Wrapper):
    """The directory as a bind account that may read but not write the counters sees it."""

    def modify(
        self,
        dn: str,
        changes: Sequence[Change],
        *,
        assertion: str | None = None,
        post_read: Sequence[str] | None = None,
    ) -> Entry | None:
        if "ou=counters" in dn:
            raise DirectoryError("insufficientAccessRights", "no write access", dn=dn)
        return self.inner.modify(dn, changes, assertion=assertion, post_read=post_read)


@ALL
def test_read_only_counter_is_reported(backend: Backend) -> None:
    ro = dataclasses.replace(backend, directory=_ReadOnly(backend.directory))
    found = _found(ro)
    assert found == {
        UID_WHERE: f"the bind account may not write uidNumber of {UID_COUNTER}",
        GID_WHERE: f"the bind account may not write gidNumber of {GID_COUNTER}",
    }


@WITH_SCHEMA
def test_private_group_is_checked(backend: Backend) -> None:
    from tests.test_posix_private_group import PRIVATE, _private_mapping

    text = _private_mapping(backend.name)
    private = re.search(r"\n      object_classes: \[.*\]\n", text)  # the private group's
    assert private is not None
    text = text.replace(private[0], private[0].replace(" posixGroup]", " posixGroupX]"))
    index = 2 if backend.name == "ds389" else 1  # [top, groupOfNames, posixGroup] there
    found = _found(backend, parse_mapping(text))
    assert found == {
        "resources.User.private_group.base_dn": f"{PRIVATE} does not exist",
        f"resources.User.private_group.object_classes[{index}]": (
            "no object class 'posixGroupX' in schema"
        ),
    }
    drop_counters(backend.directory)
    found = _found(backend, parse_mapping(_private_mapping(backend.name)))
    where = "resources.User.private_group.gidNumber.counter"
    assert f"{GID_COUNTER} does not exist" in found[where]


@DS389
def test_check_mapping_connect_on_389ds(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command as an administrator runs it, against the fixture 389 DS with the counters of
    deploy/389ds/posix-counters.ldif: schema, base DNs and counters OK; of the directory's
    setup only 389 DS's stock index gaps are reported (uid has no substring index, displayName
    none), as for mappings/389ds.yaml -- uidNumber, gidNumber and member are indexed, and the
    MemberOf plugin is not needed (groups come from the groups' member values)."""
    from bridge.cli import main
    from bridge.service import dircheck

    topics = {f.topic: f.severity for f in dircheck.check(backend.directory, backend.mapping)}
    assert topics == {"index uid": "warning", "index displayName": "warning"}
    info = backend.info
    monkeypatch.setenv("BRIDGE_LDAP_URL", info.ldaps_url)
    monkeypatch.setenv("BRIDGE_LDAP_CA_FILE", info.ca_file)
    monkeypatch.setenv("BRIDGE_BIND_DN", info.bind_dn)
    monkeypatch.setenv("BRIDGE_BIND_PASSWORD", info.bind_password)
    assert main(["check-mapping", str(DS389_POSIX_MAP), "--connect"]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "OK against" in out, out
    drop_counters(backend.directory)
    assert main(["check-mapping", str(DS389_POSIX_MAP), "--connect"]) == 1
    out = capsys.readouterr().out
    assert f"{UID_COUNTER} does not exist" in out and f"{GID_COUNTER} does not exist" in out
