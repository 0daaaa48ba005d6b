"""``scim-ldap-bridge`` command line: serve | check-mapping | translate-filter | example-mapping.

Every usage or configuration error is one line on stderr and exit status 2 (argparse's
convention), checked before anything is printed or bound; 1 means the command ran and found a
problem (an invalid mapping, a schema mismatch, a filter that does not translate)."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bridge import __version__
from bridge.errors import BridgeError, ConfigError
from bridge.settings import EXAMPLE_MAPPINGS, Settings, Token, example_mapping

if TYPE_CHECKING:
    from bridge.mapping.model import MappingConfig

PROG = "scim-ldap-bridge"
EXIT_STATUS = """\
exit status:
  0  success
  1  the command ran and found a problem (check-mapping, translate-filter)
  2  usage or configuration error: one line on stderr saying what is wrong"""


class CliError(Exception):
    """A usage or configuration error: printed as one line, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="A SCIM 2.0 server (RFC 7643/7644) that provisions users and groups into "
        "LDAP or Active Directory.  Settings come from BRIDGE_* environment "
        "variables; flags override them.",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "serve",
        help="run the SCIM server",
        description="Run the SCIM server at http://HOST:PORT/scim/v2.  With no "
        "BRIDGE_LDAP_URL it serves an embedded in-memory directory "
        "seeded with demo data (nothing is persisted) and, when no BRIDGE_TOKEN is set, "
        "prints a generated token; with a real directory a token must be configured.",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--host", help="listen address (BRIDGE_HOST, default 127.0.0.1)")
    s.add_argument("--port", type=int, help="listen port (BRIDGE_PORT, default 8080)")
    s.add_argument(
        "--mapping",
        "-m",
        help="mapping YAML (BRIDGE_MAPPING, default the packaged openldap example)",
    )
    s.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes (real directory only, and only with "
        "BRIDGE_CURSOR_SECRET; default 1). On Linux each worker listens on its own "
        "SO_REUSEPORT socket, so the kernel spreads new connections over the workers",
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
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("mapping", help="path to the mapping YAML")
    c.add_argument(
        "--connect",
        action="store_true",
        help="also bind with the BRIDGE_* settings, check base DNs, attributes and object "
        "classes against the server's schema, that each allocate: counter entry exists and "
        "is writable (a probe that changes nothing), and inspect the directory: indexes, overlays "
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

    e = sub.add_parser(
        "example-mapping",
        help="print a packaged example mapping to start from",
        description="Print the example mapping NAME shipped with the package, e.g. "
        f"`{PROG} example-mapping openldap > my.yaml`.",
    )
    e.add_argument("name", help=f"one of: {', '.join(EXAMPLE_MAPPINGS)}")
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
        if args.command == "example-mapping":
            return print_example_mapping(args.name)
        return serve(args)
    except ConfigError as exc:
        return _fail(config_line(exc))
    except CliError as exc:
        return _fail(str(exc))


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2


def config_line(exc: ConfigError) -> str:
    """A ConfigError as one line: where, then every problem separated by "; "."""
    problems = "; ".join(str(p) for p in exc.problems)
    return f"configuration error in {exc.source or 'settings'}: {problems}"


def read_mapping(path: str, what: str = "mapping") -> MappingConfig:
    """Load a mapping file; an unreadable path is a CliError naming ``what`` (a ConfigError,
    the file's own problems, passes through)."""
    from bridge.mapping.load import load_mapping

    if os.path.isdir(path):
        raise CliError(
            f"{what} {path} is a directory: give the mapping file, e.g. {path.rstrip('/')}/"
            "openldap.yaml"
        )
    try:
        return load_mapping(path)
    except FileNotFoundError:
        hint = f"; `{PROG} example-mapping openldap > my.yaml` writes one to start from"
        raise CliError(f"{what} {path}: no such file{hint}") from None
    except OSError as exc:
        raise CliError(f"{what} {path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise CliError(f"{what} {path}: not a UTF-8 text file") from None


def print_example_mapping(name: str) -> int:
    if name not in EXAMPLE_MAPPINGS:
        raise CliError(
            f"unknown example mapping {name!r}; choose one of: {', '.join(EXAMPLE_MAPPINGS)}"
        )
    sys.stdout.write(example_mapping(name).read_text(encoding="utf-8"))
    return 0


def check_mapping(path: str) -> int:
    try:
        mapping = read_mapping(path)
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
    from bridge.runtime import check_client, make_directory
    from bridge.service.mapcheck import check, notes

    settings = Settings.from_env()
    if settings.embedded:
        raise CliError("--connect needs BRIDGE_LDAP_URL (and BRIDGE_BIND_DN/_PASSWORD)")
    check_client(settings)
    mapping = read_mapping(path)
    directory = make_directory(settings, mapping)
    from bridge.service import dircheck

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
    from bridge.translate.filter import to_ldap

    mapping = read_mapping(path)
    if resource not in mapping.resources:
        raise CliError(
            f"unknown resource {resource!r}; choose one of: {', '.join(mapping.resources)}"
        )
    try:
        print(to_ldap(mapping.resource(resource), text, mapping))
    except BridgeError as exc:
        print(getattr(exc, "detail", str(exc)), file=sys.stderr)
        return 1
    return 0


def serve(args: argparse.Namespace) -> int:
    """Validate every setting, the mapping and the client, then print the banner and bind."""
    import uvicorn

    from bridge.runtime import check_client
    from bridge.web.httpguard import EnvBoundedHttpToolsProtocol, bounded

    settings, generated = _serve_settings(args)
    workers, notes = _workers(args.workers, settings)
    mapping = read_mapping(settings.mapping, "--mapping" if args.mapping else "BRIDGE_MAPPING")
    check_client(settings)
    # build the app (mapping, directory client, demo seed) before anything is printed or bound
    app: Any = make_served_app(settings, mapping) if workers == 1 else "bridge.web.asgi:app"
    from bridge.observability.logs import setup_logging

    setup_logging(settings)
    for line in _banner(settings, workers, notes, generated):
        print(line, flush=True)
    url = _url(settings)
    from bridge.runtime import resolve_client

    ldap_client = None if settings.embedded else resolve_client(settings)
    logging.getLogger("bridge").info(
        "starting",
        extra={
            "url": url,
            "embedded": settings.embedded,
            "workers": workers,
            "ldap_client": ldap_client,
        },
    )
    options: dict[str, Any] = dict(
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        proxy_headers=True,
        limit_concurrency=settings.max_connections,
    )
    options.update(tls_options(settings))
    if workers > 1:
        # workers import bridge.web.asgi:app and read BRIDGE_* themselves: hand over the overrides
        os.environ["BRIDGE_MAPPING"] = settings.mapping
        options["http"] = EnvBoundedHttpToolsProtocol  # the head limits, read from BRIDGE_*
        from bridge import workers as multi

        if multi.reuseport_supported():
            multi.serve(workers, options)  # one SO_REUSEPORT socket each: connections spread
        else:
            uvicorn.run(app, factory=True, workers=workers, **options)
    else:
        uvicorn.run(app, http=bounded(settings), **options)
    return 0


def _serve_settings(args: argparse.Namespace) -> tuple[Settings, bool]:
    """The settings with the flags applied; a generated token only for the embedded demo."""
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
    if generated and not settings.embedded:
        # printing a generated token would put a live credential into container logs
        raise CliError(
            "no token configured for a real directory: set BRIDGE_TOKEN or "
            "BRIDGE_TOKEN_<NAME> (or their _FILE variants)"
        )
    if generated:
        overrides["tokens"] = (Token("generated", secrets.token_urlsafe(24)),)
    return settings.with_(**overrides), generated


def _workers(requested: int, settings: Settings) -> tuple[int, list[str]]:
    if requested < 1:
        raise CliError(f"--workers: expected at least 1, got {requested}")
    if requested > 1 and settings.embedded:
        note = (
            "--workers ignored: the embedded directory lives in one process's memory, so "
            "several workers would be several unrelated directories (running 1 worker)"
        )
        return 1, [note]
    if requested > 1 and settings.dry_run:
        note = (
            "--workers ignored: planned dry-run writes live in one process's memory, so "
            "several workers would answer inconsistently (running 1 worker)"
        )
        return 1, [note]
    if requested > 1 and not settings.cursor_secret:
        raise CliError(
            f"--workers {requested} needs BRIDGE_CURSOR_SECRET: without it each worker signs "
            "list cursors with its own random key and refuses the others' (several replicas "
            "need the same secret too)"
        )
    return requested, []


def _url(settings: Settings) -> str:
    scheme = "https" if settings.tls_cert else "http"
    return f"{scheme}://{settings.host}:{settings.port}{settings.base_path}"


def _banner(settings: Settings, workers: int, notes: list[str], generated: bool) -> list[str]:
    banner = [f"{PROG} {__version__} serving SCIM at {_url(settings)}", *notes]
    if settings.embedded:
        seeded = "demo data" if settings.demo else "empty"
        banner.append(
            f"directory: EMBEDDED in-memory directory ({seeded}; nothing is persisted "
            "— set BRIDGE_LDAP_URL to use a real directory)"
        )
    else:
        from bridge.runtime import resolve_client

        client = resolve_client(settings)
        banner.append(f"directory: {', '.join(settings.ldap_urls)} (client {client})")
    if settings.dry_run:
        banner.append("DRY RUN: writes are planned and logged, never applied")
    if settings.tls_client_ca:
        banner.append(f"mutual TLS: client certificates must chain to {settings.tls_client_ca}")
    if workers > 1:
        banner.append(f"{workers} worker processes (bridge.web.asgi:app)")
    if generated:
        banner.append(
            f"bearer token (generated; set BRIDGE_TOKEN to choose one): {settings.tokens[0].secret}"
        )
    return banner


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


def make_served_app(settings: Settings, mapping: MappingConfig | None = None) -> Any:
    from bridge.runtime import seed_demo
    from bridge.web.app import build_app

    app = build_app(settings, mapping=mapping)
    if settings.embedded and settings.demo:
        seed_demo(app.state.service, "")
    if not settings.embedded:
        from bridge.service.dircheck import log_at_startup

        log_at_startup(app.state.service.directory, app.state.service.mapping)
    return app


if __name__ == "__main__":
    sys.exit(main())
