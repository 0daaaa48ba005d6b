"""A few seconds of bench/soak.py (the 2-5 minute run is docs/soak-report.md): two slapd
restarts under load, no acknowledged write lost, no 500."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT, unavailable


def test_soak_smoke() -> None:
    try:
        from tests.integration.slapd import require_slapd

        require_slapd()
    except (ImportError, RuntimeError) as exc:
        unavailable(f"slapd is not available: {exc}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "bench/soak.py", "--duration", "8", "--outage", "1", "--threads", "3"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "acknowledged writes lost: **0**" in proc.stdout
    assert "500s (any 5xx other than 503): **0**" in proc.stdout
    assert "slapd restarted (2/2)" in proc.stdout
