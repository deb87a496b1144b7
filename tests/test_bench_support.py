"""The benchmark harness's pure parts: percentiles, pairwise aggregation, generated meshes."""

from __future__ import annotations

import pytest

from bench.meshgen import generated_mesh_document, generated_mesh_yaml, service_name
from bench.stats import growth_exponent, median, medians_by_key, paired, percentile
from bench.summary import dataplane_figures, summary_line
from sailplan.loader import load_mesh_text


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [40.0, 10.0, 30.0, 20.0]
    assert percentile(values, 0) == 10.0
    assert percentile(values, 100) == 40.0
    assert percentile(values, 50) == 25.0
    assert percentile(values, 90) == pytest.approx(37.0)
    assert median([3.0, 1.0, 2.0]) == 2.0


def test_percentile_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match=r"^percentile of no values$"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"^101 is not a percentile: use 0 to 100$"):
        percentile([1.0], 101)


def test_paths_are_compared_run_by_run_with_their_own_direct_measurement() -> None:
    # Run 2's direct path was slow; so was its sidecar path. Pairing keeps the ratio honest
    # where dividing the medians would not.
    summary = paired([50.0, 20.0, 45.0], [100.0, 40.0, 90.0])
    assert summary.ratio_median == 0.5
    assert summary.path_median == 45.0
    assert summary.direct_median == 90.0
    assert summary.difference_median == -45.0
    with pytest.raises(ValueError, match=r"^2 path runs but 1 direct runs$"):
        paired([1.0, 2.0], [1.0])


def test_medians_by_key_uses_keys_every_run_has() -> None:
    runs = [{"a": 1.0, "b": 5.0}, {"a": 3.0}, {"a": 2.0, "b": 7.0}]
    assert medians_by_key(runs) == {"a": 2.0}


def test_growth_exponent_tells_linear_from_quadratic() -> None:
    sizes = [10.0, 100.0, 1000.0]
    assert growth_exponent(sizes, [0.01, 0.1, 1.0]) == pytest.approx(1.0)
    assert growth_exponent(sizes, [0.01, 1.0, 100.0]) == pytest.approx(2.0)


def _run(direct_rps: float, two_rps: float, direct_p50: int, two_p50: int) -> dict[str, object]:
    def path(rps: float, p50: int) -> dict[str, object]:
        fixed = {"rps": 990.0, "p50_us": p50, "p90_us": p50 * 2, "p99_us": p50 * 3}
        return {"saturated": {"rps": rps}, "fixed": fixed}

    return {
        "direct": path(direct_rps, direct_p50),
        "one-sidecar": path(direct_rps * 0.8, direct_p50 + 50),
        "two-sidecars": path(two_rps, two_p50),
    }


def test_dataplane_figures_and_summary_line() -> None:
    runs = [_run(1000, 500, 200, 400), _run(800, 480, 200, 500), _run(1200, 540, 100, 400)]
    figures = dataplane_figures(runs)
    two = figures["two-sidecars"]
    assert two["throughput_ratio"] == 0.5  # median of 0.5, 0.6, 0.45
    assert two["added_p50_ms"] == 0.3  # median of 0.2, 0.3, 0.3
    assert two["added_p99_ms"] == pytest.approx(0.9)
    sidecar = {
        "caller_vcpu": 0.031,
        "callee_vcpu": 0.02,
        "caller_rss_mb": 9.2,
        "callee_rss_mb": 8.0,
    }
    assert summary_line(figures, sidecar, 0.41) == (
        "summary: 2-hop throughput 0.50x direct, +0.30 ms p50, +0.90 ms p99 @1000rps, "
        "sidecar 0.031 vCPU / 9 MB, render 1000 services 0.41 s (builtin)"
    )


def test_generated_mesh_is_valid_with_matches_faults_and_retries() -> None:
    mesh = load_mesh_text(generated_mesh_yaml(12), "generated")
    assert sorted(mesh.services) == [service_name(i) for i in range(12)]
    service = mesh.services[service_name(11)]
    assert sorted(service.versions) == ["v1", "v2"]
    assert [route.name for route in service.routes] == ["testers", "chaos", "canary"]
    assert all(route.match for route in service.routes[:2])
    assert service.routes[1].fault is not None and service.routes[2].retries is not None
    assert mesh.data_plane == "builtin"
    assert load_mesh_text(generated_mesh_yaml(3, "istio")).data_plane == "istio"


def test_generated_mesh_needs_a_service() -> None:
    with pytest.raises(ValueError, match=r"^a generated mesh needs at least one service$"):
        generated_mesh_document(0)
