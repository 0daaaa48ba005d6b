"""Both LDAP clients (ldap3 and python-ldap) against a real slapd: one seam, same behaviour.

Each test runs once per client.  These are the directory-level guarantees the service relies on:
result-code names, raw bytes with lower-cased keys, paging past the server size limit, sort +
VLV, assertions, failover, timeouts, TLS and recovery after a directory restart.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.directory.base import Change, Directory, SortKey, Window
from bridge.errors import DirectoryError
from tests.conftest import slapd_directory, unavailable

CLIENTS = ["ldap3", "libldap"]
#: what slapd sets on every entry itself
OPERATIONAL = ["entryUUID", "createTimestamp", "modifyTimestamp", "entryCSN", "entryDN"]


@pytest.fixture(params=CLIENTS)
def client_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def directory(slapd_server: Any, client_name: str) -> Iterator[Directory]:
    d = slapd_directory(slapd_server, client_name)
    yield d
    d.close()


@pytest.fixture
def people(slapd_server: Any, directory: Directory) -> Iterator[str]:
    """A private container below people_dn, removed afterwards."""
    dn = f"ou=t{time.monotonic_ns()},{slapd_server.people_dn}"
    directory.add(
        dn, {"objectClass": [b"organizationalUnit"], "ou": [dn[3:].split(",")[0].encode()]}
    )
    yield dn
    for e in directory.search(dn, "(objectClass=*)", ["1.1"], scope="one").entries:
        directory.delete(e.dn)
    directory.delete(dn)


def _person(directory: Directory, parent: str, uid: str, **extra: list[bytes]) -> str:
    dn = f"uid={uid},{parent}"
    attrs: dict[str, list[bytes]] = {
        "objectClass": [b"inetOrgPerson"],
        "uid": [uid.encode()],
        "cn": [uid.encode()],
        "sn": [b"S"],
        **extra,
    }
    directory.add(dn, attrs)
    return dn


def test_entries_are_raw_bytes_with_lower_case_keys(directory: Directory, people: str) -> None:
    dn = _person(directory, people, "alice", displayName=["Zoë".encode()], mail=[b"a@x", b"b@x"])
    e = directory.read(dn, ["displayName", "mail", "entryUUID"])
    assert e is not None
    assert e.attrs["displayname"] == ["Zoë".encode()]
    assert sorted(e.attrs["mail"]) == [b"a@x", b"b@x"]
    assert len(e.attrs["entryuuid"][0]) == 36 and isinstance(e.attrs["entryuuid"][0], bytes)
    assert directory.read(f"uid=nobody,{people}", ["cn"]) is None


@pytest.mark.parametrize(
    ("action", "code"),
    [
        ("duplicate add", "entryAlreadyExists"),
        ("add existing value", "attributeOrValueExists"),
        ("delete absent value", "noSuchAttribute"),
        ("modify missing entry", "noSuchObject"),
        ("missing MUST", "objectClassViolation"),
        ("rdn replace", "namingViolation"),
        ("failed assertion", "assertionFailed"),
        ("non-leaf delete", "notAllowedOnNonLeaf"),
    ],
)
def test_result_codes_have_the_same_names(
    directory: Directory, people: str, action: str, code: str
) -> None:
    dn = _person(directory, people, "bob", mail=[b"bob@x"])
    with pytest.raises(DirectoryError) as info:
        match action:
            case "duplicate add":
                _person(directory, people, "bob")
            case "add existing value":
                directory.modify(dn, [Change("add", "mail", (b"bob@x",))])
            case "delete absent value":
                directory.modify(dn, [Change("delete", "mail", (b"nope@x",))])
            case "modify missing entry":
                directory.modify(f"uid=ghost,{people}", [Change("replace", "sn", (b"x",))])
            case "missing MUST":
                directory.add(
                    f"uid=nosn,{people}", {"objectClass": [b"inetOrgPerson"], "cn": [b"n"]}
                )
            case "rdn replace":
                directory.modify(dn, [Change("replace", "uid", (b"other",))])
            case "failed assertion":
                directory.modify(dn, [Change("replace", "sn", (b"x",))], assertion="(sn=wrong)")
            case "non-leaf delete":
                directory.delete(people)
    assert info.value.code == code
    assert not info.value.transient


def test_assertion_that_holds_applies_the_change(directory: Directory, people: str) -> None:
    dn = _person(directory, people, "carl")
    directory.modify(dn, [Change("replace", "sn", (b"New",))], assertion="(sn=S)")
    e = directory.read(dn, ["sn"])
    assert e is not None and e.attrs["sn"] == [b"New"]


def test_modify_is_atomic(directory: Directory, people: str) -> None:
    dn = _person(directory, people, "dora", title=[b"T"])
    with pytest.raises(DirectoryError):
        directory.modify(
            dn, [Change("replace", "title", (b"U",)), Change("delete", "mail", (b"absent",))]
        )
    e = directory.read(dn, ["title"])
    assert e is not None and e.attrs["title"] == [b"T"]


def test_rename_returns_the_new_dn(directory: Directory, people: str) -> None:
    dn = _person(directory, people, "erin")
    new = directory.rename(dn, "uid=erin2")
    assert new == f"uid=erin2,{people}"
    assert directory.read(dn, ["1.1"]) is None
    e = directory.read(new, ["uid"])
    assert e is not None and e.attrs["uid"] == [b"erin2"]


def test_paged_search_goes_past_the_server_size_limit(directory: Directory, people: str) -> None:
    """The service account has size.hard=500 but unlimited paged results (like production)."""
    for i in range(620):
        _person(directory, people, f"p{i:04d}")
    found = directory.search(people, "(objectClass=inetOrgPerson)", ["uid"], scope="one")
    assert len(found.entries) == 620
    assert (
        len({e.dn for e in directory.iter_search(people, "(uid=*)", ["uid"], page_size=100)}) == 620
    )
    limited = directory.search(people, "(uid=*)", ["uid"], scope="one", size_limit=2)
    assert len(limited.entries) == 2


def test_sort_and_vlv_window(directory: Directory, people: str) -> None:
    for i in (5, 3, 9, 1, 7):
        _person(directory, people, f"v{i}")
    assert directory.capabilities.vlv and directory.capabilities.sort
    keys = (SortKey("uid", ordering_rule="caseIgnoreOrderingMatch"),)
    res = directory.search(people, "(uid=v*)", ["uid"], scope="one", sort=keys, window=Window(2, 3))
    assert [e.attrs["uid"][0] for e in res.entries] == [b"v3", b"v5", b"v7"]
    assert res.total == 5
    rev = (SortKey("uid", reverse=True, ordering_rule="caseIgnoreOrderingMatch"),)
    res = directory.search(people, "(uid=v*)", ["uid"], scope="one", sort=rev, window=Window(1, 2))
    assert [e.attrs["uid"][0] for e in res.entries] == [b"v9", b"v7"]


def test_sort_without_ordering_rule_is_inappropriate_matching(
    directory: Directory, people: str
) -> None:
    _person(directory, people, "s1")
    _person(directory, people, "s2")  # two matches: the server must sort
    with pytest.raises(DirectoryError) as info:
        directory.search(
            people, "(uid=*)", ["uid"], scope="one", sort=(SortKey("uid"),), window=Window(1, 1)
        )
    assert info.value.code == "inappropriateMatching"


def test_concurrent_use_of_the_pool(directory: Directory, people: str) -> None:
    dns = [_person(directory, people, f"c{i}") for i in range(20)]
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for j in range(25):
                dn = dns[(k + j) % len(dns)]
                e = directory.read(dn, ["uid"])
                assert e is not None and e.dn == dn
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_failover_to_the_next_url(slapd_server: Any, client_name: str) -> None:
    dead = _free_port()
    d = _directory(slapd_server, client_name, urls=(f"ldap://127.0.0.1:{dead}", slapd_server.url))
    try:
        d.check()
        assert d.read(slapd_server.base_dn, ["1.1"]) is not None
    finally:
        d.close()


def test_unreachable_directory_is_a_transient_error(slapd_server: Any, client_name: str) -> None:
    d = _directory(slapd_server, client_name, urls=(f"ldap://127.0.0.1:{_free_port()}",))
    with pytest.raises(DirectoryError) as info:
        d.check()
    assert info.value.transient


def test_wrong_password_is_invalid_credentials(slapd_server: Any, client_name: str) -> None:
    d = _directory(slapd_server, client_name, bind_password="wrong")
    with pytest.raises(DirectoryError) as info:
        d.check()
    assert info.value.code == "invalidCredentials" and not info.value.transient
    assert "wrong" not in str(info.value)


def test_a_silent_server_times_out(slapd_server: Any, client_name: str) -> None:
    """A server that accepts TCP but never answers: the operation fails within the timeout."""
    with _silent_server() as port:
        d = _directory(
            slapd_server,
            client_name,
            urls=(f"ldap://127.0.0.1:{port}",),
            connect_timeout=1.0,
            operation_timeout=1.0,
        )
        started = time.monotonic()
        with pytest.raises(DirectoryError) as info:
            d.check()
        assert info.value.transient
        assert time.monotonic() - started < 8


def test_ldaps_with_the_ca_and_without_it(slapd_server: Any, client_name: str) -> None:
    if not getattr(slapd_server, "ldaps_url", None):
        unavailable("the slapd fixture has no LDAPS listener")
    ok = _directory(
        slapd_server, client_name, urls=(slapd_server.ldaps_url,), ca_file=slapd_server.ca_file
    )
    try:
        ok.check()
        assert ok.read(slapd_server.base_dn, ["1.1"]) is not None
    finally:
        ok.close()
    bad = _directory(slapd_server, client_name, urls=(slapd_server.ldaps_url,), ca_file=_other_ca())
    with pytest.raises(DirectoryError) as info:
        bad.check()
    assert info.value.transient  # an untrusted certificate never gets a bind


def test_start_tls(slapd_server: Any, client_name: str) -> None:
    d = _directory(slapd_server, client_name, start_tls=True, ca_file=slapd_server.ca_file)
    try:
        d.check()
    finally:
        d.close()


def test_recovers_after_the_directory_restarts(client_name: str) -> None:
    try:
        from devtools.slapd import Slapd
    except ImportError as exc:
        unavailable(f"slapd fixture missing: {exc}")
    server = Slapd()
    info = server.start()
    d = slapd_directory(info, client_name)
    try:
        d.check()
        server.restart()
        assert d.read(info.base_dn, ["1.1"]) is not None  # the dead pooled connection is replaced
    finally:
        d.close()
        server.stop()
        server.cleanup()


# ---------------------------------------------------------------------------- helpers
def _directory(info: Any, client: str, **overrides: Any) -> Directory:
    return slapd_directory(info, client, **overrides)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _silent_server:
    def __enter__(self) -> int:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def _other_ca() -> str:
    """A CA file that did not sign the server's certificate."""
    import subprocess
    import tempfile

    d = tempfile.mkdtemp(prefix="otherca")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=Other CA",
            "-keyout",
            f"{d}/k",
            "-out",
            f"{d}/ca.crt",
        ],
        check=True,
        capture_output=True,
    )
    return f"{d}/ca.crt"


def test_vlv_offset_past_the_end_is_an_empty_page_with_the_count(
    directory: Directory, people: str
) -> None:
    for i in range(3):
        _person(directory, people, f"e{i}")
    keys = (SortKey("uid", ordering_rule="caseIgnoreOrderingMatch"),)
    res = directory.search(people, "(uid=e*)", ["uid"], scope="one", sort=keys, window=Window(9, 5))
    assert res.entries == [] and res.total == 3


def test_many_vlv_pages_never_exhaust_the_servers_sort_sessions(
    directory: Directory, people: str
) -> None:
    """slapd keeps each VLV result set as a session of its connection; a client that reused
    pooled connections would get 'busy' after a handful of pages."""
    for i in range(3):
        _person(directory, people, f"w{i}")
    keys = (SortKey("uid", ordering_rule="caseIgnoreOrderingMatch"),)
    for _ in range(40):
        res = directory.search(
            people, "(uid=w*)", ["uid"], scope="one", sort=keys, window=Window(1, 2)
        )
        assert res.total == 3


@pytest.mark.parametrize(("flt", "offset", "want", "total"), [
    ("(uid=one0)", 1, [b"one0"], 1),
    ("(uid=one0)", 2, [], 1),
    ("(uid=nobody)", 1, [], 0),
])  # fmt: skip
def test_window_over_one_or_no_match(
    directory: Directory, people: str, flt: str, offset: int, want: list[bytes], total: int
) -> None:
    """A lookup through the list path (VLV window) over zero or one match: same answer as VLV."""
    _person(directory, people, "one0")
    keys = (SortKey("uid", ordering_rule="caseIgnoreOrderingMatch"),)
    res = directory.search(people, flt, ["uid"], scope="one", sort=keys, window=Window(offset, 10))
    assert [e.attrs["uid"][0] for e in res.entries] == want
    assert res.total == total


@pytest.mark.parametrize("matches", [2, 3, 5])
def test_window_over_more_matches_than_the_probe_takes(
    directory: Directory, people: str, matches: int
) -> None:
    """Two matches fill the one-match probe's size limit exactly, three or more exceed it
    (sizeLimitExceeded): either way the VLV answers, with every match counted."""
    for i in range(matches):
        _person(directory, people, f"many{matches}x{i}")
    keys = (SortKey("uid", ordering_rule="caseIgnoreOrderingMatch"),)
    res = directory.search(
        people, f"(uid=many{matches}x*)", ["uid"], scope="one", sort=keys, window=Window(1, 10)
    )
    assert res.total == matches
    assert [e.attrs["uid"][0] for e in res.entries] == [
        f"many{matches}x{i}".encode() for i in range(matches)
    ]


# ---------------------------------------------------------------------------- RFC 4527 / 3876
def test_slapd_offers_post_read_and_matched_values(directory: Directory) -> None:
    caps = directory.capabilities
    assert caps.post_read and caps.matched_values


def test_post_read_returns_the_entry_as_the_modify_left_it(
    directory: Directory, people: str
) -> None:
    """Raw bytes (a value that is not UTF-8 too), lower-cased names, the DN, operational
    attributes the server updated: the same as a read right after."""
    photo = b"\xff\xd8\xe9\x00\x80binary"
    dn = _person(directory, people, "pia", jpegPhoto=[photo], mail=[b"p@x"])
    attrs = ["sn", "mail", "jpegPhoto", "entryCSN", "entryDN", "modifyTimestamp", "entryUUID"]
    after = directory.modify(dn, [Change("replace", "sn", ("Zoë".encode(),))], post_read=attrs)
    now = directory.read(dn, attrs)
    assert after is not None and now is not None
    assert after.dn.lower() == dn.lower()
    assert after.attrs == now.attrs
    assert after.attrs["jpegphoto"] == [photo] and after.attrs["sn"] == ["Zoë".encode()]
    assert directory.modify(dn, [Change("replace", "sn", (b"Q",))]) is None  # not asked


def test_post_read_returns_the_entry_as_the_add_created_it(
    directory: Directory, people: str
) -> None:
    """The same as a read right after the add: raw bytes (a value that is not UTF-8 too),
    lower-cased names, the DN, and the operational attributes the server set with the add
    (entryUUID, createTimestamp, entryCSN, entryDN, ppolicy's pwdAccountLockedTime)."""
    photo = b"\xff\xd8\xe9\x00\x80binary"
    dn = f"uid=ada,{people}"
    attrs = ["uid", "sn", "displayName", "jpegPhoto", "pwdAccountLockedTime", *OPERATIONAL]
    created = directory.add(
        dn,
        {
            "objectClass": [b"inetOrgPerson"],
            "uid": [b"ada"],
            "cn": [b"ada"],
            "sn": ["Zoë".encode()],
            "displayName": [],  # left out, as without post-read
            "jpegPhoto": [photo],
            "pwdAccountLockedTime": [b"000001010000Z"],
        },
        post_read=attrs,
    )
    now = directory.read(dn, attrs)
    assert created is not None and now is not None
    assert created.dn == now.dn and created.dn.lower() == dn.lower()
    assert created.attrs == now.attrs
    assert created.attrs["jpegphoto"] == [photo] and created.attrs["sn"] == ["Zoë".encode()]
    assert "displayname" not in created.attrs
    assert set(created.attrs) >= {a.lower() for a in OPERATIONAL}
    assert created.attrs["entrydn"] == [dn.encode()]
    assert created.attrs["createtimestamp"] == created.attrs["modifytimestamp"]
    # everything, user and operational attributes alike: still the same as the read
    whole = directory.add(
        f"uid=bea,{people}",
        {"objectClass": [b"inetOrgPerson"], "uid": [b"bea"], "cn": [b"b"], "sn": [b"B"]},
        post_read=["*", "+"],
    )
    read = directory.read(f"uid=bea,{people}", ["*", "+"])
    assert whole is not None and read is not None and whole.attrs == read.attrs
    assert {"objectclass", "entryuuid", "structuralobjectclass"} <= set(whole.attrs)


def test_add_without_post_read_returns_none(directory: Directory, people: str) -> None:
    assert (
        directory.add(
            f"uid=cy,{people}",
            {"objectClass": [b"inetOrgPerson"], "uid": [b"cy"], "cn": [b"c"], "sn": [b"C"]},
        )
        is None
    )
    assert directory.read(f"uid=cy,{people}", ["uid"]) is not None


def test_a_group_add_with_post_read_and_the_member_it_names(
    directory: Directory, people: str
) -> None:
    """memberOf lands on the member (memberof overlay), not on the group: the group's
    post-read is still the group as a read after the add finds it."""
    member = _person(directory, people, "dot")
    group = f"cn=crew,{people}"
    attrs = ["cn", "member", "memberOf", *OPERATIONAL]
    created = directory.add(
        group,
        {"objectClass": [b"groupOfNames"], "cn": [b"crew"], "member": [member.encode()]},
        post_read=attrs,
    )
    now = directory.read(group, attrs)
    assert created is not None and now is not None and created.attrs == now.attrs
    assert created.attrs["member"] == [member.encode()] and "memberof" not in created.attrs
    after = directory.read(member, ["memberOf"])
    assert after is not None and [v.lower() for v in after.attrs["memberof"]] == [
        group.lower().encode()
    ]


def test_a_refused_add_with_post_read_raises_and_adds_nothing(
    directory: Directory, people: str
) -> None:
    dn = _person(directory, people, "eve")
    with pytest.raises(DirectoryError) as info:
        directory.add(
            dn,
            {"objectClass": [b"inetOrgPerson"], "uid": [b"eve"], "cn": [b"e"], "sn": [b"E"]},
            post_read=["uid"],
        )
    assert info.value.code == "entryAlreadyExists"
    e = directory.read(dn, ["cn"])
    assert e is not None and e.attrs["cn"] == [b"eve"]


def test_post_read_with_an_assertion(directory: Directory, people: str) -> None:
    dn = _person(directory, people, "quinn")
    after = directory.modify(
        dn, [Change("replace", "sn", (b"New",))], assertion="(sn=S)", post_read=["sn"]
    )
    assert after is not None and after.attrs == {"sn": [b"New"]}
    with pytest.raises(DirectoryError) as info:
        directory.modify(
            dn, [Change("replace", "sn", (b"X",))], assertion="(sn=S)", post_read=["sn"]
        )
    assert info.value.code == "assertionFailed"
    e = directory.read(dn, ["sn"])
    assert e is not None and e.attrs["sn"] == [b"New"]


def test_matched_values_return_only_the_equal_values_and_the_rest_whole(
    directory: Directory, people: str
) -> None:
    """RFC 3876 with one attribute filtered: the other requested attributes stay complete
    (a values-return filter naming only ``member`` would strip them), and the assertion value
    goes in as BER: ``*`` and parentheses in it are plain characters, not filter syntax."""
    star, starfish, paren = (f"cn={n},{people}" for n in ("star*", "starfish", "(x)"))
    group = f"cn=vrf,{people}"
    directory.add(
        group,
        {
            "objectClass": [b"groupOfNames"],
            "cn": [b"vrf"],
            "description": [b"d1", b"d2"],
            "member": [star.encode(), starfish.encode(), paren.encode()],
        },
    )
    attrs = ["cn", "description", "entryUUID", "entryCSN", "entryDN"]
    plain = directory.read(group, attrs)
    assert plain is not None
    for wanted, expect in ((star, [star]), (paren, [paren]), (f"cn=none,{people}", [])):
        for found in (
            directory.search(
                group,
                "(objectClass=*)",
                attrs,
                scope="base",
                matched_values={"member": [wanted.encode()]},
            ).entries,
            directory.search(  # the paged path
                people,
                "(cn=vrf)",
                attrs,
                scope="one",
                matched_values={"member": [wanted.upper().encode()]},
            ).entries,
        ):
            assert len(found) == 1
            e = found[0]
            assert [v.decode().lower() for v in e.get("member")] == [x.lower() for x in expect]
            assert {k: v for k, v in e.attrs.items() if k != "member"} == plain.attrs
