"""PATCH add-one-member: a 50,000-member group against a 10-member group, on real slapd.

    PYTHONPATH=. python bench/patch_member.py                      # starts its own slapd
    PYTHONPATH=. python bench/patch_member.py --client libldap     # the python-ldap client
    PYTHONPATH=. python bench/patch_member.py --url ldap://127.0.0.1:39389 \\
        --bind-dn cn=scim,dc=example,dc=org --bind-password ... \\
        --admin-dn cn=admin,dc=example,dc=org --admin-password ...

Each repeat PATCHes one new member into each group (``{"op": "add", "path": "members",
"value": [{"value": id}]}``), through the HTTP app in-process (Starlette TestClient, with
``excludedAttributes=members`` so the response does not list 50,000 members) and through
``Service.patch`` directly, and reports the median and p90.  Two more HTTP cells send the
membership PATCH exactly as the IdPs send it, with no query string: Okta's (``remove`` with
``members[value eq "<id>"]`` then ``add`` of ``{"value", "display"}``) and Entra ID's
(``{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "<id>"}]}``), answered
204 by default (``BRIDGE_GROUP_PATCH_RESPONSE``); ``--full-repeats`` times Okta's PATCH again
with ``BRIDGE_GROUP_PATCH_RESPONSE=full`` (200 with every member, the old answer) and
``--get-repeats`` a plain ``GET /Groups/{id}``, both of which grow with the member list.
Response bytes are the HTTP body's.  The bridge talks to slapd
through a counting TCP relay, so the bytes sent to (and received from) LDAP per PATCH are
measured on the wire; the LDAP operations per PATCH are counted by the bridge's own metrics
(``scim_bridge_ldap_operations``).  ``--client`` picks the bridge's LDAP client: ldap3 (the
default) or python-ldap (``libldap``).  Seeding (users over LDAP, then one group add) happens
once per server and is skipped when the bench entries exist.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import ldap3

from bridge.directory.base import Directory
from bridge.directory.ldap3_client import ConnectionSettings, Ldap3Directory
from bridge.mapping.load import load_mapping
from bridge.observability import metrics
from bridge.scim.projection import Projection
from bridge.settings import Settings, Token
from bridge.web.app import build_app

MAPPING = "mappings/openldap.yaml"
PEOPLE = "ou=people,dc=example,dc=org"
GROUPS = "ou=groups,dc=example,dc=org"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


# ---------------------------------------------------------------------------- byte counting
class Relay:
    """A loopback TCP relay that counts bytes in each direction."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.sent = 0  # bridge -> LDAP
        self.received = 0  # LDAP -> bridge
        self._lock = threading.Lock()
        self._srv = socket.create_server(("127.0.0.1", 0))
        self.port = self._srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        with self._lock:
            self.sent = self.received = 0

    def _accept(self) -> None:
        while True:
            client, _ = self._srv.accept()
            upstream = socket.create_connection(self.target)
            for s in (client, upstream):  # no Nagle delay added by the relay itself
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for a, b, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pipe, args=(a, b, up), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while data := src.recv(65536):
                with self._lock:
                    if up:
                        self.sent += len(data)
                    else:
                        self.received += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


# ---------------------------------------------------------------------------- setup
@dataclass(frozen=True)
class Names:
    """How the seeded entries are called: over LDAP (``--url``) or by the fixture's LDIF."""

    user: str  # format with the user's number
    big: str
    small: str
    first_probe: int  # users from here on are in neither group


@contextmanager
def slapd(args: argparse.Namespace) -> Iterator[tuple[Any, Names]]:
    if args.url:
        info = SimpleNamespace(
            url=args.url,
            bind_dn=args.bind_dn,
            bind_password=args.bind_password,
            admin_dn=args.admin_dn,
            admin_password=args.admin_password,
        )
        seed(info, args.big, args.repeats)
        yield info, Names("bench{:06d}", "bench-big", "bench-small", args.big + 10)
        return
    from devtools.slapd import Slapd
    from devtools.slapd_ldif import generate_seed_ldif

    # slapadd seeding: users 0..big-1 in cn=biggroup, users 0..9 in cn=group0000, the rest
    # (2 * repeats) are added during the bench
    ldif = generate_seed_ldif(
        users=args.big + 2 * args.repeats,
        groups=1,
        members_per_group=10,
        big_group_members=args.big,
    )
    server = Slapd(seed_ldif=ldif)
    info = server.start()
    try:
        yield info, Names("user{:06d}", "biggroup", "group0000", args.big)
    finally:
        server.stop()
        server.cleanup()


def seed(info: Any, big: int, probes: int) -> None:
    """Users bench000000.. (big + 10 members, 2*probes to add), groups bench-big/bench-small."""
    conn = ldap3.Connection(info.url, info.admin_dn, info.admin_password, auto_bind=True)
    have = conn.search(GROUPS, "(cn=bench-big)", attributes=["cn"])
    if have:
        print("bench entries exist: seeding skipped", file=sys.stderr)
        return
    total = big + 10 + 2 * probes
    started = time.perf_counter()
    workers = 4

    def add_users(offset: int) -> None:
        c = ldap3.Connection(info.url, info.admin_dn, info.admin_password, auto_bind=True)
        for i in range(offset, total, workers):
            uid = f"bench{i:06d}"
            c.add(
                f"uid={uid},{PEOPLE}",
                ["top", "person", "organizationalPerson", "inetOrgPerson"],
                {"uid": uid, "cn": uid, "sn": uid},
            )
        c.unbind()

    threads = [threading.Thread(target=add_users, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"seeded {total} users in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    started = time.perf_counter()
    members = [f"uid=bench{i:06d},{PEOPLE}" for i in range(big)]
    conn.add(
        f"cn=bench-big,{GROUPS}", ["top", "groupOfNames"], {"cn": "bench-big", "member": members}
    )
    small = [f"uid=bench{i:06d},{PEOPLE}" for i in range(big, big + 10)]
    conn.add(
        f"cn=bench-small,{GROUPS}", ["top", "groupOfNames"], {"cn": "bench-small", "member": small}
    )
    print(f"seeded the groups in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    conn.unbind()


@dataclass
class Result:
    label: str
    times: list[float]
    sent: list[int]
    received: list[int]
    ops: list[float]
    body: list[int] = field(default_factory=list)  # HTTP response bytes

    def row(self) -> str:
        ms = sorted(t * 1e3 for t in self.times)
        p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
        body = f"{statistics.median(self.body):.0f}" if self.body else "-"
        return (
            f"| {self.label} | {statistics.median(ms):.2f} | {p90:.2f} | {body} | "
            f"{statistics.median(self.sent):.0f} | {statistics.median(self.received):.0f} | "
            f"{statistics.median(self.ops):.0f} |"
        )


def ldap_operations() -> float:
    """All LDAP operations the bridge has counted so far (its Prometheus counter)."""
    return sum(
        s.value
        for m in metrics.LDAP_OPERATIONS.collect()
        for s in m.samples
        if s.name.endswith("_total")
    )


def make_directory(client: str, settings: ConnectionSettings) -> Directory:
    if client == "libldap":
        from bridge.directory.libldap_client import LibldapDirectory

        return LibldapDirectory(settings)
    return Ldap3Directory(settings)


def run(args: argparse.Namespace) -> None:
    with slapd(args) as (info, names):
        host, port = info.url.split("//", 1)[1].rsplit(":", 1)
        relay = Relay(host.strip("/"), int(port.strip("/")))
        directory = make_directory(
            args.client,
            ConnectionSettings(
                urls=(f"ldap://127.0.0.1:{relay.port}",),
                bind_dn=info.bind_dn,
                bind_password=info.bind_password,
                pool_size=2,
            ),
        )
        mapping = load_mapping(MAPPING)
        settings = Settings(tokens=(Token("bench", "bench-token"),))
        app = build_app(settings, directory=directory, mapping=mapping)
        from starlette.testclient import TestClient

        client = TestClient(app, base_url="https://bench.test")
        client.headers["Authorization"] = "Bearer bench-token"
        service = app.state.service

        def gid(cn: str) -> str:
            e = directory.search(GROUPS, f"(cn={cn})", ["entryUUID"], scope="one").entries[0]
            return e.text("entryUUID") or ""

        def uid_of(i: int) -> str:
            flt = f"(uid={names.user.format(i)})"
            e = directory.search(PEOPLE, flt, ["entryUUID"], scope="one")
            return e.entries[0].text("entryUUID") or ""

        groups = {"10": gid(names.small), f"{args.big:,}": gid(names.big)}
        base = names.first_probe
        probe_ids = [uid_of(base + i) for i in range(2 * args.repeats)]
        no_members = Projection(exclude=frozenset({("members", None)}))
        results: list[Result] = []

        def body(rid: str) -> dict[str, Any]:
            return {
                "schemas": [PATCH_OP],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": rid}]}],
            }

        def measure(
            label: str,
            call: Callable[[str, str], int | None],
            probes: list[str],
            bare: bool = False,
        ) -> None:
            """Small and big group alternate on every probe, so machine noise hits both."""
            rows = {g: Result(f"{label}, {g}-member group", [], [], [], []) for g in groups}
            for n, rid in enumerate(probes):
                order = list(groups.items()) if n % 2 == 0 else list(groups.items())[::-1]
                for group_label, group_id in order:
                    relay.reset()
                    ops = ldap_operations()
                    t0 = time.perf_counter()
                    size = call(group_id, rid)
                    rows[group_label].times.append(time.perf_counter() - t0)
                    if size is not None:
                        rows[group_label].body.append(size)
                    rows[group_label].sent.append(relay.sent)
                    rows[group_label].received.append(relay.received)
                    rows[group_label].ops.append(1 if bare else ldap_operations() - ops)
            results.extend(rows.values())

        def via_http(group_id: str, rid: str) -> int:
            r = client.patch(
                f"/scim/v2/Groups/{group_id}",
                params={"excludedAttributes": "members"},
                json=body(rid),
            )
            assert r.status_code == 200, r.text
            return len(r.content)

        def as_idp(patcher: Any, ops: Callable[[str], list[dict[str, Any]]], status: int) -> Any:
            def call(group_id: str, rid: str) -> int:
                r = patcher.patch(
                    f"/scim/v2/Groups/{group_id}",
                    json={"schemas": [PATCH_OP], "Operations": ops(rid)},
                )
                assert r.status_code == status, r.text
                return len(r.content)

            return call

        def okta(rid: str) -> list[dict[str, Any]]:
            return [
                {"op": "remove", "path": f'members[value eq "{rid}"]'},
                {"op": "add", "path": "members", "value": [{"value": rid, "display": rid}]},
            ]

        def entra(rid: str) -> list[dict[str, Any]]:
            return [{"op": "Add", "path": "members", "value": [{"$ref": None, "value": rid}]}]

        full_app = build_app(
            settings.with_(group_patch_response="full"), directory=directory, mapping=mapping
        )
        full = TestClient(full_app, base_url="https://bench.test")
        full.headers["Authorization"] = "Bearer bench-token"

        def get_group(group_id: str, _rid: str) -> int:
            r = client.get(f"/scim/v2/Groups/{group_id}")
            assert r.status_code == 200, r.text
            return len(r.content)

        def via_service(group_id: str, rid: str) -> None:
            service.patch("Group", group_id, body(rid), "https://bench.test", None, no_members)

        raw = ldap3.Connection(
            f"ldap://127.0.0.1:{relay.port}", info.bind_dn, info.bind_password, auto_bind=True
        )
        dns = {
            gid_: directory.search(GROUPS, f"(entryUUID={gid_})", ["1.1"]).entries[0].dn
            for gid_ in groups.values()
        }

        user_dns = {
            rid: directory.search(PEOPLE, f"(entryUUID={rid})", ["1.1"]).entries[0].dn
            for rid in probe_ids
        }

        def via_ldap3(group_id: str, rid: str) -> None:
            """The floor: the same MODIFY_ADD sent by a bare ldap3 connection, no bridge."""
            ok = raw.modify(dns[group_id], {"member": [(ldap3.MODIFY_ADD, [user_dns[rid]])]})
            assert ok, raw.result

        def undo(group_id: str, rid: str) -> None:
            service.patch(
                "Group",
                group_id,
                {
                    "schemas": [PATCH_OP],
                    "Operations": [{"op": "remove", "path": f'members[value eq "{rid}"]'}],
                },
                "https://bench.test",
                None,
                no_members,
            )

        # warm-up: connections, capabilities, slapd entry cache
        for gid_ in groups.values():
            via_service(gid_, probe_ids[0])
            undo(gid_, probe_ids[0])
        first, second = probe_ids[: args.repeats], probe_ids[args.repeats :]

        def undo_all(probes: list[str]) -> None:
            for gid_ in groups.values():
                for rid in probes:
                    undo(gid_, rid)

        measure("HTTP PATCH (excludedAttributes=members)", via_http, first)
        undo_all(first)
        measure("Okta PATCH as sent (204)", as_idp(client, okta, 204), first)
        undo_all(first)
        measure("Entra PATCH as sent (204)", as_idp(client, entra, 204), first)
        undo_all(first)
        if args.full_repeats:
            few = first[: args.full_repeats]
            measure("Okta PATCH as sent, GROUP_PATCH_RESPONSE=full (200)",
                    as_idp(full, okta, 200), few)  # fmt: skip
            undo_all(few)
        if args.get_repeats:
            measure("GET /Groups/{id} (every member)", get_group, first[: args.get_repeats])
        measure("Service.patch", via_service, second)
        measure("bare ldap3 MODIFY_ADD (no bridge)", via_ldap3, first, bare=True)
        for gid_ in groups.values():  # leave the groups as seeded
            for rid in probe_ids:
                undo(gid_, rid)
        print(
            f"PATCH add one member (repeats={args.repeats}, slapd {info.url}, "
            f"bridge client {args.client})\n"
        )
        print(
            "| case | median ms | p90 ms | response bytes | bytes to LDAP | bytes from LDAP "
            "| LDAP ops |"
        )
        print("|---|---|---|---|---|---|---|")
        for r in results:
            print(r.row())
        print()
        for small, big in zip(results[::2], results[1::2], strict=True):
            if small.body or "HTTP" in small.label:
                ratio = statistics.median(big.times) / statistics.median(small.times)
                name = small.label.rsplit(",", 1)[0]
                print(f"{name}: median ratio {args.big:,} / 10 members {ratio:.2f}x")
        directory.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", help="an existing slapd (else one is started)")
    p.add_argument("--bind-dn", default="cn=scim,dc=example,dc=org")
    p.add_argument("--bind-password", default="")
    p.add_argument("--admin-dn", default="cn=admin,dc=example,dc=org")
    p.add_argument("--admin-password", default="")
    p.add_argument("--big", type=int, default=50_000)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument(
        "--full-repeats",
        type=int,
        default=5,
        help="Okta's PATCH with BRIDGE_GROUP_PATCH_RESPONSE=full (200, every member); 0: skip",
    )
    p.add_argument(
        "--get-repeats", type=int, default=3, help="GET of each group with its members; 0: skip"
    )
    p.add_argument(
        "--client",
        choices=("ldap3", "libldap"),
        default="ldap3",
        help="the bridge's LDAP client: ldap3 (default) or python-ldap",
    )
    run(p.parse_args(argv))


if __name__ == "__main__":
    main()
