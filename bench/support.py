"""Pure helpers of the benchmarks: parsing wrk, medians, generated meshes."""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from typing import Any

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> dict[str, float]:
    """rps and latency percentiles (ms) from `wrk --latency` output."""
    result: dict[str, float] = {}
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not found:
        raise ValueError(f"no Requests/sec in wrk output:\n{output}")
    result["rps"] = float(found.group(1))
    for percent, value, unit in re.findall(
        r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", output, flags=re.M
    ):
        result[f"p{percent}"] = float(value) * _UNITS[unit]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    result["non2xx"] = float(errors.group(1)) if errors else 0.0
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    result["socket_errors"] = (
        float(sum(int(g) for g in socket_errors.groups())) if socket_errors else 0.0
    )
    return result


def median_of(runs: Sequence[dict[str, float]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def generated_mesh(services: int) -> dict[str, Any]:
    """A mesh of `services` services, 2 versions each, with matches, faults and retries on routes."""
    names = [f"svc{i:05d}" for i in range(services)]
    spec: dict[str, Any] = {
        "apiVersion": "sailplan/v1",
        "kind": "Mesh",
        "name": "scale",
        "services": {},
    }
    for index, name in enumerate(names):
        spec["services"][name] = {
            "port": 8000 + index % 1000,
            "versions": {
                "v1": {"image": f"{name}:1", "local": {"command": ["true"]}},
                "v2": {"image": f"{name}:2", "local": {"command": ["true"]}},
            },
            "routes": [
                {
                    "name": "testers",
                    "match": [
                        {"headers": {"end-user": {"exact": "jason"}}, "path": {"prefix": "/api"}}
                    ],
                    "to": "v2",
                    "retries": {"attempts": 2, "perTryTimeout": "500ms", "on": ["5xx"]},
                },
                {
                    "split": {"v1": 90, "v2": 10},
                    "fault": {"abort": {"status": 503, "percent": 1}},
                    "timeout": "2s",
                },
            ],
            "policy": {"outlierDetection": {"consecutive5xxErrors": 5}},
        }
    spec["ingress"] = {"routes": [{"match": {"path": {"prefix": "/"}}, "service": names[0]}]}
    return spec
