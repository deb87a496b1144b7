"""Several mirrors on one route (issue 15, item 6): each version gets its own share of copies,
each copy as the request came (method, headers, body); validation and the istio rule."""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml
from proxy_support import Backend, backends, many, request, running_caller

import sailplan
from sailplan.render.istio import virtual_service

R0 = "services.service1.routes[0]"


def _mesh(routes: list[dict[str, Any]]) -> sailplan.Mesh:
    spec = {
        "apiVersion": "sailplan/v1",
        # Plaintext: the pods here are bare HTTP servers, not sidecars holding mesh certificates.
        "mtls": "disable",
        "kind": "Mesh",
        "name": "mirrors",
        "services": {
            "service1": {
                "port": 8088,
                "versions": {v: {"image": v} for v in ("v1", "v2", "v3")},
                "routes": routes,
            },
            "caller": {"port": 9000, "versions": {"v1": {"image": "c"}}},
        },
    }
    return sailplan.load_mesh_text(yaml.safe_dump(spec))


def _problems(routes: list[dict[str, Any]]) -> list[str]:
    with pytest.raises(sailplan.SpecError) as error:
        _mesh(routes)
    return [str(p) for p in error.value.problems]


ROUTES = [{"to": "v1", "mirrors": [{"to": "v2", "percent": 30}, {"to": "v3", "percent": 70}]}]


def test_istio_rule_lists_the_mirrors() -> None:
    rule = virtual_service(_mesh(ROUTES), "service1")["spec"]["http"][0]
    host = "service1.mirrors.svc.cluster.local"
    assert rule["mirrors"] == [
        {
            "destination": {"host": host, "port": {"number": 8088}, "subset": "v2"},
            "percentage": {"value": 30},
        },
        {
            "destination": {"host": host, "port": {"number": 8088}, "subset": "v3"},
            "percentage": {"value": 70},
        },
    ]
    assert "mirror" not in rule


def _settled(pods: list[Backend], total: int) -> None:
    """Copies travel detached from the requests: wait until `total` have arrived, or 5s."""
    deadline = time.monotonic() + 5
    while sum(len(p.requests) for p in pods) < total and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # and a moment for any copy beyond it


@pytest.mark.haproxy
@pytest.mark.timeout(120)
def test_each_mirror_draws_its_own_share_and_copies_alike(tmp_path: Any) -> None:
    with backends("v1", "v2", "v3") as pods:
        addresses = {v: [("127.0.0.1", p.port)] for v, p in pods.items()}
        with running_caller(_mesh(ROUTES), addresses, tmp_path) as ports:
            count = 400
            replies = many(
                count,
                lambda: request(
                    ports.outbound,
                    "/things?x=1",
                    method="PATCH",
                    headers={"x-trace": "7"},
                    body=b'{"a": 1}',
                ),
            )
            assert {(r.status, r.body) for r in replies} == {(200, "v1")}
            # 30% and 70% of 400, each within 4.5 standard deviations of its draw.
            _settled([pods["v2"], pods["v3"]], count)
            for version, share in (("v2", 0.3), ("v3", 0.7)):
                seen = pods[version].requests
                spread = 4.5 * (count * share * (1 - share)) ** 0.5
                assert abs(len(seen) - count * share) <= spread, (version, len(seen))
                for (method, path, headers), body in zip(seen, pods[version].bodies, strict=True):
                    assert (method, path, body) == ("PATCH", "/things?x=1", b'{"a": 1}')
                    assert headers.get("x-trace") == "7"
                    assert headers.get("host") == "service1-shadow"


@pytest.mark.parametrize(
    ("route", "problem"),
    [
        (
            {"to": "v1", "mirror": {"to": "v2"}, "mirrors": [{"to": "v3"}]},
            f"{R0}: give mirror or mirrors, not both",
        ),
        (
            {"to": "v1", "mirrors": [{"to": "v2"}, {"to": "v2", "percent": 5}]},
            f"{R0}: mirrors copies to 'v2' twice: list each version once",
        ),
        (
            {"to": "v1", "mirrors": [{"to": "v2"}, {"to": "v1"}]},
            f"{R0}.mirrors[1].to: 'v1' already receives this route's requests; mirror to a "
            "version the route does not send to",
        ),
        (
            {"to": "v1", "mirrors": [{"to": "v9"}]},
            f"{R0}.mirrors[0].to: unknown version 'v9'; this service has: v1, v2, v3",
        ),
        ({"to": "v1", "mirrors": []}, f"{R0}.mirrors: must not be empty"),
    ],
)
def test_bad_mirrors_are_refused(route: dict[str, Any], problem: str) -> None:
    assert _problems([route]) == [problem]
