"""bench: `sailplan render -o DIR` measured as a user runs it, and its table in the report."""

from __future__ import annotations

from bench import scale
from bench.report import _cli_rows


def test_the_cli_probe_runs_render_o_in_a_fresh_process() -> None:
    results = scale.run({}, [], [], timeout=120, cli_sizes={"istio": [10], "builtin": [10]})
    istio, builtin = results["cli"]["istio/10"], results["cli"]["builtin/10"]
    # A file per object: several per service; the builtin plane adds its proxy's objects.
    assert istio["files"] > 60
    assert builtin["files"] > istio["files"]
    assert 0 < istio["cli_s"] < 120
    # The same render again into the directory it wrote, and the first run's CPU time.
    assert 0 < istio["rewrite_s"] < 120
    assert 0 < istio["cli_cpu_s"] < 120
    assert istio["bytes"] > 10_000
    assert istio["peak_rss_mib"] > 20


def test_the_report_compares_each_plane_with_istio() -> None:
    rows = _cli_rows(
        {
            "istio/1000": {
                "cli_s": 1.25,
                "cli_cpu_s": 1.1,
                "rewrite_s": 0.9,
                "files": 7002,
                "bytes": 6855412,
                "peak_rss_mib": 116.4,
            },
            # A run recorded before the CPU time and the rewrite were measured.
            "builtin/1000": {"cli_s": 2.5, "files": 10021, "bytes": 9000000, "peak_rss_mib": 170},
            "builtin/5000": {"skipped": "did not finish within 180 s"},
        }
    )
    assert rows[-3:] == [
        "| istio | 1,000 | 1.25 | 1.10 | 1.00 | 0.90 | 7,002 | 6,855,412 | 116 |",
        "| builtin | 1,000 | 2.50 | - | 2.00 | - | 10,021 | 9,000,000 | 170 |",
        "| builtin | 5,000 | skipped: did not finish within 180 s | - | - | - | - | - | - |",
    ]
    assert _cli_rows({}) == []
