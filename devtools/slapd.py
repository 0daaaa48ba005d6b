"""Throwaway OpenLDAP (slapd 2.5) servers for the integration tests.

Self-contained: standard library + ldap3 only, no pytest import, so fixtures, benchmarks
and ad-hoc scripts can all use it::

    from devtools.slapd import Slapd
    from devtools.slapd_ldif import generate_seed_ldif

    with Slapd(seed_ldif=generate_seed_ldif(users=1000, groups=10, members_per_group=20)) as s:
        info = s.info                 # SlapdInfo: urls, DNs, passwords, CA file, ports
        ...                           # s.stop() / s.start() / s.restart() / s.kill()

    s = Slapd(); info = s.start(); ...; s.stop(); s.cleanup()    # without ``with``

What an instance is
-------------------
* A fresh directory ``/tmp/slapd-XXXXXXXX`` (``workdir`` = another parent) holding
  ``slapd.d/`` (cn=config), ``data/`` (back_mdb), ``tls/`` (CA + server cert) and
  ``slapd.log`` (slapd's stderr at ``-d none``: errors and "slapd starting" only; set env
  ``SLAPD_DEBUG=stats`` for a verbose log).  ``-d 0`` would print nothing at all, not even
  why a start failed.
* All paths in cn=config are *relative* and slapd/slapadd run with the instance directory as
  cwd, so a built directory is relocatable: once per process a template (config + certs +
  base entries, via ``slapadd`` while stopped) is built and every instance is a ``cp -a`` of
  it.  Seeded templates are cached as well (key: SHA-256 of the LDIF, LRU of 4), so another
  instance with the same seed costs one ``cp -a`` instead of a ``slapadd``.
* Listens on ``ldap://127.0.0.1:PORT``, ``ldaps://127.0.0.1:LDAPS_PORT`` and
  ``ldapi://<socket>``.  Ports are random, below the kernel's ephemeral range (so an outgoing
  connection cannot take them while an instance is stopped for a restart), checked free
  before use; a first start that loses a port race is retried with new ports.
  ``stop()``/``start()``/``restart()`` keep ports and data; ``kill()`` is SIGKILL (LMDB keeps
  every committed write: verified by the tests).
* ldapi + SASL EXTERNAL as the current uid/gid has ``manage`` on cn=config, so tests can
  change the configuration at runtime.  ldap3 needs ``sasl_credentials=""`` for EXTERNAL
  (``None`` ends in saslBindInProgress).
* The TLS certificate (EC P-256, signed by a per-process test CA = ``SlapdInfo.ca_file``)
  carries ``DNS:localhost, DNS:<hostname>, IP:127.0.0.1``.  With Python 3.11 + ldap3 2.9.1,
  ``Tls(ca_certs_file=info.ca_file, validate=ssl.CERT_REQUIRED)`` validates
  ``ldaps://127.0.0.1`` through the IP SAN; StartTLS on ``url`` works too.  (Python >= 3.12:
  ldap3's fallback ``match_hostname`` ignores IP SANs; use ``valid_names=["localhost"]``.)
* Instances still alive at interpreter exit are killed and their directories removed
  (``SLAPD_KEEP=1`` keeps the directories for post-mortem); templates are removed too.
* Timings on the 2-vCPU dev VM (heavily loaded by parallel sessions, load avg 5-8):
  first start in a process (certs + template) 0.2-0.7 s, every further fresh start
  0.1-0.2 s (slapd itself answers ~40 ms after exec), stop 20-70 ms, start after stop
  0.06-0.16 s.  Seeded first starts (slapadd with the substring indexes dominates):
  1000 users 0.5 s, 10k users 5 s, 100k users 53 s under that load (~12-15 s idle, see
  the reference notes); the same seed again (cached template): 0.2 / 0.25 / 0.8 s.
  ``generate_seed_ldif(100_000, ...)``: 0.65-1.5 s.

The directory's content and configuration (suffix, accounts, overlays, limits, ACLs, the facts
the fixture tests verify) and the seed generator are in :mod:`devtools.slapd_ldif`.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import hashlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import ldap3

from devtools.slapd_ldif import (
    ADMIN_DN,
    ADMIN_PASSWORD,
    BASE_DN,
    BIND_DN,
    BIND_PASSWORD,
    GROUPS_DN,
    MODULES,
    PEOPLE_DN,
    base_ldif,
    config_ldif,
)

__all__ = ["Slapd", "SlapdInfo", "require_slapd"]

_SBIN_DIRS = (
    "/usr/sbin",
    "/usr/local/sbin",
    "/sbin",
    "/usr/local/libexec",
    "/usr/libexec",
)
_MODULE_DIRS = (
    "/usr/lib/ldap",
    "/usr/lib64/openldap",
    "/usr/lib/openldap",
    "/usr/libexec/openldap",
    "/usr/local/libexec/openldap",
)
_SCHEMA_DIRS = (
    "/etc/ldap/schema",
    "/etc/openldap/schema",
    "/usr/local/etc/openldap/schema",
)
_INSTALL_HINT = (
    "Install OpenLDAP's server and tools, e.g. on Debian/Ubuntu: "
    "`sudo DEBIAN_FRONTEND=noninteractive apt-get install -y slapd ldap-utils openssl` "
    "(then stop the system service: `sudo service slapd stop`), or run `.ci/run`."
)
_START_TIMEOUT = float(os.environ.get("SLAPD_START_TIMEOUT", "20"))
_STOP_TIMEOUT = 10.0
_SUN_PATH_MAX = 100  # sizeof(sun_path) is 108 incl. NUL; keep a margin


@dataclass(frozen=True)
class SlapdInfo:
    """Everything a test needs to talk to one running instance."""

    url: str  # ldap://127.0.0.1:PORT
    ldaps_url: str  # ldaps://127.0.0.1:LDAPS_PORT
    ldapi_url: str  # ldapi://%2F...%2Fldapi  (SASL EXTERNAL as the current uid)
    base_dn: str
    people_dn: str
    groups_dn: str
    bind_dn: str  # the service account the bridge uses (cn=scim)
    bind_password: str
    admin_dn: str  # rootdn: ignores ACLs and size limits
    admin_password: str
    ca_file: str  # PEM of the test CA that signed the server certificate
    directory: str  # the instance directory (slapd.d/, data/, tls/, slapd.log)
    port: int
    ldaps_port: int


# --------------------------------------------------------------------------- binaries


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in _SBIN_DIRS:
        candidate = os.path.join(d, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _find_dir(candidates: tuple[str, ...], marker: str) -> str | None:
    for d in candidates:
        if os.path.exists(os.path.join(d, marker)):
            return d
    return None


def require_slapd() -> None:
    """Raise RuntimeError (with an install hint) unless slapd can be run here."""
    missing = [b for b in ("slapd", "slapadd", "openssl") if find_binary(b) is None]
    if missing:
        raise RuntimeError(
            f"OpenLDAP test server unavailable: {', '.join(missing)} not found in PATH or "
            f"{', '.join(_SBIN_DIRS)}. {_INSTALL_HINT}"
        )
    moddir = _find_dir(_MODULE_DIRS, "memberof.so")
    if moddir is None:
        raise RuntimeError(
            "OpenLDAP test server unavailable: slapd modules (memberof.so, ...) not found in "
            f"{', '.join(_MODULE_DIRS)}. {_INSTALL_HINT}"
        )
    absent = [m for m in MODULES if not os.path.exists(os.path.join(moddir, m + ".so"))]
    if absent:
        raise RuntimeError(
            f"OpenLDAP test server unavailable: modules {absent} missing in {moddir}. "
            f"{_INSTALL_HINT}"
        )
    if _find_dir(_SCHEMA_DIRS, "inetorgperson.ldif") is None:
        raise RuntimeError(
            "OpenLDAP test server unavailable: schema LDIFs (inetorgperson.ldif) not found "
            f"in {', '.join(_SCHEMA_DIRS)}. {_INSTALL_HINT}"
        )


def _run(cmd: list[str], cwd: Path | str, what: str, stdin: bytes | None = None) -> None:
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        input=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
        env=_tool_env(),
    )
    if proc.returncode != 0:
        out = proc.stdout.decode("utf-8", "replace")[-4000:]
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{out}")


def _tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env["LDAPCONF"] = "/dev/null"  # don't let /etc/ldap/ldap.conf interfere
    env.pop("LDAPRC", None)
    return env


# --------------------------------------------------------------------------- templates

_lock = threading.RLock()
_owner_pid = os.getpid()  # a forked child must not delete its parent's templates at exit
#: unseeded templates by (profile, config_readable)
_templates: dict[tuple[str, bool], Path] = {}
_seeded: collections.OrderedDict[str, Path] = collections.OrderedDict()
_SEEDED_CACHE_SIZE = 4
# Strong references: an instance dropped without cleanup() must still be stopped at exit.
_instances: set[Slapd] = set()


def _make_certs(tls: Path) -> None:
    tls.mkdir(parents=True, exist_ok=True)
    openssl = find_binary("openssl") or "openssl"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _run(
        [
            openssl,
            "req",
            "-x509",
            *ec,
            "-days",
            "3650",
            "-subj",
            "/CN=scim-ldap-bridge test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        tls,
        "openssl (CA)",
    )
    _run(
        [
            openssl,
            "req",
            *ec,
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        tls,
        "openssl (server CSR)",
    )
    sans = ["DNS:localhost", "IP:127.0.0.1"]
    host = socket.gethostname()
    if host and host != "localhost":
        sans.insert(1, f"DNS:{host}")
    (tls / "ext.cnf").write_text(
        f"subjectAltName={','.join(sans)}\nextendedKeyUsage=serverAuth\n"
        "keyUsage=critical,digitalSignature,keyAgreement\n"
    )
    _run(
        [
            openssl,
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ],
        tls,
        "openssl (server cert)",
    )
    os.chmod(tls / "server.key", 0o600)
    os.chmod(tls / "ca.key", 0o600)


def _build_template(profile: str = "tuned", config_readable: bool = False) -> Path:
    require_slapd()
    slapadd = find_binary("slapadd")
    assert slapadd
    moddir = _find_dir(_MODULE_DIRS, "memberof.so")
    schemadir = _find_dir(_SCHEMA_DIRS, "inetorgperson.ldif")
    assert moddir and schemadir
    d = Path(tempfile.mkdtemp(prefix="slapd-template-", dir="/tmp"))
    try:
        (d / "slapd.d").mkdir()
        (d / "data").mkdir()
        _make_certs(d / "tls")
        _run(
            [slapadd, "-n0", "-F", "slapd.d"],
            d,
            "slapadd (cn=config)",
            config_ldif(moddir, schemadir, profile, config_readable).encode(),
        )
        _run(
            [slapadd, "-q", "-n1", "-F", "slapd.d"],
            d,
            "slapadd (base entries)",
            base_ldif(profile).encode(),
        )
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise
    return d


def _copy_tree(src: Path, dst: Path) -> None:
    """``cp -a src/. dst/`` (dst exists)."""
    if not (src / "slapd.d").is_dir() or not dst.is_dir():
        raise RuntimeError(f"refusing to copy {src!s} -> {dst!s}: not a slapd template")
    _run(["cp", "-a", f"{src}/.", f"{dst}/"], "/", "cp -a")


def _populate(
    dst: Path,
    seed_ldif: str | None,
    profile: str = "tuned",
    config_readable: bool = False,
) -> None:
    """Fill ``dst`` with a copy of the (seeded) template; under the lock, so that the LRU
    cannot evict the template while it is being copied."""
    with _lock:
        _copy_tree(_template_dir(seed_ldif, profile, config_readable), dst)


def _template_dir(
    seed_ldif: str | None, profile: str = "tuned", config_readable: bool = False
) -> Path:
    with _lock:
        variant = (profile, config_readable)
        template = _templates.get(variant)
        if template is None or not template.is_dir():
            template = _templates[variant] = _build_template(profile, config_readable)
        if not seed_ldif:
            return template
        key = hashlib.sha256(f"{variant}{seed_ldif}".encode()).hexdigest()
        cached = _seeded.get(key)
        if cached is not None and cached.is_dir():
            _seeded.move_to_end(key)
            return cached
        d = Path(tempfile.mkdtemp(prefix="slapd-template-seeded-", dir="/tmp"))
        try:
            _copy_tree(template, d)
            slapadd = find_binary("slapadd")
            assert slapadd
            _run(
                [slapadd, "-q", "-n1", "-F", "slapd.d"],
                d,
                "slapadd (seed LDIF)",
                seed_ldif.encode("utf-8"),
            )
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        _seeded[key] = d
        while len(_seeded) > _SEEDED_CACHE_SIZE:
            _, old = _seeded.popitem(last=False)
            shutil.rmtree(old, ignore_errors=True)
        return d


def _cleanup_at_exit() -> None:
    if os.getpid() != _owner_pid:  # forked child: the instances are the parent's
        return
    for inst in list(_instances):
        try:
            inst.kill()
            if not os.environ.get("SLAPD_KEEP"):
                inst.cleanup()
        except Exception:
            pass
    with _lock:
        for d in [*_templates.values(), *_seeded.values()]:
            if d is not None:
                shutil.rmtree(d, ignore_errors=True)
        _seeded.clear()


atexit.register(_cleanup_at_exit)


# --------------------------------------------------------------------------- ports


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # slapd does the same
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(n: int) -> list[int]:
    """n distinct free ports on 127.0.0.1, preferably outside the ephemeral range (so no
    outgoing connection grabs them while an instance is stopped for a restart)."""
    lo, _hi = _ephemeral_range()
    ports: list[int] = []
    low, high = (10000, lo - 1) if lo > 11000 else (1024, lo - 1)
    for _ in range(500):
        if len(ports) == n:
            return ports
        p = random.randint(low, high) if high > low else 0
        if p == 0:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                p = s.getsockname()[1]
        if p not in ports and _port_is_free(p):
            ports.append(p)
    raise RuntimeError("could not find free TCP ports on 127.0.0.1")


# --------------------------------------------------------------------------- Slapd


class Slapd:
    """One throwaway slapd.  ``start()`` -> SlapdInfo; ``stop()``/``start()``/``restart()``
    keep ports and data; ``kill()`` = SIGKILL; ``cleanup()`` stops and removes the directory.

    ``workdir``: parent directory for the instance directory (default ``/tmp``).
    ``seed_ldif``: LDIF (e.g. from ``generate_seed_ldif``) loaded with ``slapadd -q`` before
    the first start; entries must lie below ``ou=people``/``ou=groups`` (the suffix, the OUs,
    the policy and cn=scim already exist).

    ``profile``: ``"tuned"`` (default: the configuration described in the module doc) or
    ``"bare"``: what a default install has -- back_mdb, the core/cosine/inetorgperson/nis
    schemas, no overlays (so no memberOf, ppolicy, sort/VLV, deref or refint), no default
    password policy entry, and only ``objectClass eq`` indexed; the same suffix, OUs, service
    account, ACLs and limits.  Seed it with ``generate_seed_ldif(..., member_of=False)``
    (its schema has no memberOf).
    ``config_readable``: also let the service account read the index and overlay settings
    in cn=config (``olcSuffix``, ``olcDbIndex``, ``olcOverlay``), as ``check-mapping
    --connect`` needs; default False (cn=config is invisible to it).

    As a context manager: ``with Slapd() as s:`` starts (``s.info``) and cleans up.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        seed_ldif: str | None = None,
        *,
        profile: str = "tuned",
        config_readable: bool = False,
    ) -> None:
        if profile not in ("tuned", "bare"):
            raise ValueError(f"profile must be 'tuned' or 'bare', not {profile!r}")
        self._workdir = Path(workdir) if workdir is not None else Path("/tmp")
        self._seed_ldif = seed_ldif
        self.profile = profile
        self._config_readable = config_readable
        self._dir: Path | None = None
        self._sockdir: Path | None = None  # only when dir is too long for sun_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._info: SlapdInfo | None = None
        self._log_offset = 0
        self.last_start_seconds: float | None = None

    # -- properties
    @property
    def info(self) -> SlapdInfo:
        if self._info is None:
            raise RuntimeError("Slapd has not been started")
        return self._info

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        if self._dir is None:
            raise RuntimeError("Slapd has not been started")
        return self._dir / "slapd.log"

    # -- lifecycle
    def start(self) -> SlapdInfo:
        """Start (first call: create the directory, seed, pick ports; later calls: same
        ports and data).  Returns once slapd answers a root DSE search."""
        if self.running:
            raise RuntimeError(f"slapd already running (pid {self.pid})")
        t0 = time.perf_counter()
        if self._info is None:
            self._create()
            for attempt in range(5):
                port, ldaps_port = pick_ports(2)
                self._info = self._make_info(port, ldaps_port)
                try:
                    self._launch()
                    break
                except _PortInUse:
                    if attempt == 4:
                        raise
        else:
            self._launch()
        self.last_start_seconds = time.perf_counter() - t0
        return self.info

    def stop(self) -> None:
        """SIGTERM and wait for exit (SIGKILL after 10 s)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL (simulated crash) and reap."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._proc = None

    def restart(self) -> SlapdInfo:
        """stop() + start(): same ports, same data."""
        if self._info is None:
            raise RuntimeError("Slapd has not been started")
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        """Stop (SIGKILL if needed) and remove the instance directory."""
        self.stop()
        for d in (self._dir, self._sockdir):
            if d is not None:
                shutil.rmtree(d, ignore_errors=True)
        self._dir = self._sockdir = None
        self._info = None
        _instances.discard(self)

    def __enter__(self) -> Slapd:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        where = self._info.url if self._info else "not started"
        return f"<Slapd {where} {state} dir={self._dir}>"

    # -- helpers for tests
    def connection(
        self, user: str | None = None, password: str | None = None, **kwargs: object
    ) -> ldap3.Connection:
        """A bound ldap3 Connection over ldap:// (default: the scim service account)."""
        info = self.info
        server = ldap3.Server(info.url, connect_timeout=5)
        return ldap3.Connection(
            server,
            user if user is not None else info.bind_dn,
            password if password is not None else info.bind_password,
            auto_bind=True,
            raise_exceptions=False,
            receive_timeout=30,
            **kwargs,
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- internals
    def _create(self) -> None:
        require_slapd()
        self._workdir.mkdir(parents=True, exist_ok=True)
        d = Path(tempfile.mkdtemp(prefix="slapd-", dir=self._workdir))
        try:
            _populate(d, self._seed_ldif, self.profile, self._config_readable)
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        self._dir = d
        _instances.add(self)
        if len(str(d / "ldapi")) > _SUN_PATH_MAX:
            self._sockdir = Path(tempfile.mkdtemp(prefix="sl-", dir="/tmp"))

    def _make_info(self, port: int, ldaps_port: int) -> SlapdInfo:
        assert self._dir is not None
        sock = (self._sockdir or self._dir) / "ldapi"
        return SlapdInfo(
            url=f"ldap://127.0.0.1:{port}",
            ldaps_url=f"ldaps://127.0.0.1:{ldaps_port}",
            ldapi_url="ldapi://" + quote(str(sock), safe=""),
            base_dn=BASE_DN,
            people_dn=PEOPLE_DN,
            groups_dn=GROUPS_DN,
            bind_dn=BIND_DN,
            bind_password=BIND_PASSWORD,
            admin_dn=ADMIN_DN,
            admin_password=ADMIN_PASSWORD,
            ca_file=str(self._dir / "tls" / "ca.crt"),
            directory=str(self._dir),
            port=port,
            ldaps_port=ldaps_port,
        )

    def _launch(self) -> None:
        info, d = self.info, self._dir
        assert d is not None
        slapd = find_binary("slapd")
        if slapd is None:
            require_slapd()
            raise RuntimeError("slapd not found")
        log_path = d / "slapd.log"
        with open(log_path, "ab") as log:
            self._log_offset = log.tell()
            log.write(f"==== starting slapd on {info.url} {info.ldaps_url}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                [
                    slapd,
                    "-d",
                    _debug_level(),
                    "-F",
                    "slapd.d",
                    "-h",
                    f"{info.url}/ {info.ldaps_url}/ {info.ldapi_url}",
                ],
                cwd=d,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_tool_env(),
                start_new_session=True,
            )
        deadline = time.monotonic() + _START_TIMEOUT
        announced = False  # "slapd starting" is printed once the listeners accept
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                tail = self._new_log_text()
                if "errno=98" in tail or "Address already in use" in tail:
                    raise _PortInUse(
                        f"slapd could not bind its ports (dir {d}).\n"
                        f"--- slapd output (tail) ---\n{tail}"
                    )
                raise RuntimeError(
                    f"slapd exited with code {code} during startup (dir {d}).\n"
                    f"--- slapd output (tail) ---\n{tail}"
                )
            if not announced:
                announced = "slapd starting" in self._new_log_text(1000) or _quiet_debug()
            if announced and _answers(info.url):
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"slapd did not answer on {info.url} within {_START_TIMEOUT:.0f} s "
                    f"(dir {d}).\n--- slapd output (tail) ---\n{self._new_log_text()}"
                )
            time.sleep(0.005)

    def _new_log_text(self, max_lines: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-max_lines:])


class _PortInUse(RuntimeError):
    pass


def _debug_level() -> str:
    # "none": only messages logged at level "any" (errors, "slapd starting") reach stderr;
    # "-d 0" would print nothing at all, not even why slapd failed to start.
    return os.environ.get("SLAPD_DEBUG", "none")


def _quiet_debug() -> bool:
    return _debug_level() in ("0", "")


def _answers(url: str) -> bool:
    # A new Server each time: ldap3 remembers a refused address as unavailable for a while.
    server = ldap3.Server(url, connect_timeout=1, get_info=ldap3.NONE)
    conn = ldap3.Connection(server, receive_timeout=1)
    try:
        conn.open()
        return bool(conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["1.1"]))
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            conn.unbind()
