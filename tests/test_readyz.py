"""Issue 16 item 13: /readyz answers only ready or not (the reason goes to the log), and a flood of
it costs at most one directory probe per interval, one at a time.  Embedded and slapd."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator

import pytest

from bridge.errors import DirectoryError
from bridge.web.ops import Readiness
from tests.conftest import Backend, make_client


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger="bridge")
    yield caplog


# ---------------------------------------------------------------------------------- 5. /readyz
def test_readyz_says_ready_or_not_and_logs_why(
    backend: Backend, logs: pytest.LogCaptureFixture
) -> None:
    client = make_client(backend)
    calls = []

    def refused() -> None:
        calls.append(1)
        raise DirectoryError("invalidCredentials", "bind refused", operation="bind")

    client.app.state.directory.inner.check = refused  # type: ignore[attr-defined]
    for _ in range(50):  # a flood costs one probe per interval
        r = client.get("/readyz", headers={"Authorization": ""})
        assert r.status_code == 503 and r.json() == {"status": "unavailable"}
        assert "invalidCredentials" not in r.text
    assert len(calls) == 1
    assert any(r.__dict__.get("code") == "invalidCredentials" for r in logs.records)
    client.app.state.readiness.ttl = 0  # the interval has passed
    assert client.get("/readyz").status_code == 503 and len(calls) == 2


def test_readyz_runs_one_probe_at_a_time() -> None:
    calls = []
    gate = threading.Event()

    class Slow:
        def check(self) -> None:
            calls.append(1)
            gate.wait(5)

    async def flood() -> list[bool]:
        probe = Readiness(ttl=60)
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, gate.set)
        return await asyncio.gather(*(probe(Slow()) for _ in range(20)))

    assert asyncio.run(flood()) == [True] * 20
    assert len(calls) == 1
