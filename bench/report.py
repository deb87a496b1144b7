"""bench/RESULTS.md and bench/results.png from one run's measurements."""

from __future__ import annotations

import datetime
import math
import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench import redos
from bench import summary as s
from bench.scale import PREDICTION_MARGIN, parse_key
from bench.sidecar_rss import TARGET_CALLS_RSS_MIB
from bench.stats import median

HERE = Path(__file__).resolve().parent

# The outbound sidecar's saturated req/s with the flat rule list the compiler emitted before commit
# 7d6eda4 (this harness, commit 5280427): kept to show what the map dispatch changed.
FLAT_RULES_RPS = {10: 48_531, 100: 6_207, 1000: 529}


def _command(*argv: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "unavailable"
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else "?"


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    memory_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _command("git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"),
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{memory_kib / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "haproxy": _command("haproxy", "-v"),
        "wrk": "Debian wrk 4.1 (no fixed-rate mode)",
        "python": platform.python_version(),
    }


def _f(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


def chart(
    figures: Mapping[str, Mapping[str, float]],
    render: Mapping[str, Mapping[str, Any]],
    outbound: Mapping[str, Mapping[str, float]],
    path: Path,
    outbound_run: str = "this run",
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    labels = [p for p in s.ALL_PATHS if p in figures]
    palette = ["#4c72b0", "#dd8452", "#c44e52", "#8c8c8c", "#595959", "#55a868", "#8172b2"]
    colors = [palette[i % len(palette)] for i in range(len(labels))]

    latency = axes[0][0]
    width = 0.25
    for index, percentile in enumerate(("p50", "p90", "p99")):
        values = [figures[p][f"{percentile}_ms"] for p in labels]
        bars = latency.bar(
            [x + (index - 1) * width for x in range(len(labels))], values, width, label=percentile
        )
        latency.bar_label(bars, fmt="%.2f", fontsize=6)
    latency.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
    latency.set_ylabel("latency (ms)")
    latency.set_title("Latency at a fixed ~1,000 req/s (median of runs)")
    latency.legend()

    throughput = axes[0][1]
    values = [figures[p]["saturated_rps"] / 1000 for p in labels]
    bars = throughput.bar(labels, values, color=colors)
    throughput.bar_label(
        bars,
        labels=[
            f"{v:.1f}k ({figures[p]['throughput_ratio']:.2f}x)"
            for v, p in zip(values, labels, strict=True)
        ],
        fontsize=7,
    )
    throughput.tick_params(axis="x", labelrotation=20, labelsize=8)
    throughput.set_ylabel("requests/s (thousands)")
    throughput.set_title("Saturated throughput, 32 connections (ratio to direct)")

    scaling = axes[1][0]
    parsed = [(parse_key(k), v) for k, v in render.items()]
    for plane, marker in (("istio", "o"), ("builtin", "s")):
        for calls in sorted({c for (p, _, c), _ in parsed if p == plane}, key=lambda c: c or 0):
            points = sorted(
                (size, v["render_s"])
                for (p, size, c), v in parsed
                if p == plane and c == calls and "render_s" in v
            )
            if points:
                scaling.plot(
                    [p[0] for p in points],
                    [p[1] for p in points],
                    marker=marker,
                    linestyle="-" if calls is None else "-.",
                    label=f"render_manifests, {plane}"
                    + ("" if calls is None else f", calls: {calls} each"),
                )
    loads = sorted(
        (size, v["load_s"])
        for (p, size, c), v in parsed
        if p == "istio" and c is None and "load_s" in v
    )
    if loads:
        scaling.plot(
            [p[0] for p in loads],
            [p[1] for p in loads],
            marker="^",
            linestyle="--",
            label="load + validate",
        )
    scaling.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    scaling.set_xscale("log")
    scaling.set_yscale("log")
    scaling.set_xlabel("services (2 versions each)")
    scaling.set_ylabel("seconds")
    scaling.set_title("Rendering time vs mesh size (log-log; dotted: 1 s)")
    scaling.legend(fontsize=8)

    routing = axes[1][1]
    sizes = sorted(int(k) for k in outbound)
    routing.plot(
        sizes,
        [outbound[str(n)]["saturated_rps"] for n in sizes],
        marker="o",
        label=f"compiled outbound ({outbound_run})",
    )
    before = sorted(FLAT_RULES_RPS.items())
    routing.plot(
        [n for n, _ in before],
        [r for _, r in before],
        marker="s",
        linestyle="--",
        label="flat rules, before commit 7d6eda4 (earlier run)",
    )
    routing.set_xscale("log")
    routing.set_yscale("log")
    routing.set_xlabel("services in the mesh")
    routing.set_ylabel("requests/s, one outbound sidecar")
    routing.set_title("Outbound sidecar saturated throughput vs mesh size")
    routing.legend(fontsize=8)

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _render_rows(render: Mapping[str, Mapping[str, Any]]) -> list[str]:
    rows = [
        "| data plane | services | calls | objects | load + validate (s) | render_manifests (s) | "
        "peak RSS (MiB) | manifests (MB) | largest ConfigMap (KiB) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, value in render.items():
        plane, size, calls = parse_key(key)
        scope = "whole mesh" if calls is None else f"{calls} each"
        if "skipped" in value:
            rows.append(
                f"| {plane} | {size:,} | {scope} | - | - | skipped: {value['skipped']} | - | - | - |"
            )
            continue
        manifests = value.get("manifest_bytes")
        largest = value.get("largest_config_map_bytes")
        rows.append(
            f"| {plane} | {size:,} | {scope} | {value['objects']:,} | {_f(value['load_s'], 3)} | "
            f"{_f(value['render_s'], 3)} | {_f(value['peak_rss_mib'], 0)} | "
            + ("-" if manifests is None else _f(manifests / 1e6, 1))
            + " | "
            + ("-" if largest is None else _f(largest / 1024, 0))
            + " |"
        )
    return rows


def _cli_rows(cli: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """`sailplan render -o DIR` as a user waits for it, and each plane's time relative to istio's
    at the same size (both measured in this run)."""
    if not cli:
        return []
    rows = [
        "What a user waits for: `python -m sailplan render MESH -o DIR --data-plane P` of the generated",
        "mesh in a fresh process, wall time from its start until every file is written (interpreter,",
        "imports, load, render, YAML writing), into a new directory, with the CPU time (user +",
        "system) of that run; then again into the same directory, where every file already holds its",
        "bytes and is left alone. The directories are made inside the checkout (bench/out/), as a",
        "user renders into their repository, and removed only after the last run: ext4 passes over",
        "recently freed inodes when it makes a file, so under /tmp after the test suite, or after an",
        "earlier run's clean-up, the same render paid seconds of system time (FINDINGS points 13, 15).",
        "",
        "| data plane | services | `render -o DIR` (s) | CPU (s) | / istio | again, same DIR (s) | files | bytes | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, value in cli.items():
        plane, size, _ = parse_key(name)
        if "cli_s" not in value:
            rows.append(
                f"| {plane} | {size:,} | skipped: {value.get('skipped', '?')} | - | - | - | - | - | - |"
            )
            continue
        istio = cli.get(f"istio/{size}", {}).get("cli_s")
        ratio = "-" if not istio else f"{value['cli_s'] / istio:.2f}"
        cpu = value.get("cli_cpu_s")
        again = value.get("rewrite_s")
        rows.append(
            f"| {plane} | {size:,} | {value['cli_s']:.2f} | "
            + ("-" if cpu is None else f"{cpu:.2f}")
            + f" | {ratio} | "
            + ("-" if again is None else f"{again:.2f}")
            + f" | {value['files']:,} | {value['bytes']:,} | {value['peak_rss_mib']:.0f} |"
        )
    return ["", *rows]


def _calls_skipped(render: Mapping[str, Mapping[str, Any]]) -> str:
    """Why sizes with `calls` did not run (the first reason given), for the targets table."""
    return next(
        (v["skipped"] for k, v in render.items() if parse_key(k)[2] is not None and "skipped" in v),
        "?",
    )


def _memory(plane: Mapping[str, Any]) -> dict[str, int]:
    """Per proxy, the memory the peer ratios use: PSS at the end of the runs (pages nginx's
    master and workers share count once), else peak RSS for runs recorded before PSS was."""
    pss: dict[str, int] = plane.get("pss_kib") or {}
    return pss or dict(plane["peak_rss_kib"])


def reference_summary(plane: Mapping[str, Any]) -> str:
    """The summary line's tail: two sidecars against two bare hops and against each peer."""
    runs = plane["runs"]
    parts = []
    bare = s.bare_comparison(runs).get("two-sidecars")
    if bare is not None:
        parts.append(
            f"vs bare 2-hop {bare['throughput_ratio']:.2f}x throughput, "
            f"{bare['added_p50_ms']:+.2f} ms p50"
        )
    peers = s.peer_comparison(runs, plane.get("path_proxies", {}), _memory(plane))
    for peer, row in peers.items():
        parts.append(
            f"vs {peer} {row['throughput_ratio']:.2f}x throughput, {row['vcpu_ratio']:.2f}x vCPU, "
            f"{row['memory_ratio']:.2f}x memory"
        )
    return "".join(f"; {part}" for part in parts)


def reference_targets(plane: Mapping[str, Any]) -> list[str]:
    """Target rows: each sailplan path against its bare hops; sailplan ahead of each peer."""
    runs = plane["runs"]
    rows = []
    for path, row in s.bare_comparison(runs).items():
        ratio, added = row["throughput_ratio"], row["added_p50_ms"]
        rows.append(
            f"| {path} >= {s.TARGET_BARE_THROUGHPUT_RATIO}x the saturated throughput of "
            f"{s.BARE[path]}, <= +{s.TARGET_BARE_ADDED_P50_MS} ms p50 over it @1,000 rps | "
            f"{ratio:.2f}x, {added:+.3f} ms | "
            f"{s.verdict(ratio >= s.TARGET_BARE_THROUGHPUT_RATIO and added <= s.TARGET_BARE_ADDED_P50_MS)} |"
        )
    peers = s.peer_comparison(runs, plane.get("path_proxies", {}), _memory(plane))
    for peer, row in peers.items():
        ahead = (
            row["throughput_ratio"] > 1
            and all(row[k] < 1 for k in ("added_p50_ratio", "added_p99_ratio", "vcpu_ratio"))
            and row["memory_ratio"] < 1
        )
        rows.append(
            f"| two sidecars ahead of {peer} on throughput, added p50/p99, vCPU and memory | "
            f"{row['throughput_ratio']:.2f}x / {row['added_p50_ratio']:.2f}x / "
            f"{row['added_p99_ratio']:.2f}x / {row['vcpu_ratio']:.2f}x / {row['memory_ratio']:.2f}x "
            f"| {s.verdict(ahead)} |"
        )
    for peer, reason in plane.get("skipped", {}).items():
        rows.append(f"| two sidecars ahead of {peer} | skipped: {reason} | not measured |")
    return rows


def reference_sections(plane: Mapping[str, Any]) -> list[str]:
    """The per-path cost table and the bare-hop and peer comparisons, from the same runs."""
    runs = plane["runs"]
    proxies: Mapping[str, list[str]] = plane.get("path_proxies", {})
    if not proxies:
        return []
    memory = _memory(plane)
    rss = plane["peak_rss_kib"]
    out = [
        "| path | proxies | vCPU of its proxies @~1,000 req/s (each path in its own window) | "
        "memory: PSS at the end | peak RSS (VmHWM) |",
        "|---|---|---:|---:|---:|",
    ]
    for path in (p for p in s.ALL_PATHS if p in proxies and p != "direct"):
        names = proxies[path]
        vcpu = median(s.path_vcpu(runs, names, path))
        out.append(
            f"| {path} | {', '.join(names)} | {vcpu:.3f} | "
            f"{sum(memory[n] for n in names) / 1024:.1f} MiB | "
            f"{sum(rss[n] for n in names) / 1024:.1f} MiB |"
        )
    bare = s.bare_comparison(runs)
    if bare:
        out += [
            "",
            "## sailplan's paths against bare HAProxy hops",
            "",
            "A bare hop is HAProxy with the callee sidecar's own `global` and `defaults` sections",
            "(nbthread 2, the same timeouts, keep-alive, reuse and log options), then `bind`,",
            "`default_backend`, one server and no rules (bench/peer_configs.py `bare_hop_config`),",
            "logging requests only if the sidecars do (the bench mesh's `accessLog`: they do not);",
            "two bare hops are two such processes in a row. The difference is the cost of sailplan's",
            "rules: routing, the request id, the route timeout's unix-socket hop. Ratios and",
            "differences are taken run by run, then the median.",
            "",
            "| sailplan path | bare counterpart | saturated throughput vs bare | added p50 over bare | "
            "added p99 over bare |",
            "|---|---|---:|---:|---:|",
        ]
        for path, row in bare.items():
            out.append(
                f"| {path} | {s.BARE[path]} | {row['throughput_ratio']:.2f}x | "
                f"{row['added_p50_ms']:+.3f} ms | {row['added_p99_ms']:+.3f} ms |"
            )
    peers = s.peer_comparison(runs, proxies, memory)
    skipped: Mapping[str, str] = plane.get("skipped", {})
    if peers or skipped:
        out += [
            "",
            "## Peers: nginx and Traefik on the same two-hop path",
            "",
            "wrk -> caller proxy (the bench mesh's routes for service1: header match, 80/20 split,",
            "timeout, retries, least-request, connection pool) -> callee proxy -> the same app, from the",
            "hand-written configs in bench/peers/ (bench/peers/README.md lists each equivalence and what",
            "differs). Ratios are sailplan's two sidecars / the peer's two hops, run by run, then the",
            "median: throughput above 1x is sailplan ahead; latency, vCPU and memory below 1x are.",
            "Added latency is over the direct path of the same run; vCPU is both proxies' while their",
            "own path carries ~1,000 req/s; memory is both proxies' PSS at the end of the runs.",
            "",
            "| peer | throughput | added p50 | added p99 | vCPU | memory |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for peer, row in peers.items():
            out.append(
                f"| {peer} | {row['throughput_ratio']:.2f}x | {row['added_p50_ratio']:.2f}x | "
                f"{row['added_p99_ratio']:.2f}x | {row['vcpu_ratio']:.2f}x | "
                f"{row['memory_ratio']:.2f}x |"
            )
        for peer, reason in skipped.items():
            out.append(f"| {peer} | skipped: {reason} | | | | |")
    return out


ISTIO_PERF_URL = "https://istio.io/latest/docs/ops/deployment/performance-and-scalability/"
ISTIO_1_20_PERF_URL = "https://istio.io/v1.20/docs/ops/deployment/performance-and-scalability/"


def mtls_summary(comparison: Mapping[str, Any] | None) -> str:
    """The summary line's tail: what mTLS adds to the two-sidecar path over plaintext."""
    if comparison is None:
        return ""
    fixed = comparison["fixed"]
    vcpu = max(row["added_vcpu"] for row in fixed["sidecars"].values())
    return (
        f"; mTLS vs plaintext {fixed['added_p50_ms']:+.3f} ms p50, {vcpu:+.3f} vCPU/sidecar, "
        f"{comparison['throughput_ratio']:.2f}x throughput"
    )


def outbound_target_rows(outbound: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The targets row for the outbound sidecar's per-request cost against mesh size."""
    growth = s.outbound_growth(outbound)
    within = f"{s.TARGET_OUTBOUND_GROWTH:.0%}"
    if growth is None:
        return [
            f"| the outbound sidecar's per-request cost at the largest mesh within {within} of the "
            "smallest | not measured: sizes not paired in this run | NOT met |"
        ]
    return [
        f"| the outbound sidecar's per-request cost at {growth['large']:,} services within {within} "
        f"of {growth['small']:,} (CPU per request, saturated throughput, p50; paired rounds) | "
        f"{growth['cpu_ratio']:.2f}x CPU, {growth['saturated_ratio']:.2f}x throughput, "
        f"{growth['p50_ratio']:.2f}x p50 | {s.verdict(s.outbound_growth_met(growth))} |"
    ]


def mtls_targets(comparison: Mapping[str, Any] | None) -> list[str]:
    """Target rows: what mTLS may add to each request and each sidecar at ~1,000 req/s."""
    if comparison is None:
        return []
    fixed = comparison["fixed"]
    added = fixed["added_p50_ms"]
    vcpu = max(row["added_vcpu"] for row in fixed["sidecars"].values())
    return [
        f"| mTLS adds <= {s.TARGET_MTLS_ADDED_P50_MS} ms p50 over plaintext (two sidecars, "
        f"@1,000 rps, kept-alive connections) | {added:+.3f} ms | "
        f"{s.verdict(added <= s.TARGET_MTLS_ADDED_P50_MS)} |",
        f"| mTLS adds <= {s.TARGET_MTLS_ADDED_VCPU} vCPU per sidecar over plaintext @1,000 rps | "
        f"{vcpu:+.3f} vCPU (the sidecar it costs more) | "
        f"{s.verdict(vcpu <= s.TARGET_MTLS_ADDED_VCPU)} |",
    ]


def mtls_section(
    comparison: Mapping[str, Any] | None, handshakes: Mapping[str, float] | None = None
) -> list[str]:
    """mTLS against plaintext on the two-sidecar path, kept-alive and with a new connection per
    request, full handshakes when measured, and where Istio's published figure comes from."""
    if comparison is None:
        return []
    fixed = comparison["fixed"]
    out = [
        "## mTLS against plaintext between the two sidecars",
        "",
        "The two-sidecar path runs twice in every run, next to each other: `two-sidecars` with",
        "bench.mesh.yaml as written (`mtls: disable`: plaintext between the sidecars) and",
        "`two-sidecars-mtls`, the same mesh with `mtls: strict` (TLS 1.3, each end verifies the other",
        "against a mesh CA made for the run with sailplan/sandbox/certs.py; the callee reads the",
        "caller's SPIFFE ID once per connection and sets `x-forwarded-client-cert`). Differences are",
        "taken run by run (mTLS minus plaintext), then the median.",
        "",
        f"Saturated throughput, mTLS / plaintext: {comparison['throughput_ratio']:.2f}x.",
        "",
        "| at the ~1,000 req/s pace | connections | plaintext | mTLS | added by mTLS |",
        "|---|---|---:|---:|---:|",
    ]
    windows = [("kept alive (as sidecars run)", fixed)]
    if "closed" in comparison:
        windows.append(("`Connection: close` (one per request)", comparison["closed"]))
    for label, row in windows:
        out.append(f"| req/s | {label} | {_f(row['rps'], 0)} | {_f(row['mtls_rps'], 0)} | |")
        for percentile in ("p50", "p99"):
            out.append(
                f"| {percentile} | {label} | {row[f'{percentile}_ms']:.3f} ms | "
                f"{row[f'mtls_{percentile}_ms']:.3f} ms | {row[f'added_{percentile}_ms']:+.3f} ms |"
            )
        for name, sidecar in row["sidecars"].items():
            out.append(
                f"| {name} sidecar vCPU | {label} | {sidecar['vcpu']:.3f} | "
                f"{sidecar['mtls_vcpu']:.3f} | {sidecar['added_vcpu']:+.3f} "
                f"({sidecar['added_cpu_ms_per_request'] * 1000:+.0f} µs CPU per request) |"
            )
    for name, rss in comparison["rss_mib"].items():
        out.append(
            f"| {name} sidecar peak RSS (VmHWM) | all runs | {rss['plain']:.1f} MiB | "
            f"{rss['mtls']:.1f} MiB | {rss['mtls'] - rss['plain']:+.1f} MiB |"
        )
    out += [
        "",
        "- Kept alive: the caller keeps its connections to the callee open, so a TLS handshake is",
        "  paid once per connection and each request pays only the record encryption and decryption",
        "  on both sidecars. This is how the sidecars run, and what the targets above measure.",
        "- `Connection: close`: wrk asks for a new connection per request; the caller's backends to",
        "  other sidecars reuse a server connection only for a later request of the same client",
        "  connection (`http-reuse safe`), so each request also opens a new connection from the",
        "  caller to the callee: with mTLS, a TLS 1.3 handshake. HAProxy keeps the TLS session of a",
        "  server it reached (its default `ssl-reuse`), so these can be resumed handshakes rather",
        "  than full ones; the added CPU per request is the upper bound of what a handshake costs a",
        "  sidecar here, wrk's own new connections to the caller (plaintext in both) included in both",
        "  columns.",
        *(
            [
                "- Full handshakes: `openssl s_time -new` with the caller's certificate against the",
                "  mTLS callee's inbound (a new session every time, nothing sent after the handshake):",
                f"  {handshakes['handshakes']:,.0f} in {handshakes['seconds']:.1f} s, "
                f"{handshakes['per_second']:,.0f}/s one after the other with openssl and the",
                "  callee on the same cores; the callee's CPU per handshake (ECDHE P-256, its ECDSA",
                "  signature, the verification of the caller's chain): "
                f"{handshakes['callee_cpu_ms_per_handshake']:.2f} ms.",
            ]
            if handshakes
            else []
        ),
        "- Istio's comparison: Istio publishes no mTLS-against-plaintext difference. Its performance",
        f"  page ({ISTIO_PERF_URL}) measures two proxies (client and server sidecar) over a no-mesh",
        "  baseline with mTLS on, http/1.1, a 1 KB payload, 1,000 req/s and 2 worker threads; the last",
        f"  release with numbers in the text, Istio 1.20 ({ISTIO_1_20_PERF_URL}), gives +0.228 ms p90",
        "  and +0.298 ms p99 for the two sidecars with mTLS, all costs together (1.24 shows charts",
        "  only, and 0.20 vCPU per sidecar at 1,000 req/s). So the figure to set beside Istio's is the",
        "  `two-sidecars-mtls` row of the data-plane table (added over direct); the targets here are",
        "  ours, for the part mTLS alone adds.",
    ]
    return out


def scoped_rss_mib(results: Mapping[str, Any] | None) -> float | None:
    """The larger peak RSS (MiB) of the sidecars scoped by `calls`; None when none ran."""
    rows: Mapping[str, Any] = (results or {}).get("rows", {})
    scoped = [
        row["vmhwm_kib"] / 1024
        for label, row in rows.items()
        if not label.endswith("/whole") and "vmhwm_kib" in row
    ]
    return max(scoped) if scoped else None


def scale_target_rows(scale: Mapping[str, Any], rss: Mapping[str, Any] | None) -> list[str]:
    """Issue 13's targets that the rendering, sidecar-memory and Pulumi sections measure."""
    cli = scale.get("cli", {})
    istio = cli.get("istio/1000", {}).get("cli_s")
    builtin = cli.get("builtin/1000", {}).get("cli_s")
    rows = [
        f"| `sailplan render -o DIR` of 1,000 services <= {s.TARGET_CLI_ISTIO_1000_S} s (istio; "
        "CLI start to last file written, fresh process) | "
        + ("not measured" if istio is None else f"{istio:.2f} s")
        + f" | {s.verdict(istio is not None and istio <= s.TARGET_CLI_ISTIO_1000_S)} |",
        f"| `render -o` of 1,000 services: builtin <= {s.TARGET_CLI_BUILTIN_OVER_ISTIO:g}x istio "
        "(same run) | "
        + (
            "not measured"
            if istio is None or builtin is None
            else f"{builtin:.2f} s, {builtin / istio:.2f}x"
        )
        + " | "
        + s.verdict(
            istio is not None
            and builtin is not None
            and builtin <= s.TARGET_CLI_BUILTIN_OVER_ISTIO * istio
        )
        + " |",
    ]
    worst = scoped_rss_mib(rss)
    rows.append(
        f"| a sidecar with `calls` of 5 services <= {TARGET_CALLS_RSS_MIB:g} MiB peak RSS | "
        + ("not measured" if worst is None else f"{worst:.1f} MiB")
        + f" | {s.verdict(worst is not None and worst <= TARGET_CALLS_RSS_MIB)} |"
    )
    pulumi = scale.get("pulumi", {})
    for label, registration in (("1000", "per-object, the default"), ("1000/grouped", "grouped")):
        value = pulumi.get(label, {})
        if label != "1000" and not value:
            continue
        seconds = value.get("register_s")
        rows.append(
            f"| Pulumi mock registration of 1,000 services <= {s.TARGET_PULUMI_1000_S:g} s "
            f"(`registration`: {registration}) | "
            + ("not measured" if seconds is None else f"{seconds:.2f} s")
            + f" | {s.verdict(seconds is not None and seconds <= s.TARGET_PULUMI_1000_S)} |"
        )
    return rows


def sidecar_rss_lines(results: Mapping[str, Any] | None) -> list[str]:
    """The table of one sidecar's memory, the whole mesh loaded against `calls`
    (bench/sidecar_rss.py), and the issue's target for it."""
    if not results:
        return ["One sidecar's memory (bench/sidecar_rss.py): not measured in this run."]
    rows: Mapping[str, Any] = results["rows"]
    first = next((r for r in rows.values() if "services" in r), None)
    services = f"{first['services']:,}" if first is not None else "the"
    load = results["load_average"]
    run = results.get("run")
    when = (
        f"Measured apart, by `python -m bench.sidecar_rss` on {run['date']} at commit {run['commit']}"
        if run is not None
        else "Measured in this run"
    )
    lines = [
        f"One sidecar's memory: the first service's v1 of the generated {services}-service mesh,",
        "its compiled config run by a real HAProxy until it answers, then 2 s later VmRSS and VmHWM",
        "(peak) from /proc (bench/sidecar_rss.py). `dns` is the config a pod runs (a `server-template`",
        "per version, resolved by kube-dns; nothing resolves here, so it answers its health port);",
        "`static` the sandbox's (one server per version, answering a request through the routes).",
        f"{when}; 1-minute load average {load['before']:.2f} before, {load['after']:.2f} after.",
        "",
        "| endpoints | services routed | config (bytes) | answers after (s) | VmRSS (MiB) | VmHWM (MiB) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    # Per kind of endpoints, the whole mesh first: results.json keeps its keys sorted.
    for label in sorted(rows, key=lambda k: (k.split("/")[0], not k.endswith("/whole"), k)):
        row = rows[label]
        kind, variant = label.split("/")
        scope = (
            "whole mesh" if variant == "whole" else f"`calls` of {variant.removeprefix('calls')}"
        )
        if "skipped" in row:
            lines.append(f"| {kind} | {scope} | - | skipped: {row['skipped']} | - | - |")
            continue
        lines.append(
            f"| {kind} | {scope} ({row['routed_services']:,}) | {row['config_bytes']:,} | "
            f"{row['ready_s']:.2f} | {row['vmrss_kib'] / 1024:.1f} | {row['vmhwm_kib'] / 1024:.1f} |"
        )
    worst = scoped_rss_mib(results)
    lines.append("")
    if worst is not None:
        lines.append(
            f"Target: a sidecar with `calls` <= {TARGET_CALLS_RSS_MIB:g} MiB: {worst:.1f} MiB peak "
            f"(the larger of the two): {s.verdict(worst <= TARGET_CALLS_RSS_MIB)}."
        )
    else:
        lines.append(
            f"Target: a sidecar with `calls` <= {TARGET_CALLS_RSS_MIB:g} MiB: not measured."
        )
    return lines


def write(data: Mapping[str, Any]) -> str:
    """Writes RESULTS.md and results.png; returns the summary line."""
    plane = data["dataplane"]
    figures = s.dataplane_figures(plane["runs"])
    sidecar = s.sidecar_figures(plane["runs"], plane["peak_rss_kib"])
    render = data["scale"]["render"]
    builtin_1000 = render.get("builtin/1000", {})
    render_1000 = builtin_1000.get("render_s")
    istio_1000 = render.get("istio/1000", {}).get("render_s")
    outbound = data["outbound"]
    carried = data.get("carried_over")
    outbound_run = "this run" if carried is None else f"run of {carried['date']}"
    chart(figures, render, outbound, HERE / "results.png", outbound_run)
    mtls = s.mtls_comparison(plane["runs"], plane["peak_rss_kib"])
    line = (
        s.summary_line(figures, sidecar, render_1000)
        + mtls_summary(mtls)
        + reference_summary(plane)
    )
    info = data.get("machine") or machine()
    settings = plane["settings"]
    two = figures["two-sidecars"]
    vcpu = max(sidecar["caller_vcpu"], sidecar["callee_vcpu"])
    rss = max(sidecar["caller_rss_mb"], sidecar["callee_rss_mb"])
    growth = {p: s.render_growth(render, p) for p in ("istio", "builtin")}
    sections = reference_sections(plane)
    variants = sorted({parse_key(k)[2] for k in render} - {None}, key=lambda c: c or 0)
    scoped_growth = {
        f"{p} (calls: {c} each)": s.render_growth(render, p, c)
        for c in variants
        for p in ("istio", "builtin")
    }
    builtin_5000 = render.get("builtin/5000", {})

    out = [
        "# Benchmarks: what the builtin data plane costs, and how rendering scales",
        "",
        "Generated by `make bench` (`python -m bench`); numbers below are from the run described here.",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in info.items()],
        "",
        f"`{line}`",
        "",
        *(
            [
                "The data-plane sections are from this run (`python -m bench --dataplane`); the",
                "outbound-cost, ReDoS and rendering sections are carried over from the full run of "
                f"{data['carried_over']['date']} (commit {data['carried_over']['commit']}).",
                "",
            ]
            if "carried_over" in data
            else []
        ),
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
        f"| two sidecar hops >= {s.TARGET_THROUGHPUT_RATIO}x direct saturated throughput | "
        f"{two['throughput_ratio']:.2f}x | {s.verdict(two['throughput_ratio'] >= s.TARGET_THROUGHPUT_RATIO)} |",
        f"| added latency @1,000 rps <= {s.TARGET_ADDED_P50_MS} ms p50 | +{two['added_p50_ms']:.2f} ms | "
        f"{s.verdict(two['added_p50_ms'] <= s.TARGET_ADDED_P50_MS)} |",
        f"| added latency @1,000 rps <= {s.TARGET_ADDED_P99_MS} ms p99 | +{two['added_p99_ms']:.2f} ms | "
        f"{s.verdict(two['added_p99_ms'] <= s.TARGET_ADDED_P99_MS)} |",
        f"| <= {s.TARGET_SIDECAR_VCPU} vCPU per sidecar @1,000 rps | {vcpu:.3f} vCPU (busier of the two) | "
        f"{s.verdict(vcpu <= s.TARGET_SIDECAR_VCPU)} |",
        f"| <= {s.TARGET_SIDECAR_RSS_MB} MB RSS per sidecar | {rss:.1f} MiB peak (VmHWM) | "
        f"{s.verdict(rss <= s.TARGET_SIDECAR_RSS_MB)} |",
        f"| render 1,000 services < {s.TARGET_RENDER_1000_S} s (istio) | "
        + ("not measured" if istio_1000 is None else f"{istio_1000:.2f} s")
        + f" | {s.verdict(istio_1000 is not None and istio_1000 < s.TARGET_RENDER_1000_S)} |",
        f"| render 1,000 services < {s.TARGET_RENDER_1000_S} s (builtin, a HAProxy config per workload) | "
        + (
            "not measured: " + builtin_1000.get("skipped", "")
            if render_1000 is None
            else f"{render_1000:.2f} s"
        )
        + f" | {s.verdict(render_1000 is not None and render_1000 < s.TARGET_RENDER_1000_S)} |",
        f"| rendering grows linearly: exponent <= {s.TARGET_GROWTH_EXPONENT} | growth exponent "
        "(log-log slope, 100+ services, whole-mesh sidecars): "
        + ", ".join(f"{p} {g:.2f}" if g is not None else f"{p} n/a" for p, g in growth.items())
        + f" | {s.verdict(all(g is not None and g <= s.TARGET_GROWTH_EXPONENT for g in growth.values()))} |",
        *(
            [
                "| rendering grows linearly with `calls` | "
                + "; ".join(
                    f"{p} {g:.2f}" if g is not None else f"{p} not measured"
                    for p, g in scoped_growth.items()
                )
                + " | "
                + (
                    "not measured: " + _calls_skipped(render)
                    if any(g is None for g in scoped_growth.values())
                    else s.verdict(
                        all(
                            g is not None and g <= s.TARGET_GROWTH_EXPONENT
                            for g in scoped_growth.values()
                        )
                    )
                )
                + " |"
            ]
            if scoped_growth
            else []
        ),
        f"| render 5,000 services <= {s.TARGET_RENDER_5000_S} s (builtin), every ConfigMap <= 1 MiB | "
        + (
            "not measured: " + builtin_5000.get("skipped", "not in this run")
            if "render_s" not in builtin_5000
            else f"{builtin_5000['render_s']:.2f} s, largest ConfigMap "
            f"{builtin_5000.get('largest_config_map_bytes', 0) / 1024:,.0f} KiB"
        )
        + " | "
        + s.verdict(
            "render_s" in builtin_5000
            and builtin_5000["render_s"] <= s.TARGET_RENDER_5000_S
            and builtin_5000.get("largest_config_map_bytes", math.inf) <= 1024 * 1024
        )
        + " |",
        *scale_target_rows(data["scale"], data.get("sidecar_rss")),
        *outbound_target_rows(outbound),
        *redos.target_rows(data.get("redos")),
        *mtls_targets(mtls),
        *reference_targets(plane),
        "",
        "Anchors (research/proxy.md, research/istio.md): an Istio 1.24 Envoy sidecar uses about 0.20 vCPU and",
        "60 MB at 1,000 rps; Istio 1.20 reports +0.228 ms p90 / +0.298 ms p99 for two proxies; linkerd2-proxy",
        "uses 17-26 MB. Those are other machines and other load shapes: compare orders of magnitude only.",
        "",
        "## Data plane: direct, one and two sidecars, bare HAProxy hops, nginx and Traefik",
        "",
        f"1-minute load average before / after these runs: {plane.get('load_average', {}).get('before', float('nan')):.2f}"
        f" / {plane.get('load_average', {}).get('after', float('nan')):.2f} (the load itself counts; a much higher value means"
        " other work shared the cores).",
        "",
        f"{settings['runs']} runs; in each run every path is measured one after the other, and every ratio or",
        "difference is taken against the direct measurement of the same run, then the median over runs is reported.",
        "",
        "| path | saturated req/s | vs direct | fixed-rate req/s | p50 ms | p90 ms | p99 ms | added p50 | added p90 | added p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for path in (p for p in s.ALL_PATHS if p in figures):
        f = figures[path]
        out.append(
            f"| {path} | {_f(f['saturated_rps'], 0)} | {f['throughput_ratio']:.2f}x | {_f(f['fixed_rps'], 0)} | "
            f"{f['p50_ms']:.3f} | {f['p90_ms']:.3f} | {f['p99_ms']:.3f} | +{f['added_p50_ms']:.3f} | "
            f"+{f['added_p90_ms']:.3f} | +{f['added_p99_ms']:.3f} |"
        )
    out += [
        "",
        "| process | vCPU while two-sidecar path carries ~1,000 req/s | peak RSS (VmHWM) |",
        "|---|---:|---:|",
        f"| caller sidecar (service2-v1, outbound) | {sidecar['caller_vcpu']:.3f} | {sidecar['caller_rss_mb']:.1f} MiB |",
        f"| callee sidecar (service1-v1, inbound) | {sidecar['callee_vcpu']:.3f} | {sidecar['callee_rss_mb']:.1f} MiB |",
        f"| the app (haproxy `http-request return`, 1 KiB) | {sidecar['backend_vcpu']:.3f} | {sidecar['backend_rss_mb']:.1f} MiB |",
        "",
        "How it is measured:",
        "",
        "- The mesh is `bench/bench.mesh.yaml`: the demo's shape (service2 calls service1) with policies on the",
        "  measured path: a header route with a fault (evaluated, never matching ordinary traffic), an 80/20",
        "  canary with a timeout and retries, least-request balancing and a connection pool. Both sidecars are",
        "  compiled by `sailplan.render.haproxy.compile_sidecar` with `StaticEndpoints` on 127.0.0.1 and run",
        "  as real HAProxy 2.6 processes (`haproxy -db`, nbthread 2 as compiled).",
        "- The app is a third HAProxy (1 thread) answering 1 KiB with `http-request return`: the fastest honest",
        "  server on the machine, identical on every path, so the differences are the sidecars'.",
        "- Paths: direct = wrk -> app; one-sidecar = wrk -> callee inbound -> app; two-sidecars = wrk -> caller",
        "  outbound (Host: service1:8088, routed by the mesh rules) -> callee inbound -> app, in plaintext;",
        "  two-sidecars-mtls = the same with `mtls: strict` between the sidecars (section below); bare-one-hop",
        "  and bare-two-hops = wrk -> one or two bare HAProxy hops -> app; nginx-two-hops and",
        "  traefik-two-hops = wrk -> the peer's caller -> the peer's callee -> app (sections below).",
        f"- Saturated: `wrk -t1 -c{settings['saturate_connections']}` for {settings['saturate_seconds']} s. wrk, the",
        "  proxies and the app share the 2 cores, so saturated ratios understate what a sidecar costs on a",
        "  machine where the load generator runs elsewhere; they are comparable with each other.",
        f"- Fixed rate: Debian's wrk has no `-R` (and wrk2 is not packaged), so {settings['fixed_connections']}",
        f"  connections each pause {settings['fixed_connections'] * 1000 // settings['fixed_rate']} ms after every response (wrk's `delay()` hook,",
        "  bench/measure.wrk.lua): about 1,000 req/s (the achieved rate is in the table). wrk starts the",
        "  latency clock when a request is written, after the pause. This is closed-loop pacing: a stall delays",
        "  later requests instead of queueing them (coordinated omission), so p99 is optimistic under stalls;",
        "  at 1,000 req/s on an idle machine the proxies never stall for long. wrk reports microseconds.",
        "- CPU: utime + stime from /proc/<pid>/stat of each HAProxy (all threads) across the fixed-rate window,",
        "  divided by the wall time. Clock ticks are 10 ms, so the resolution is about 0.002 vCPU.",
        "- Memory: VmHWM (peak RSS) of each HAProxy at the end of all runs.",
        "",
        *([*mtls_section(mtls, plane.get("full_handshakes")), ""] if mtls else []),
        *([*sections, ""] if sections else []),
        "## The outbound sidecar's cost grows with the mesh",
        "",
        "One caller sidecar compiled from a generated mesh (bench/meshgen.py: N services, 2 versions, 3 routes",
        "each with matches, faults and retries), called for the service whose rules come last, straight to the app.",
        "",
        "Every size's sidecar runs at once and the sizes take turns, one round after another (each round in",
        "another order); the table gives medians over rounds, and the CPU per request is the sidecar's",
        "user + system CPU over its fixed-rate window divided by the requests it carried.",
        "",
        "| services | config files (bytes) | saturated req/s | req/s at the ~1,000 pace | p50 ms | p99 ms | CPU per request (us) | flat rules, before 7d6eda4: saturated req/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, value in sorted(outbound.items(), key=lambda item: int(item[0])):
        flat = FLAT_RULES_RPS.get(int(size))
        cpu = value.get("cpu_us_per_request")
        out.append(
            f"| {int(size):,} | {_f(value['config_bytes'], 0)} | {_f(value['saturated_rps'], 0)} | "
            f"{_f(value['fixed_rps'], 0)} | {value['fixed_p50_us'] / 1000:.2f} | {value['fixed_p99_us'] / 1000:.2f} | "
            + ("not measured" if cpu is None else f"{cpu:.0f}")
            + " | "
            + ("-" if flat is None else f"{flat:,}")
            + " |"
        )
    if "redos" in data:
        out += ["", *redos.report_lines(data["redos"])]
    out += [
        "",
        "## Rendering at scale",
        "",
        "Generated meshes (bench/meshgen.py), each size in a fresh interpreter (bench/scale_probe.py) so that peak",
        "RSS (ru_maxrss, interpreter and imports included, about 75 MiB) belongs to that size alone.",
        "`load + validate` is `load_mesh_text` (YAML parse + pydantic validation + cross-object checks).",
        "",
        *_render_rows(render),
        *_cli_rows(data["scale"].get("cli", {})),
        "",
        "Bounds: each size runs in its own process with a timeout and an address-space limit "
        + (
            f"({data['scale']['bounds']['timeout_s']:g} s, "
            f"{data['scale']['bounds']['memory_limit_mib'] / 1024:,.1f} GiB)"
            if "bounds" in data["scale"]
            else "(timeout only, in this run)"
        )
        + ", and a size is not started when",
        "the sizes before it, extrapolated on a log-log line (at least linear), predict more than "
        f"{PREDICTION_MARGIN:g} times either.",
        "`calls: N each`: every service of the generated mesh lists the N services after it in `calls`.",
        "",
        "One builtin sidecar's compiled config (`compile_sidecar`, DnsEndpoints): without `calls` every",
        "sidecar carries every service's outbound rules, so a ConfigMap grows with the mesh and their total",
        "with its square.",
        "",
        "| services | calls | workloads | one sidecar's files (bytes) | compile one sidecar (s) |",
        "|---:|---|---:|---:|---:|",
        *[
            f"| {int(k.split('/')[0]):,} | "
            + ("whole mesh" if "/" not in k else k.split("/")[1].removeprefix("calls") + " each")
            + (
                f" | {v['workloads']:,} | {v['config_bytes']:,} | {v['compile_s']:.3f} |"
                if "config_bytes" in v
                else f" | - | skipped: {v.get('skipped', '?')} | - |"
            )
            for k, v in data["scale"]["sidecar"].items()
        ],
        "",
        *sidecar_rss_lines(data.get("sidecar_rss")),
        "",
        "Pulumi: registering the `Mesh` component (istio data plane, install_control_plane=False) under",
        "`pulumi.runtime.set_mocks`, from construction until every output resolved:",
        "",
        "| services | `registration` | resources registered | time (s) | peak RSS (MiB) |",
        "|---:|---|---:|---:|---:|",
        *[
            f"| {int(k.split('/')[0]):,} | {k.split('/')[1] if '/' in k else 'per-object'} | "
            + (
                f"{v['resources']:,} | {v['register_s']:.2f} | {v['peak_rss_mib']:.0f} |"
                if "register_s" in v
                else f"- | skipped: {v['skipped']} | - |"
            )
            for k, v in data["scale"]["pulumi"].items()
        ],
        "",
        (HERE / "FINDINGS.md").read_text().rstrip(),
        "",
        "![results](results.png)",
        "",
    ]
    (HERE / "RESULTS.md").write_text("\n".join(out))
    return line
