"""Process settings from ``BRIDGE_*`` environment variables; secrets from the variable or from a
file named by ``<NAME>_FILE`` (Docker/Kubernetes secrets).  Secrets never appear in ``repr``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from bridge.errors import ConfigError, Problem

#: the example mappings shipped inside the package (bridge/data/mappings/, links to mappings/)
EXAMPLE_MAPPINGS = (
    "openldap",
    "openldap-bare",
    "openldap-posix",
    "active-directory",
    "389ds",
    "389ds-posix",
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: BRIDGE_LDAP_CLIENT: auto picks python-ldap (libldap) when it imports, else ldap3
LDAP_CLIENTS = ("auto", "ldap3", "libldap")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def example_mapping(name: str) -> Path:
    """The packaged example mapping ``name`` (one of EXAMPLE_MAPPINGS) as a file path."""
    return Path(str(resources.files("bridge") / "data" / "mappings" / f"{name}.yaml"))


#: BRIDGE_MAPPING when unset: the packaged OpenLDAP example, so it works from any directory
DEFAULT_MAPPING = str(example_mapping("openldap"))
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


def _bool(env: Mapping[str, str], name: str, default: bool, problems: list[Problem]) -> bool:
    """A boolean setting: exactly true/false/1/0/yes/no/on/off (any case); anything else is a
    problem, never a silent default (``_READONLY=y`` must not give a read-write token)."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    problems.append(
        Problem(name, f"expected one of {'/'.join(_TRUE)} or {'/'.join(_FALSE)}, got {raw!r}")
    )
    return default


def _readable(path: str | None, name: str, problems: list[Problem]) -> None:
    if not path:
        return
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        problems.append(Problem(name, f"cannot read {path}: {exc.strerror}"))


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
    #: auto (python-ldap when it imports, else ldap3), ldap3 or libldap; runtime.resolve_client
    client: str = "auto"
    #: with libldap: run requests on the event loop, waiting for LDAP cooperatively (concurrency)
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
    #: signs RFC 9865 cursors; must be the same on every worker and replica (without it each
    #: process signs with its own random key, so ``serve --workers N>1`` refuses to start)
    cursor_secret: str = field(default="", repr=False)
    #: close pooled LDAP connections idle longer than this (seconds; 0 = never)
    idle_timeout: float = 300.0
    #: after a directory server fails to connect, try it after the others for this long
    server_backoff: float = 30.0
    #: HTTP request head limits (bridge/web/httpguard.py): bytes of request line + headers, number
    #: of header fields, seconds to receive a whole head (slowloris), and the most connections
    #: and requests in flight at once (uvicorn's limit_concurrency: 503 above it)
    max_header_bytes: int = 16 << 10
    max_headers: int = 100
    header_timeout: float = 10.0
    max_connections: int = 1000
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
        """Every ``BRIDGE_*`` setting, validated at once: a ConfigError lists every problem."""
        env = os.environ if env is None else env
        problems: list[Problem] = []

        def num(name: str, default: float, kind: type = int, minimum: float = 0) -> float:
            raw = env.get(name)
            if raw in (None, ""):
                return default
            try:
                value = kind(raw)
            except ValueError:
                problems.append(Problem(name, f"expected a number, got {raw!r}"))
                return default
            if value < minimum:
                problems.append(Problem(name, f"expected at least {minimum}, got {raw!r}"))
            return value

        def flag(name: str, default: bool) -> bool:
            return _bool(env, name, default, problems)

        urls = tuple(
            u.strip() for u in env.get("BRIDGE_LDAP_URL", "").replace(",", " ").split() if u.strip()
        )
        client = env.get("BRIDGE_LDAP_CLIENT", "") or "auto"
        if client not in LDAP_CLIENTS:
            problems.append(
                Problem("BRIDGE_LDAP_CLIENT", f"expected {', '.join(LDAP_CLIENTS)}, got {client!r}")
            )
        group_patch = env.get("BRIDGE_GROUP_PATCH_RESPONSE", "") or "no-content"
        if group_patch not in GROUP_PATCH_RESPONSES:
            problems.append(
                Problem(
                    "BRIDGE_GROUP_PATCH_RESPONSE",
                    f"expected {' or '.join(GROUP_PATCH_RESPONSES)}, got {group_patch!r}",
                )
            )
        log_level = env.get("BRIDGE_LOG_LEVEL", "INFO").strip().upper() or "INFO"
        if log_level not in LOG_LEVELS:
            problems.append(
                Problem(
                    "BRIDGE_LOG_LEVEL",
                    f"expected one of {', '.join(LOG_LEVELS)}, got {env['BRIDGE_LOG_LEVEL']!r}",
                )
            )
            log_level = "INFO"
        settings = cls(
            ldap_urls=urls,
            bind_dn=env.get("BRIDGE_BIND_DN", ""),
            bind_password=_secret(env, "BRIDGE_BIND_PASSWORD") or "",
            mapping=env.get("BRIDGE_MAPPING") or DEFAULT_MAPPING,
            tokens=_tokens(env, problems),
            host=env.get("BRIDGE_HOST", "127.0.0.1"),
            port=int(num("BRIDGE_PORT", 8080)),
            base_path=_base_path(env, problems),
            start_tls=flag("BRIDGE_LDAP_STARTTLS", False),
            ca_file=env.get("BRIDGE_LDAP_CA_FILE") or None,
            tls_verify=flag("BRIDGE_LDAP_TLS_VERIFY", True),
            tls_hostname=_tls_hostname(env, problems),
            ldap_allow_plain_passwords_on_loopback=flag(
                "BRIDGE_LDAP_ALLOW_PLAIN_PASSWORDS_ON_LOOPBACK", False
            ),
            connect_timeout=num("BRIDGE_LDAP_CONNECT_TIMEOUT", 5.0, float),
            operation_timeout=num("BRIDGE_LDAP_TIMEOUT", 30.0, float),
            pool_size=int(num("BRIDGE_LDAP_POOL_SIZE", 8, minimum=1)),
            page_size=int(num("BRIDGE_LDAP_PAGE_SIZE", 500, minimum=1)),
            max_body_bytes=int(num("BRIDGE_MAX_BODY_BYTES", 1 << 20)),
            max_results=int(num("BRIDGE_MAX_RESULTS", 1000)),
            default_count=int(num("BRIDGE_DEFAULT_COUNT", 100)),
            client=client,
            cooperative=flag("BRIDGE_LDAP_COOPERATIVE", True),
            dry_run=flag("BRIDGE_DRY_RUN", False),
            log_level=log_level,
            log_json=flag("BRIDGE_LOG_JSON", True),
            demo=flag("BRIDGE_DEMO_DATA", True),
            bulk_max_operations=int(num("BRIDGE_BULK_MAX_OPERATIONS", 1000)),
            bulk_max_payload_bytes=int(num("BRIDGE_BULK_MAX_PAYLOAD_BYTES", 1 << 20)),
            group_patch_response=group_patch,
            cursor_secret=_secret(env, "BRIDGE_CURSOR_SECRET") or "",
            idle_timeout=num("BRIDGE_LDAP_IDLE_TIMEOUT", 300.0, float),
            server_backoff=num("BRIDGE_LDAP_SERVER_BACKOFF", 30.0, float),
            max_header_bytes=int(num("BRIDGE_MAX_HEADER_BYTES", 16 << 10, minimum=1024)),
            max_headers=int(num("BRIDGE_MAX_HEADERS", 100, minimum=8)),
            header_timeout=num("BRIDGE_HEADER_TIMEOUT", 10.0, float, minimum=0.1),
            max_connections=int(num("BRIDGE_MAX_CONNECTIONS", 1000, minimum=1)),
            tls_cert=env.get("BRIDGE_TLS_CERT") or None,
            tls_key=env.get("BRIDGE_TLS_KEY") or None,
            tls_client_ca=env.get("BRIDGE_TLS_CLIENT_CA") or None,
        )
        _check_tls_files(settings, problems)
        if problems:
            raise ConfigError(problems, "environment")
        return settings

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _tokens(env: Mapping[str, str], problems: list[Problem]) -> tuple[Token, ...]:
    """BRIDGE_TOKEN[_FILE] (named ``default``) and BRIDGE_TOKEN_<NAME>[_FILE] with
    BRIDGE_TOKEN_<NAME>_READONLY; two tokens with one secret are refused (the audit log could
    not tell them apart, and one of them would silently get the other's rights)."""
    tokens: list[Token] = []
    main = _secret(env, "BRIDGE_TOKEN")
    if main:
        tokens.append(Token("default", main, _bool(env, "BRIDGE_TOKEN_READONLY", False, problems)))
    bases = {k[: -len("_FILE")] if k.endswith("_FILE") else k for k in env}
    for base in sorted(bases):
        if not base.startswith("BRIDGE_TOKEN_") or base.endswith("_READONLY"):
            continue
        if base == "BRIDGE_TOKEN_FILE":
            continue
        secret = _secret(env, base)
        if secret:
            read_only = _bool(env, f"{base}_READONLY", False, problems)
            tokens.append(Token(base[len("BRIDGE_TOKEN_") :].lower(), secret, read_only))
    seen: dict[str, str] = {}
    for token in tokens:
        if token.secret in seen:
            problems.append(
                Problem(
                    "BRIDGE_TOKEN",
                    f"tokens {seen[token.secret]!r} and {token.name!r} have the same secret: "
                    "give each its own",
                )
            )
        seen.setdefault(token.secret, token.name)
    return tuple(tokens)


def _base_path(env: Mapping[str, str], problems: list[Problem]) -> str:
    raw = env.get("BRIDGE_BASE_PATH", "/scim/v2")
    path = "/" + raw.strip().strip("/")
    if path == "/":
        problems.append(
            Problem(
                "BRIDGE_BASE_PATH",
                f"{raw!r} is not allowed: the probes and /metrics live outside the SCIM base "
                "path (use e.g. /scim/v2)",
            )
        )
        return "/scim/v2"
    return path


def _tls_hostname(env: Mapping[str, str], problems: list[Problem]) -> str | None:
    name = env.get("BRIDGE_LDAP_TLS_HOSTNAME", "").strip() or None
    if name and "*" in name:
        # ldap3 takes "*" as "any name matches": hostname checking off without a word
        problems.append(
            Problem(
                "BRIDGE_LDAP_TLS_HOSTNAME",
                f"{name!r} is not allowed: name the host the directory certificate carries "
                "(or, knowingly, BRIDGE_LDAP_TLS_VERIFY=false)",
            )
        )
        return None
    return name


def _check_tls_files(settings: Settings, problems: list[Problem]) -> None:
    if bool(settings.tls_cert) != bool(settings.tls_key):
        problems.append(
            Problem("BRIDGE_TLS_CERT", "BRIDGE_TLS_CERT and BRIDGE_TLS_KEY go together")
        )
    if settings.tls_client_ca and not settings.tls_cert:
        problems.append(
            Problem("BRIDGE_TLS_CLIENT_CA", "mutual TLS needs BRIDGE_TLS_CERT/KEY as well")
        )
    _readable(settings.tls_cert, "BRIDGE_TLS_CERT", problems)
    _readable(settings.tls_key, "BRIDGE_TLS_KEY", problems)
    _readable(settings.tls_client_ca, "BRIDGE_TLS_CLIENT_CA", problems)
