"""Logging: JSON lines (one object per record) or plain text; fields passed with ``extra=``
(request_id, token, resource, ...) become keys.  Nothing here ever formats a secret: settings
hide passwords and tokens from ``repr``, and request bodies are never logged."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from bridge.context import current_request_id
from bridge.settings import Settings

_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class RequestIdFilter(logging.Filter):
    """Stamp every record with the current request id (contextvar), unless it carries one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            rid = current_request_id()
            if rid is not None:
                record.request_id = rid
        return True


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        JsonFormatter()
        if settings.log_json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger("bridge")
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    root.propagate = False
    # the audit trail is not optional: it stays on when BRIDGE_LOG_LEVEL is WARNING or ERROR
    logging.getLogger("bridge.audit").setLevel(logging.INFO)
