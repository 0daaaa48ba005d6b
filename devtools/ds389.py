"""A throwaway 389 Directory Server for the integration tests.

Self-contained: standard library + ldap3 only (no pytest import), so fixtures, benchmarks and
ad-hoc scripts can all use it::

    from devtools.ds389 import DS389
    with DS389() as ds:
        info = ds.info              # DS389Info: urls, DNs, passwords, CA file, ports

How it works
------------
* ``dscreate`` (10-15 s) runs ONCE per machine into a cached template directory, by default
  ``/tmp/scim-bridge-389ds-template-v<N>`` (environment ``SCIM_BRIDGE_389DS_TEMPLATE``
  overrides), under an flock and in a temporary sibling that is renamed into place when
  complete, so concurrent sessions and later runs reuse it.  lib389 insists on
  ``{PREFIX}/etc/dirsrv/slapd-NAME``: the template is a private prefix (a copy of
  ``/usr/share/dirsrv/inf/defaults.inf`` with every system path moved into it, systemd off, the
  instance run as the current user).  Nothing is written under /etc, /var or /run.
* The template is then started once and configured over LDAP as Directory Manager (see
  "Directory content"), and stopped cleanly.
* The backend is LMDB (``db_lib = mdb``): its files hold no paths, so a copy runs anywhere.
  (Berkeley DB, the 2.3 default, keeps absolute paths in its environment and log files, and
  a copy whose logs are dropped fails every write with operationsError: tried.)
* Every ``start()`` of a new instance copies the template (``cp -a --sparse=always``; under
  1 MB), rewrites the absolute paths and the ports in ``dse.ldif`` and ``pkcs11.txt`` (the
  only files holding them; ``dse.ldif`` is unfolded first so no path is split by a line fold)
  and runs ``ns-slapd -d 0`` in the foreground on free ports on 127.0.0.1 only
  (``nsslapd-listenhost``/``nsslapd-securelistenhost``), then waits until it answers.
  On the 2-vCPU dev VM: template 14-20 s, start 1.3 s, stop (SIGTERM) 0.4 s.
* TLS: dscreate's self-signed certificate names only ``DNS:localhost``, which libldap cannot
  use (it checks the machine's hostname when told localhost), so the template build replaces
  it in the instance's NSS database with one from our own EC P-256 test CA (``tls/ca.crt`` =
  ``DS389Info.ca_file``) naming ``DNS:localhost, DNS:<hostname>, IP:127.0.0.1``
  (``certutil``/``pk12util``), as the slapd fixture's certificate does.

Directory content
-----------------
Suffix ``dc=example,dc=org`` (backend ``userroot``) with ``ou=people``, ``ou=groups`` and the
service account ``cn=scim,dc=example,dc=org`` (password ``BIND_PASSWORD``) that the bridge
binds as; ``cn=Directory Manager`` is the root DN (ignores ACIs and limits).

* ACI on the suffix: cn=scim may read, search, compare, write, add and delete every attribute,
  the operational ones the bridge reads or writes named explicitly (389 DS's
  ``targetattr="*"`` does not cover operational attributes).  It may read the index and plugin
  configuration below cn=config that ``check-mapping --connect`` reads, and the MemberOf
  plugin entry whole (``memberOfGroupAttr`` is in no schema, so no ACI can name it).
* Limits of cn=scim, like the slapd fixture: ``nsSizeLimit: 500``, ``nsPagedSizeLimit: -1``;
  ``nsLookThroughLimit: -1``, as docs/directories/389ds.md asks (tombstones of deleted entries
  count against it).
* Plugins: **MemberOf** enabled (389 DS ships it off) for ``member`` and ``uniqueMember``
  (``memberOfGroupAttr``), adding ``nsMemberOf`` to members automatically;
  **Referential Integrity** enabled (synchronous, ``referint-update-delay: 0``) for
  member/uniqueMember/owner/seeAlso; **USN** enabled (``entryusn`` on every entry, an
  ETag that changes on every write).  Enabling a plugin takes a restart, which the template
  build does.
* Caches are shrunk (the autotuned defaults claim 1.5 GB on a 24 GB machine).
* Test-only speed-ups (``_FAST``): passwords, Directory Manager's included, are stored as
  SSHA512 instead of PBKDF2-SHA512 (10,000 rounds: ~0.1 s of server CPU per bind, and every
  test binds anew), and the access log is off.  Tried and left out: turning off
  ``nsslapd-db-durable-transaction`` (LMDB) made no measurable difference here.
* The 7-bit check plugin stays on, as on any new instance: non-ASCII ``uid``/``mail`` values
  are refused with constraintViolation.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import ldap3

from devtools.slapd import find_binary, pick_ports

__all__ = [
    "ADMIN_DN",
    "ADMIN_PASSWORD",
    "BASE_DN",
    "BIND_DN",
    "BIND_PASSWORD",
    "DS389",
    "GROUPS_DN",
    "PEOPLE_DN",
    "DS389Info",
    "require_389ds",
    "template_dir",
]

BASE_DN = "dc=example,dc=org"
PEOPLE_DN = f"ou=people,{BASE_DN}"
GROUPS_DN = f"ou=groups,{BASE_DN}"
BIND_DN = f"cn=scim,{BASE_DN}"
BIND_PASSWORD = "scim-Secret-42"
ADMIN_DN = "cn=Directory Manager"
ADMIN_PASSWORD = "admin-Secret-42"
INSTANCE = "scim"
BACKEND = "userroot"

# Bump when the template recipe changes: it is part of the default template path and the stamp.
TEMPLATE_VERSION = 5
TEMPLATE_ENV = "SCIM_BRIDGE_389DS_TEMPLATE"
_STAMP = "template.json"
_DEFAULTS_INF = Path("/usr/share/dirsrv/inf/defaults.inf")
_SYSCONF = Path("/etc/dirsrv")
_INSTALL_HINT = (
    "install the Debian package with "
    "`apt-get install -y --no-install-recommends 389-ds-base` (then stop and disable any "
    "system instance: `systemctl disable --now dirsrv.target`), or run `.ci/run`"
)
_START_TIMEOUT = float(os.environ.get("DS389_START_TIMEOUT", "60"))
_STOP_TIMEOUT = 30.0
_CONF = Path("etc") / "dirsrv" / f"slapd-{INSTANCE}"
_DB = Path("var") / "lib" / "dirsrv" / f"slapd-{INSTANCE}" / "db"
_PID = Path("run") / "dirsrv" / f"slapd-{INSTANCE}.pid"
_ERRORS = Path("var") / "log" / "dirsrv" / f"slapd-{INSTANCE}" / "errors"

#: operational attributes the service account reads or writes (``*`` does not cover them)
_OPERATIONAL = (
    "nsUniqueId",
    "entryusn",
    "entrydn",
    "createTimestamp",
    "modifyTimestamp",
    "creatorsName",
    "modifiersName",
    "memberOf",
    "nsAccountLock",
    "numSubordinates",
    "hasSubordinates",
)


@dataclass(frozen=True)
class DS389Info:
    """Everything a test needs to talk to one running instance."""

    url: str  # ldap://127.0.0.1:PORT
    ldaps_url: str  # ldaps://127.0.0.1:LDAPS_PORT
    base_dn: str
    people_dn: str
    groups_dn: str
    bind_dn: str  # the service account the bridge uses (cn=scim)
    bind_password: str
    admin_dn: str  # cn=Directory Manager: ignores ACIs and limits
    admin_password: str
    ca_file: str  # PEM of the test CA that signed the server certificate
    tls_hostname: str  # a DNS name in the server certificate (it also names 127.0.0.1)
    directory: str  # the instance prefix (etc/, var/, run/)
    port: int
    ldaps_port: int


# --------------------------------------------------------------------------- environment


def require_389ds() -> None:
    """Raise RuntimeError (with an install hint) unless a 389 DS instance can be made here."""
    missing = [b for b in ("dscreate", "ns-slapd") if find_binary(b) is None]
    if missing or not _DEFAULTS_INF.is_file() or not _SYSCONF.is_dir():
        what = ", ".join(missing) or f"{_DEFAULTS_INF} or {_SYSCONF}"
        raise RuntimeError(f"389 Directory Server unavailable: {what} not found; {_INSTALL_HINT}")


def template_dir() -> Path:
    default = Path(tempfile.gettempdir()) / f"scim-bridge-389ds-template-v{TEMPLATE_VERSION}"
    return Path(os.environ.get(TEMPLATE_ENV) or default)


def _version() -> str:
    proc = subprocess.run(
        [find_binary("ns-slapd") or "ns-slapd", "-v"], capture_output=True, text=True, check=False
    )
    return (proc.stdout + proc.stderr).strip().splitlines()[0] if proc.stdout else "unknown"


def _pick_ports() -> tuple[int, int]:
    """Two free ports on 127.0.0.1 below the ephemeral range, as the slapd fixture picks them."""
    ldap_port, ldaps_port = pick_ports(2)
    return ldap_port, ldaps_port


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        timeout=300,
        check=False,
    )
    out = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        tail = "\n".join(out.splitlines()[-40:])
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return out


# --------------------------------------------------------------------------- relocation


def _unfold(text: str) -> str:
    """LDIF continuation lines joined (RFC 2849): a path may be split by a fold."""
    return text.replace("\n ", "")


def _relocate(prefix: Path, old: str, port: int, ldaps_port: int) -> None:
    """Point a copied prefix at itself and at new ports on 127.0.0.1."""
    dse = prefix / _CONF / "dse.ldif"
    text = _unfold(dse.read_text()).replace(old, str(prefix))
    text = re.sub(r"(?m)^nsslapd-port: \d+$", f"nsslapd-port: {port}", text)
    text = re.sub(r"(?m)^nsslapd-securePort: \d+$", f"nsslapd-securePort: {ldaps_port}", text)
    text = re.sub(r"(?m)^nsslapd-(secure)?listenhost: .*\n", "", text)
    text = text.replace(
        f"nsslapd-port: {port}\n",
        f"nsslapd-port: {port}\nnsslapd-listenhost: 127.0.0.1\n"
        "nsslapd-securelistenhost: 127.0.0.1\n",
        1,
    )
    dse.write_text(text)
    pkcs11 = prefix / _CONF / "pkcs11.txt"
    pkcs11.write_text(pkcs11.read_text().replace(old, str(prefix)))
    for name in ("dse.ldif.bak", "dse.ldif.startOK", "dse.ldif.tmp"):
        (prefix / _CONF / name).unlink(missing_ok=True)
    (prefix / _PID).unlink(missing_ok=True)


# --------------------------------------------------------------------------- the process


class _Process:
    """One foreground ``ns-slapd`` on a prefix."""

    def __init__(self, prefix: Path, url: str) -> None:
        self.prefix = prefix
        self.url = url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.prefix / "ns-slapd.log", "ab")  # noqa: SIM115 - handed to the child
        with log:
            self.proc = subprocess.Popen(
                [
                    find_binary("ns-slapd") or "ns-slapd",
                    "-D",
                    str(self.prefix / _CONF),
                    "-i",
                    str(self.prefix / _PID),
                    "-d",
                    "0",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.prefix,
                start_new_session=True,
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while not _answers(self.url):
            if self.proc.poll() is not None:
                code, self.proc = self.proc.returncode, None
                raise RuntimeError(f"ns-slapd exited with {code} on start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ns-slapd did not answer on {self.url}:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for f in (self.prefix / "ns-slapd.log", self.prefix / _ERRORS):
            with contextlib.suppress(OSError):
                out += f.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(out)


def _answers(url: str) -> bool:
    server = ldap3.Server(url, connect_timeout=1, get_info=ldap3.NONE)
    conn = ldap3.Connection(server, receive_timeout=2)
    try:
        conn.open()
        return bool(conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["1.1"]))
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            conn.unbind()


def _admin(url: str) -> ldap3.Connection:
    return ldap3.Connection(
        ldap3.Server(url, get_info=ldap3.NONE, connect_timeout=5),
        ADMIN_DN,
        ADMIN_PASSWORD,
        auto_bind=True,
        raise_exceptions=True,
        receive_timeout=30,
    )


# --------------------------------------------------------------------------- the template


def _inf(port: int, ldaps_port: int) -> str:
    user = os.environ.get("USER") or "root"
    return f"""[general]
config_version = 2
full_machine_name = localhost
selinux = False
systemd = False
start = False
[slapd]
instance_name = {INSTANCE}
root_password = {ADMIN_PASSWORD}
port = {port}
secure_port = {ldaps_port}
self_sign_cert = True
db_lib = mdb
user = {user}
group = {user}
[backend-{BACKEND}]
suffix = {BASE_DN}
create_suffix_entry = True
"""


def _make_prefix(build: Path) -> None:
    """A private PREFIX for lib389: defaults.inf with every system path moved into it."""
    (build / "share" / "dirsrv" / "inf").mkdir(parents=True)
    text = _DEFAULTS_INF.read_text()
    for top in ("/etc", "/var", "/run"):
        text = text.replace(f"= {top}", f"= {build}{top}")
    text = re.sub(r"(?m)^db_home_dir = /dev/shm", f"db_home_dir = {build}/var/dbhome", text)
    text = re.sub(r"(?m)^with_systemd = 1", "with_systemd = 0", text)
    (build / "share" / "dirsrv" / "inf" / "defaults.inf").write_text(text)
    shutil.copytree(_SYSCONF, build / "etc" / "dirsrv")


_PLUGINS = "cn=plugins,cn=config"
#: the autotuned caches claim 1.5 GB of database cache on a small machine; offline edit
#: (cn=config,cn=ldbm database refuses these changes over LDAP while autosizing is on)
_CACHES = {
    "nsslapd-cache-autosize": "0",
    "nsslapd-dbcachesize": str(32 * 2**20),
    "nsslapd-cachememsize": str(32 * 2**20),
    "nsslapd-dncachememsize": str(8 * 2**20),
}


#: test-only settings that make the instance faster and change nothing the bridge sees:
#: PBKDF2-SHA512 with 10,000 rounds (the default scheme) costs ~0.1 s of server CPU per bind
#: of Directory Manager or cn=scim, and every test opens new connections; the access log
#: is a disk write per operation nobody reads here (the error log stays on)
_FAST = {
    "passwordStorageScheme": "SSHA512",
    "nsslapd-rootpwstoragescheme": "SSHA512",
    "nsslapd-accesslog-logging-enabled": "off",
}


def _shrink_caches(prefix: Path) -> None:
    dse = prefix / _CONF / "dse.ldif"
    text = _unfold(dse.read_text())
    for attr, value in _CACHES.items():
        text = re.sub(rf"(?m)^{attr}: .*$", f"{attr}: {value}", text)
    dse.write_text(text)


def _enable_plugins(conn: ldap3.Connection) -> None:
    """MemberOf, Referential Integrity and USN (effective after a restart)."""
    rep = ldap3.MODIFY_REPLACE
    conn.modify(
        f"cn=MemberOf Plugin,{_PLUGINS}",
        {
            "nsslapd-pluginEnabled": [(rep, ["on"])],
            "memberOfGroupAttr": [(rep, ["member", "uniqueMember"])],
            "memberOfAutoAddOC": [(rep, ["nsMemberOf"])],
        },
    )
    conn.modify(
        f"cn=referential integrity postoperation,{_PLUGINS}",
        {"nsslapd-pluginEnabled": [(rep, ["on"])]},
    )
    conn.modify(f"cn=USN,{_PLUGINS}", {"nsslapd-pluginEnabled": [(rep, ["on"])]})


def _configure(conn: ldap3.Connection) -> None:
    """Suffix content, the service account and its rights."""
    rep, add = ldap3.MODIFY_REPLACE, ldap3.MODIFY_ADD
    # test-only speed: cheap password hashes (each bind verifies one) and no access log
    conn.modify("cn=config", {attr: [(rep, [value])] for attr, value in _FAST.items()})
    conn.modify("cn=config", {"nsslapd-rootpw": [(rep, [ADMIN_PASSWORD])]})  # rehashed
    for ou in ("people", "groups"):
        conn.add(f"ou={ou},{BASE_DN}", ["top", "organizationalUnit"], {"ou": ou})
    conn.add(
        BIND_DN,
        ["top", "applicationProcess", "simpleSecurityObject"],
        {"cn": "scim", "userPassword": BIND_PASSWORD, "nsSizeLimit": "500"},
    )
    # deleted entries stay below their parent as tombstones (USN plugin) and count against the
    # look-through limit of a search (objectClass=*) one level below ou=people: after some
    # thousand tests, 5,000 (the default) are reached.  A directory with 5,000 users reaches
    # it in every listing; docs/directories/389ds.md asks for the same setting
    conn.modify(
        BIND_DN, {"nsPagedSizeLimit": [(rep, ["-1"])], "nsLookThroughLimit": [(rep, ["-1"])]}
    )
    attrs = " || ".join(("*", *_OPERATIONAL))
    who = f'userdn="ldap:///{BIND_DN}"'
    conn.modify(
        BASE_DN,
        {
            "aci": [
                (
                    add,
                    [
                        f'(targetattr="{attrs}")(version 3.0; acl "scim-ldap-bridge"; allow '
                        f"(read, search, compare, write, add, delete) {who};)"
                    ],
                )
            ]
        },
    )
    readable = "cn || objectClass || nsslapd-suffix || nsIndexType || nsslapd-pluginEnabled"
    conn.modify(
        "cn=config",
        {
            "aci": [
                (
                    add,
                    [
                        f'(targetattr="{readable}")(version 3.0; acl "scim-ldap-bridge reads '
                        f'index config"; allow (read, search, compare) {who};)',
                        # memberOfGroupAttr is in no schema, so it cannot be named in an ACI
                        f'(target="ldap:///cn=MemberOf Plugin,{_PLUGINS}")(targetattr="*")'
                        f'(version 3.0; acl "scim-ldap-bridge reads the MemberOf settings"; '
                        f"allow (read, search, compare) {who};)",
                    ],
                )
            ]
        },
    )


def _openssl(args: list[str], what: str) -> None:
    _run(["openssl", *args], f"openssl ({what})")


def _own_certificate(prefix: Path) -> None:
    """Replace dscreate's self-signed server certificate (it names only DNS:localhost, and
    libldap checks the machine's hostname when told localhost) with one from our own test CA
    naming ``DNS:localhost, DNS:<hostname>, IP:127.0.0.1``, imported into the instance's NSS
    database as ``Server-Cert`` (the nickname cn=RSA,cn=encryption,cn=config names).  The CA
    is ``tls/ca.crt`` (PEM) and is trusted by the NSS database too."""
    tls, conf = prefix / "tls", prefix / _CONF
    tls.mkdir()
    ca, key, crt = tls / "ca.crt", tls / "server.key", tls / "server.crt"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        ["req", "-x509", *ec, "-days", "3650", "-subj", "/CN=scim-ldap-bridge 389 DS test CA",
         "-keyout", str(tls / "ca.key"), "-out", str(ca),
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        "test CA",
    )  # fmt: skip
    _openssl(["req", *ec, "-subj", "/CN=localhost", "-keyout", str(key),
              "-out", str(tls / "server.csr")], "server key")  # fmt: skip
    (tls / "ext.cnf").write_text(
        f"subjectAltName=DNS:localhost,DNS:{socket.gethostname()},IP:127.0.0.1\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl(
        ["x509", "-req", "-in", str(tls / "server.csr"), "-CA", str(ca),
         "-CAkey", str(tls / "ca.key"), "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
         "-days", "3650", "-extfile", str(tls / "ext.cnf"), "-out", str(crt)],
        "server certificate",
    )  # fmt: skip
    p12 = tls / "server.p12"
    _openssl(["pkcs12", "-export", "-in", str(crt), "-inkey", str(key), "-name", "Server-Cert",
              "-out", str(p12), "-passout", "pass:"], "PKCS#12")  # fmt: skip
    db, pw = f"sql:{conf}", str(conf / "pwdfile.txt")
    _run(["certutil", "-D", "-d", db, "-n", "Server-Cert", "-f", pw], "certutil -D")
    _run(["pk12util", "-i", str(p12), "-d", db, "-k", pw, "-W", ""], "pk12util -i")
    _run(["certutil", "-A", "-d", db, "-n", "scim-ldap-bridge test CA", "-t", "CT,,",
          "-a", "-i", str(ca), "-f", pw], "certutil -A")  # fmt: skip


def _build(build: Path) -> None:
    _make_prefix(build)
    port, ldaps_port = _pick_ports()
    (build / "inst.inf").write_text(_inf(port, ldaps_port))
    env = {**os.environ, "PREFIX": str(build)}
    out = _run([find_binary("dscreate") or "dscreate", "-v", "from-file", str(build / "inst.inf")],
               "dscreate", env)  # fmt: skip
    (build / "dscreate.log").write_text(out)
    _relocate(build, str(build), port, ldaps_port)
    _shrink_caches(build)
    _own_certificate(build)
    proc = _Process(build, f"ldap://127.0.0.1:{port}")
    for step in (_enable_plugins, _configure):  # a restart between: plugins load on start
        proc.start()
        try:
            conn = _admin(proc.url)
            try:
                step(conn)
            except ldap3.core.exceptions.LDAPException as exc:
                raise RuntimeError(f"{step.__name__}: {exc}\n{proc.log_tail()}") from exc
            finally:
                conn.unbind()
        finally:
            proc.stop()
    for leftover in (build / "ns-slapd.log", build / _ERRORS):
        leftover.unlink(missing_ok=True)


def _template_complete(tpl: Path, version: str) -> dict[str, str] | None:
    try:
        stamp = json.loads((tpl / _STAMP).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or str(stamp.get("recipe")) != str(TEMPLATE_VERSION):
        return None
    if stamp.get("ns_slapd") != version:
        return None
    return {str(k): str(v) for k, v in stamp.items()}


def ensure_template() -> tuple[Path, dict[str, str], float | None]:
    """(template dir, stamp, seconds spent building or None if cached)."""
    tpl = template_dir()
    version = _version()
    stamp = _template_complete(tpl, version)
    if stamp is not None:
        return tpl, stamp, None
    tpl.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{tpl}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be building it right now
        stamp = _template_complete(tpl, version)
        if stamp is not None:
            return tpl, stamp, None
        t0 = time.monotonic()
        if tpl.exists():
            stale = tpl.with_name(f"{tpl.name}.stale-{os.getpid()}")
            tpl.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        for leftover in tpl.parent.glob(f"{tpl.name}.build-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        build = Path(tempfile.mkdtemp(prefix=f"{tpl.name}.build-", dir=tpl.parent))
        try:
            _build(build)
            stamp = {"recipe": str(TEMPLATE_VERSION), "ns_slapd": version, "prefix": str(build)}
            (build / _STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
            build.rename(tpl)
        except BaseException:
            if not os.environ.get("DS389_KEEP"):
                shutil.rmtree(build, ignore_errors=True)
            raise
        return tpl, stamp, time.monotonic() - t0


# --------------------------------------------------------------------------- public API

_live: weakref.WeakSet[DS389] = weakref.WeakSet()
_live_lock = threading.Lock()


@atexit.register
def _cleanup_all() -> None:
    with _live_lock:
        instances = list(_live)
    for ds in instances:
        with contextlib.suppress(Exception):
            ds.cleanup()


class DS389:
    """One throwaway 389 DS instance copied from the cached template.

    ``start()`` -> DS389Info; ``stop()`` keeps the data and ports; ``cleanup()`` stops and
    removes the instance directory.  As a context manager it starts and cleans up.
    ``timings``: seconds spent in the last start (``template`` only when it was built)."""

    def __init__(self, workdir: Path | None = None) -> None:
        self._workdir = Path(workdir) if workdir is not None else Path(tempfile.gettempdir())
        self.directory: Path | None = None
        self._process: _Process | None = None
        self._info: DS389Info | None = None
        self.timings: dict[str, float] = {}

    @property
    def info(self) -> DS389Info:
        if self._info is None:
            raise RuntimeError("DS389 has not been started")
        return self._info

    @property
    def running(self) -> bool:
        proc = self._process.proc if self._process else None
        return proc is not None and proc.poll() is None

    def start(self) -> DS389Info:
        if self.running:
            return self.info
        require_389ds()
        t0 = time.monotonic()
        if self.directory is None:
            self._create()
        assert self._info is not None and self.directory is not None
        self._process = _Process(self.directory, self._info.url)
        with _live_lock:
            _live.add(self)
        self._process.start()
        self.timings["total"] = time.monotonic() - t0
        return self._info

    def _create(self) -> None:
        tpl, stamp, built = ensure_template()
        if built is not None:
            self.timings["template"] = built
        self._workdir.mkdir(parents=True, exist_ok=True)
        d = Path(tempfile.mkdtemp(prefix="scim-bridge-389ds-", dir=self._workdir))
        try:
            _run(["cp", "-a", "--sparse=always", f"{tpl}/.", f"{d}/"], "cp -a (template)")
            port, ldaps_port = _pick_ports()
            _relocate(d, stamp["prefix"], port, ldaps_port)
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        self.directory = d
        self._info = DS389Info(
            url=f"ldap://127.0.0.1:{port}",
            ldaps_url=f"ldaps://127.0.0.1:{ldaps_port}",
            base_dn=BASE_DN,
            people_dn=PEOPLE_DN,
            groups_dn=GROUPS_DN,
            bind_dn=BIND_DN,
            bind_password=BIND_PASSWORD,
            admin_dn=ADMIN_DN,
            admin_password=ADMIN_PASSWORD,
            ca_file=str(d / "tls" / "ca.crt"),
            tls_hostname="localhost",
            directory=str(d),
            port=port,
            ldaps_port=ldaps_port,
        )

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    def cleanup(self) -> None:
        self.stop()
        directory, self.directory, self._info = self.directory, None, None
        if directory is not None and not os.environ.get("DS389_KEEP"):
            shutil.rmtree(directory, ignore_errors=True)
        with _live_lock:
            _live.discard(self)

    def admin(self) -> ldap3.Connection:
        """A bound ldap3 connection as Directory Manager over LDAPS (raises on failure)."""
        info = self.info
        tls = ldap3.Tls(
            ca_certs_file=info.ca_file,
            validate=ssl.CERT_REQUIRED,
            valid_names=[info.tls_hostname],
        )
        server = ldap3.Server(info.ldaps_url, use_ssl=True, tls=tls, get_info=ldap3.NONE)
        return ldap3.Connection(
            server, info.admin_dn, info.admin_password, auto_bind=True, raise_exceptions=True
        )

    def log_tail(self, lines: int = 30) -> str:
        return self._process.log_tail(lines) if self._process else ""

    def __enter__(self) -> DS389:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def admin_connection(info: DS389Info) -> ldap3.Connection:
    """A bound plain-LDAP connection as Directory Manager (tests' independent reads)."""
    return _admin(info.url)
