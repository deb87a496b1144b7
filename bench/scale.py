"""Rendering at scale, each measurement in a fresh interpreter (bench/scale_probe.py), bounded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def probe(*args: str, timeout: float) -> dict[str, Any]:
    """One probe's JSON, or {"skipped": reason} when it fails or runs out of time."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.scale_probe", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"skipped": f"did not finish within {timeout:g} s"}
    line = next((x for x in done.stdout.splitlines() if x.startswith("PROBEJSON ")), None)
    if done.returncode != 0 or line is None:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"skipped": f"failed: {last}"}
    result: dict[str, Any] = json.loads(line.removeprefix("PROBEJSON "))
    return result


def run(
    render_sizes: dict[str, list[int]],
    sidecar_sizes: list[int],
    pulumi_sizes: list[int],
    timeout: float = 120,
) -> dict[str, Any]:
    results: dict[str, Any] = {"render": {}, "sidecar": {}, "pulumi": {}}
    for plane, sizes in render_sizes.items():
        for size in sizes:
            print(f"  render {plane} {size} services", flush=True)
            results["render"][f"{plane}/{size}"] = probe(
                "render", str(size), plane, timeout=timeout
            )
    for size in sidecar_sizes:
        results["sidecar"][str(size)] = probe("sidecar", str(size), timeout=timeout)
    for size in pulumi_sizes:
        print(f"  pulumi mock registration, {size} services", flush=True)
        results["pulumi"][str(size)] = probe("pulumi", str(size), "istio", timeout=timeout)
    return results
