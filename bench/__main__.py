"""`make bench`: the builtin data plane's cost and rendering's scaling -> bench/RESULTS.md.

BENCH_RUNS (default 5) sets the number of data-plane runs, BENCH_SATURATE_S (4) and BENCH_FIXED_S
(6) the seconds of each saturated and fixed-rate measurement, BENCH_PEERS (`nginx,traefik`; empty
for none) the peers run next to sailplan; `--report` only rewrites the report from
bench/results.json; `--dataplane` measures only the data-plane paths and keeps the outbound,
ReDoS and rendering figures of the last bench/results.json (the report says from which run).
Prints progress, then the summary line.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from bench import dataplane, redos, report, scale, sidecar_rss
from bench.peer_configs import PEERS

# Both planes to 5,000 services, with and without `calls` (5 services each); scale.run bounds
# every size in time and memory and does not start one the sizes before it predict past them.
RENDER_SIZES = {"istio": [10, 100, 1000, 5000], "builtin": [10, 100, 300, 1000, 5000]}
CALLS = (None, 5)
SIDECAR_SIZES = [100, 1000]
PULUMI_SIZES = [100, 1000]
OUTBOUND_SIZES = [10, 100, 1000]


def _stop(signum: int, frame: object) -> None:
    # Unwind, so every context manager ends the processes it started.
    raise SystemExit(128 + signum)


def _keep_the_rest(plane: dict[str, object]) -> dict[str, object]:
    """This run's data plane with the other parts of the last full run, which the report names."""
    path = report.HERE / "results.json"
    try:
        last = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise RuntimeError(f"--dataplane needs the last full run's {path}: {error}") from None
    earlier = last.get("carried_over") or {
        "date": last["machine"]["date"],
        "commit": last["machine"]["commit"],
    }
    return {
        **{
            part: last[part]
            for part in ("outbound", "scale", "redos", "sidecar_rss")
            if part in last
        },
        "machine": report.machine(),
        "dataplane": plane,
        "carried_over": earlier,
    }


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)  # a background job starts with SIGINT ignored
    if argv == ["--report"]:
        # Rewrite RESULTS.md and the chart from the last run's bench/results.json.
        data = json.loads((report.HERE / "results.json").read_text())
        print(report.write(data))
        return 0
    if argv not in ([], ["--dataplane"]):
        print("bench: use no argument, --report or --dataplane", file=sys.stderr)
        return 2
    only_dataplane = argv == ["--dataplane"]
    started = time.monotonic()
    settings = dataplane.LoadSettings(
        runs=int(os.environ.get("BENCH_RUNS", "5")),
        saturate_seconds=float(os.environ.get("BENCH_SATURATE_S", "4")),
        fixed_seconds=float(os.environ.get("BENCH_FIXED_S", "6")),
    )
    peers = [p for p in os.environ.get("BENCH_PEERS", ",".join(PEERS)).split(",") if p]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        print(
            f"bench: BENCH_PEERS names {', '.join(unknown)}: use {', '.join(PEERS)}",
            file=sys.stderr,
        )
        return 2
    try:
        print(
            f"data plane: {settings.runs} runs x every path, sailplan's, bare hops' and peers' "
            "(saturated + ~1,000 req/s)",
            flush=True,
        )
        load_before = os.getloadavg()[0]
        plane = dataplane.measure(settings=settings, peers=peers)
        # Other processes on the machine skew latency: say how busy it was.
        plane["load_average"] = {"before": load_before, "after": os.getloadavg()[0]}
        if only_dataplane:
            data = _keep_the_rest(plane)
        else:
            print("outbound sidecar cost vs mesh size", flush=True)
            outbound = dataplane.outbound_costs(OUTBOUND_SIZES, settings)
            print("ReDoS: hostile vs benign regex routes", flush=True)
            regexes = redos.measure()
    except RuntimeError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    if not only_dataplane:
        print("rendering at scale", flush=True)
        scaling = scale.run(RENDER_SIZES, SIDECAR_SIZES, PULUMI_SIZES, calls=CALLS)
        print("one sidecar's memory, whole mesh and `calls`", flush=True)
        memory = sidecar_rss.measure()
        data = {
            "machine": report.machine(),
            "dataplane": plane,
            "outbound": outbound,
            "scale": scaling,
            "redos": regexes,
            "sidecar_rss": memory,
        }
    (report.HERE / "results.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    line = report.write(data)
    print(
        f"wrote bench/RESULTS.md, bench/results.png, bench/results.json in {time.monotonic() - started:.0f} s"
    )
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
