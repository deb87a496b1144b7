"""bench/sidecar_rss.py: one sidecar's memory, the whole mesh loaded against `calls`, measured on
real HAProxy processes, and its table in bench/RESULTS.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.report import sidecar_rss_lines
from bench.sidecar_rss import measure_one


@pytest.mark.haproxy
@pytest.mark.timeout(120)
def test_a_sidecar_with_calls_loads_less_and_holds_less_memory(tmp_path: Path) -> None:
    whole = measure_one("dns", tmp_path, services=100)
    scoped = measure_one("dns", tmp_path, services=100, calls=3)
    assert (whole["routed_services"], scoped["routed_services"]) == (100, 3)
    assert scoped["config_bytes"] * 10 < whole["config_bytes"]
    for row in (whole, scoped):
        assert row["answered"] == "health"
        assert 0 < row["vmrss_kib"] <= row["vmhwm_kib"]
    # 100 services' server-template slots (20 per service) cost tens of MiB more.
    assert scoped["vmhwm_kib"] + 20 * 1024 < whole["vmhwm_kib"]


@pytest.mark.haproxy
@pytest.mark.timeout(120)
def test_the_sandbox_config_answers_through_the_routes_to_a_real_app(tmp_path: Path) -> None:
    row = measure_one("static", tmp_path, services=20, calls=2)
    assert row["answered"] == "route"
    assert row["routed_services"] == 2
    assert 0 < row["vmrss_kib"] <= row["vmhwm_kib"]


def test_the_report_table_gives_each_variant_and_the_target() -> None:
    row = {
        "services": 1000,
        "calls": None,
        "routed_services": 1000,
        "answered": "health",
        "config_bytes": 8_580_524,
        "ready_s": 16.69,
        "vmrss_kib": 578_765,
        "vmhwm_kib": 578_765,
    }
    scoped = {**row, "calls": 5, "routed_services": 5, "config_bytes": 48_451}
    scoped.update(ready_s=0.44, vmrss_kib=18_739, vmhwm_kib=18_739)
    load = {"before": 6.07, "after": 5.5}
    # In results.json's order (sorted keys); the table gives the whole mesh first.
    rows = {"dns/calls5": scoped, "dns/whole": row, "static/whole": {"skipped": "it timed out"}}
    lines = sidecar_rss_lines({"rows": rows, "load_average": load})
    assert lines[0].startswith(
        "One sidecar's memory: the first service's v1 of the generated 1,000"
    )
    assert "Measured in this run; 1-minute load average 6.07 before, 5.50 after." in lines
    table = [line for line in lines if line.startswith("| ") and not line.startswith("| end")]
    assert table == [
        "| dns | whole mesh (1,000) | 8,580,524 | 16.69 | 565.2 | 565.2 |",
        "| dns | `calls` of 5 (5) | 48,451 | 0.44 | 18.3 | 18.3 |",
        "| static | whole mesh | - | skipped: it timed out | - | - |",
    ]
    assert lines[-1] == (
        "Target: a sidecar with `calls` <= 25 MiB: 18.3 MiB peak (the larger of the two): met."
    )
    over = {**scoped, "vmhwm_kib": 30 * 1024}
    apart: dict[str, Any] = {"rows": {"dns/calls5": over}, "load_average": load}
    apart["run"] = {"date": "2026-11-27 14:40 UTC", "commit": "abc1234"}
    lines = sidecar_rss_lines(apart)
    assert (
        "Measured apart, by `python -m bench.sidecar_rss` on 2026-11-27 14:40 UTC at commit "
        "abc1234; 1-minute load average 6.07 before, 5.50 after."
    ) in lines
    assert lines[-1].endswith("30.0 MiB peak (the larger of the two): NOT met.")
    assert sidecar_rss_lines(None) == [
        "One sidecar's memory (bench/sidecar_rss.py): not measured in this run."
    ]
