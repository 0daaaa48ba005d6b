"""``check-mapping --connect`` for mappings/openldap-posix.yaml (issue 18 item 6): the schema
must define what a create writes besides the mapped attributes (constants, derived values,
templates, allocated numbers and their counters' attributes), and every ``allocate:`` counter
must exist, hold a number and be writable by the bind account -- on the embedded directory and
slapd with both clients."""

from __future__ import annotations

import dataclasses
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
    GID_COUNTER,
    POSIX_BACKENDS,
    POSIX_MAP,
    UID_COUNTER,
    drop_counters,
    posix_backend,
)

ALL = pytest.mark.parametrize("backend", POSIX_BACKENDS, indirect=True)
#: the embedded directory publishes no subschema (it reports "the root DSE names no
#: subschemaSubentry"), so the schema half of the check runs on slapd only
WITH_SCHEMA = pytest.mark.parametrize("backend", ["slapd", "slapd-libldap"], indirect=True)
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
    mapping = parse_mapping(
        POSIX_MAP.read_text("utf-8").replace(
            'counter: "cn=uidNext,ou=counters,dc=example,dc=org"}',
            'counter: "cn=uidNext,ou=counters,dc=example,dc=org", counter_attr: description}',
        )
    )
    found = _found(backend, mapping)
    assert found == {UID_WHERE: f"description of {UID_COUNTER} is 'x', not a number"}


@WITH_SCHEMA
def test_unknown_written_attributes_are_reported(backend: Backend) -> None:
    text = POSIX_MAP.read_text("utf-8")
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
    text = POSIX_MAP.read_text("utf-8")
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

    text = _private_mapping().replace("[top, posixGroup]\n", "[top, posixGroupX]\n")
    found = _found(backend, parse_mapping(text))
    assert found == {
        "resources.User.private_group.base_dn": f"{PRIVATE} does not exist",
        "resources.User.private_group.object_classes[1]": "no object class 'posixGroupX' in schema",
    }
    drop_counters(backend.directory)
    found = _found(backend, parse_mapping(_private_mapping()))
    where = "resources.User.private_group.gidNumber.counter"
    assert f"{GID_COUNTER} does not exist" in found[where]
