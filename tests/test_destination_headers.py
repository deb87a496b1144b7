"""Header changes per split destination (issue 15, item 2): validation, Istio's
HTTPRouteDestination.headers, and on real HAProxy each version's changes on its own pods only."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from proxy_support import Backend, Reply, request, running_caller
from schema_support import validate_manifest

import sailplan
from sailplan.render.istio import ingress_virtual_service, virtual_service

R0 = "services.service1.routes[0]"
V1 = {"request": {"set": {"x-dest": "v1"}}, "response": {"set": {"x-answered-by": "v1"}}}
V2 = {
    "request": {"set": {"x-dest": "v2"}, "remove": ["x-debug"]},
    "response": {"add": {"x-answered-by": "v2"}, "remove": ["x-version"]},
}


def _spec(route: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sailplan/v1",
        # Plaintext: the pods here are bare HTTP servers, not sidecars holding mesh certificates.
        "mtls": "disable",
        "kind": "Mesh",
        "name": "dest",
        **extra,
        "services": {
            "service1": {
                "port": 8088,
                "versions": {"v1": {"image": "a", "replicas": 2}, "v2": {"image": "b"}},
                "routes": [route],
            },
            "caller": {"port": 9000, "versions": {"v1": {"image": "c"}}},
        },
    }


def _mesh(route: dict[str, Any], **extra: Any) -> sailplan.Mesh:
    return sailplan.load_mesh_text(yaml.safe_dump(_spec(route, **extra)))


def test_istio_headers_per_destination() -> None:
    route = {
        "split": {"v1": 80, "v2": 20},
        "headers": {"request": {"set": {"x-route": "yes"}}},
        "destinationHeaders": {"v1": V1, "v2": V2},
    }
    mesh = _mesh(route)
    rendered = virtual_service(mesh, "service1")
    validate_manifest(rendered)
    [rule] = rendered["spec"]["http"]  # a catch-all route needs no fallthrough rule
    assert rule["headers"] == {"request": {"set": {"x-route": "yes"}}}
    assert [(d["destination"]["subset"], d["weight"], d["headers"]) for d in rule["route"]] == [
        ("v1", 80, V1),
        ("v2", 20, V2),
    ]
    assert mesh.to_dict()["services"]["service1"]["routes"] == [route]


def test_istio_headers_of_the_one_destination() -> None:
    rendered = virtual_service(_mesh({"to": "v2", "destinationHeaders": {"v2": V2}}), "service1")
    validate_manifest(rendered)
    assert rendered["spec"]["http"][0]["route"] == [
        {
            "destination": {
                "host": "service1.dest.svc.cluster.local",
                "port": {"number": 8088},
                "subset": "v2",
            },
            "headers": V2,
        }
    ]


def test_the_istio_gateway_repeats_the_destinations_headers() -> None:
    # A gateway ignores mesh VirtualServices: its own rules must carry each destination's changes.
    route = {"split": {"v1": 80, "v2": 20}, "destinationHeaders": {"v2": V2}}
    rendered = ingress_virtual_service(_mesh(route, ingress={"routes": [{"service": "service1"}]}))
    validate_manifest(rendered)
    [rule] = rendered["spec"]["http"]
    assert [d.get("headers") for d in rule["route"]] == [None, V2]


def _send(
    route: dict[str, Any], tmp_path: Path, count: int
) -> tuple[list[Reply], dict[str, Backend]]:
    """`count` requests through the caller's sidecar to service1, each carrying x-debug; each
    pod answers with its name, which starts with its version."""
    pods = {
        "v1-a": Backend("v1-a").start(),
        "v1-b": Backend("v1-b").start(),
        "v2-a": Backend("v2-a").start(),
    }
    try:
        addresses = {
            "v1": [("127.0.0.1", pods["v1-a"].port), ("127.0.0.1", pods["v1-b"].port)],
            "v2": [("127.0.0.1", pods["v2-a"].port)],
        }
        with running_caller(_mesh(route), addresses, tmp_path) as ports:
            replies = [request(ports.outbound, "/", headers={"x-debug": "1"}) for _ in range(count)]
        return replies, pods
    finally:
        for pod in pods.values():
            pod.stop()


def _answer(reply: Reply, name: str) -> list[str]:
    return [value for header, value in reply.headers if header == name]


def _check_split(route: dict[str, Any], tmp_path: Path) -> None:
    replies, pods = _send(route, tmp_path, 60)
    shares = Counter(reply.body.split("-")[0] for reply in replies)
    assert set(shares) == {"v1", "v2"} and shares["v1"] > shares["v2"], shares
    for name, pod in pods.items():
        version = name.split("-")[0]
        for lines in pod.header_lines:
            seen = {header.lower(): value for header, value in lines}
            # Each version's changes reach its own pods only, with the route's own change.
            assert seen["x-dest"] == version, (name, lines)
            assert seen["x-route"] == "yes", (name, lines)
            assert ("x-debug" in seen) == (version == "v1"), (name, lines)
    for reply in replies:
        version = reply.body.split("-")[0]
        assert reply.status == 200
        assert _answer(reply, "x-answered-by") == [version], reply
        assert _answer(reply, "x-route-answer") == ["yes"], reply


@pytest.mark.haproxy
@pytest.mark.timeout(90)
def test_each_destination_changes_only_its_own_requests_and_answers(tmp_path: Path) -> None:
    route = {
        "split": {"v1": 80, "v2": 20},
        "headers": {
            "request": {"set": {"x-route": "yes"}},
            "response": {"set": {"x-route-answer": "yes"}},
        },
        "destinationHeaders": {"v1": V1, "v2": V2},
    }
    _check_split(route, tmp_path)
    # With a timeout the route's backend hops into a listener that makes the attempts.
    _check_split({**route, "timeout": "5s"}, tmp_path / "timeout")


@pytest.mark.parametrize(
    ("route", "problems"),
    [
        (
            {"split": {"v1": 100, "v2": 0}, "destinationHeaders": {"v2": V2}},
            [
                f"{R0}.destinationHeaders.v2: 'v2' is not a destination of this route: name a "
                "version of `to`, or of `split` with a weight above 0"
            ],
        ),
        (
            {"to": "v1", "destinationHeaders": {"v2": V2}},
            [
                f"{R0}.destinationHeaders.v2: 'v2' is not a destination of this route: name a "
                "version of `to`, or of `split` with a weight above 0"
            ],
        ),
        (
            {
                "to": "v1",
                "headers": {"request": {"remove": ["x-dest"]}, "response": {"set": {"x-b": "1"}}},
                "destinationHeaders": {"v1": V1},
            },
            [
                f"{R0}.destinationHeaders.v1.request: 'x-dest' is changed by the route's "
                "headers.request too: give a header one change, on the route or on the "
                "destination"
            ],
        ),
        (
            {"to": "v1", "destinationHeaders": {}},
            [f"{R0}.destinationHeaders: give at least one version, or remove destinationHeaders"],
        ),
        (
            {"to": "v1", "destinationHeaders": {"v1": {}}},
            [f"{R0}.destinationHeaders.v1: give request, response or both"],
        ),
        (
            {"to": "v1", "destinationHeaders": {"v1": {"request": {"set": {"host": "x"}}}}},
            [
                f"{R0}.destinationHeaders.v1.request: set 'host': host is the request's "
                "authority, which routing reads, so the proxies own it and a route cannot change "
                "it (rewrite.authority changes it)"
            ],
        ),
        (
            {
                "split": {"v1": 50, "v2": 50},
                "mirror": {"to": "v3"},
                "destinationHeaders": {"v1": V1, "v2": {"response": V2["response"]}},
            },
            [
                f"{R0}.destinationHeaders.v1.request: the builtin proxy copies the request for "
                "mirror before it picks the version, so the copy would miss these changes "
                "(Envoy's carries them): move them to the route's headers.request, remove "
                "mirror, or use the istio data plane"
            ],
        ),
    ],
)
def test_bad_destination_headers_are_refused(route: dict[str, Any], problems: list[str]) -> None:
    spec = _spec(route)
    spec["services"]["service1"]["versions"]["v3"] = {"image": "d"}
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh_text(yaml.safe_dump(spec))
    assert [str(p) for p in error.value.problems] == problems


def test_a_mirror_keeps_destination_request_headers_on_istio() -> None:
    spec = _spec(
        {"to": "v1", "mirror": {"to": "v2"}, "destinationHeaders": {"v1": V1}}, dataPlane="istio"
    )
    assert sailplan.load_mesh_text(yaml.safe_dump(spec)).services["service1"].routes[0]


def test_tcp_and_gateway_api_refuse_destination_headers() -> None:
    spec = _spec({"to": "v1", "destinationHeaders": {"v1": V1}}, dataPlane="istio")
    spec["services"]["service1"]["protocol"] = "tcp"
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh_text(yaml.safe_dump(spec))
    tcp = f"{R0}.destinationHeaders: destinationHeaders needs protocol http or grpc; this service is tcp"
    assert tcp in [str(p) for p in error.value.problems]
    spec = _spec({"to": "v1", "destinationHeaders": {"v1": V1}}, dataPlane="gateway-api")
    spec["mtls"] = "permissive"
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh_text(yaml.safe_dump(spec))
    assert [str(p) for p in error.value.problems] == [
        f"{R0}.destinationHeaders: an HTTPRoute's filters per backend are implementation-specific "
        "in the Gateway API (an implementation may ignore them), so sailplan does not render "
        "them; put the changes in the route's headers, or use the istio or builtin data plane"
    ]
