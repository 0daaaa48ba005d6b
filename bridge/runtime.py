"""Wiring: settings + mapping -> a directory client, and the embedded directory's demo seed."""

from __future__ import annotations

import logging
from typing import Any

from bridge.directory.base import Directory
from bridge.directory.embedded import EmbeddedDirectory
from bridge.directory.syntax import parent_dn, split_rdn
from bridge.errors import ConfigError, Problem
from bridge.mapping.model import MappingConfig
from bridge.settings import Settings

log = logging.getLogger("bridge")

DEMO_USERS: list[dict[str, Any]] = [
    {
        "userName": "bjensen",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "displayName": "Babs Jensen",
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}],
        "title": "Tour Guide",
    },
    {
        "userName": "jsmith",
        "name": {"givenName": "John", "familyName": "Smith"},
        "displayName": "John Smith",
        "emails": [{"value": "jsmith@example.com", "type": "work"}],
    },
    {
        "userName": "mmuller",
        "name": {"givenName": "Märta", "familyName": "Müller"},
        "displayName": "Märta Müller",
        "emails": [{"value": "mmuller@example.com", "type": "work"}],
    },
]
DEMO_GROUPS = [("Engineering", ["bjensen", "jsmith"]), ("Sales", ["mmuller"])]


def check_client(settings: Settings) -> None:
    """With ``BRIDGE_LDAP_CLIENT=libldap`` and a real directory, python-ldap (the optional
    ``libldap`` extra) must import: a ConfigError saying how to install it, at start."""
    if settings.embedded or settings.client != "libldap":
        return
    missing = _libldap_missing()
    if missing is not None:
        raise ConfigError(
            [
                Problem(
                    "BRIDGE_LDAP_CLIENT",
                    f"libldap needs python-ldap ({missing}): pip install "
                    "'scim-ldap-bridge[libldap]' (from a clone: pip install -e '.[libldap]'), "
                    "or use ldap3",
                )
            ],
            "environment",
        )


def resolve_client(settings: Settings) -> str:
    """The LDAP client that runs: ``BRIDGE_LDAP_CLIENT``, where ``auto`` (the default) is
    python-ldap (libldap) when it imports — about twice ldap3's throughput — and ldap3 otherwise,
    which always works."""
    if settings.client != "auto":
        return settings.client
    return "ldap3" if _libldap_missing() else "libldap"


def _libldap_missing() -> str | None:
    """Why the python-ldap driver cannot load (the ImportError's text), or None when it can."""
    try:
        import greenlet  # noqa: F401

        from bridge.directory import libldap_client  # noqa: F401  (imports python-ldap)
    except ImportError as exc:
        return str(exc)
    return None


def make_directory(settings: Settings, mapping: MappingConfig) -> Directory:
    if settings.embedded:
        directory = EmbeddedDirectory()
        seed_structure(directory, mapping)
        return directory
    client = resolve_client(settings)
    log.info(
        "LDAP client: %s (BRIDGE_LDAP_CLIENT=%s)",
        client,
        settings.client,
        extra={"ldap_client": client},
    )
    if client == "libldap":
        from bridge.directory.libldap_client import LibldapDirectory  # optional extra

        return LibldapDirectory(connection_settings(settings))
    from bridge.directory.ldap3_client import Ldap3Directory

    return Ldap3Directory(connection_settings(settings))


def wrap_directory(settings: Settings, mapping: MappingConfig, directory: Directory) -> Directory:
    """The decorators every served directory gets: metrics/logging/audit at the seam, and the
    dry-run overlay when ``settings.dry_run`` (writes planned and logged, never applied)."""
    from bridge.directory.dryrun import DryRunDirectory
    from bridge.directory.instrumented import InstrumentedDirectory

    if not isinstance(directory, (InstrumentedDirectory, DryRunDirectory)):
        directory = InstrumentedDirectory(directory)
    if settings.dry_run and not isinstance(directory, DryRunDirectory):
        secret = {
            a.ldap
            for r in mapping.resources.values()
            for a in r.attributes
            if a.codec.name == "password"
        }
        read = [
            name
            for r in mapping.resources.values()
            for name in (
                r.id.ldap,
                r.created,
                r.last_modified,
                r.version,
                *r.attribute_ldap_names(),
            )
        ]
        bases = [r.base_dn for r in mapping.resources.values()]
        # what the directory would generate for a planned entry: its id and its version
        generated: dict[str, str] = {}
        for r in mapping.resources.values():
            generated[r.id.ldap] = "guid" if r.id.codec.name == "guid" else "uuid"
            generated[r.version] = "counter"
        directory = DryRunDirectory(
            directory,
            secret_attributes=secret,
            read_attributes=read,
            search_bases=bases,
            generated=generated,
        )
    return directory


def connection_settings(settings: Settings) -> Any:
    from bridge.directory.ldap3_client import ConnectionSettings

    return ConnectionSettings(
        urls=settings.ldap_urls,
        bind_dn=settings.bind_dn,
        bind_password=settings.bind_password,
        start_tls=settings.start_tls,
        ca_file=settings.ca_file,
        verify=settings.tls_verify,
        tls_hostname=settings.tls_hostname,
        connect_timeout=settings.connect_timeout,
        operation_timeout=settings.operation_timeout,
        pool_size=settings.pool_size,
        page_size=settings.page_size,
        idle_timeout=settings.idle_timeout,
        server_backoff=settings.server_backoff,
        allow_plain_passwords_on_loopback=settings.ldap_allow_plain_passwords_on_loopback,
    )


_CONTAINERS = {
    "dc": ("dcObject", "organization"),
    "ou": ("organizationalUnit",),
    "cn": ("container",),
    "o": ("organization",),
}


def seed_structure(directory: EmbeddedDirectory, mapping: MappingConfig) -> None:
    """Create every base DN of the mapping (and its parents) in an empty embedded directory."""
    wanted: list[str] = []
    for rmap in mapping.resources.values():
        dn = rmap.base_dn
        chain = []
        while dn:
            chain.append(dn)
            dn = parent_dn(dn)
        wanted.extend(reversed(chain))
    for dn in dict.fromkeys(wanted):
        if directory.read(dn, ["1.1"]) is not None:
            continue
        attr, value, _ = split_rdn(dn)
        classes = _CONTAINERS.get(attr.lower(), ("extensibleObject",))
        attrs: dict[str, list[bytes | str]] = {"objectClass": ["top", *classes], attr: [value]}
        if attr.lower() == "dc":
            attrs["o"] = [value]
        directory.seed(dn, attrs)


def seed_demo(service: Any, base_url: str = "") -> None:
    """Demo users and groups, written through the service so they follow the mapping."""
    if "User" not in service.mapping.resources:
        return
    ids: dict[str, str] = {}
    for body in DEMO_USERS:
        created = service.create(
            "User", {"schemas": [service.rmap("User").schema], **body}, base_url
        )
        ids[body["userName"]] = created["id"]
    if "Group" not in service.mapping.resources:
        return
    for name, members in DEMO_GROUPS:
        service.create(
            "Group",
            {"displayName": name, "members": [{"value": ids[m]} for m in members]},
            base_url,
        )
