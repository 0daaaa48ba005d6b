"""``scim-ldap-bridge`` command line: serve | check-mapping | translate-filter."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from typing import Any

from bridge import __version__
from bridge.errors import BridgeError, ConfigError
from bridge.settings import Settings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scim-ldap-bridge",
        description="A SCIM 2.0 server (RFC 7643/7644) that provisions users and groups into "
        "LDAP or Active Directory.  Settings come from BRIDGE_* environment "
        "variables; flags override them.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "serve",
        help="run the SCIM server",
        description="Run the SCIM server at http://HOST:PORT/scim/v2.  With no "
        "BRIDGE_LDAP_URL it serves an embedded in-memory directory "
        "seeded with demo data (nothing is persisted).",
    )
    s.add_argument("--host", help="listen address (BRIDGE_HOST, default 127.0.0.1)")
    s.add_argument("--port", type=int, help="listen port (BRIDGE_PORT, default 8080)")
    s.add_argument(
        "--mapping", "-m", help="mapping YAML (BRIDGE_MAPPING, default mappings/openldap.yaml)"
    )
    s.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes (real directory only; default 1). On Linux each worker "
        "listens on its own SO_REUSEPORT socket, so the kernel spreads new connections "
        "over the workers",
    )
    s.add_argument(
        "--dry-run",
        action="store_true",
        default=None,
        help="plan and log writes without applying them (BRIDGE_DRY_RUN)",
    )

    c = sub.add_parser(
        "check-mapping",
        help="validate a mapping file and report every problem",
        description="Load MAPPING strictly; print OK or every problem with its "
        "YAML path; exit 1 on problems.",
    )
    c.add_argument("mapping", help="path to the mapping YAML")
    c.add_argument(
        "--connect",
        action="store_true",
        help="also bind with the BRIDGE_* settings, check base DNs, attributes and object "
        "classes against the server's schema, and inspect the directory: indexes, overlays "
        "(sssvlv, deref, ppolicy, memberof, refint) and controls, each finding with its "
        "effect and the LDIF or command that fixes it (docs/directories/).  Exit 1 on a "
        "schema problem or a finding that breaks a mapped feature (e.g. no ppolicy while "
        "active maps to pwdAccountLockedTime); missing indexes and controls are warnings "
        "(slow or refused, not broken) and exit 0",
    )

    t = sub.add_parser("translate-filter", help="show the LDAP filter for a SCIM filter")
    t.add_argument("filter", help="a SCIM filter, e.g. 'userName eq \"bjensen\"'")
    t.add_argument("--mapping", "-m", required=True, help="path to the mapping YAML")
    t.add_argument("--resource", "-r", default="User", help="resource type (default User)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check-mapping":
            code = check_mapping(args.mapping)
            if code == 0 and args.connect:
                return check_mapping_live(args.mapping)
            return code
        if args.command == "translate-filter":
            return translate_filter(args.mapping, args.resource, args.filter)
        return serve(args)
    except ConfigError as exc:
        print(f"configuration error in {exc.source or 'settings'}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2


def check_mapping(path: str) -> int:
    from bridge.config import load_mapping

    try:
        mapping = load_mapping(path)
    except FileNotFoundError:
        print(f"{path}: no such file", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"{path}: {len(exc.problems)} problem(s)")
        for problem in exc.problems:
            print(f"  {problem}")
        return 1
    kinds = ", ".join(
        f"{r.name} ({len(r.attributes)} attributes)" for r in mapping.resources.values()
    )
    print(f"{path}: OK — dialect {mapping.dialect.name}; {kinds}")
    return 0


def check_mapping_live(path: str) -> int:
    """``check-mapping --connect``: every problem against the live directory, exit 1 if any."""
    from bridge.config import load_mapping
    from bridge.mapcheck import check, notes
    from bridge.runtime import make_directory

    settings = Settings.from_env()
    if settings.embedded:
        print("--connect needs BRIDGE_LDAP_URL (and BRIDGE_BIND_DN/_PASSWORD)", file=sys.stderr)
        return 2
    mapping = load_mapping(path)
    directory = make_directory(settings, mapping)
    from bridge import dircheck

    try:
        problems = check(directory, mapping)
        hints = [] if problems else notes(directory, mapping)
        findings = dircheck.check(directory, mapping)
    finally:
        directory.close()
    where = ", ".join(settings.ldap_urls)
    if problems:
        print(f"{path}: {len(problems)} problem(s) against {where}")
        for problem in problems:
            print(f"  {problem}")
    else:
        print(f"{path}: OK against {where} — base DNs exist, schema has every attribute and class")
        for hint in hints:
            print(f"  note: {hint}")
    if findings:
        print("\n".join(dircheck.render(findings)))
    return 1 if problems or dircheck.breaking(findings) else 0


def translate_filter(path: str, resource: str, text: str) -> int:
    from bridge.config import load_mapping
    from bridge.translate.filter import to_ldap

    mapping = load_mapping(path)
    if resource not in mapping.resources:
        print(
            f"unknown resource {resource!r}; choose one of: {', '.join(mapping.resources)}",
            file=sys.stderr,
        )
        return 2
    try:
        print(to_ldap(mapping.resource(resource), text, mapping))
    except BridgeError as exc:
        print(getattr(exc, "detail", str(exc)), file=sys.stderr)
        return 1
    return 0


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = Settings.from_env()
    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    if args.mapping:
        overrides["mapping"] = args.mapping
    if args.dry_run:
        overrides["dry_run"] = True
    generated = not settings.tokens
    if generated:
        from bridge.settings import Token

        overrides["tokens"] = (Token("generated", secrets.token_urlsafe(24)),)
    settings = settings.with_(**overrides)
    from bridge.logs import setup_logging

    setup_logging(settings)
    log = logging.getLogger("bridge")
    workers = max(args.workers, 1)
    notes: list[str] = []
    if workers > 1 and settings.embedded:
        notes.append(
            "--workers ignored: the embedded directory lives in one process's memory, so "
            "several workers would be several unrelated directories (running 1 worker)"
        )
        workers = 1
    if workers > 1 and settings.dry_run:
        notes.append(
            "--workers ignored: planned dry-run writes live in one process's memory, so "
            "several workers would answer inconsistently (running 1 worker)"
        )
        workers = 1
    scheme = "https" if settings.tls_cert else "http"
    url = f"{scheme}://{settings.host}:{settings.port}{settings.base_path}"
    banner = [f"scim-ldap-bridge {__version__} serving SCIM at {url}", *notes]
    if settings.embedded:
        banner.append(
            "directory: EMBEDDED in-memory directory (demo data; nothing is persisted "
            "— set BRIDGE_LDAP_URL to use a real directory)"
        )
    else:
        banner.append(f"directory: {', '.join(settings.ldap_urls)} (client {settings.client})")
    if settings.dry_run:
        banner.append("DRY RUN: writes are planned and logged, never applied")
    if settings.tls_client_ca:
        banner.append(f"mutual TLS: client certificates must chain to {settings.tls_client_ca}")
    if workers > 1:
        banner.append(f"{workers} worker processes (bridge.asgi:app)")
    if generated:
        banner.append(
            f"bearer token (generated; set BRIDGE_TOKEN to choose one): {settings.tokens[0].secret}"
        )
    for line in banner:
        print(line, flush=True)
    log.info("starting", extra={"url": url, "embedded": settings.embedded, "workers": workers})
    options: dict[str, Any] = dict(
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        proxy_headers=True,
    )
    options.update(tls_options(settings))
    if workers > 1:
        # workers import bridge.asgi:app and read BRIDGE_* themselves: hand over the overrides
        os.environ["BRIDGE_MAPPING"] = settings.mapping
        if generated:
            os.environ["BRIDGE_TOKEN"] = settings.tokens[0].secret
        from bridge import workers as multi

        if multi.reuseport_supported():
            multi.serve(workers, options)  # one SO_REUSEPORT socket each: connections spread
        else:
            uvicorn.run(multi.APP, factory=True, workers=workers, **options)
    else:
        uvicorn.run(make_served_app(settings), **options)
    return 0


def tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS options: HTTPS with BRIDGE_TLS_CERT/KEY, and mutual TLS (a client
    certificate signed by BRIDGE_TLS_CLIENT_CA is required) when that is set too."""
    if not settings.tls_cert:
        return {}
    import ssl

    out: dict[str, Any] = {"ssl_certfile": settings.tls_cert, "ssl_keyfile": settings.tls_key}
    if settings.tls_client_ca:
        out["ssl_ca_certs"] = settings.tls_client_ca
        out["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    return out


def make_served_app(settings: Settings) -> Any:
    from bridge.app import build_app
    from bridge.runtime import seed_demo

    app = build_app(settings)
    if settings.embedded and settings.demo:
        seed_demo(app.state.service, "")
    if not settings.embedded:
        from bridge.dircheck import log_at_startup

        log_at_startup(app.state.service.directory, app.state.service.mapping)
    return app


if __name__ == "__main__":
    sys.exit(main())
