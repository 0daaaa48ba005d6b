"""A throwaway Samba 4 AD domain controller for the integration tests.

Self-contained: standard library + ldap3 only (no pytest import), so it can also be driven from a
script or a REPL::

    from devtools.samba import SambaDC
    with SambaDC(host="127.0.0.2") as dc:
        info = dc.info              # SambaInfo: url, bind_dn, bind_password, ca_file, ...

How it works (see tests/integration/SAMBA.md for measurements and AD differences):

* The domain is provisioned ONCE (``samba-tool domain provision``, 7-10 s) into a cached template
  directory, by default ``/tmp/scim-bridge-samba-template-v1`` (override with the environment
  variable ``SCIM_BRIDGE_SAMBA_TEMPLATE``). The template is built under an flock, in a temporary
  sibling directory that is renamed into place when complete, so concurrent processes and later
  pytest runs reuse it. It holds: the provisioned domain (``-s empty.conf``, every system path
  redirected into the directory, ``ldb:nosync = true``), our own EC P-256 test CA, the OUs
  People/Groups/Quarantine, and a password policy with min-pwd-age=0, history-length=0 and no
  maximum age (complexity stays ON, as in AD).
* Every ``start()`` of a new instance copies the template (``cp -a``), rewrites the absolute paths
  in ``etc/smb.conf`` (the only file that contains them), issues a fresh server certificate
  (SAN ``DNS:localhost`` + ``IP:<host>``, signed by the template CA) and runs
  ``samba -i -M single --option="server services = ldap"`` bound to ``host`` only, then waits
  until an LDAPS simple bind as Administrator succeeds.
* Samba's LDAP ports (389/636/3268/3269) are hard-coded, so there is one instance per address.
  Any 127.0.0.0/8 address works without configuring the loopback interface: Samba is given
  ``interfaces = <host>/8`` (a bare ``interfaces = 127.0.0.2`` finds no interface and Samba
  listens on nothing). Use ``free_loopback_host()`` to pick an unused one.
* Samba's stdin is a pipe held by this process: Samba exits on EOF, so a crashed or killed test
  process does not leave a DC behind.
* Nothing is written outside the instance directory, the template directory and its lock file.

Requirements: root (Samba binds ports < 1024 and sets NT ACL xattrs when provisioning), the Debian
packages ``samba``, ``samba-common-bin``, ``samba-ad-provision`` and the ``openssl`` CLI.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import ipaddress
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
from ldap3.core.exceptions import LDAPException

__all__ = [
    "ADMIN_PASSWORD",
    "BASE_DN",
    "DOMAIN",
    "REALM",
    "SambaDC",
    "SambaInfo",
    "free_loopback_host",
    "require_samba",
    "template_dir",
]

REALM = "EXAMPLE.TEST"
DOMAIN = "EXAMPLE"
BASE_DN = "DC=example,DC=test"
ADMIN_DN = f"CN=Administrator,CN=Users,{BASE_DN}"
ADMIN_PASSWORD = "Adm1n!Samba-Test-Pw"
OUS = ("People", "Groups", "Quarantine")

# Bump when the template recipe changes; it is part of the default template path and of the stamp.
TEMPLATE_VERSION = 1
TEMPLATE_ENV = "SCIM_BRIDGE_SAMBA_TEMPLATE"
_STAMP = "template.json"
_INSTANCE_PREFIX = "scim-bridge-samba-"  # + mkdtemp suffix (the template has no owner.pid)
_OWNER = "owner.pid"  # in default-location instance dirs: pid of the Python process
_LDAP_PORTS = (389, 636, 3268, 3269)
_SAMBA_CANDIDATES = ("/usr/sbin/samba", "/usr/local/sbin/samba", "/usr/local/samba/sbin/samba")
_SCHEMA_DIR = Path("/usr/share/samba/setup/ad-schema")
_INSTALL_HINT = (
    "install the Debian packages with: "
    "apt-get install -y samba samba-common-bin samba-ad-provision openssl"
)

# Subdirectories of a provisioned directory; every Samba path option points into one of them.
_SUBDIRS = ("etc", "private", "state", "cache", "lock", "run", "log", "bind-dns", "tls")


@dataclass(frozen=True)
class SambaInfo:
    """Connection facts of a running SambaDC."""

    url: str  # ldaps://HOST:636
    ldap_url: str  # ldap://HOST:389 (simple bind there is refused: strongerAuthRequired)
    host: str
    base_dn: str
    realm: str
    domain: str  # NetBIOS domain name
    people_dn: str
    groups_dn: str
    quarantine_dn: str
    bind_dn: str  # Administrator
    bind_password: str
    ca_file: str  # PEM of the CA that signed the server certificate
    directory: str  # the instance directory (smb.conf in etc/, samba.log at the top)


# --------------------------------------------------------------------------------------------
# environment checks and small helpers


def _samba_binary() -> str | None:
    found = shutil.which("samba")
    if found:
        return found
    for candidate in _SAMBA_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def require_samba() -> None:
    """Raise RuntimeError with an actionable message unless a Samba AD DC can be run here."""
    problems = []
    if _samba_binary() is None:
        problems.append("the `samba` daemon is not installed (Debian package `samba`)")
    if shutil.which("samba-tool") is None:
        problems.append("`samba-tool` is not installed (Debian package `samba-common-bin`)")
    if not _SCHEMA_DIR.is_dir():
        problems.append(
            f"the AD schema files ({_SCHEMA_DIR}) are missing (Debian package `samba-ad-provision`;"
            " without it `samba-tool domain provision` fails)"
        )
    if shutil.which("openssl") is None:
        problems.append("the `openssl` command line tool is not installed")
    if problems:
        raise RuntimeError(f"cannot run a Samba AD DC: {'; '.join(problems)}; {_INSTALL_HINT}")
    if os.geteuid() != 0:
        raise RuntimeError(
            "cannot run a Samba AD DC: must run as root (provisioning sets NT ACL xattrs and "
            "Samba binds the fixed LDAP ports 389/636)"
        )


def template_dir() -> Path:
    """Where the provisioned template is cached (env SCIM_BRIDGE_SAMBA_TEMPLATE overrides)."""
    default = Path(tempfile.gettempdir()) / f"scim-bridge-samba-template-v{TEMPLATE_VERSION}"
    return Path(os.environ.get(TEMPLATE_ENV) or default)


def _check_host(host: str) -> str:
    try:
        addr = ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(f"host must be an IPv4 address such as 127.0.0.2, not {host!r}") from None
    if not addr.is_loopback:
        raise ValueError(f"host must be a loopback address (127.0.0.0/8), not {host}")
    return str(addr)


def _port_in_use(host: str, port: int) -> bool:
    """True if (host, port) cannot be bound now (someone listens there or on 0.0.0.0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_loopback_host(start: int = 2, stop: int = 254) -> str:
    """First address 127.0.0.START..127.0.0.STOP whose LDAP ports are all bindable.

    Needs root (ports < 1024). Racy between concurrent processes: the loser's start() fails with
    a RuntimeError naming the busy address.
    """
    for last in range(start, stop + 1):
        host = f"127.0.0.{last}"
        if not any(_port_in_use(host, port) for port in _LDAP_PORTS):
            return host
    raise RuntimeError(f"no free loopback address in 127.0.0.{start}-127.0.0.{stop}")


def _check_ports_free(host: str) -> None:
    busy = [p for p in _LDAP_PORTS if _port_in_use(host, p)]
    if busy:
        try:
            hint = f"e.g. SambaDC(host={free_loopback_host()!r})"
        except RuntimeError:
            hint = "none of 127.0.0.2-254 is free either"
        raise RuntimeError(
            f"{host} ports {busy} are already in use (another Samba/LDAP server?); "
            f"Samba's LDAP ports are fixed, so use another loopback address: {hint}"
        )


def _run(cmd: list[str], what: str, log: Path | None = None, timeout: float = 300) -> None:
    proc = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
    )
    out = proc.stdout.decode("utf-8", "replace")
    if log is not None:
        log.write_text(out)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{_tail(out)}")


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _make_ca(tls: Path) -> None:
    _run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "3650", "-subj", "/CN=scim-ldap-bridge Samba test CA",
            "-keyout", str(tls / "ca.key"), "-out", str(tls / "ca.crt"),
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ],
        "openssl (test CA)",
    )  # fmt: skip
    (tls / "ca.key").chmod(0o600)


def _make_server_cert(tls: Path, host: str) -> None:
    """(Re)issue tls/server.{key,crt} for DNS:localhost + IP:host, signed by tls/ca.*."""
    key, csr, crt, ext = (tls / n for n in ("server.key", "server.csr", "server.crt", "ext.cnf"))
    ext.write_text(
        f"subjectAltName=DNS:localhost,DNS:dc1.{REALM.lower()},IP:{host}\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _run(
        [
            "openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(csr),
        ],
        "openssl (server key)",
    )  # fmt: skip
    _run(
        [
            "openssl", "x509", "-req", "-in", str(csr), "-CA", str(tls / "ca.crt"),
            "-CAkey", str(tls / "ca.key"), "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
            "-days", "3650", "-extfile", str(ext), "-out", str(crt),
        ],
        "openssl (server certificate)",
    )  # fmt: skip
    key.chmod(0o600)  # Samba refuses a key file readable by others


def _samba_version() -> str:
    proc = subprocess.run(
        [_samba_binary() or "samba", "--version"], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip()


def _relocate(directory: Path, old: str, host: str) -> None:
    """Point etc/smb.conf at DIRECTORY (copied from OLD) and bind it to HOST only."""
    conf = directory / "etc" / "smb.conf"
    text = conf.read_text().replace(old, str(directory))
    text = re.sub(r"(?m)^(\s*interfaces\s*=).*$", rf"\1 {host}/8", text)
    conf.write_text(text)


# --------------------------------------------------------------------------------------------
# the server process


class _Process:
    """One `samba -i` process on DIRECTORY (provisioned, relocated, with certificates)."""

    def __init__(self, directory: Path, host: str) -> None:
        self.directory = directory
        self.host = host
        self.log = directory / "samba.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float) -> None:
        _check_ports_free(self.host)
        with open(self.log, "ab") as log:
            # stdin=PIPE on purpose: `samba -i` exits on EOF, i.e. when this process dies.
            self.proc = subprocess.Popen(
                [
                    _samba_binary() or "samba", "-i", "-M", "single", "--no-process-group",
                    "-s", str(self.directory / "etc" / "smb.conf"),
                    "--option=server services = ldap",
                ],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                start_new_session=True,
            )  # fmt: skip
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"samba exited with status {self.proc.returncode} during start-up; "
                    f"log {self.log}:\n{self.log_tail()}"
                )
            try:
                conn = admin_connection(self.host, str(self.directory / "tls" / "ca.crt"))
                conn.unbind()
                return
            except LDAPException as exc:
                last_error = exc
                time.sleep(0.05)
        raise RuntimeError(
            f"samba on {self.host} did not answer an LDAPS bind within {timeout:.0f} s "
            f"(last error: {last_error}); log {self.log}:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 10) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return _tail(self.log.read_text(errors="replace"), lines)
        except OSError as exc:
            return f"(no log: {exc})"


def admin_connection(host: str, ca_file: str, timeout: float = 5) -> ldap3.Connection:
    """A bound LDAPS connection as Administrator (no schema: raises on failure)."""
    tls = ldap3.Tls(ca_certs_file=ca_file, validate=ssl.CERT_REQUIRED, valid_names=["localhost"])
    server = ldap3.Server(host, 636, use_ssl=True, tls=tls, get_info=ldap3.NONE,
                          connect_timeout=timeout)  # fmt: skip
    return ldap3.Connection(
        server, ADMIN_DN, ADMIN_PASSWORD, auto_bind=True, raise_exceptions=True,
        receive_timeout=timeout,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# the template


def _template_complete(tpl: Path, samba_version: str) -> dict | None:
    try:
        stamp = json.loads((tpl / _STAMP).read_text())
    except (OSError, ValueError):
        return None
    if stamp.get("version") != TEMPLATE_VERSION or stamp.get("samba_version") != samba_version:
        return None
    return stamp


def _provision(build: Path, host: str) -> None:
    for sub in _SUBDIRS:
        (build / sub).mkdir(parents=True, exist_ok=True)
    (build / "etc" / "empty.conf").write_text("")
    _make_ca(build / "tls")
    _make_server_cert(build / "tls", host)
    d = str(build)
    options = {
        "netbios name": "DC1",
        "interfaces": f"{host}/8",
        "bind interfaces only": "yes",
        "server services": "ldap",
        "private dir": f"{d}/private",
        "state directory": f"{d}/state",
        "cache directory": f"{d}/cache",
        "lock directory": f"{d}/lock",
        "pid directory": f"{d}/run",
        "ncalrpc dir": f"{d}/run/ncalrpc",
        "winbindd socket directory": f"{d}/run/winbindd",
        "ntp signd socket directory": f"{d}/run/ntp_signd",
        "binddns dir": f"{d}/bind-dns",
        "log file": f"{d}/log/%m.log",
        "tls enabled": "yes",
        "tls keyfile": f"{d}/tls/server.key",
        "tls certfile": f"{d}/tls/server.crt",
        "tls cafile": f"{d}/tls/ca.crt",
        "ldb:nosync": "true",
    }
    _run(
        [
            "samba-tool", "domain", "provision", "-s", f"{d}/etc/empty.conf", f"--targetdir={d}",
            f"--realm={REALM}", f"--domain={DOMAIN}", f"--adminpass={ADMIN_PASSWORD}",
            "--server-role=dc", "--dns-backend=NONE", "--use-rfc2307", "--host-name=dc1",
            f"--host-ip={host}",
            *(f"--option={k}={v}" for k, v in options.items()),
        ],
        "samba-tool domain provision",
        log=build / "provision.log",
    )  # fmt: skip


def _customise(build: Path, host: str, timeout: float) -> None:
    """Run the freshly provisioned domain once: OUs and password policy, over LDAPS."""
    proc = _Process(build, host)
    proc.start(timeout)
    try:
        conn = admin_connection(host, str(build / "tls" / "ca.crt"))
        for ou in OUS:
            conn.add(f"OU={ou},{BASE_DN}", ["top", "organizationalUnit"])
        # Keep complexity (pwdProperties=1) and min length 7 as in AD; allow immediate re-sets
        # of the same password and never expire (Administrator is not DONT_EXPIRE_PASSWD, so a
        # template older than 42 days would otherwise lock the fixture out).
        conn.modify(
            BASE_DN,
            {
                "minPwdAge": [(ldap3.MODIFY_REPLACE, ["0"])],
                "pwdHistoryLength": [(ldap3.MODIFY_REPLACE, ["0"])],
                "maxPwdAge": [(ldap3.MODIFY_REPLACE, ["-9223372036854775808"])],
            },
        )
        conn.unbind()
    finally:
        proc.stop()


def _ensure_template(host: str, timeout: float) -> tuple[Path, dict, float | None]:
    """Return (template dir, stamp, seconds spent building or None if it was cached)."""
    tpl = template_dir()
    samba_version = _samba_version()
    stamp = _template_complete(tpl, samba_version)
    if stamp is not None:
        return tpl, stamp, None
    tpl.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{tpl}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        stamp = _template_complete(tpl, samba_version)
        if stamp is not None:
            return tpl, stamp, None
        t0 = time.monotonic()
        if tpl.exists():  # incomplete or from another Samba version / recipe
            stale = tpl.with_name(f"{tpl.name}.stale-{os.getpid()}")
            tpl.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        for leftover in tpl.parent.glob(f"{tpl.name}.build-*"):  # a killed build; we hold the lock
            shutil.rmtree(leftover, ignore_errors=True)
        build = Path(tempfile.mkdtemp(prefix=f"{tpl.name}.build-", dir=tpl.parent))
        try:
            _provision(build, host)
            _customise(build, host, timeout)
            for name in ("samba.log", "run/samba.pid"):
                (build / name).unlink(missing_ok=True)
            stamp = {
                "version": TEMPLATE_VERSION,
                "samba_version": samba_version,
                "provision_dir": str(build),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            (build / _STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
            build.rename(tpl)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
        return tpl, stamp, time.monotonic() - t0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale_instances() -> None:
    """Delete default-location instance dirs whose owning process is gone (hard-killed runs)."""
    for owner in Path(tempfile.gettempdir()).glob(f"{_INSTANCE_PREFIX}*/{_OWNER}"):
        try:
            pid = int(owner.read_text())
        except (OSError, ValueError):
            continue
        if not _pid_alive(pid):
            shutil.rmtree(owner.parent, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# public API

_live: weakref.WeakSet[SambaDC] = weakref.WeakSet()
_live_lock = threading.Lock()


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        instances = list(_live)
    for dc in instances:
        with contextlib.suppress(Exception):
            dc.stop()


class SambaDC:
    """A throwaway Samba AD DC on HOST:389/636, copied from the cached template.

    ``start()`` returns SambaInfo; ``stop()`` keeps the data, ``restart()`` = stop + start on the
    same data, ``cleanup()`` stops and deletes the instance directory. As a context manager it
    starts on enter (returning itself; see ``.info``) and cleans up on exit.

    ``workdir``: the instance directory (created if missing, must be empty); default: a fresh
    temporary directory. ``timings`` records the seconds spent in the last start (template
    build, copy, certificate, samba until LDAPS bind).
    """

    def __init__(self, host: str = "127.0.0.1", workdir: str | os.PathLike[str] | None = None,
                 *, start_timeout: float = 60) -> None:  # fmt: skip
        self.host = _check_host(host)
        self._workdir = Path(workdir) if workdir is not None else None
        self.start_timeout = start_timeout
        self.directory: Path | None = None
        self._owns_dir = False
        self._process: _Process | None = None
        self._info: SambaInfo | None = None
        self.timings: dict[str, float] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> SambaInfo:
        if self.running:
            assert self._info is not None
            return self._info
        require_samba()
        t0 = time.monotonic()
        timings: dict[str, float] = {}
        fresh = self.directory is None
        if fresh:
            _check_ports_free(self.host)  # fail before copying anything
            self._prepare(timings)
        assert self.directory is not None
        t1 = time.monotonic()
        self._process = _Process(self.directory, self.host)
        with _live_lock:
            _live.add(self)
        try:
            self._process.start(self.start_timeout)
        except BaseException:
            self._process = None
            if fresh:  # nothing worth keeping; a failed restart keeps its data for inspection
                self.cleanup()
            raise
        timings["samba_ready"] = time.monotonic() - t1
        timings["total"] = time.monotonic() - t0
        self.timings = timings
        self._info = self._make_info()
        return self._info

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    def restart(self) -> SambaInfo:
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        self.stop()
        directory, self.directory = self.directory, None
        self._info = None
        if directory is None:
            return
        if self._owns_dir:
            shutil.rmtree(directory, ignore_errors=True)
        else:  # a caller-supplied, pre-existing (empty) workdir: empty it, keep it
            for child in directory.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)

    def __enter__(self) -> SambaDC:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # -- state -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        proc = self._process.proc if self._process is not None else None
        return proc is not None and proc.poll() is None

    @property
    def info(self) -> SambaInfo:
        if self._info is None:
            raise RuntimeError("SambaDC is not started")
        return self._info

    @property
    def pid(self) -> int | None:
        proc = self._process.proc if self._process is not None else None
        return proc.pid if proc is not None else None

    def log_tail(self, lines: int = 40) -> str:
        return self._process.log_tail(lines) if self._process is not None else ""

    def connection(self, **kwargs: object) -> ldap3.Connection:
        """A bound LDAPS connection as Administrator; extra kwargs go to ldap3.Connection."""
        info = self.info
        tls = ldap3.Tls(ca_certs_file=info.ca_file, validate=ssl.CERT_REQUIRED,
                        valid_names=["localhost"])  # fmt: skip
        server = ldap3.Server(info.host, 636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
        options: dict = {"auto_bind": True, "raise_exceptions": False, **kwargs}
        return ldap3.Connection(server, info.bind_dn, info.bind_password, **options)

    # -- internals ---------------------------------------------------------------------------

    def _prepare(self, timings: dict[str, float]) -> None:
        t0 = time.monotonic()
        tpl, stamp, built = _ensure_template(self.host, self.start_timeout)
        if built is not None:
            timings["template_build"] = built
        if self._workdir is None:
            _sweep_stale_instances()
            directory = Path(tempfile.mkdtemp(prefix=_INSTANCE_PREFIX))
            (directory / _OWNER).write_text(str(os.getpid()))
            self._owns_dir = True
        else:
            directory = self._workdir.resolve()
            self._owns_dir = not directory.exists()
            directory.mkdir(parents=True, exist_ok=True)
            if any(directory.iterdir()):
                raise RuntimeError(f"workdir {directory} is not empty")
        self.directory = directory
        t1 = time.monotonic()
        try:
            _run(["cp", "-a", f"{tpl}/.", f"{directory}/"], "copying the Samba template")
            timings["copy"] = time.monotonic() - t1
            (directory / _STAMP).unlink(missing_ok=True)
            _relocate(directory, stamp["provision_dir"], self.host)
            t2 = time.monotonic()
            _make_server_cert(directory / "tls", self.host)
            timings["certificate"] = time.monotonic() - t2
        except BaseException:
            self.cleanup()
            raise
        timings["prepare"] = time.monotonic() - t0

    def _make_info(self) -> SambaInfo:
        assert self.directory is not None
        return SambaInfo(
            url=f"ldaps://{self.host}:636",
            ldap_url=f"ldap://{self.host}:389",
            host=self.host,
            base_dn=BASE_DN,
            realm=REALM,
            domain=DOMAIN,
            people_dn=f"OU=People,{BASE_DN}",
            groups_dn=f"OU=Groups,{BASE_DN}",
            quarantine_dn=f"OU=Quarantine,{BASE_DN}",
            bind_dn=ADMIN_DN,
            bind_password=ADMIN_PASSWORD,
            ca_file=str(self.directory / "tls" / "ca.crt"),
            directory=str(self.directory),
        )

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<SambaDC {self.host} {state} dir={self.directory}>"
