"""A large PATCH with python-ldap on the event loop (issue 16 item 4): it runs in the
threadpool, so the loop keeps answering /healthz meanwhile; a small PATCH stays on the loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from bridge import concurrency
from bridge.directory.base import Directory
from bridge.mapping.model import MappingConfig
from bridge.service import facade
from bridge.settings import Settings, Token
from bridge.web.app import build_app
from tests.conftest import TOKEN, _empty, slapd_directory
from tests.helpers import PATCH_SCHEMA, SCIM, USER_SCHEMA


@pytest.fixture
def libldap(slapd_server: Any, openldap_mapping: MappingConfig) -> Iterator[Directory]:
    d = slapd_directory(slapd_server, "libldap", pool_size=2)
    _empty(d, openldap_mapping)
    yield d
    _empty(d, openldap_mapping)
    d.close()


def _big_patch(per_kind: int, per_op: int) -> dict[str, Any]:
    """Adds of ``per_kind`` work and mobile phone numbers and 2 x ``per_kind`` work emails,
    ``per_op`` values an operation."""
    kinds = [("phoneNumbers", "work"), ("phoneNumbers", "mobile"), ("emails", "work")]
    ops = []
    for start in range(0, per_kind, per_op):
        for attr, kind in kinds:
            count = per_op * (2 if attr == "emails" else 1)
            elements = [
                {"type": kind, "value": f"u{i}.{kind}@example.org"}
                if attr == "emails"
                else {"type": kind, "value": f"+1 555 {kind[0]}{i:07d}"}
                for i in range(start * 2, start * 2 + count)
            ]
            ops.append({"op": "add", "path": attr, "value": elements})
    return {"schemas": [PATCH_SCHEMA], "Operations": ops}


def test_healthz_answers_while_a_big_patch_is_planned(
    libldap: Directory, openldap_mapping: MappingConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = build_app(
        Settings(tokens=(Token("test", TOKEN),), max_body_bytes=4 << 20),
        directory=libldap,
        mapping=openldap_mapping,
    )
    assert app.state.cooperative
    offloaded: list[str] = []
    real = concurrency.offload

    def spy(fn: Any, *args: Any, **kw: Any) -> Any:
        offloaded.append(fn.__name__)
        return real(fn, *args, **kw)

    monkeypatch.setattr(concurrency, "offload", spy)
    planning: list[float] = []  # when the big PATCH's planning started and ended
    real_plan = facade.plan  # the pure planner, as the service calls it

    def timed_plan(*args: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        try:
            return real_plan(*args, **kw)
        finally:
            planning.extend((start, time.perf_counter()))

    monkeypatch.setattr(facade, "plan", timed_plan)
    body = _big_patch(4_950, 15)  # 990 operations, 19,800 values (~0.9 MB)

    async def main() -> tuple[int, float, list[float], int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="https://scim.example.test",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as ac:
            r = await ac.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": "big"})
            uid = r.json()["id"]
            small = await ac.patch(
                f"{SCIM}/Users/{uid}",
                json={
                    "schemas": [PATCH_SCHEMA],
                    "Operations": [{"op": "replace", "path": "title", "value": "t"}],
                },
            )
            assert small.status_code == 200, small.text
            assert offloaded == []  # the common small PATCH stays on the loop
            answers: list[float] = []
            done = asyncio.Event()

            async def probe() -> None:
                while not done.is_set():
                    h = await ac.get("/healthz")
                    assert h.status_code == 200
                    answers.append(time.perf_counter())
                    await asyncio.sleep(0.01)

            planning.clear()  # the small PATCH's
            raw = orjson.dumps(body)  # encoded before the clock starts
            prober = asyncio.ensure_future(probe())
            t0 = time.perf_counter()
            big = await ac.patch(
                f"{SCIM}/Users/{uid}",
                content=raw,
                headers={"Content-Type": "application/scim+json"},
                params={"attributes": "id"},
            )
            took = time.perf_counter() - t0
            done.set()
            await prober
            return big.status_code, took, answers, len(offloaded)

    status, took, answers, count = asyncio.run(main())
    assert status == 200
    assert count == 1  # run in the threadpool
    start, end = planning
    during = [t for t in answers if start < t < end]
    # a loop blocked by the planning answers nothing until it ends; a free one every ~10 ms
    assert len(during) >= max(2, int((end - start) / 0.1)), (end - start, len(during), took)
