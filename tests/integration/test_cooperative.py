"""python-ldap on the event loop (bridge/concurrency.py) on slapd, and the dereference control
on slapd and 389 DS.

* Requests served cooperatively never block one another, also when every pooled connection is
  busy (the wait for a slot happens in the threadpool, not on the loop).
* With either client, a user's ``groups`` (and a group's ``members``) come with the entry
  through the dereference control (OpenLDAP's slapo-deref, 389 DS's Deref plugin): one LDAP
  search per GET, and exactly the resource the two-search path renders.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bridge.directory.base import Directory
from bridge.mapping.model import MappingConfig
from bridge.settings import Settings, Token
from bridge.web.app import build_app
from tests.conftest import (
    TOKEN,
    Backend,
    _empty,
    ds389_directory,
    encrypted_slapd_directory,
    slapd_directory,
)
from tests.helpers import SCIM, create_group, create_user


@pytest.fixture
def libldap(slapd_server: Any, openldap_mapping: MappingConfig) -> Iterator[Directory]:
    d = slapd_directory(slapd_server, "libldap", pool_size=2)
    _empty(d, openldap_mapping)
    yield d
    _empty(d, openldap_mapping)
    d.close()


def _app(directory: Directory, mapping: MappingConfig, **settings: Any) -> Any:
    s = Settings(tokens=(Token("test", TOKEN),), **settings)
    return build_app(s, directory=directory, mapping=mapping)


def test_many_concurrent_requests_share_two_connections(
    libldap: Directory, openldap_mapping: MappingConfig
) -> None:
    from starlette.testclient import TestClient

    app = _app(libldap, openldap_mapping)
    assert app.state.cooperative
    with TestClient(app, base_url="https://scim.example.test") as tc:
        tc.headers["Authorization"] = f"Bearer {TOKEN}"
        ids = [create_user(tc, f"coop{i}")["id"] for i in range(12)]

    async def main() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="https://scim.example.test",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as ac:
            calls = [ac.get(f"{SCIM}/Users/{i}") for i in ids * 5]
            calls += [ac.get(f"{SCIM}/Users", params={"filter": f'userName eq "coop{n}"'})
                      for n in range(12)]  # fmt: skip
            return [r.status_code for r in await asyncio.gather(*calls)]

    codes = asyncio.run(main())
    assert codes == [200] * (len(ids) * 5 + 12)
    stats = libldap.pool_stats()
    assert stats.in_use == 0 and stats.idle <= 2


#: the dereference tests run on every directory that offers the control, with both clients:
#: slapd (slapo-deref) and 389 DS (its Deref plugin, on by default), each with its mapping
DEREF = pytest.mark.parametrize(
    "backend", ["slapd-libldap", "slapd", "ds389-libldap", "ds389"], indirect=True
)


def _another_client(backend: Backend, request: pytest.FixtureRequest) -> Directory:
    """A second directory client of the backend's server, through the same LDAP library."""
    name = request.node.callspec.params["backend"]
    client = "libldap" if name.endswith("libldap") else "ldap3"
    if name.startswith("ds389"):
        return ds389_directory(backend.info, client)
    return encrypted_slapd_directory(backend.info, client)


def _count_searches(directory: Any) -> list[str]:
    """Searches issued at the directory seam (each is one LDAP search, or one VLV window)."""
    seen: list[str] = []
    inner = directory.run

    def counting(search: Any) -> Any:
        seen.append(search.filter)
        return inner(search)

    directory.run = counting
    return seen


@DEREF
def test_groups_come_with_the_user_in_one_search(
    backend: Backend, request: pytest.FixtureRequest
) -> None:
    from starlette.testclient import TestClient

    either, mapping = backend.directory, backend.mapping
    assert either.capabilities.deref, "the test directories offer the dereference control"
    app = _app(either, mapping)
    with TestClient(app, base_url="https://scim.example.test") as tc:
        tc.headers["Authorization"] = f"Bearer {TOKEN}"
        alice = create_user(tc, "alice", displayName="Alice")
        bob = create_user(tc, "bob")
        g1 = create_group(tc, "Admins", [alice["id"], bob["id"]])
        g2 = create_group(tc, "Staff", [alice["id"]])
        searches = _count_searches(either)
        got = tc.get(f"{SCIM}/Users/{alice['id']}").json()
        assert len(searches) == 1, searches
        assert sorted((g["value"], g["display"]) for g in got["groups"]) == sorted(
            [(g1["id"], "Admins"), (g2["id"], "Staff")]
        )
        searches.clear()
        looked_up = tc.get(f"{SCIM}/Users", params={"filter": 'userName eq "alice"'}).json()
        assert len(searches) == 1, searches
        assert looked_up["Resources"] == [got]
        group = tc.get(f"{SCIM}/Groups/{g1['id']}").json()

    # the same resources through the two-search path (no dereference control)
    plain = _another_client(backend, request)
    plain._caps = dataclasses.replace(plain.capabilities, deref=False)  # type: ignore[attr-defined]
    try:
        app2 = _app(plain, mapping)
        with TestClient(app2, base_url="https://scim.example.test") as tc2:
            tc2.headers["Authorization"] = f"Bearer {TOKEN}"
            searches = _count_searches(plain)
            assert tc2.get(f"{SCIM}/Users/{alice['id']}").json() == got
            assert len(searches) == 2, searches
            assert tc2.get(f"{SCIM}/Groups/{g1['id']}").json() == group
    finally:
        plain.close()


@DEREF
def test_a_group_outside_the_mapped_base_is_not_rendered_from_the_dereference(
    backend: Backend,
) -> None:
    """memberOf can name a group outside the Groups base; the dereference control returns it
    like any other, but it is no SCIM Group: left out, as without deref."""
    from starlette.testclient import TestClient

    either, mapping = backend.directory, backend.mapping
    users = mapping.resource("User").base_dn
    classes = [c.encode() for c in mapping.resource("Group").object_classes]
    app = _app(either, mapping)
    with TestClient(app, base_url="https://scim.example.test") as tc:
        tc.headers["Authorization"] = f"Bearer {TOKEN}"
        alice = create_user(tc, "alice")
        mapped = create_group(tc, "Mapped", [alice["id"]])
        user_dn = either.search(users, "(uid=alice)", ["1.1"]).entries[0].dn
        outside = f"cn=outside,{users}"
        either.add(
            outside,
            {"objectClass": classes, "cn": [b"outside"], backend.member_attr: [user_dn.encode()]},
        )
        try:
            entry = either.read(user_dn, ["memberOf"])
            assert entry is not None and len(entry.get("memberOf")) == 2
            got = tc.get(f"{SCIM}/Users/{alice['id']}").json()
            assert [g["value"] for g in got["groups"]] == [mapped["id"]]
        finally:
            either.delete(outside)


class _SilentServer:
    """Accepts LDAP connections, answers every bind with success, and never answers anything
    else: a directory that hangs mid-request."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[Any] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import threading

        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: Any) -> None:
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                return
            if not data:
                return
            # LDAPMessage: 30 len 02 01 <msgid> <op tag> ...; BindRequest is [APPLICATION 0]
            if len(data) > 5 and data[2] == 0x02 and data[3] == 1 and data[5] == 0x60:
                msgid = data[4]
                conn.sendall(bytes([0x30, 0x0C, 0x02, 0x01, msgid, 0x61, 0x07, 0x0A, 0x01, 0x00,
                                    0x04, 0x00, 0x04, 0x00]))  # fmt: skip

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def test_a_hung_directory_times_out_without_blocking_the_loop() -> None:
    """An answer that never comes ends in the operation timeout (503), while other work on
    the same event loop goes on; the connection is not reused."""
    from bridge import concurrency
    from bridge.directory.base import Capabilities
    from bridge.directory.connections import ConnectionSettings
    from bridge.directory.libldap_client import LibldapDirectory
    from bridge.errors import DirectoryError

    server = _SilentServer()
    d = LibldapDirectory(
        ConnectionSettings(urls=(f"ldap://127.0.0.1:{server.port}",), operation_timeout=0.5)
    )
    d._caps = Capabilities()  # the silent server has no root DSE to read
    ticks: list[float] = []

    async def ticker() -> None:
        for _ in range(8):
            ticks.append(asyncio.get_running_loop().time())
            await asyncio.sleep(0.04)

    async def main() -> DirectoryError:
        t = asyncio.ensure_future(ticker())
        try:
            await concurrency.run(lambda: d.search("dc=x", "(uid=a)", ["uid"], size_limit=2))
        except DirectoryError as exc:
            await t
            return exc
        raise AssertionError("a search of a silent server returned")

    try:
        err = asyncio.run(main())
        assert err.code == "timeout" and err.transient and err.to_scim().status == 503, err
        assert len(ticks) == 8  # the loop kept running while the search waited
        assert d.pool_stats().idle == 0  # the connection with an unanswered request is gone
    finally:
        d.close()
        server.close()


def test_slot_waiters_never_starve_the_connects_of_slot_holders(slapd_server: Any) -> None:
    """Every slot taken, many requests waiting, and each operation closing its connection
    (as a VLV search does): the holders' reconnects must not queue behind the waiters.  The
    waiters wait on the loop (Slots.wait), holding no thread; were they to wait in the
    2-thread default executor, they would hold both threads until the timeout and every
    request would fail with ``busy``."""
    from concurrent.futures import ThreadPoolExecutor

    from bridge import concurrency
    from bridge.directory.libldap_client import _SPENT

    d = slapd_directory(slapd_server, "libldap", pool_size=1, operation_timeout=5)
    inner = d._search  # type: ignore[attr-defined]

    def spending(conn: Any, *a: Any, **kw: Any) -> Any:
        conn.__dict__[_SPENT] = True  # closed after this operation: the next one reconnects
        return inner(conn, *a, **kw)

    d._search = spending  # type: ignore[attr-defined]
    base = slapd_server.base_dn

    async def main() -> None:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=2))
        calls = [
            concurrency.run(lambda: d.search(base, "(objectClass=*)", ["1.1"], scope="base"))
            for _ in range(20)
        ]
        results = await asyncio.gather(*calls)  # DirectoryError('busy') if starved
        assert all(len(r.entries) == 1 for r in results)

    try:
        d.capabilities  # noqa: B018 - read the root DSE before the test starts
        asyncio.run(main())
    finally:
        d.close()


def test_bounded_searches_on_the_loop_keep_what_fits(
    libldap: Directory, openldap_mapping: MappingConfig
) -> None:
    """On the event loop, a search over more matches than its size limit returns the entries
    up to the limit (sent again and read one message at a time), a lookup over several
    matches still pages them all, and the two pooled connections keep serving."""
    from starlette.testclient import TestClient

    from bridge import concurrency

    app = _app(libldap, openldap_mapping)
    with TestClient(app, base_url="https://scim.example.test") as tc:
        tc.headers["Authorization"] = f"Bearer {TOKEN}"
        for i in range(5):
            create_user(tc, f"bound{i}")
    people = openldap_mapping.resource("User").base_dn

    async def main() -> list[int]:
        runs = [
            concurrency.run(
                lambda n=n: len(
                    libldap.search(
                        people, "(uid=bound*)", ["uid"], scope="one", size_limit=n
                    ).entries
                )
            )
            for n in (1, 2, 3, 5, 6, 0) * 3
        ]
        return list(await asyncio.gather(*runs))

    assert asyncio.run(main()) == [1, 2, 3, 5, 5, 5] * 3
    with TestClient(app, base_url="https://scim.example.test") as tc:
        tc.headers["Authorization"] = f"Bearer {TOKEN}"
        r = tc.get(f"{SCIM}/Users", params={"filter": 'userName sw "bound"', "count": "2"})
        assert r.status_code == 200 and r.json()["totalResults"] == 5
        assert len(r.json()["Resources"]) == 2
    stats = libldap.pool_stats()
    assert stats.in_use == 0 and stats.idle <= 2
