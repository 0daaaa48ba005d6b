"""A few seconds of bench/soak.py (the 2-5 minute run is docs/soak-report.md): two slapd
restarts under load, no acknowledged write lost, no 500."""

from __future__ import annotations

from tests.conftest import run_bench


def test_soak_smoke() -> None:
    proc = run_bench(
        "bench/soak.py", "--duration", "8", "--outage", "1", "--threads", "3", timeout=180
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "acknowledged writes lost: **0**" in proc.stdout
    assert "500s (any 5xx other than 503): **0**" in proc.stdout
    assert "slapd restarted (2/2)" in proc.stdout
