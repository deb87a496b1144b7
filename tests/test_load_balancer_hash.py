"""Consistent hashing by source address and by query parameter (issue 15, item 7): validation,
the istio DestinationRule, and stickiness on real HAProxy over three pods of one version."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from proxy_support import Backend, request, running_caller

import sailplan
from sailplan.render.istio import destination_rule

AT = "services.service1.policy.loadBalancer"


def _mesh(load_balancer: Any) -> sailplan.Mesh:
    spec = {
        "apiVersion": "sailplan/v1",
        # Plaintext: the pods here are bare HTTP servers, not sidecars holding mesh certificates.
        "mtls": "disable",
        "kind": "Mesh",
        "name": "hashing",
        "services": {
            "service1": {
                "port": 8088,
                "versions": {"v1": {"image": "a", "replicas": 3}},
                "policy": {"loadBalancer": load_balancer},
            },
            "caller": {"port": 9000, "versions": {"v1": {"image": "c"}}},
        },
    }
    return sailplan.load_mesh_text(yaml.safe_dump(spec))


@pytest.mark.parametrize(
    ("load_balancer", "rendered"),
    [
        ({"hashSourceIp": True}, {"useSourceIp": True}),
        ({"hashQueryParameter": "user"}, {"httpQueryParameterName": "user"}),
        ({"hashHeader": "x-user"}, {"httpHeaderName": "x-user"}),
    ],
)
def test_istio_consistent_hash(load_balancer: dict[str, Any], rendered: dict[str, Any]) -> None:
    rule = destination_rule(_mesh(load_balancer), "service1")
    assert rule["spec"]["trafficPolicy"]["loadBalancer"] == {"consistentHash": rendered}
    assert _mesh(load_balancer).to_dict()["services"]["service1"]["policy"] == {
        "loadBalancer": load_balancer
    }


def _pods_seen(load_balancer: Any, tmp_path: Path, paths: list[str]) -> list[str]:
    """Which of service1's three pods answered each request to `paths`, in order."""
    pods = [Backend(f"pod{i}").start() for i in range(3)]
    try:
        addresses = {"v1": [("127.0.0.1", pod.port) for pod in pods]}
        with running_caller(_mesh(load_balancer), addresses, tmp_path) as ports:
            return [request(ports.outbound, path).body for path in paths]
    finally:
        for pod in pods:
            pod.stop()


@pytest.mark.haproxy
@pytest.mark.timeout(60)
def test_the_same_query_value_goes_to_the_same_pod(tmp_path: Path) -> None:
    paths = [f"/x?user=u{n % 12}&page={n}" for n in range(48)]
    seen = _pods_seen({"hashQueryParameter": "user"}, tmp_path, paths)
    by_user: dict[str, set[str]] = {}
    for path, pod in zip(paths, seen, strict=True):
        by_user.setdefault(path.split("&")[0], set()).add(pod)
    assert all(len(pods) == 1 for pods in by_user.values()), by_user
    assert len(set(seen)) > 1  # twelve users do not all hash to one pod


@pytest.mark.haproxy
@pytest.mark.timeout(60)
def test_one_caller_sticks_to_one_pod_by_source_address(tmp_path: Path) -> None:
    seen = _pods_seen({"hashSourceIp": True}, tmp_path, ["/"] * 12)
    assert len(set(seen)) == 1, Counter(seen)
    # Round robin spreads the same requests over every pod.
    assert len(set(_pods_seen("round-robin", tmp_path / "rr", ["/"] * 12))) == 3


@pytest.mark.parametrize(
    ("load_balancer", "problem"),
    [
        (
            {"hashSourceIp": True, "hashHeader": "x"},
            f"{AT}: give an algorithm (round-robin, random, least-request) or one of "
            "{hashHeader: <header>}, {hashSourceIp: true}, {hashQueryParameter: <name>}, "
            "{hashCookie: {name: <cookie>}}",
        ),
        (
            {"hashSourceIp": False},
            f"{AT}: hashSourceIp takes true; remove it for no source hashing",
        ),
        (
            {"hashQueryParameter": "a&b"},
            f"{AT}.hashQueryParameter: 'a&b' is not a valid query parameter name: use letters, "
            "digits and - _ . ~ ! * + ^ ` | %",
        ),
    ],
)
def test_bad_hashing_is_refused(load_balancer: dict[str, Any], problem: str) -> None:
    with pytest.raises(sailplan.SpecError) as error:
        _mesh(load_balancer)
    assert [str(p) for p in error.value.problems] == [problem]
