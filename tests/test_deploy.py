"""Container and deployment files: every path the Dockerfile copies exists, the image runs as a
non-root user with the documented entrypoint, its HEALTHCHECK works against a real server, and
the compose/Kubernetes examples are well-formed and use settings the bridge reads."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SETTINGS_SOURCE = (ROOT / "bridge" / "settings.py").read_text()


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
    assert stages == ["python:3.11-slim AS builder", "python:3.11-slim"]
    for word, rest in ins:
        if word == "COPY" and not rest.startswith("--from="):
            *sources, _dest = rest.split()
            for src in sources:
                assert (ROOT / src).exists(), f"COPY {src}: no such path"
    assert ("USER", "10001:10001") in ins
    assert json.loads(dict(ins)["ENTRYPOINT"]) == ["scim-ldap-bridge"]
    assert json.loads(dict(ins)["CMD"]) == ["serve", "--host", "0.0.0.0"]
    assert "libldap2-dev libsasl2-dev" in DOCKERFILE and "libldap-2.5-0" in DOCKERFILE
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


def test_compose_example() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    bridge = compose["services"]["bridge"]
    assert bridge["read_only"] is True and bridge["build"] == ".."
    assert "openldap" in compose["services"]
    assert (ROOT / "deploy" / "ldif" / "10-structure.ldif").exists()
    assert bridge["environment"]["BRIDGE_MAPPING"].startswith("/etc/scim-ldap-bridge/")


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
