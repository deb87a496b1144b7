"""Rendering at scale, each measurement in a fresh interpreter (bench/scale_probe.py), bounded:
in time (a timeout per probe), in memory (an address-space limit per probe), and by prediction
(a size whose time or memory, extrapolated from the sizes before it, would pass those bounds is
not started, with the reason recorded: the builtin plane at 5,000 services needs hours and
hundreds of GiB while every sidecar carries the whole mesh, and runs once rendering is linear)."""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# A size is not started when the sizes before it predict more than this many times a bound:
# extrapolating from small sizes overshoots (the previous run's 1,000-service builtin render was
# predicted at 12.8 GiB and took 7.8).
PREDICTION_MARGIN = 2.0
# `sailplan render -o DIR` as a user runs it (a fresh process, wall time), per plane, in the same
# run so that the planes compare.
CLI_SIZES: dict[str, list[int]] = {"istio": [1000], "builtin": [1000]}


def default_memory_limit_mib() -> int:
    """Half the machine's memory, at most 12 GiB: other work shares this machine."""
    total_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return min(12 * 1024, total_kib // 2048)


def probe(*args: str, timeout: float, memory_limit_mib: int | None = None) -> dict[str, Any]:
    """One probe's JSON, or {"skipped": reason} when it fails or runs out of time or memory."""

    def limit() -> None:
        if memory_limit_mib is not None:
            size = memory_limit_mib * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (size, size))

    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.scale_probe", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
            check=False,
            preexec_fn=limit,
        )
    except subprocess.TimeoutExpired:
        return {"skipped": f"did not finish within {timeout:g} s"}
    line = next((x for x in done.stdout.splitlines() if x.startswith("PROBEJSON ")), None)
    if done.returncode != 0 or line is None:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        if "MemoryError" in done.stderr and memory_limit_mib is not None:
            last = f"ran out of its {memory_limit_mib:,} MiB memory limit"
        return {"skipped": f"failed: {last}"}
    result: dict[str, Any] = json.loads(line.removeprefix("PROBEJSON "))
    return result


def extrapolate(points: Sequence[tuple[int, float]], size: int) -> float | None:
    """The value at `size` on the log-log line through the last two points, growing at least
    linearly (small sizes are dominated by fixed costs and would predict too little)."""
    if len(points) < 2:
        return None
    (x0, y0), (x1, y1) = points[-2], points[-1]
    if x0 == x1 or y0 <= 0 or y1 <= 0:
        return None
    slope = max(1.0, math.log(y1 / y0) / math.log(x1 / x0))
    return float(y1 * (size / x1) ** slope)


def too_big(
    done: Sequence[tuple[int, dict[str, Any]]], size: int, timeout: float, memory_limit_mib: int
) -> str | None:
    """Why `size` is not started, from the sizes measured before it; None to start it."""
    failed = next(((n, r["skipped"]) for n, r in done if "skipped" in r), None)
    if failed is not None:
        # A smaller size ran out of time or memory (a larger one would too), or the model
        # refused `calls` (it refuses every size).
        if "refuses `calls`" in failed[1]:
            return str(failed[1])
        if failed[1].startswith("not started"):
            return f"not started, as {failed[0]:,} services were not"
        return f"not started: {failed[0]:,} services did not finish ({failed[1]})"
    measured = [(n, r) for n, r in done if "render_s" in r or "compile_s" in r]
    seconds = extrapolate(
        [(n, r.get("render_s", r.get("compile_s", 0)) + r.get("load_s", 0)) for n, r in measured],
        size,
    )
    memory = extrapolate([(n, r["peak_rss_mib"]) for n, r in measured if "peak_rss_mib" in r], size)
    # The timeout and the memory limit stop a probe that runs past them; the prediction only
    # keeps the bench from starting one that would need several times either.
    over = []
    if seconds is not None and seconds > PREDICTION_MARGIN * timeout:
        over.append(f"{seconds:,.0f} s (bound {timeout:g} s)")
    if memory is not None and memory > PREDICTION_MARGIN * memory_limit_mib:
        over.append(f"{memory / 1024:,.1f} GiB (bound {memory_limit_mib / 1024:,.1f} GiB)")
    if not over:
        return None
    return "not started: the sizes before it predict " + " and ".join(over)


def key(plane: str, size: int, calls: int | None) -> str:
    return f"{plane}/{size}" + ("" if calls is None else f"/calls{calls}")


def parse_key(text: str) -> tuple[str, int, int | None]:
    """(plane, services, calls) from a render key: `builtin/1000` or `builtin/1000/calls5`."""
    plane, size, *rest = text.split("/")
    return plane, int(size), int(rest[0].removeprefix("calls")) if rest else None


def run(
    render_sizes: dict[str, list[int]],
    sidecar_sizes: list[int],
    pulumi_sizes: list[int],
    calls: Sequence[int | None] = (None,),
    timeout: float = 180,
    memory_limit_mib: int | None = None,
    cli_sizes: dict[str, list[int]] | None = None,
) -> dict[str, Any]:
    limit = memory_limit_mib or default_memory_limit_mib()
    results: dict[str, Any] = {
        "render": {},
        "sidecar": {},
        "pulumi": {},
        "cli": {},
        "bounds": {"timeout_s": timeout, "memory_limit_mib": limit},
    }
    for plane, sizes in render_sizes.items():
        for variant in calls:
            done: list[tuple[int, dict[str, Any]]] = []
            for size in sorted(sizes):
                label = key(plane, size, variant)
                skip = too_big(done, size, timeout, limit)
                if skip is not None:
                    result = {"skipped": skip}
                else:
                    print(f"  render {label}", flush=True)
                    extra = [] if variant is None else [str(variant)]
                    result = probe(
                        "render", str(size), plane, *extra, timeout=timeout, memory_limit_mib=limit
                    )
                if "skipped" in result:
                    print(f"  render {label}: skipped, {result['skipped']}", flush=True)
                results["render"][label] = result
                done.append((size, result))
    for variant in calls:
        for size in sidecar_sizes:
            label = str(size) if variant is None else f"{size}/calls{variant}"
            extra = [] if variant is None else [str(variant)]
            results["sidecar"][label] = probe(
                "sidecar", str(size), *extra, timeout=timeout, memory_limit_mib=limit
            )
    for size in pulumi_sizes:
        print(f"  pulumi mock registration, {size} services", flush=True)
        results["pulumi"][str(size)] = probe("pulumi", str(size), "istio", timeout=timeout)
    # The opt-in registration (a ConfigGroup per service) at the largest size only.
    if pulumi_sizes:
        size = max(pulumi_sizes)
        print(f"  pulumi mock registration, {size} services, grouped", flush=True)
        results["pulumi"][f"{size}/grouped"] = probe(
            "pulumi", str(size), "istio", "grouped", timeout=timeout
        )
    results["cli"] = cli_runs(CLI_SIZES if cli_sizes is None else cli_sizes, timeout, limit)
    return results


# Where `render -o` writes during the bench: inside the checkout, as a user renders into their
# repository (`rendered/`), not under /tmp, where the test suite's churn leaves thousands of
# freshly deleted inodes that ext4 passes over when it makes a file (bench/FINDINGS.md point 13).
RENDER_ROOT = Path(__file__).resolve().parent / "out"


def cli_runs(
    sizes: dict[str, list[int]], timeout: float, memory_limit_mib: int
) -> dict[str, dict[str, Any]]:
    """`sailplan render -o DIR` per plane and size, each into a new directory of one root that is
    removed only after the last run: no run pays for an earlier one's deleted files."""
    RENDER_ROOT.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="render-o-", dir=RENDER_ROOT) as root:
        for plane, plane_sizes in sizes.items():
            for size in plane_sizes:
                print(f"  sailplan render -o DIR, {plane}, {size} services", flush=True)
                runs[key(plane, size, None)] = probe(
                    "cli",
                    str(size),
                    plane,
                    str(Path(root) / f"{plane}-{size}"),
                    timeout=timeout,
                    memory_limit_mib=memory_limit_mib,
                )
    return runs
