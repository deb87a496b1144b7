"""From raw measurements to the figures we report: pure, so it is unit-tested."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.scale import parse_key
from bench.stats import growth_exponent, median, paired

PATHS = ("direct", "one-sidecar", "two-sidecars")
# The two-sidecar path again, with `mtls: strict` between the sidecars (the other is plaintext).
MTLS_PATH = "two-sidecars-mtls"
# Each sidecar of the plaintext pair -> its counterpart in the mTLS pair.
MTLS_SIDECARS = {"caller": "caller-mtls", "callee": "callee-mtls"}
# The reference paths measured in the same runs: bare HAProxy hops, then the peers' two hops.
BARE = {"one-sidecar": "bare-one-hop", "two-sidecars": "bare-two-hops"}
PEER_PATHS = {"nginx": "nginx-two-hops", "traefik": "traefik-two-hops"}
ALL_PATHS = (*PATHS, MTLS_PATH, *BARE.values(), *PEER_PATHS.values())

# Our targets (bench/RESULTS.md explains where they come from).
TARGET_THROUGHPUT_RATIO = 0.45
TARGET_ADDED_P50_MS = 0.3
TARGET_ADDED_P99_MS = 1.0
TARGET_SIDECAR_VCPU = 0.05
TARGET_SIDECAR_RSS_MB = 20
TARGET_RENDER_1000_S = 1.0
TARGET_BARE_THROUGHPUT_RATIO = 0.9
TARGET_GROWTH_EXPONENT = 1.1
TARGET_RENDER_5000_S = 5.0
TARGET_BARE_ADDED_P50_MS = 0.05
# What mTLS may add over plaintext between the two sidecars, at ~1,000 req/s on kept-alive
# connections (issue 11).
TARGET_MTLS_ADDED_P50_MS = 0.15
TARGET_MTLS_ADDED_VCPU = 0.01
# What a user waits for: `sailplan render -o DIR` of 1,000 services (issue 13).
TARGET_CLI_ISTIO_1000_S = 1.5
TARGET_CLI_BUILTIN_OVER_ISTIO = 2.0
# Registering the `Mesh` component of 1,000 services under Pulumi's mocks (issue 13).
TARGET_PULUMI_1000_S = 6.0
# The outbound sidecar's per-request cost at the largest mesh size within 10% of the smallest's
# (issue 13: 1,000 against 10 services).
TARGET_OUTBOUND_GROWTH = 0.10


def dataplane_figures(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per path: medians over runs, and ratios/differences to the direct path run by run."""
    figures: dict[str, dict[str, float]] = {}
    direct_rps = [run["direct"]["saturated"]["rps"] for run in runs]
    for path in (p for p in ALL_PATHS if p in runs[0]):
        saturated = [run[path]["saturated"] for run in runs]
        fixed = [run[path]["fixed"] for run in runs]
        row = {
            "saturated_rps": median([s["rps"] for s in saturated]),
            "throughput_ratio": paired([s["rps"] for s in saturated], direct_rps).ratio_median,
            "fixed_rps": median([f["rps"] for f in fixed]),
        }
        for percentile in ("p50", "p90", "p99"):
            values = [f[f"{percentile}_us"] / 1000 for f in fixed]
            direct = [run["direct"]["fixed"][f"{percentile}_us"] / 1000 for run in runs]
            row[f"{percentile}_ms"] = median(values)
            row[f"added_{percentile}_ms"] = paired(values, direct).difference_median
        figures[path] = row
    return figures


def sidecar_figures(
    runs: Sequence[Mapping[str, Any]], peak_rss_kib: Mapping[str, int]
) -> dict[str, float]:
    """CPU of each sidecar while the two-sidecar path carries the fixed rate, and peak RSS."""
    vcpu = [run["two-sidecars"]["vcpu"] for run in runs]
    return {
        "caller_vcpu": median([v["caller"] for v in vcpu]),
        "callee_vcpu": median([v["callee"] for v in vcpu]),
        "backend_vcpu": median([v["backend"] for v in vcpu]),
        "caller_rss_mb": peak_rss_kib["caller"] / 1024,
        "callee_rss_mb": peak_rss_kib["callee"] / 1024,
        "backend_rss_mb": peak_rss_kib["backend"] / 1024,
    }


def render_growth(
    render: Mapping[str, Mapping[str, Any]], plane: str, calls: int | None = None
) -> float | None:
    """How render time grows with services (1 linear, 2 quadratic), over the sizes that ran."""
    points = sorted(
        (size, value["render_s"])
        for (p, size, c), value in ((parse_key(k), v) for k, v in render.items())
        if p == plane and c == calls and "render_s" in value and size >= 100
    )
    if len(points) < 2:
        return None
    return growth_exponent([p[0] for p in points], [p[1] for p in points])


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def summary_line(
    figures: Mapping[str, Mapping[str, float]],
    sidecar: Mapping[str, float],
    render_1000_s: float | None,
) -> str:
    two = figures["two-sidecars"]
    vcpu = max(sidecar["caller_vcpu"], sidecar["callee_vcpu"])
    rss = max(sidecar["caller_rss_mb"], sidecar["callee_rss_mb"])
    render = "not measured" if render_1000_s is None else f"{render_1000_s:.2f} s"
    return (
        f"summary: 2-hop throughput {two['throughput_ratio']:.2f}x direct, "
        f"+{two['added_p50_ms']:.2f} ms p50, +{two['added_p99_ms']:.2f} ms p99 @1000rps, "
        f"sidecar {vcpu:.3f} vCPU / {rss:.0f} MB, render 1000 services {render} (builtin)"
    )


def _ratios(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median over runs of numerator/denominator, each run with its own pair."""
    return paired(numerators, denominators).ratio_median


def path_vcpu(runs: Sequence[Mapping[str, Any]], proxies: Sequence[str], path: str) -> list[float]:
    """Per run, the vCPU of the path's proxies, summed, during that path's own fixed-rate window."""
    return [sum(run[path]["vcpu"][name] for name in proxies) for run in runs]


def bare_comparison(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Each sailplan path against the bare HAProxy hops of its length, run by run: throughput
    ratio, and the latency it adds on top of the bare hops (p50, p99) at the fixed rate."""
    rows = {}
    for path, bare in BARE.items():
        if bare not in runs[0]:
            continue
        ours = [run[path]["saturated"]["rps"] for run in runs]
        theirs = [run[bare]["saturated"]["rps"] for run in runs]
        row = {"throughput_ratio": _ratios(ours, theirs)}
        for percentile in ("p50", "p99"):
            mine = [run[path]["fixed"][f"{percentile}_us"] / 1000 for run in runs]
            base = [run[bare]["fixed"][f"{percentile}_us"] / 1000 for run in runs]
            row[f"added_{percentile}_ms"] = paired(mine, base).difference_median
        rows[path] = row
    return rows


def peer_comparison(
    runs: Sequence[Mapping[str, Any]],
    path_proxies: Mapping[str, Sequence[str]],
    memory_kib: Mapping[str, int],
) -> dict[str, dict[str, float]]:
    """sailplan's two sidecars against each peer's two hops, as sailplan/peer ratios (below 1 is
    sailplan using less, except throughput where above 1 is sailplan ahead): saturated
    throughput, latency added over the direct path (p50, p99), vCPU of both proxies at the fixed
    rate (each in its own window, paired by run), and memory (both proxies, `memory_kib`)."""
    ours = "two-sidecars"
    rows = {}
    for peer, path in PEER_PATHS.items():
        if path not in runs[0]:
            continue
        row = {
            "throughput_ratio": _ratios(
                [run[ours]["saturated"]["rps"] for run in runs],
                [run[path]["saturated"]["rps"] for run in runs],
            ),
            "vcpu_ratio": _ratios(
                path_vcpu(runs, path_proxies[ours], ours),
                path_vcpu(runs, path_proxies[path], path),
            ),
            "memory_ratio": sum(memory_kib[n] for n in path_proxies[ours])
            / sum(memory_kib[n] for n in path_proxies[path]),
        }
        for percentile in ("p50", "p99"):

            def added(p: str, percentile: str = percentile) -> list[float]:
                key = f"{percentile}_us"
                return [(run[p]["fixed"][key] - run["direct"]["fixed"][key]) / 1000 for run in runs]

            row[f"added_{percentile}_ratio"] = _ratios(added(ours), added(path))
        rows[peer] = row
    return rows


def mtls_comparison(
    runs: Sequence[Mapping[str, Any]], peak_rss_kib: Mapping[str, int]
) -> dict[str, Any] | None:
    """The two-sidecar path with mTLS against the same path in plaintext, run by run: saturated
    throughput ratio, added p50/p99 at the fixed rate, each sidecar's vCPU and peak RSS in both
    modes with the difference; and, when measured, the same with a new connection per request
    (`closed`), whose extra CPU per request is the connection set-up's. None when the run had no
    mTLS path."""
    plain = "two-sidecars"
    if not runs or MTLS_PATH not in runs[0]:
        return None

    def latency(path: str, key: str, percentile: str) -> list[float]:
        return [run[path][key][f"{percentile}_us"] / 1000 for run in runs]

    def window(key: str) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for percentile in ("p50", "p99"):
            row[f"{percentile}_ms"] = median(latency(plain, key, percentile))
            row[f"mtls_{percentile}_ms"] = median(latency(MTLS_PATH, key, percentile))
            row[f"added_{percentile}_ms"] = paired(
                latency(MTLS_PATH, key, percentile), latency(plain, key, percentile)
            ).difference_median
        vcpu_key = "vcpu" if key == "fixed" else f"{key}_vcpu"
        sidecars = {}
        for name, secure in MTLS_SIDECARS.items():
            ours = [run[MTLS_PATH][vcpu_key][secure] for run in runs]
            base = [run[plain][vcpu_key][name] for run in runs]
            rps = [run[MTLS_PATH][key]["rps"] for run in runs]
            sidecars[name] = {
                "vcpu": median(base),
                "mtls_vcpu": median(ours),
                "added_vcpu": paired(ours, base).difference_median,
                # CPU milliseconds mTLS adds to each request (vCPU-seconds per second / req/s).
                "added_cpu_ms_per_request": median(
                    [(o - b) / r * 1000 for o, b, r in zip(ours, base, rps, strict=True)]
                ),
            }
        row["sidecars"] = sidecars
        row["rps"] = median([run[plain][key]["rps"] for run in runs])
        row["mtls_rps"] = median([run[MTLS_PATH][key]["rps"] for run in runs])
        return row

    result: dict[str, Any] = {
        "throughput_ratio": _ratios(
            [run[MTLS_PATH]["saturated"]["rps"] for run in runs],
            [run[plain]["saturated"]["rps"] for run in runs],
        ),
        "fixed": window("fixed"),
        "rss_mib": {
            name: {"plain": peak_rss_kib[name] / 1024, "mtls": peak_rss_kib[secure] / 1024}
            for name, secure in MTLS_SIDECARS.items()
            if name in peak_rss_kib and secure in peak_rss_kib
        },
    }
    if all("closed" in run[plain] and "closed" in run[MTLS_PATH] for run in runs):
        result["closed"] = window("closed")
    return result


def outbound_growth(outbound: Mapping[str, Mapping[str, Any]]) -> dict[str, float] | None:
    """The outbound sidecar at the largest mesh size against the smallest, round by round (both
    ran in every round): CPU per request, saturated throughput and p50 at the fixed rate, as
    large/small ratios. None for runs made before the sizes were paired (no per-round figures)."""
    sizes = sorted(int(size) for size in outbound)
    if len(sizes) < 2:
        return None
    small, large = outbound[str(sizes[0])], outbound[str(sizes[-1])]
    if "runs" not in small or "runs" not in large:
        return None

    def ratio(name: str) -> float:
        return paired(
            [r[name] for r in large["runs"]], [r[name] for r in small["runs"]]
        ).ratio_median

    return {
        "small": sizes[0],
        "large": sizes[-1],
        "cpu_ratio": ratio("cpu_us_per_request"),
        "saturated_ratio": ratio("saturated_rps"),
        "p50_ratio": ratio("fixed_p50_us"),
    }


def outbound_growth_met(growth: Mapping[str, float]) -> bool:
    """Every figure within TARGET_OUTBOUND_GROWTH of the smallest mesh's (throughput not lower
    by more, CPU and p50 not higher by more)."""
    within = TARGET_OUTBOUND_GROWTH
    return (
        growth["cpu_ratio"] <= 1 + within
        and growth["saturated_ratio"] >= 1 - within
        and growth["p50_ratio"] <= 1 + within
    )
