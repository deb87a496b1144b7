"""ReDoS on the builtin data plane: can a regex route stall a sidecar?

HAProxy matches regexes with backtracking PCRE2. A sidecar routes on a header regex and every
request carries a fresh value (HAProxy caches a regex's answer per value): a benign route with
ordinary values, then the issue's hostile patterns — which `check` now refuses on the builtin
plane — replaced by the rewrites the refusal suggests and hit with the values that stall the
originals. Throughput ratio = the slowest guarded run / the benign run; target >= 0.8. The
unguarded originals (written into the config by hand, as check no longer lets them through) are
measured too, to show what the refusal prevents.

Run alone with `python -m bench.redos` (about a minute); `make bench` runs it with the rest.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.dataplane import HERE, free_port, run_haproxy, wrk_binary, wrk_summary
from sailplan.loader import load_mesh_text
from sailplan.model import SpecError
from sailplan.render.haproxy import ProxyPorts, StaticEndpoints, compile_sidecar

WRK_SCRIPT = HERE / "redos.wrk.lua"
TARGET_RATIO = 0.8
SECONDS = 3.0
ROUNDS = 3
CONNECTIONS = 16
_PLACEHOLDER = "zzplaceholderzz"


@dataclass(frozen=True)
class Case:
    name: str
    regex: str
    body: str  # repeated `repeat` times, then a per-request counter and `tail`
    repeat: int
    hostile: str | None = None  # the pattern `check` refuses, for the guarded cases
    tail: str = ""


# The same request size everywhere (about 1 KB of header value), so the ratios measure the
# regex's work and not the bytes HAProxy parses; the benign pattern rejects these values at once.
BENIGN = Case("benign", "v[0-9]+", "x", 1000)
# The patterns, the rewrite each refusal suggests, and the values that stall the original.
GUARDED = [
    Case("(a+)+$ -> a+", "a+", "a", 1000, hostile="(a+)+$"),
    Case("(a|a)+$ -> a+", "a+", "a", 1000, hostile="(a|a)+$"),
    Case(r"^(\w+\s?)*$ -> [\w\s]*", r"[\w\s]*", "a", 1000, hostile=r"^(\w+\s?)*$", tail="!"),
    Case("accepted as is", "/api/.*/users/.*", "/api/x", 166),
]


def _mesh_spec(regex: str) -> dict[str, Any]:
    return {
        "apiVersion": "sailplan/v1",
        "kind": "Mesh",
        "name": "redos",
        "dataPlane": "builtin",
        # The proxy alone answers here (aborts): no certificates to provision.
        "mtls": "disable",
        "services": {
            "service1": {
                "port": 8088,
                "versions": {"v1": {"image": "a"}},
                # Both routes answer at once (a 100% "abort" with 200): the regex is the work.
                "routes": [
                    {
                        "match": {"headers": {"x-probe": {"regex": regex}}},
                        "to": "v1",
                        "fault": {"abort": {"status": 200}},
                    },
                    {"to": "v1", "fault": {"abort": {"status": 200}}},
                ],
            },
            "caller": {"port": 9000, "versions": {"v1": {"image": "c"}}},
        },
    }


def refusal(pattern: str) -> str | None:
    """`check`'s problem for the pattern on the builtin plane, or None when accepted."""
    try:
        load_mesh_text(yaml.safe_dump(_mesh_spec(pattern)))
    except SpecError as error:
        return str(error.problems[0])
    return None


def _config(regex: str, directory: Path, port: int, *, unguarded: bool) -> dict[str, str]:
    mesh = load_mesh_text(yaml.safe_dump(_mesh_spec(_PLACEHOLDER if unguarded else regex)))
    ports = ProxyPorts(port, free_port(), free_port(), free_port(), "127.0.0.1")
    files = dict(
        compile_sidecar(
            mesh,
            "caller",
            "v1",
            endpoints=StaticEndpoints({"service1": {"v1": [("127.0.0.1", free_port())]}}),
            ports=ports,
            config_dir=str(directory),
            runtime_dir=str(directory),
            passthrough="host-header",
        ).files
    )
    if unguarded:
        # What the compiler wrote before check refused such patterns, written in by hand.
        quoted = "'^(?:" + regex.replace("'", "'\\''") + ")$'"
        files["haproxy.cfg"] = files["haproxy.cfg"].replace(f"'^(?:{_PLACEHOLDER})$'", quoted)
    return files


def _wrk(port: int, case: Case, seconds: float) -> dict[str, float]:
    command = [wrk_binary(), "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--timeout", "10s"]
    command += ["-s", str(WRK_SCRIPT), "-H", "Host: service1", f"http://127.0.0.1:{port}/"]
    env = dict(
        os.environ,
        BENCH_PROBE_BODY=case.body,
        BENCH_PROBE_REPEAT=str(case.repeat),
        BENCH_PROBE_TAIL=case.tail,
    )
    return wrk_summary(command, env, timeout=seconds + 60)


def run_case(case: Case, *, unguarded: bool = False, seconds: float = SECONDS) -> dict[str, Any]:
    regex = case.hostile if unguarded and case.hostile else case.regex
    with tempfile.TemporaryDirectory(prefix="sp-redos-") as name:
        directory = Path(name)
        port = free_port()
        files = _config(regex, directory, port, unguarded=unguarded)
        with run_haproxy("redos", directory, files, port):
            _wrk(port, case, 1)  # warm-up
            result = _wrk(port, case, seconds)
    return {
        "regex": regex,
        "value": f"`{case.body}` x {case.repeat} + counter"
        + (f" + `{case.tail}`" if case.tail else ""),
        "rps": result["rps"],
        "p99_ms": result["p99_us"] / 1000,
        "errors": result["errors"] + result["non2xx"],
    }


def measure(rounds: int = ROUNDS) -> dict[str, Any]:
    for case in GUARDED:
        if case.hostile and refusal(case.hostile) is None:
            raise RuntimeError(f"check accepts {case.hostile!r} on the builtin plane")
    # Each round measures the benign route next to every guarded one; the other helpers' load
    # on this shared machine moves absolute numbers, so ratios are taken within a round.
    runs: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for _ in range(rounds):
        runs.append((run_case(BENIGN), [run_case(case) for case in GUARDED]))
    benign = max((b for b, _ in runs), key=lambda row: row["rps"])
    guarded = []
    for index, case in enumerate(GUARDED):
        ratios = sorted(rows[index]["rps"] / b["rps"] for b, rows in runs)
        row = max((rows[index] for _, rows in runs), key=lambda r: r["rps"])
        row["name"] = case.name
        row["refused"] = refusal(case.hostile) if case.hostile else None
        row["ratio"] = ratios[len(ratios) // 2]
        guarded.append(row)
        print(f"  {case.name}: {row['rps']:.0f} req/s ({row['ratio']:.2f}x benign)", flush=True)
    unguarded = []
    for case in GUARDED:
        if case.hostile is None:
            continue
        row = run_case(case, unguarded=True, seconds=2)
        row["name"] = f"{case.hostile} (unguarded)"
        row["ratio"] = row["rps"] / benign["rps"]
        unguarded.append(row)
        print(f"  {row['name']}: {row['rps']:.0f} req/s ({row['ratio']:.2f}x benign)", flush=True)
    return {
        "benign": benign,
        "guarded": guarded,
        "unguarded": unguarded,
        "ratio": min(row["ratio"] for row in guarded),
        "seconds": SECONDS,
        "rounds": rounds,
        "connections": CONNECTIONS,
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def target_rows(redos: Mapping[str, Any] | None) -> list[str]:
    if redos is None:
        return []
    met = "met" if redos["ratio"] >= TARGET_RATIO else "NOT met"
    return [
        f"| hostile regex routes >= {TARGET_RATIO}x a benign route's throughput (builtin) | "
        f"{redos['ratio']:.2f}x (worst guarded run) | {met} |"
    ]


def report_lines(redos: Mapping[str, Any]) -> list[str]:
    benign = redos["benign"]
    lines = [
        "## ReDoS: regex routes on the builtin data plane",
        "",
        "A sidecar routes on an `x-probe` header regex; every request carries a fresh value (HAProxy",
        "caches a regex's answer per value). The issue's hostile patterns are refused by `check` on the",
        "builtin plane (sailplan/model/backtracking.py); each is replaced by the rewrite its problem",
        "suggests and hit with the values that stall the original. bench/redos.py, "
        f"`wrk -t1 -c{redos['connections']}` for {redos['seconds']:g} s per run.",
        "",
        f"Worst guarded run / benign run: **{redos['ratio']:.2f}x** (target >= {TARGET_RATIO}:"
        f" {'met' if redos['ratio'] >= TARGET_RATIO else 'NOT met'}).",
        "",
        "| route regex | values | req/s | vs benign | p99 ms |",
        "|---|---|---:|---:|---:|",
        f"| `{_cell(benign['regex'])}` (benign) | {benign['value']} | {benign['rps']:.0f} | 1.00x |"
        f" {benign['p99_ms']:.2f} |",
    ]
    for row in redos["guarded"]:
        lines.append(
            f"| `{_cell(row['regex'])}` ({_cell(row['name'])}) | {row['value']} | {row['rps']:.0f} |"
            f" {row['ratio']:.2f}x | {row['p99_ms']:.2f} |"
        )
    for row in redos["unguarded"]:
        lines.append(
            f"| `{_cell(row['regex'])}` unguarded: refused by check, written into the config by hand |"
            f" {row['value']} | {row['rps']:.0f} | {row['ratio']:.2f}x | {row['p99_ms']:.2f} |"
        )
    lines += [
        "",
        f'req/s is the best of {redos["rounds"]} rounds; "vs benign" is the median ratio over the rounds,',
        "each taken against the benign run of the same round (other work shares this machine). 0 req/s:",
        "no request finished within the run (PCRE2 gives up at its match limit, seconds later).",
    ]
    return lines


def main() -> int:
    """Measure, store under "redos" in bench/results.json, and rewrite RESULTS.md from it."""
    from bench import report

    print("ReDoS: hostile vs benign regex routes", flush=True)
    try:
        redos = measure()
    except RuntimeError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    path = report.HERE / "results.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data["redos"] = redos
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    if "dataplane" in data:
        report.write(data)
    print(f"ReDoS: worst guarded / benign = {redos['ratio']:.2f}x (target >= {TARGET_RATIO})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
