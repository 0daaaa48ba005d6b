"""Bounds on the HTTP request head, which uvicorn's httptools protocol does not have.

uvicorn offers ``limit_concurrency`` (503 above it) and ``timeout_keep_alive`` (idle time
*between* requests), and h11 has ``h11_max_incomplete_event_size``; httptools (llhttp) has no
limit on header size or count and no timeout for a head that arrives slowly.  A 16 MB header
or 5,000 headers were accepted on ``/healthz``, and a connection that trickles its head
(slowloris) or sends nothing at all was held open for ever.

:class:`BoundedHttpToolsProtocol` keeps the fast C parser and adds, per request:

* the request line and headers together at most ``max_header_bytes`` (431);
* at most ``max_headers`` header fields (431);
* the whole head within ``header_timeout`` seconds of its first byte, or of the connection's
  start (408, then the connection is closed).

Bytes are counted as they arrive, before httptools has buffered a whole header, so the memory a
request head can take is bounded by the limit plus one socket read.  The cost on a normal
request is a few attribute updates per callback (measured in bench: see the commit message).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bridge.settings import Settings

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounded request heads (limits set by :func:`bounded`)."""

    max_header_bytes = 16 << 10
    max_headers = 100
    header_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = True
        self._head_bytes = 0
        self._header_count = 0
        self._rejected = False
        self._head_timer: asyncio.TimerHandle | None = None

    # -- connection ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return
        if self._head_open:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._head_open and self._head_bytes > self.max_header_bytes:
            self._reject(431, f"request head larger than {self.max_header_bytes} bytes")

    def send_400_response(self, msg: str) -> None:
        if not self._rejected:  # a parse error after a 431/408: nothing more to send
            super().send_400_response(msg)

    # -- parser callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._rejected:
            return
        super().on_message_begin()
        self._head_open = True
        self._header_count = 0
        self._start_head_timer()

    # After a rejection the rest of the chunk being parsed is ignored (no exception: uvicorn
    # would log it as an invalid request and try to answer 400 on the closed connection).
    def on_url(self, url: bytes) -> None:
        if not self._rejected:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._rejected:
            return
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._reject(431, f"more than {self.max_headers} header fields")
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._rejected:
            return
        self._stop_head_timer()
        self._head_open = False
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        self._head_bytes = 0
        if size > self.max_header_bytes:
            self._reject(431, f"request head larger than {self.max_header_bytes} bytes")
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._rejected:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._rejected:
            return
        super().on_message_complete()
        self._head_open = True
        self._head_bytes = 0

    # -- limits -------------------------------------------------------------------------------
    def _start_head_timer(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._head_open and not self._rejected and not self.transport.is_closing():
            self._reject(408, f"request head not received within {self.header_timeout:g} s")

    def _reject(self, status: int, message: str) -> None:
        """Answer ``status`` with a plain-text reason and close: the request never reaches
        the app, and nothing more is read from this connection."""
        self._rejected = True
        self._stop_head_timer()
        body = message.encode("ascii")
        head = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
        self.transport.write(
            head
            + b"content-type: text/plain; charset=utf-8\r\n"
            + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
            + body
        )
        self.transport.close()
        self.logger.info("refused a request head: %s", message)


def bounded(settings: Settings) -> type[BoundedHttpToolsProtocol]:
    """A :class:`BoundedHttpToolsProtocol` subclass with the limits of ``settings``, for
    uvicorn's ``http`` option in this process."""
    return type(
        "BoundedHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {
            "max_header_bytes": settings.max_header_bytes,
            "max_headers": settings.max_headers,
            "header_timeout": settings.header_timeout,
        },
    )


class EnvBoundedHttpToolsProtocol(BoundedHttpToolsProtocol):
    """For ``serve --workers N``: uvicorn starts each worker from an importable class, so the
    limits come from that worker's BRIDGE_* environment, read once (validated by the parent)."""

    _loaded = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        if not cls._loaded:
            settings = Settings.from_env()
            cls.max_header_bytes = settings.max_header_bytes
            cls.max_headers = settings.max_headers
            cls.header_timeout = settings.header_timeout
            cls._loaded = True
        super().__init__(*args, **kwargs)
