"""A private nslcd (nss-pam-ldapd) for the tests: ``getent``/``id`` as a Linux host would run
them against a test directory, WITHOUT touching this machine's NSS configuration.

Self-contained (standard library only, no pytest import)::

    from devtools.nslcd import Nslcd
    with Nslcd(uri=info.ldaps_url, base=info.base_dn, binddn=info.admin_dn,
               bindpw=info.admin_password, ca_file=info.ca_file) as host:
        host.getent("passwd", "alice")     # 'alice:*:10000:100:Alice:/home/alice:/bin/bash'
        host.run("id", "alice").stdout

How it works
------------
* The Debian packages ``nslcd`` and ``libnss-ldapd`` are fetched with ``apt-get download``
  (not installed: no maintainer script runs, no service starts, nothing lands under /etc or
  /usr) into a cache directory, by default ``/tmp/scim-bridge-nslcd-v<N>`` (environment
  ``SCIM_BRIDGE_NSLCD_CACHE`` overrides), and unpacked there with ``dpkg -x`` under an flock.
  ``.ci/run`` fetches them ahead (``python -m devtools.nslcd fetch``); a missing cache is
  fetched on first use.  nslcd's libraries (libldap, GnuTLS, Kerberos) come with slapd and
  ldap-utils, which the suites need anyway.
* :meth:`Nslcd.start` runs the unpacked ``nslcd -d`` (foreground, debug log to
  ``nslcd.log``) as root in a private mount namespace (``unshare --mount --propagation
  private``).  Inside it, and only there: ``/etc`` is an overlay (the real /etc read-only below,
  a scratch directory above) holding our ``nslcd.conf`` and an ``nsswitch.conf`` with
  ``passwd: files ldap`` and ``group: files ldap``; ``/run`` is a fresh tmpfs, so nslcd's
  compiled-in socket ``/run/nslcd/socket`` is private and no host nscd answers in its place.
  The mounts vanish with the namespace when nslcd exits.
* :meth:`Nslcd.run` runs a command in that namespace (``nsenter --mount --target <nslcd>``)
  with ``LD_LIBRARY_PATH`` pointing at the unpacked ``libnss_ldap.so.2``, so glibc's NSS finds
  the module there (getent and id are not setuid, so the variable is honoured).
* nslcd binds with the DN and password given (``binddn``/``bindpw`` in a 0600 nslcd.conf) over
  the URI given (``ldaps://`` with ``tls_cacertfile``), with the caches it has switched off
  (``cache dn2uid 0 0``) so every lookup reaches the directory.  Everything else is nslcd's
  default: the filters and attribute maps of nslcd.conf(5).

Needs: root (mount namespaces, overlayfs, tmpfs), util-linux ``unshare``/``nsenter``,
``dpkg``, ``apt-get`` (for the first fetch only) and getent/id (libc-bin, coreutils).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path

__all__ = ["PACKAGES", "Nslcd", "cache_dir", "ensure_unpacked", "require_nslcd"]

#: bump when the unpack layout changes: it is part of the default cache path
CACHE_VERSION = 1
CACHE_ENV = "SCIM_BRIDGE_NSLCD_CACHE"
PACKAGES = ("nslcd", "libnss-ldapd")
_START_TIMEOUT = float(os.environ.get("NSLCD_START_TIMEOUT", "15"))
_INSTALL_HINT = (
    "fetch the packages (not installed, only unpacked) with `python -m devtools.nslcd fetch` "
    "or run `.ci/run`"
)


def cache_dir() -> Path:
    """Where the .deb files and the unpacked tree are kept (env SCIM_BRIDGE_NSLCD_CACHE)."""
    default = Path(tempfile.gettempdir()) / f"scim-bridge-nslcd-v{CACHE_VERSION}"
    return Path(os.environ.get(CACHE_ENV) or default)


def _multiarch() -> str:
    try:
        out = subprocess.run(
            ["dpkg-architecture", "-qDEB_HOST_MULTIARCH"], capture_output=True, text=True
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except OSError:
        pass
    machine = os.uname().machine
    return {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}.get(
        machine, f"{machine}-linux-gnu"
    )


def _unpacked(root: Path) -> tuple[Path, Path] | None:
    """(nslcd binary, directory holding libnss_ldap.so.2) when the tree is complete."""
    binary = root / "usr" / "sbin" / "nslcd"
    for libdir in (root / "lib" / _multiarch(), root / "usr" / "lib" / _multiarch()):
        if (libdir / "libnss_ldap.so.2").is_file() and binary.is_file():
            return binary, libdir
    return None


def fetch(cache: Path | None = None) -> list[Path]:
    """``apt-get download`` the packages into the cache (skipped when their .deb files are
    there).  Downloads only: nothing is installed."""
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    debs = [next(iter(sorted(cache.glob(f"{p}_*.deb"))), None) for p in PACKAGES]
    if all(debs):
        return [d for d in debs if d is not None]
    if shutil.which("apt-get") is None:
        raise RuntimeError(f"cannot fetch {', '.join(PACKAGES)}: apt-get not found")
    proc = subprocess.run(
        ["apt-get", "download", "-q", *PACKAGES],
        cwd=cache,
        capture_output=True,
        text=True,
        timeout=300,
    )
    debs = [next(iter(sorted(cache.glob(f"{p}_*.deb"))), None) for p in PACKAGES]
    if proc.returncode != 0 or not all(debs):
        raise RuntimeError(
            f"`apt-get download {' '.join(PACKAGES)}` failed (exit {proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[-500:]}"
        )
    return [d for d in debs if d is not None]


def ensure_unpacked(cache: Path | None = None) -> tuple[Path, Path]:
    """(nslcd binary, libnss_ldap directory), fetching and unpacking under an flock."""
    cache = cache or cache_dir()
    root = cache / "root"
    found = _unpacked(root)
    if found:
        return found
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be unpacking right now
        found = _unpacked(root)
        if found:
            return found
        debs = fetch(cache)
        build = Path(tempfile.mkdtemp(prefix="root.build-", dir=cache))
        try:
            for deb in debs:
                proc = subprocess.run(["dpkg", "-x", str(deb), str(build)], capture_output=True)
                if proc.returncode != 0:
                    raise RuntimeError(f"dpkg -x {deb.name} failed: {proc.stderr.decode()[-300:]}")
            if root.exists():
                shutil.rmtree(root)
            build.rename(root)
        finally:
            shutil.rmtree(build, ignore_errors=True)
    found = _unpacked(root)
    if not found:
        raise RuntimeError(f"{root} holds no usr/sbin/nslcd and libnss_ldap.so.2 after unpacking")
    return found


def require_nslcd() -> None:
    """Raise RuntimeError (with a hint) unless a private nslcd can run here.  Fetches and
    unpacks the packages when the cache is empty."""
    problems = []
    if os.geteuid() != 0:
        problems.append("must run as root (a private mount namespace with overlay and tmpfs)")
    for tool in ("unshare", "nsenter", "dpkg", "getent", "id"):
        if shutil.which(tool) is None:
            problems.append(f"`{tool}` not found")
    if problems:
        raise RuntimeError(f"cannot run a private nslcd: {'; '.join(problems)}")
    try:
        ensure_unpacked()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"nslcd is not available: {exc}; {_INSTALL_HINT}") from exc


_live: weakref.WeakSet[Nslcd] = weakref.WeakSet()


@atexit.register
def _cleanup_all() -> None:
    for host in list(_live):
        with contextlib.suppress(Exception):
            host.cleanup()


_NAMESPACE_SCRIPT = """\
set -e
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/upper,workdir=$1/work" /etc
cp "$1/nslcd.conf" /etc/nslcd.conf
chmod 600 /etc/nslcd.conf
cp "$1/nsswitch.conf" /etc/nsswitch.conf
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/nslcd
exec "$2" -d
"""


class Nslcd:
    """One private nslcd against one directory; see the module doc.

    ``start()`` returns once nslcd's socket answers; ``run(*argv)`` runs a command inside the
    namespace; ``getent(db, key)`` is the line or None; ``stop()`` ends nslcd (and with it
    the namespace); ``cleanup()`` also removes the scratch directory.  A context manager."""

    def __init__(
        self,
        *,
        uri: str,
        base: str,
        binddn: str,
        bindpw: str,
        ca_file: str | None = None,
        workdir: Path | None = None,
    ) -> None:
        self._conf = {"uri": uri, "base": base, "binddn": binddn, "bindpw": bindpw}
        self._ca_file = ca_file
        self._workdir = Path(workdir) if workdir is not None else Path(tempfile.gettempdir())
        self.directory: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._libdir: Path | None = None

    @property
    def log_path(self) -> Path:
        if self.directory is None:
            raise RuntimeError("nslcd has not been started")
        return self.directory / "nslcd.log"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, RuntimeError):
            return ""

    def searches(self) -> list[str]:
        """The LDAP filters nslcd has sent so far, from its debug log (in order)."""
        out = []
        for line in self.log_text().splitlines():
            start = line.find('filter="')
            if "myldap_search(" in line and start >= 0:
                out.append(line[start + len('filter="') : line.rfind('"')])
        return out

    def start(self) -> Nslcd:
        binary, self._libdir = ensure_unpacked()
        self.directory = Path(tempfile.mkdtemp(prefix="scim-bridge-nslcd-", dir=self._workdir))
        for sub in ("upper", "work"):
            (self.directory / sub).mkdir()
        lines = [f"{k} {v}" for k, v in self._conf.items()]
        if self._ca_file:
            lines += [f"tls_cacertfile {self._ca_file}", "tls_reqcert demand"]
        lines += ["cache dn2uid 0 0", "bind_timelimit 5", "timelimit 10", "reconnect_retrytime 1"]
        conf = self.directory / "nslcd.conf"
        conf.write_text("\n".join(lines) + "\n")
        conf.chmod(0o600)
        (self.directory / "nsswitch.conf").write_text("passwd: files ldap\ngroup: files ldap\n")
        log = open(self.directory / "nslcd.log", "wb")  # noqa: SIM115 (closed by the child)
        try:
            self._proc = subprocess.Popen(
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    _NAMESPACE_SCRIPT,
                    "nslcd-namespace",
                    str(self.directory),
                    str(binary),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "LD_LIBRARY_PATH": str(self._libdir)},
            )
        finally:
            log.close()
        _live.add(self)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"nslcd exited with {self._proc.returncode}: {self.log_text()[-1500:]}"
                )
            probe = self._nsenter(["test", "-S", "/run/nslcd/socket"], check=False)
            if probe.returncode == 0:
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nslcd did not open its socket in time: {self.log_text()[-1500:]}")

    def _nsenter(self, argv: list[str], *, check: bool) -> subprocess.CompletedProcess[str]:
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError("nslcd is not running")
        env = {**os.environ, "LD_LIBRARY_PATH": str(self._libdir)}
        return subprocess.run(
            ["nsenter", "--mount", "--target", str(self._proc.pid), *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=check,
        )

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """``argv`` inside the namespace (glibc resolving through nslcd)."""
        return self._nsenter(list(argv), check=False)

    def getent(self, database: str, key: str) -> str | None:
        """``getent DATABASE KEY``'s line, or None when not found (exit 2)."""
        proc = self.run("getent", database, key)
        if proc.returncode == 2:
            return None
        if proc.returncode != 0:
            raise RuntimeError(f"getent {database} {key} -> {proc.returncode}: {proc.stderr}")
        return proc.stdout.rstrip("\n")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def cleanup(self) -> None:
        self.stop()
        if self.directory is not None and not os.environ.get("NSLCD_KEEP"):
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Nslcd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def main(argv: list[str]) -> int:
    """``python -m devtools.nslcd fetch``: download and unpack the packages into the cache."""
    if argv[1:] != ["fetch"]:
        print("usage: python -m devtools.nslcd fetch", file=sys.stderr)
        return 2
    try:
        binary, libdir = ensure_unpacked()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    print(f"nslcd: {binary}\nlibnss_ldap.so.2: {libdir}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main(sys.argv))
