"""Consistent hashing by cookie, with a cookie made for clients without one (issue 15, item 7):
validation, the istio DestinationRule, and stickiness on real HAProxy over three pods."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from proxy_support import (
    Backend,
    Reply,
    check_config,
    free_port,
    loopback_ports,
    request,
    running_haproxy,
)
from schema_support import validate_manifest

import sailplan
from sailplan.model.gateway_api import gateway_api_problems
from sailplan.render.haproxy import (
    StaticEndpoints,
    compile_gateway,
    compile_sidecar,
)
from sailplan.render.istio import destination_rule

AT = "services.service1.policy.loadBalancer"


def _spec(load_balancer: Any, *, timeout: str | None = None) -> dict[str, Any]:
    service1: dict[str, Any] = {
        "port": 8088,
        "versions": {"v1": {"image": "a", "replicas": 3}},
        "policy": {"loadBalancer": load_balancer},
    }
    if timeout is not None:
        service1["routes"] = [{"to": "v1", "timeout": timeout}]
    return {
        "apiVersion": "sailplan/v1",
        # Plaintext: the pods here are bare HTTP servers, not sidecars holding mesh certificates.
        "mtls": "disable",
        "kind": "Mesh",
        "name": "hashing",
        "services": {
            "service1": service1,
            "caller": {"port": 9000, "versions": {"v1": {"image": "c"}}},
        },
        "ingress": {"routes": [{"service": "service1"}]},
    }


def _mesh(load_balancer: Any, *, timeout: str | None = None) -> sailplan.Mesh:
    return sailplan.load_mesh_text(yaml.safe_dump(_spec(load_balancer, timeout=timeout)))


@pytest.mark.parametrize(
    ("cookie", "rendered"),
    [
        ({"name": "session"}, {"name": "session"}),
        (
            {"name": "session", "ttl": "1h", "path": "/"},
            {"name": "session", "path": "/", "ttl": "3600s"},
        ),
    ],
)
def test_istio_http_cookie(cookie: dict[str, Any], rendered: dict[str, Any]) -> None:
    mesh = _mesh({"hashCookie": cookie})
    rule = destination_rule(mesh, "service1")
    assert rule["spec"]["trafficPolicy"]["loadBalancer"] == {
        "consistentHash": {"httpCookie": rendered}
    }
    validate_manifest(rule)
    assert mesh.to_dict()["services"]["service1"]["policy"] == {
        "loadBalancer": {"hashCookie": cookie}
    }


def test_the_gateway_api_plane_refuses_cookie_hashing() -> None:
    problems = gateway_api_problems(_mesh({"hashCookie": {"name": "session", "ttl": "1h"}}))
    # The plane has no load balancer setting at all, so the cookie is refused with it.
    assert [str(p) for p in problems if p.path.startswith(AT)] == [
        f"{AT}: the Gateway API's standard channel has no load-balancing setting; use the istio "
        "or builtin data plane"
    ]


class _Pods:
    """service1's three pods behind a caller's sidecar compiled for `load_balancer`."""

    def __init__(
        self,
        load_balancer: Any,
        tmp_path: Path,
        timeout: str | None = None,
        *,
        gateway: bool = False,
    ) -> None:
        self.load_balancer = load_balancer
        self.timeout = timeout
        self.tmp_path = tmp_path
        self.gateway = gateway
        self.ports = loopback_ports()
        # Where clients send: the gateway's listener, or the caller's outbound listener.
        self.port = free_port() if gateway else self.ports.outbound

    def files(self, pods: list[Backend]) -> dict[str, str]:
        mesh = _mesh(self.load_balancer, timeout=self.timeout)
        endpoints = StaticEndpoints({"service1": {"v1": [("127.0.0.1", p.port) for p in pods]}})
        if self.gateway:
            config = compile_gateway(
                mesh,
                endpoints=endpoints,
                listen_port=self.port,
                ports=self.ports,
                config_dir=str(self.tmp_path),
                runtime_dir=str(self.tmp_path),
            )
        else:
            config = compile_sidecar(
                mesh,
                "caller",
                "v1",
                endpoints=endpoints,
                ports=self.ports,
                app_port=free_port(),
                config_dir=str(self.tmp_path),
                runtime_dir=str(self.tmp_path),
                passthrough="host-header",
            )
        return dict(config.files)


def _run(
    load_balancer: Any, tmp_path: Path, cookies: list[str | None], timeout: str | None = None
) -> list[Reply]:
    """One request per entry of `cookies` (the Cookie header, or none), in order."""
    pods = [Backend(f"pod{i}").start() for i in range(3)]
    try:
        setup = _Pods(load_balancer, tmp_path, timeout)
        with running_haproxy(setup.files(pods), tmp_path, [setup.ports.outbound]):
            return [
                request(setup.ports.outbound, "/", headers={"cookie": c} if c else None)
                for c in cookies
            ]
    finally:
        for pod in pods:
            pod.stop()


def _set_cookies(reply: Reply) -> list[str]:
    return [value for name, value in reply.headers if name == "set-cookie"]


@pytest.mark.haproxy
@pytest.mark.timeout(60)
def test_the_same_cookie_goes_to_the_same_pod(tmp_path: Path) -> None:
    # The cookie is one of several, and its name holds characters HAProxy reads as syntax.
    name = "s#$'%id"
    cookies = [f"other=1; {name}=user{n % 12}; more=2" for n in range(48)]
    replies = _run({"hashCookie": {"name": name}}, tmp_path, cookies)
    by_value: dict[str, set[str]] = {}
    for cookie, reply in zip(cookies, replies, strict=True):
        assert reply.status == 200
        by_value.setdefault(cookie, set()).add(reply.body)
    assert all(len(pods) == 1 for pods in by_value.values()), by_value
    assert len({reply.body for reply in replies}) > 1  # twelve users do not all hash to one pod
    # Without a ttl no cookie is made, and requests without one are spread.
    assert not any(_set_cookies(reply) for reply in replies)
    spread = _run({"hashCookie": {"name": name}}, tmp_path / "none", [None] * 12)
    assert len(Counter(reply.body for reply in spread)) > 1
    assert not any(_set_cookies(reply) for reply in spread)


def _follow_ups(
    load_balancer: Any, tmp_path: Path, timeout: str | None = None, *, gateway: bool = False
) -> None:
    """Ten clients without the cookie each get one, and their next requests stick."""
    pods = [Backend(f"pod{i}").start() for i in range(3)]
    try:
        setup = _Pods(load_balancer, tmp_path, timeout, gateway=gateway)
        with running_haproxy(setup.files(pods), tmp_path, [setup.port]):
            first_pods = []
            values = set()
            for client in range(10):
                # A cookie with an empty value counts as none.
                first = request(setup.port, "/", headers={"cookie": "session="} if client else {})
                assert first.status == 200
                [set_cookie] = _set_cookies(first)
                pair, *attributes = set_cookie.split("; ")
                assert attributes == ["Max-Age=3600", "Path=/", "HttpOnly"], set_cookie
                name, _, value = pair.partition("=")
                assert name == "session"
                assert value.startswith('"') and value.endswith('"') and len(value) == 38, value
                values.add(value)
                first_pods.append(first.body)
                for _ in range(4):
                    again = request(setup.port, "/", headers={"cookie": pair})
                    assert (again.status, again.body) == (200, first.body)
                    assert _set_cookies(again) == []
            assert len(values) == 10  # every client got a cookie of its own
            assert len(set(first_pods)) > 1, first_pods  # and they are spread over the pods
            # Each pod saw every request of its clients with the cookie, except the first.
            seen_with = sum(
                1
                for pod in pods
                for _, _, headers in pod.requests
                if any(k.lower() == "cookie" and v != "session=" for k, v in headers.items())
            )
            assert seen_with == 40
    finally:
        for pod in pods:
            pod.stop()


@pytest.mark.haproxy
@pytest.mark.timeout(90)
def test_a_client_without_the_cookie_gets_one_and_sticks(tmp_path: Path) -> None:
    cookie = {"name": "session", "ttl": "1h", "path": "/"}
    _follow_ups({"hashCookie": cookie}, tmp_path)
    # A route with a timeout makes its attempts in a listener of its own: the same there.
    _follow_ups({"hashCookie": cookie}, tmp_path / "timeout", timeout="5s")
    # Browsers reach the ingress gateway, which balances the same way.
    _follow_ups({"hashCookie": cookie}, tmp_path / "gateway", gateway=True)


@pytest.mark.parametrize(
    ("load_balancer", "problem"),
    [
        (
            {"hashCookie": {"name": "a=b"}},
            f"{AT}.hashCookie.name: 'a=b' is not a valid cookie name: use letters, digits and "
            "! # $ % & ' * + - . ^ _ ` | ~ (an RFC 6265 token)",
        ),
        (
            {"hashCookie": {"name": "a b"}},
            f"{AT}.hashCookie.name: 'a b' is not a valid cookie name: use letters, digits and "
            "! # $ % & ' * + - . ^ _ ` | ~ (an RFC 6265 token)",
        ),
        (
            {"hashCookie": {"name": "s", "ttl": "1500ms"}},
            f"{AT}.hashCookie.ttl: 1500ms is not a whole number of seconds: the cookie's Max-Age "
            "counts seconds (Envoy would drop the fraction)",
        ),
        (
            {"hashCookie": {"name": "s", "ttl": "0s"}},
            f"{AT}.hashCookie.ttl: '0s' is too short: a duration must be at least 1ms",
        ),
        (
            {"hashCookie": {"name": "s", "ttl": "1h", "path": "/a;b"}},
            f"{AT}.hashCookie.path: '/a;b' is not a cookie path: start with '/' and use "
            "printable ASCII without spaces or ';'",
        ),
        (
            {"hashCookie": {"name": "s", "path": "/"}},
            f"{AT}.hashCookie: path is the Path of the cookie the proxy makes, and without ttl "
            "it makes none: give ttl, or remove path",
        ),
        (
            {"hashCookie": {"name": "s"}, "hashHeader": "x"},
            f"{AT}: give an algorithm (round-robin, random, least-request) or one of "
            "{hashHeader: <header>}, {hashSourceIp: true}, {hashQueryParameter: <name>}, "
            "{hashCookie: {name: <cookie>}}",
        ),
        (
            {"hashCookie": {"ttl": "1h"}},
            f"{AT}.hashCookie.name: is required",
        ),
    ],
)
def test_bad_cookie_hashing_is_refused(load_balancer: dict[str, Any], problem: str) -> None:
    with pytest.raises(sailplan.SpecError) as error:
        _mesh(load_balancer)
    assert [str(p) for p in error.value.problems] == [problem]


# Printable ASCII holds every character HAProxy reads as syntax.
_printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=10)


@pytest.mark.haproxy
@settings(max_examples=30, deadline=None, derandomize=True)
@given(_printable, _printable)
def test_any_cookie_is_refused_or_compiles(name: str, path: str) -> None:
    """The cookie's name reaches a sample fetch's argument and, with the path, a header value."""
    cookie = {"name": name, "ttl": "1h", "path": "/" + path}
    try:
        mesh = _mesh({"hashCookie": cookie})
    except sailplan.SpecError as error:
        assert {p.path for p in error.problems} <= {
            f"{AT}.hashCookie.name",
            f"{AT}.hashCookie.path",
        }
        return
    endpoints = StaticEndpoints({"service1": {"v1": [("127.0.0.1", 9)]}})
    check_config(compile_sidecar(mesh, "caller", "v1", endpoints=endpoints).files, repr(cookie))
