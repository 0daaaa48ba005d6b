"""ASGI application factory for process managers: ``uvicorn --factory bridge.web.asgi:app``.

``serve --workers N`` uses it (uvicorn needs an import string to start worker processes); every
worker reads its settings from the BRIDGE_* environment and keeps its own LDAP pool.  The
embedded directory and the dry-run overlay live in one process's memory, so they are refused
here: N workers would be N unrelated directories.
"""

from __future__ import annotations

from starlette.applications import Starlette

from bridge.errors import ConfigError, Problem
from bridge.observability.logs import setup_logging
from bridge.settings import Settings
from bridge.web.app import build_app


def app() -> Starlette:
    settings = Settings.from_env()
    if settings.embedded:
        raise ConfigError(
            [Problem("BRIDGE_LDAP_URL", "the app factory serves a real directory: set it")]
        )
    if settings.dry_run:
        raise ConfigError(
            [Problem("BRIDGE_DRY_RUN", "dry-run keeps planned writes in one process: use serve")]
        )
    if not settings.tokens:
        raise ConfigError([Problem("BRIDGE_TOKEN", "set BRIDGE_TOKEN or BRIDGE_TOKEN_<NAME>")])
    setup_logging(settings)
    built = build_app(settings)
    from bridge.service.dircheck import log_at_startup  # findings logged once, never fatal

    log_at_startup(built.state.service.directory, built.state.service.mapping)
    return built
