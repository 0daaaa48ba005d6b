"""Bounded request heads (issue 16 item 9) on a real ``serve`` process on 127.0.0.1: header
bytes, header count and the time to send a head are limited; normal requests, keep-alive and
bodies are unaffected.  Raw sockets, small bounded loops."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "BRIDGE_PORT": str(port),
        "BRIDGE_TOKEN": "header-token",
        "BRIDGE_MAX_HEADER_BYTES": "8192",
        "BRIDGE_MAX_HEADERS": "40",
        "BRIDGE_HEADER_TIMEOUT": "1.5",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
                    b"HTTP/1.1 200"
                ):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("server did not come up")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def request(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send ``data``, read until the server closes or a response head and body are in."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # the server may close while we send a huge head
            sock.sendall(data)
        return _read_response(sock)


def _read_response(sock: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return out
        if not chunk:
            return out
        out += chunk
        head, sep, body = out.partition(b"\r\n\r\n")
        if sep:
            length = [
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            if length and len(body) >= length[0]:
                return out


def test_a_normal_request_passes(server: int) -> None:
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(30))
    reply = request(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 200")


def test_keep_alive_requests_and_a_body_pass(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        for _ in range(5):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_response(sock).startswith(b"HTTP/1.1 200")
        body = b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"count":1}'
        body += b" " * 20000  # a body larger than the head limit is not a head
        sock.sendall(
            b"POST /scim/v2/Users/.search HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer header-token\r\nContent-Type: application/scim+json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )
        assert _read_response(sock).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("size", [9000, 1 << 20, 16 << 20])
def test_a_big_header_is_431(server: int, size: int) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
    reply = request(server, head)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]


def test_a_long_request_line_is_431(server: int) -> None:
    reply = request(server, b"GET /healthz?" + b"q" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]


@pytest.mark.parametrize("count", [41, 5000])
def test_too_many_headers_is_431(server: int, count: int) -> None:
    headers = b"".join(b"X-%d: v\r\n" % i for i in range(count))
    reply = request(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]
    assert b"more than 40 header fields" in reply


def test_a_slow_head_times_out(server: int) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        for i in range(20):  # one header line every 0.2 s: slower than the 1.5 s allowed
            try:
                sock.sendall(b"X-%d: v\r\n" % i)
            except OSError:
                break
            time.sleep(0.2)
        reply = _read_response(sock)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert time.monotonic() - started < 6


def test_a_silent_connection_is_closed(server: int) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        reply = _read_response(sock)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert 1.0 < time.monotonic() - started < 6
