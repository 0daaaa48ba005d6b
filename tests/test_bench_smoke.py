"""A few seconds of bench/run.py --quick, so the benchmark keeps working (CI runs it; issue 8).

Performance is a benchmark result, not a test: nothing here asserts a timing.  It checks that
every scenario ran against slapd with the production entry point, answered without errors, and
that the LDAP floor was measured in the same run."""

from __future__ import annotations

import re
import shutil

from tests.conftest import run_bench, unavailable

SCENARIOS = ["lookup", "get", "list", "cursor", "create", "patch", "addmember", "delete"]
LABELS = ["lookup `userName eq`", "GET by id", "list page of 100 (start)",
          "cursor walk, pages of 100", "create",
          "PATCH replace", "PATCH add member (big group)", "DELETE"]  # fmt: skip


def test_bench_quick_smoke() -> None:
    if shutil.which("wrk") is None:
        unavailable("wrk is not installed (apt-get install wrk)")
    proc = run_bench(
        "bench/run.py",
        "--quick",
        "--duration",
        "1",
        "--workers",
        "1",
        "--scenarios",
        ",".join(SCENARIOS),
        "--floor",
        "libldap",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    rows = {
        cells[1].strip(): cells
        for line in proc.stdout.splitlines()
        if line.startswith("| ") and len(cells := line.split("|")) > 8
    }
    for label in LABELS:
        assert label in rows, f"no row for {label}: {proc.stdout[-3000:]}"
        cells = rows[label]
        bridge = cells[3].strip()  # "req/s" or "req/s (N err)"
        assert "err" not in bridge, f"{label}: {bridge}"
        assert int(re.sub(r"\D.*", "", bridge)) > 0, f"{label}: {bridge}"
        floor = cells[9].strip()
        assert re.match(r"\d+", floor), f"{label}: no floor measured ({floor})"
