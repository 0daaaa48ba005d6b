"""Logging: JSON lines (one object per record) or plain text; fields passed with ``extra=``
(request_id, token, resource, ...) become keys.  Nothing here ever formats a secret: settings
hide passwords and tokens from ``repr``, and request bodies are never logged.

Every logged value may hold client input (a path, an id, a filter), so both formats escape
control characters (``clean``): a ``%0a`` in a URL cannot start a forged line, and a bidi
override cannot make a line read otherwise than it is."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

from bridge.observability.context import current_request_id
from bridge.settings import Settings

_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

#: C0 and C1 controls, DEL, the Unicode line and paragraph separators, zero-width and bidi
#: formatting characters: nothing a log reader should have interpreted for them
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(text: str) -> str:
    """``text`` with every control character written as a visible escape (``\\x0a``)."""
    return _CONTROL.sub(_escape, text)


def clean_value(value: Any) -> Any:
    """``clean`` applied to every string inside a logged value (dicts, lists, tuples)."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(str(k)): clean_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_value(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return clean(str(value))


def _traceback(text: str) -> str:
    """A traceback keeps its lines, each continuation indented, so none can pass for a record;
    any other control character in it (an exception message's) is escaped."""
    return "\n    ".join(clean(line) for line in text.splitlines())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": clean(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STD and not key.startswith("_"):
                out[key] = clean_value(value)
        if record.exc_info:
            out["exception"] = clean(self.formatException(record.exc_info))
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time level logger message``, one line per record (a traceback's lines indented)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = clean(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return "    " + _traceback(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return "    " + _traceback(stack_info)


class Budget:
    """A token bucket: at most ``rate`` events a second (bursts of ``rate``); ``take`` says
    whether this one may be logged and how many were refused since the last that was."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.clock = clock
        self.tokens = rate
        self.stamp = clock()
        self.suppressed = 0
        self.lock = threading.Lock()

    def take(self) -> tuple[bool, int]:
        with self.lock:
            now = self.clock()
            self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens < 1:
                self.suppressed += 1
                return False, 0
            self.tokens -= 1
            suppressed, self.suppressed = self.suppressed, 0
            return True, suppressed


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
    handler.setFormatter(JsonFormatter() if settings.log_json else TextFormatter())
    root = logging.getLogger("bridge")
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    root.propagate = False
    # the audit trail is not optional: it stays on when BRIDGE_LOG_LEVEL is WARNING or ERROR
    logging.getLogger("bridge.audit").setLevel(logging.INFO)
