"""Process settings from ``BRIDGE_*`` environment variables; secrets from the variable or from a
file named by ``<NAME>_FILE`` (Docker/Kubernetes secrets).  Secrets never appear in ``repr``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from bridge.errors import ConfigError, Problem

DEFAULT_MAPPING = "mappings/openldap.yaml"
GROUP_PATCH_RESPONSES = ("no-content", "full")


def _secret(env: Mapping[str, str], name: str) -> str | None:
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                [Problem(f"{name}_FILE", f"cannot read {path}: {exc.strerror}")]
            ) from None
    return env.get(name)


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Token:
    name: str
    secret: str = field(repr=False)
    read_only: bool = False


@dataclass(frozen=True)
class Settings:
    ldap_urls: tuple[str, ...] = ()
    bind_dn: str = ""
    bind_password: str = field(default="", repr=False)
    mapping: str = DEFAULT_MAPPING
    tokens: tuple[Token, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8080
    base_path: str = "/scim/v2"
    start_tls: bool = False
    ca_file: str | None = None
    tls_verify: bool = True
    tls_hostname: str | None = None
    ldap_allow_plain_passwords_on_loopback: bool = False
    connect_timeout: float = 5.0
    operation_timeout: float = 30.0
    pool_size: int = 8
    page_size: int = 500
    max_body_bytes: int = 1 << 20
    max_results: int = 1000
    default_count: int = 100
    client: str = "ldap3"
    #: with libldap: run requests on the event loop, waiting for LDAP cooperatively (greenio)
    cooperative: bool = True
    dry_run: bool = False
    log_level: str = "INFO"
    log_json: bool = True
    demo: bool = True
    bulk_max_operations: int = 1000
    bulk_max_payload_bytes: int = 1 << 20
    #: a PATCH of a resource with members (Groups) that asks for no representation
    #: (no attributes/excludedAttributes): "no-content" answers 204 and reads nothing back;
    #: "full" answers 200 with the whole resource, member list included
    group_patch_response: str = "no-content"
    #: signs RFC 9865 cursors; must be the same on every replica (derived from the bind
    #: password and mapping path when unset, so replicas with the same config agree)
    cursor_secret: str = field(default="", repr=False)
    #: close pooled LDAP connections idle longer than this (seconds; 0 = never)
    idle_timeout: float = 300.0
    #: after a directory server fails to connect, try it after the others for this long
    server_backoff: float = 30.0
    #: HTTPS served by the bridge itself (PEM files); with tls_client_ca, clients need a
    #: certificate signed by that CA (mutual TLS)
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None

    @property
    def embedded(self) -> bool:
        return not self.ldap_urls

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        problems: list[Problem] = []

        def num(name: str, default: float, kind: type = int) -> float:
            raw = env.get(name)
            if raw in (None, ""):
                return default
            try:
                return kind(raw)
            except ValueError:
                problems.append(Problem(name, f"expected a number, got {raw!r}"))
                return default

        urls = tuple(
            u.strip() for u in env.get("BRIDGE_LDAP_URL", "").replace(",", " ").split() if u.strip()
        )
        tokens: list[Token] = []
        main = _secret(env, "BRIDGE_TOKEN")
        if main:
            tokens.append(Token("default", main))
        for key in sorted(env):
            # BRIDGE_TOKEN_<NAME>=secret (or _FILE), BRIDGE_TOKEN_<NAME>_READONLY=true
            if not key.startswith("BRIDGE_TOKEN_") or key.endswith(("_READONLY", "_FILE")):
                continue
            if key == "BRIDGE_TOKEN_FILE":
                continue
            name = key[len("BRIDGE_TOKEN_") :].lower()
            secret = _secret(env, key)
            if secret:
                tokens.append(Token(name, secret, _bool(env.get(f"{key}_READONLY"), False)))
        for key in sorted(env):
            if (
                key.startswith("BRIDGE_TOKEN_")
                and key.endswith("_FILE")
                and key != "BRIDGE_TOKEN_FILE"
            ):
                base = key[: -len("_FILE")]
                if base not in env:
                    secret = _secret(env, base)
                    if secret:
                        tokens.append(
                            Token(
                                base[len("BRIDGE_TOKEN_") :].lower(),
                                secret,
                                _bool(env.get(f"{base}_READONLY"), False),
                            )
                        )
        client = env.get("BRIDGE_LDAP_CLIENT", "ldap3")
        if client not in ("ldap3", "libldap"):
            problems.append(
                Problem("BRIDGE_LDAP_CLIENT", f"expected ldap3 or libldap, got {client!r}")
            )
        group_patch = env.get("BRIDGE_GROUP_PATCH_RESPONSE", "") or "no-content"
        if group_patch not in GROUP_PATCH_RESPONSES:
            problems.append(
                Problem(
                    "BRIDGE_GROUP_PATCH_RESPONSE",
                    f"expected {' or '.join(GROUP_PATCH_RESPONSES)}, got {group_patch!r}",
                )
            )
        settings = cls(
            ldap_urls=urls,
            bind_dn=env.get("BRIDGE_BIND_DN", ""),
            bind_password=_secret(env, "BRIDGE_BIND_PASSWORD") or "",
            mapping=env.get("BRIDGE_MAPPING", DEFAULT_MAPPING),
            tokens=tuple(tokens),
            host=env.get("BRIDGE_HOST", "127.0.0.1"),
            port=int(num("BRIDGE_PORT", 8080)),
            base_path="/" + env.get("BRIDGE_BASE_PATH", "/scim/v2").strip("/"),
            start_tls=_bool(env.get("BRIDGE_LDAP_STARTTLS"), False),
            ca_file=env.get("BRIDGE_LDAP_CA_FILE") or None,
            tls_verify=_bool(env.get("BRIDGE_LDAP_TLS_VERIFY"), True),
            tls_hostname=env.get("BRIDGE_LDAP_TLS_HOSTNAME") or None,
            ldap_allow_plain_passwords_on_loopback=_bool(
                env.get("BRIDGE_LDAP_ALLOW_PLAIN_PASSWORDS_ON_LOOPBACK"), False
            ),
            connect_timeout=num("BRIDGE_LDAP_CONNECT_TIMEOUT", 5.0, float),
            operation_timeout=num("BRIDGE_LDAP_TIMEOUT", 30.0, float),
            pool_size=int(num("BRIDGE_LDAP_POOL_SIZE", 8)),
            page_size=int(num("BRIDGE_LDAP_PAGE_SIZE", 500)),
            max_body_bytes=int(num("BRIDGE_MAX_BODY_BYTES", 1 << 20)),
            max_results=int(num("BRIDGE_MAX_RESULTS", 1000)),
            default_count=int(num("BRIDGE_DEFAULT_COUNT", 100)),
            client=client,
            cooperative=_bool(env.get("BRIDGE_LDAP_COOPERATIVE"), True),
            dry_run=_bool(env.get("BRIDGE_DRY_RUN"), False),
            log_level=env.get("BRIDGE_LOG_LEVEL", "INFO").upper(),
            log_json=_bool(env.get("BRIDGE_LOG_JSON"), True),
            demo=_bool(env.get("BRIDGE_DEMO_DATA"), True),
            bulk_max_operations=int(num("BRIDGE_BULK_MAX_OPERATIONS", 1000)),
            bulk_max_payload_bytes=int(num("BRIDGE_BULK_MAX_PAYLOAD_BYTES", 1 << 20)),
            group_patch_response=group_patch,
            cursor_secret=_secret(env, "BRIDGE_CURSOR_SECRET") or "",
            idle_timeout=num("BRIDGE_LDAP_IDLE_TIMEOUT", 300.0, float),
            server_backoff=num("BRIDGE_LDAP_SERVER_BACKOFF", 30.0, float),
            tls_cert=env.get("BRIDGE_TLS_CERT") or None,
            tls_key=env.get("BRIDGE_TLS_KEY") or None,
            tls_client_ca=env.get("BRIDGE_TLS_CLIENT_CA") or None,
        )
        if bool(settings.tls_cert) != bool(settings.tls_key):
            problems.append(
                Problem("BRIDGE_TLS_CERT", "BRIDGE_TLS_CERT and BRIDGE_TLS_KEY go together")
            )
        if settings.tls_client_ca and not settings.tls_cert:
            problems.append(
                Problem("BRIDGE_TLS_CLIENT_CA", "mutual TLS needs BRIDGE_TLS_CERT/KEY as well")
            )
        if problems:
            raise ConfigError(problems, "environment")
        return settings

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]
