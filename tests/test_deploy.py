"""Container and deployment files: every path the Dockerfile copies exists, the image runs as a
non-root user with the documented entrypoint, its HEALTHCHECK works against a real server, every
apt package exists in the pinned Debian release, the compose file's OpenLDAP (started here from
its own config files) passes check-mapping --connect, and the compose/Kubernetes examples agree
with the README (image tag, mapping path, client) and use settings the bridge reads."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import IN_CI, unavailable

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SETTINGS_SOURCE = (ROOT / "bridge" / "settings.py").read_text()
README = (ROOT / "README.md").read_text()


def instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_copies_existing_paths_and_runs_unprivileged() -> None:
    ins = instructions()
    stages = [rest for word, rest in ins if word == "FROM"]
    pinned = "python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE}"
    assert stages == [f"{pinned} AS builder", pinned]
    assert ("ARG", "DEBIAN_RELEASE=bookworm") in ins and ("ARG", "PYTHON_VERSION=3.11") in ins
    for word, rest in ins:
        if word == "COPY" and not rest.startswith("--from="):
            *sources, _dest = rest.split()
            for src in sources:
                assert (ROOT / src).exists(), f"COPY {src}: no such path"
    assert ("USER", "10001:10001") in ins
    assert json.loads(dict(ins)["ENTRYPOINT"]) == ["scim-ldap-bridge"]
    assert json.loads(dict(ins)["CMD"]) == ["serve", "--host", "0.0.0.0"]
    assert "libldap2-dev libsasl2-dev" in DOCKERFILE
    assert ("ARG", "LIBLDAP_PACKAGE=libldap-2.5-0") in ins  # bookworm's libldap runtime
    assert "--build-arg DEBIAN_RELEASE=trixie" in DOCKERFILE  # how to build on another release
    assert "org.opencontainers.image.title" in DOCKERFILE
    assert "COPY mappings/ /etc/scim-ldap-bridge/" in DOCKERFILE
    assert "PYTHONDONTWRITEBYTECODE=1" in DOCKERFILE  # read-only root filesystem


def healthcheck_script() -> str:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    cmd = re.search(r"HEALTHCHECK .*? CMD (\[.*\])", joined)
    assert cmd
    argv = json.loads(cmd.group(1))
    assert argv[:2] == ["python", "-c"]
    return str(argv[2])


def test_healthcheck_command_works_against_a_server() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BRIDGE_LDAP_URL": "",
        "BRIDGE_TOKEN": "t",
        "BRIDGE_PORT": str(port),
    }
    env.pop("BRIDGE_TLS_CERT", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import time

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        check = subprocess.run(
            [sys.executable, "-c", healthcheck_script()], env=env, capture_output=True, timeout=10
        )
        assert check.returncode == 0, check.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    dead = subprocess.run(
        [sys.executable, "-c", healthcheck_script()], env=env, capture_output=True, timeout=10
    )
    assert dead.returncode != 0


def env_names(doc: Any) -> set[str]:
    return {k for k in json.dumps(doc).replace('"', " ").split() if k.startswith("BRIDGE_")}


def test_settings_named_in_deploy_files_exist() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    k8s = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text()))
    for name in env_names(compose) | env_names(k8s):
        base = re.sub(r"_FILE$", "", name)
        if base.startswith("BRIDGE_TOKEN_"):
            continue  # named tokens: BRIDGE_TOKEN_<NAME>
        assert f'"{base}' in SETTINGS_SOURCE, f"{name} is not a setting"


def readme_image() -> str:
    """The image name:tag the README's ``docker build -t`` gives."""
    (tag,) = set(re.findall(r"docker build -t (\S+) \.", README))
    return tag


def test_readme_dockerfile_and_k8s_build_one_tag() -> None:
    tag = readme_image()
    assert tag.split(":")[1] == re.search(r'^version = "(.+)"', PYPROJECT, re.M).group(1)  # type: ignore[union-attr]
    assert f"docker build -t {tag} ." in DOCKERFILE
    assert f"docker build -t {tag} ." in (ROOT / "deploy" / "kubernetes.yaml").read_text()


PYPROJECT = (ROOT / "pyproject.toml").read_text()


def apt_check(*dockerfiles: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "check_apt_packages.py"), *map(str, dockerfiles)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_apt_package_exists_in_the_pinned_release(tmp_path: Path) -> None:
    if not IN_CI and apt_check().returncode == 2:
        pytest.skip("apt-cache cannot check here (not Debian bookworm, or no package lists)")
    ok = apt_check()
    assert ok.returncode == 0, ok.stderr
    assert "Dockerfile" in ok.stdout and "deploy/openldap/Dockerfile" in ok.stdout
    # the check fails on a name the release does not have (libldap-2.6-0 is not in bookworm)
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        DOCKERFILE.replace("LIBLDAP_PACKAGE=libldap-2.5-0", "LIBLDAP_PACKAGE=libldap-2.6-0")
    )
    failed = apt_check(bad)
    assert failed.returncode == 1
    assert "package 'libldap-2.6-0' does not exist in Debian bookworm" in failed.stderr
    unpinned = tmp_path / "Dockerfile.unpinned"
    unpinned.write_text(DOCKERFILE.replace("ARG DEBIAN_RELEASE=bookworm", ""))
    assert apt_check(unpinned).returncode == 1


def test_ci_runs_the_apt_check() -> None:
    assert "check_apt_packages.py" in (ROOT / ".ci" / "run").read_text()


def test_compose_example() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    bridge, ldap = compose["services"]["bridge"], compose["services"]["openldap"]
    assert bridge["read_only"] is True and bridge["build"] == ".."
    assert bridge["image"] == readme_image()
    env = bridge["environment"]
    assert env["BRIDGE_MAPPING"] == "/etc/scim-ldap-bridge/openldap.yaml"
    assert "COPY mappings/ /etc/scim-ldap-bridge/" in DOCKERFILE  # so that path exists
    assert env["BRIDGE_LDAP_CLIENT"] == "libldap"
    assert env["BRIDGE_BIND_DN"] == "cn=scim,dc=example,dc=org"
    # passwords need an encrypted connection: ldaps, trusting the CA that the directory's
    # entrypoint exports into a volume the bridge mounts
    assert env["BRIDGE_LDAP_URL"].startswith("ldaps://openldap")
    (ca_mount,) = [
        v for v in bridge["volumes"] if env["BRIDGE_LDAP_CA_FILE"].startswith(v.split(":")[1])
    ]
    assert ca_mount.endswith(":ro")
    export = ldap["environment"]["LDAP_CA_EXPORT_DIR"]
    assert f"{ca_mount.split(':')[0]}:{export}" in ldap["volumes"]
    # the directory is built from deploy/openldap/, not a third-party image
    assert ldap["build"] == "./openldap"
    assert "osixia" not in json.dumps(compose)
    for name in ("config.ldif", "base.ldif", "entrypoint.sh"):
        assert f"{name}" in (ROOT / "deploy" / "openldap" / "Dockerfile").read_text()
    assert set(ldap["secrets"]) <= set(compose["secrets"])
    assert set(bridge["secrets"]) <= set(compose["secrets"])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slapd
def test_compose_openldap_passes_check_mapping(tmp_path: Path) -> None:
    """deploy/openldap's own entrypoint and config files start a local slapd (other paths and
    port); the shipped openldap mapping must pass check-mapping --connect against it, with
    both clients, and the directory must offer server-side sorting (sssvlv)."""
    try:
        from devtools.slapd import _MODULE_DIRS, _find_dir, require_slapd

        require_slapd()
    except (ImportError, RuntimeError) as exc:
        unavailable(f"slapd is not available: {exc}")
    (tmp_path / "admin").write_text("admin-pw-1")
    (tmp_path / "bind").write_text("bind-pw-2")
    port, tls_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "SLAPD_DIR": str(tmp_path / "state"),
        "SLAPD_URLS": f"ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/",
        "LDAP_TLS_NAMES": "localhost",
        "LDAP_CA_EXPORT_DIR": str(tmp_path / "ca"),
        "SLAPD_USER": "",
        "SLAPD_MODULE_DIR": str(_find_dir(_MODULE_DIRS, "memberof.so")),
        "LDAP_ADMIN_PASSWORD_FILE": str(tmp_path / "admin"),
        "LDAP_SCIM_PASSWORD_FILE": str(tmp_path / "bind"),
        "LDAPCONF": "/dev/null",
    }
    slapd = subprocess.Popen(
        ["sh", str(ROOT / "deploy" / "openldap" / "entrypoint.sh")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, slapd)
        _wait_for_port(tls_port, slapd)
        from bridge.settings import example_mapping

        mapping = str(example_mapping("openldap"))
        ca_file = str(tmp_path / "ca" / "ca.crt")
        for client in ("ldap3", "libldap"):
            check = subprocess.run(
                [sys.executable, "-m", "bridge.cli", "check-mapping", "--connect", mapping],
                env={
                    **os.environ,
                    "PYTHONPATH": str(ROOT),
                    # as compose connects: ldaps, trusting the CA the entrypoint exported
                    "BRIDGE_LDAP_URL": f"ldaps://127.0.0.1:{tls_port}",
                    "BRIDGE_LDAP_CA_FILE": ca_file,
                    "BRIDGE_BIND_DN": "cn=scim,dc=example,dc=org",
                    "BRIDGE_BIND_PASSWORD": "bind-pw-2",
                    "BRIDGE_LDAP_CLIENT": client,
                },
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert check.returncode == 0, check.stdout + check.stderr
            assert "OK against" in check.stdout
            _create_with_password(tls_port, ca_file, client, mapping)
        import ldap3

        conn = ldap3.Connection(
            f"ldap://127.0.0.1:{port}", "cn=scim,dc=example,dc=org", "bind-pw-2", auto_bind=True
        )
        conn.search("", "(objectClass=*)", "BASE", attributes=["supportedControl"])
        controls = set(conn.entries[0].supportedControl.values)
        assert "1.2.840.113556.1.4.473" in controls  # sort (sssvlv)
        conn.unbind()
    finally:
        slapd.terminate()
        slapd.wait(timeout=10)


def _create_with_password(tls_port: int, ca_file: str, client: str, mapping: str) -> None:
    """An IdP create with a password through the bridge as compose configures it: accepted
    over ldaps (passwords are refused over plain LDAP), hashed by ppolicy, usable to bind."""
    import ldap3
    from starlette.testclient import TestClient

    from bridge.settings import Settings, Token
    from bridge.web.app import build_app

    settings = Settings(
        ldap_urls=(f"ldaps://127.0.0.1:{tls_port}",),
        ca_file=ca_file,
        bind_dn="cn=scim,dc=example,dc=org",
        bind_password="bind-pw-2",
        client=client,
        mapping=mapping,
        tokens=(Token("t", "compose-token"),),
        demo=False,
    )
    user = f"compose.{client}@example.org"
    with TestClient(build_app(settings), base_url="https://scim.test") as http:
        r = http.post(
            "/scim/v2/Users",
            headers={"Authorization": "Bearer compose-token"},
            json={
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": user,
                "name": {"givenName": "Compose", "familyName": client},
                "password": "Str0ng-Passw0rd!",
                "active": True,
            },
        )
        assert r.status_code == 201, r.text
    tls = ldap3.Tls(ca_certs_file=ca_file, validate=2)
    server = ldap3.Server("127.0.0.1", tls_port, use_ssl=True, tls=tls)
    admin = ldap3.Connection(server, "cn=scim,dc=example,dc=org", "bind-pw-2", auto_bind=True)
    admin.search("dc=example,dc=org", f"(uid={user})", attributes=["userPassword"])
    (entry,) = admin.entries
    assert entry.userPassword.value.startswith(b"{SSHA}")  # ppolicy hashed the clear text
    assert ldap3.Connection(server, entry.entry_dn, "Str0ng-Passw0rd!").bind()
    admin.unbind()


def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    import socket
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"slapd exited {proc.returncode}: {out}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("slapd did not listen")


def test_kubernetes_example() -> None:
    docs = {
        d["kind"]: d for d in yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text())
    }
    assert {"Secret", "Deployment", "Service", "PodDisruptionBudget"} <= set(docs)
    dep = docs["Deployment"]["spec"]
    assert dep["replicas"] >= 2
    (container,) = dep["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["envFrom"][0]["secretRef"]["name"] == docs["Secret"]["metadata"]["name"]
    svc = docs["Service"]["spec"]
    assert svc["selector"] == dep["selector"]["matchLabels"]
    assert container["image"] == readme_image()
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["BRIDGE_LDAP_CLIENT"] == "libldap"  # the image has python-ldap
    # several replicas share one cursor secret
    assert dep["replicas"] > 1 and docs["Secret"]["stringData"]["BRIDGE_CURSOR_SECRET"]
    # BRIDGE_MAPPING is a file of a mounted ConfigMap volume
    mapping = Path(env["BRIDGE_MAPPING"])
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in dep["template"]["spec"]["volumes"]}
    (name,) = [n for n, m in mounts.items() if mapping.parent == Path(m["mountPath"])]
    config_map = volumes[name]["configMap"]
    assert mapping.name in [i["path"] for i in config_map["items"]]
    assert f"create configmap {config_map['name']} --from-file={mapping.name}" in K8S_TEXT
    # HTTPS for the IdPs: an Ingress with TLS, routing the SCIM base path to the Service
    ingress = docs["Ingress"]["spec"]
    (tls,) = ingress["tls"]
    (rule,) = ingress["rules"]
    assert rule["host"] in tls["hosts"] and tls["secretName"]
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/scim/v2"
    assert path["backend"]["service"]["name"] == docs["Service"]["metadata"]["name"]
    assert path["backend"]["service"]["port"]["name"] == svc["ports"][0]["name"]


K8S_TEXT = (ROOT / "deploy" / "kubernetes.yaml").read_text()
