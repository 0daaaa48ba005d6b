"""Active Directory range retrieval (MS-ADTS §3.1.1.3.1.3.3) with both clients.

Windows AD returns at most MaxValRange (1500) values of a multi-valued attribute and names the
slice ``member;range=0-1499``; the client asks for the next slice until one ends in ``*``.  Samba
does not enforce the limit, so on Samba the loop is exercised with an explicit ranged request;
the Windows behaviour (a plain ``member`` answered with a slice) is replayed with a scripted
connection.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.directory.base import Directory
from bridge.directory.ldap3_client import ConnectionSettings, Ldap3Directory


@pytest.fixture(scope="module")
def samba() -> Iterator[Any]:
    try:
        from devtools.samba import SambaDC, free_loopback_host, require_samba

        require_samba()
    except (ImportError, RuntimeError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"samba is not available: {exc}")
    dc = SambaDC(host=os.environ.get("SCIM_BRIDGE_SAMBA_HOST") or free_loopback_host())
    try:
        dc.start()
        yield dc.info
    finally:
        dc.cleanup()


def _client(info: Any, name: str) -> Directory:
    settings = ConnectionSettings(
        urls=(info.url,),
        bind_dn=info.bind_dn,
        bind_password=info.bind_password,
        ca_file=info.ca_file,
    )
    if name == "libldap":
        from bridge.directory.libldap_client import LibldapDirectory

        return LibldapDirectory(settings)
    return Ldap3Directory(settings)


@pytest.fixture(scope="module")
def group(samba: Any) -> str:
    d = _client(samba, "ldap3")
    members = []
    for i in range(7):
        dn = f"CN=ranged{i},{samba.people_dn}"
        with contextlib.suppress(Exception):
            d.add(dn, {"objectClass": [b"user"], "sAMAccountName": [f"ranged{i}".encode()]})
        members.append(dn.encode())
    gdn = f"CN=ranged,{samba.groups_dn}"
    d.add(gdn, {"objectClass": [b"group"], "sAMAccountName": [b"ranged"], "member": members})
    d.close()
    return gdn


@pytest.mark.parametrize("client", ["ldap3", "libldap"])
def test_a_ranged_answer_is_completed(samba: Any, group: str, client: str) -> None:
    d = _client(samba, client)
    try:
        whole = d.read(group, ["member"])
        ranged = d.read(group, ["member;range=0-2"])  # Samba answers member;range=0-2
    finally:
        d.close()
    assert whole is not None and ranged is not None
    assert len(whole.attrs["member"]) == 7
    assert sorted(ranged.attrs["member"]) == sorted(whole.attrs["member"])
    assert list(ranged.attrs) == ["member"]


class _WindowsLikeConnection:
    """Answers like Windows AD with MaxValRange=3: slices of three values."""

    def __init__(self, values: list[bytes]):
        self.values = values
        self.requests: list[list[str]] = []
        self._pending: Any = None

    def search_ext(self, base: str, scope: int, flt: str, attrs: list[str], *a: Any) -> int:
        self.requests.append(attrs)
        (attr,) = attrs
        name, _, rng = attr.partition(";range=")
        low = int(rng.split("-")[0]) if rng else 0
        chunk = self.values[low : low + 3]
        high = "*" if low + 3 >= len(self.values) else str(low + 2)
        self._pending = [(base, {f"{name};range={low}-{high}": chunk}, [])]
        return 1

    # python-ldap's low-level result call, as the client makes it (entries with controls)
    def _ldap_call(self, fn: Any, *args: Any) -> Any:
        return fn(*args)

    @property
    def _l(self) -> Any:
        return self

    def result4(self, *a: Any) -> Any:
        return 101, self._pending, 1, []


def test_windows_style_slices_are_followed_to_the_end() -> None:
    try:
        from bridge.directory.libldap_client import LibldapDirectory
    except ImportError:
        from tests.conftest import unavailable

        unavailable("python-ldap (the libldap extra) is not installed")

    values = [f"CN=u{i},DC=x".encode() for i in range(8)]
    conn = _WindowsLikeConnection(values)
    from bridge.directory.base import Capabilities

    d = LibldapDirectory(ConnectionSettings(urls=("ldap://127.0.0.1:1",)))
    d._caps = Capabilities()  # no server here: nothing to discover
    first = conn.search_ext("CN=g,DC=x", 0, "(objectClass=*)", ["member"])
    assert first == 1
    entries = d._entries(conn, conn.result4()[1])  # type: ignore[arg-type]
    assert entries[0].attrs["member"] == values
    assert conn.requests == [["member"], ["member;range=3-*"], ["member;range=6-*"]]
