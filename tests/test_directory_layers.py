"""The layers of bridge/directory: the one Search request, the Wrapper every decorator builds
on, and the pooled client the two drivers share.  Run on the embedded directory and on slapd
with both clients (ldap3, python-ldap)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bridge.directory.base import (
    Add,
    Capabilities,
    Change,
    Delete,
    Deref,
    Directory,
    Entry,
    Modify,
    Rename,
    Search,
    SearchResult,
    SortKey,
    Window,
)
from bridge.directory.instrumented import InstrumentedDirectory
from bridge.directory.wrapper import Wrapper
from bridge.errors import DirectoryError
from devtools.faults import FaultyDirectory
from tests.conftest import Backend, slapd_directory

PEOPLE = "ou=people,dc=example,dc=org"


class Seen(Wrapper):
    """Notes every Search and every write request that reaches it, then passes it on."""

    def __init__(self, inner: Directory):
        super().__init__(inner)
        self.searches: list[Search] = []
        self.writes: list[Add | Modify | Rename | Delete] = []

    def run_add(self, op: Add) -> Entry | None:
        self.writes.append(op)
        return super().run_add(op)

    def run_modify(self, op: Modify) -> Entry | None:
        self.writes.append(op)
        return super().run_modify(op)

    def run_rename(self, op: Rename) -> str:
        self.writes.append(op)
        return super().run_rename(op)

    def run_delete(self, op: Delete) -> None:
        self.writes.append(op)
        super().run_delete(op)

    def run(self, search: Search) -> SearchResult:
        self.searches.append(search)
        return super().run(search)

    def stream(self, search: Search) -> Iterator[Any]:
        self.searches.append(search)
        return super().stream(search)


def _people(directory: Directory, n: int) -> list[str]:
    dns = [f"uid=layer{i},{PEOPLE}" for i in range(n)]
    for i, dn in enumerate(dns):
        directory.add(
            dn,
            {
                "objectClass": [b"inetOrgPerson"],
                "uid": [f"layer{i}".encode()],
                "cn": [f"layer{i}".encode()],
                "sn": [b"layer"],
            },
        )
    return dns


def test_every_search_keyword_reaches_the_directory_in_one_request(backend: Backend) -> None:
    """The keywords of ``search`` are spelled once: through the decorators (instrumented, the
    fault injector) the directory gets the very request the caller's keywords made."""
    _people(backend.directory, 2)
    seen = Seen(backend.directory)
    outer = InstrumentedDirectory(FaultyDirectory(seen))
    sort = (SortKey("uid", ordering_rule="caseIgnoreOrderingMatch"),)
    window = Window(1, 5)
    deref = (Deref("manager", ("uid",)),)
    result = outer.search(
        PEOPLE,
        "(uid=layer*)",
        ["uid"],
        scope="one",
        size_limit=0,
        sort=sort,
        window=window,
        deref=deref,
    )
    assert seen.searches == [
        Search(PEOPLE, "(uid=layer*)", ["uid"], "one", 0, sort, window, deref, None, 0)
    ]
    assert sorted(e.text("uid") for e in result.entries) == ["layer0", "layer1"]
    assert result.total == 2


def test_every_write_keyword_reaches_the_directory_in_one_request(backend: Backend) -> None:
    """The keywords of ``add``, ``modify``, ``rename`` and ``delete`` are spelled once, in
    the base: through the decorators the directory gets the very request they made, and each
    write still does what it says.  Assertions only where the directory has the control
    (389 DS refuses a critical one it does not know: unavailableCriticalExtension)."""
    seen = Seen(backend.directory)
    outer = InstrumentedDirectory(FaultyDirectory(seen))
    dn = f"uid=writer,{PEOPLE}"
    attrs = {"objectClass": [b"inetOrgPerson"], "uid": [b"writer"], "cn": [b"w"], "sn": [b"w"]}
    changes = [Change("replace", "sn", (b"changed",))]
    asserts = backend.directory.capabilities.assertion
    before, after = ("(sn=w)", "(sn=changed)") if asserts else (None, None)
    outer.add(dn, attrs, post_read=["sn"])
    if not asserts:
        with pytest.raises(DirectoryError) as refused:
            outer.modify(dn, changes, assertion="(sn=w)")
        assert refused.value.code == "unavailableCriticalExtension"
        seen.writes.pop()
    outer.modify(dn, changes, assertion=before, post_read=["sn"])
    new_dn = outer.rename(dn, "uid=writer2", PEOPLE, assertion=after)
    outer.delete(new_dn, assertion=after)
    assert seen.writes == [
        Add(dn, attrs, ["sn"]),
        Modify(dn, changes, before, ["sn"]),
        Rename(dn, "uid=writer2", PEOPLE, after),
        Delete(new_dn, after),
    ]
    assert new_dn == f"uid=writer2,{PEOPLE}"
    assert backend.directory.read(new_dn, ["sn"]) is None


def test_a_wrapper_changes_nothing(backend: Backend) -> None:
    """Every operation through a bare Wrapper answers as the directory itself does."""
    d = backend.directory
    w = Wrapper(d)
    (dn,) = _people(w, 1)
    assert w.capabilities == d.capabilities and w.secure == d.secure
    modified = w.modify(dn, [Change("replace", "sn", (b"changed",))], post_read=["sn"])
    if d.capabilities.post_read:
        assert modified is not None and modified.get("sn") == [b"changed"]
    else:
        assert modified is None
    new_dn = w.rename(dn, "uid=layer0x")
    assert new_dn == f"uid=layer0x,{PEOPLE}"
    entry = w.read(new_dn, ["sn"])
    assert entry is not None and entry.get("sn") == [b"changed"]
    assert [e.dn for e in w.iter_search(PEOPLE, "(uid=layer0x)", ["1.1"])] == [new_dn]
    assert [e.dn for e in w.search(PEOPLE, "(uid=layer0x)", ["1.1"]).entries] == [new_dn]
    w.check()
    w.delete(new_dn)
    assert w.read(new_dn, ["sn"]) is None


@pytest.mark.slapd
@pytest.mark.parametrize("client", ["ldap3", "libldap"])
def test_streams_page_at_the_configured_size_through_the_decorators(
    slapd_server: Any, client: str
) -> None:
    """``iter_search`` without a page size pages at BRIDGE_LDAP_PAGE_SIZE, also through the
    instrumented decorator every served directory gets (which once forced 500)."""
    d = slapd_directory(slapd_server, client, page_size=3)
    sizes: list[int] = []
    send = d._search  # type: ignore[attr-defined]

    def recording(conn: Any, op: Any) -> Any:
        if op.paged is not None:
            sizes.append(op.paged[0])
        return send(conn, op)

    d._search = recording  # type: ignore[attr-defined]
    try:
        found = list(
            InstrumentedDirectory(d).iter_search(slapd_server.base_dn, "(objectClass=*)", ["1.1"])
        )
    finally:
        d.close()
    assert len(found) > 3  # the fixture's suffix, its OUs and entries: more than one page
    assert len(sizes) >= 2 and set(sizes) == {3}


@pytest.mark.slapd
@pytest.mark.parametrize("client", ["ldap3", "libldap"])
def test_a_read_with_every_server_down_tries_each_server_once(client: str) -> None:
    """No server answers: the read fails (503) after one round over the servers, with either
    client.  Failover has tried each one; retrying the read would only try them all again
    (python-ldap once did, doubling the wait of every request during an outage)."""
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    info = type("Info", (), {"url": f"ldap://127.0.0.1:{port}", "bind_dn": "", "bind_password": ""})
    d = slapd_directory(info, client, connect_timeout=1, operation_timeout=2)
    tried: list[str] = []
    open_ = d._open  # type: ignore[attr-defined]

    def counting(url: str) -> Any:
        tried.append(url)
        return open_(url)

    d._open = counting  # type: ignore[attr-defined]
    d._caps = Capabilities()  # type: ignore[attr-defined]  # no root DSE to read
    with pytest.raises(DirectoryError) as err:
        d.search("dc=example,dc=org", "(uid=x)", ["uid"], size_limit=2)
    d.close()
    assert err.value.code == "connectError" and err.value.to_scim().status == 503
    assert tried == [info.url]
