"""A throwaway slapd for the benchmark, bulk-loaded with slapadd.

Uses the test suite's fixture (``devtools/slapd.py``: ``Slapd`` and
``generate_seed_ldif``) when it offers seeding; otherwise starts its own minimal slapd with the
same shape: OpenLDAP 2.5 mdb, memberof + refint + sssvlv + deref overlays (deref after sssvlv:
a user's groups come with the user), ``member`` stored apart once a group has over 100 members
(``multival``: adding one member does not rewrite a 50,000-value entry), equality indexes on the
attributes the bridge searches, a service account ``cn=scim`` with the production-like limits
(size.hard=500, unlimited paged results).

Seed (``N`` users): the test suite's ``generate_seed_ldif`` (users ``uid=user000042``, 200
groups, ``cn=biggroup`` with K = min(50,000, N/2) members for the add-member scenario, memberOf
written into the LDIF since slapadd runs no overlays).  Its own slapd config (rather than the
fixture's ``Slapd``) adds back_monitor, from which the bench counts LDAP operations per request.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BASE = "dc=example,dc=org"
PEOPLE = f"ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"
BIND_DN = f"cn=scim,{BASE}"
BIND_PW = "bench-scim-secret"
ADMIN_DN = f"cn=admin,{BASE}"
ADMIN_PW = "bench-admin-secret"
GROUP_COUNT = 200


@dataclass(frozen=True)
class Seed:
    users: int
    delete_pool: int
    big_group: int


@dataclass(frozen=True)
class Server:
    url: str
    pid: int
    directory: str
    bind_dn: str = BIND_DN
    bind_password: str = BIND_PW
    base_dn: str = BASE
    people_dn: str = PEOPLE
    groups_dn: str = GROUPS


_PROCS: dict[int, subprocess.Popen[bytes]] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed_ldif(seed: Seed) -> str:
    """The whole DIT as LDIF text: base entries and the service account, then users and groups
    from the test suite's generator (``devtools/slapd.py``), the same shape the
    behaviour suites see: ``uid=user000042`` users, ``cn=group0042`` groups of
    ``users / GROUP_COUNT`` members each, ``cn=biggroup`` holding users ``0 .. big_group-1``."""
    from devtools.slapd_ldif import generate_seed_ldif

    base = [
        f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: example\n",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
        f"dn: {BIND_DN}\nobjectClass: person\ncn: scim\nsn: scim\nuserPassword: {BIND_PW}\n",
    ]
    per_group = seed.users // GROUP_COUNT
    users = generate_seed_ldif(seed.users, GROUP_COUNT, per_group, seed.big_group)
    return "\n".join(base) + "\n" + users


_CONF = """include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload refint
moduleload sssvlv
moduleload deref
moduleload back_monitor
pidfile {dir}/slapd.pid
sizelimit 500
database mdb
suffix {base}
rootdn {admin}
rootpw {admin_pw}
directory {dir}/data
maxsize 8589934592
dbnosync
multival member 100,10
index objectClass,entryUUID,entryCSN,uid,cn,mail,sn,member,memberOf,employeeType eq
limits dn.exact="{bind}" size.soft=500 size.hard=500 size.prtotal=unlimited
access to attrs=userPassword by dn.exact="{bind}" write by anonymous auth by * none
access to * by dn.exact="{bind}" write by users read by * none
overlay memberof
memberof-refint TRUE
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
overlay refint
refint_attributes member
refint_nothing {admin}
overlay sssvlv
sssvlv-max 64
sssvlv-maxkeys 5
sssvlv-maxperconn 64
overlay deref
database monitor
access to * by dn.exact="{admin}" read by * none
"""


def start(seed: Seed, workdir: str | None = None) -> Server:
    """A seeded slapd listening on a free loopback port (stop it with :func:`stop`)."""
    d = Path(workdir or tempfile.mkdtemp(prefix="scim-bench-slapd-"))
    (d / "data").mkdir(parents=True, exist_ok=True)
    conf = d / "slapd.conf"
    conf.write_text(_CONF.format(dir=d, base=BASE, admin=ADMIN_DN, admin_pw=ADMIN_PW, bind=BIND_DN))
    ldif = d / "seed.ldif"
    ldif.write_text(seed_ldif(seed))
    subprocess.run(
        ["slapadd", "-q", "-f", str(conf), "-l", str(ldif)], check=True, capture_output=True
    )
    ldif.unlink()
    port = free_port()
    url = f"ldap://127.0.0.1:{port}"
    log = open(d / "slapd.log", "wb")  # noqa: SIM115 - owned by the server process
    proc = subprocess.Popen(
        ["slapd", "-d", "0", "-f", str(conf), "-h", f"{url}/"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                _PROCS[proc.pid] = proc
                return Server(url, proc.pid, str(d))
        if proc.poll() is not None:
            raise RuntimeError(f"slapd exited: {(d / 'slapd.log').read_text()[-2000:]}")
        time.sleep(0.02)
    raise RuntimeError("slapd did not start in 20 s")


def completed_operations(server: Server) -> int:
    """Operations slapd has completed so far (back_monitor), to count LDAP ops per request."""
    import ldap

    c = ldap.initialize(server.url)
    try:
        c.simple_bind_s(ADMIN_DN, ADMIN_PW)
        found = c.search_s(
            "cn=Operations,cn=Monitor", ldap.SCOPE_BASE, attrlist=["monitorOpCompleted"]
        )
        return int(found[0][1]["monitorOpCompleted"][0])
    finally:
        c.unbind_s()


def stop(server: Server) -> None:
    proc = _PROCS.pop(server.pid, None)
    if proc is not None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    shutil.rmtree(server.directory, ignore_errors=True)
