"""Bridge directory clients of a throwaway slapd (devtools/slapd.py), for tests and benchmarks."""

from __future__ import annotations

from typing import Any

from bridge.directory.base import Directory


def slapd_directory(info: Any, client: str = "ldap3", **overrides: Any) -> Directory:
    """A pooled client (``ldap3`` or ``libldap``) bound as the fixture's bind account;
    ``overrides`` are ConnectionSettings fields.  ImportError when python-ldap is missing."""
    from bridge.directory.ldap3_client import ConnectionSettings, Ldap3Directory

    base = {"urls": (info.url,), "bind_dn": info.bind_dn, "bind_password": info.bind_password}
    settings = ConnectionSettings(**{**base, **overrides})
    if client == "libldap":
        from bridge.directory.libldap_client import LibldapDirectory

        return LibldapDirectory(settings)
    return Ldap3Directory(settings)
