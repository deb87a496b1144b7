"""Header changes of a route (issue 15, item 2): validation, the istio rule, and behaviour on real
HAProxy."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from route_support import load, problems, sidecar, spec, values

import sailplan
from sailplan.render.istio import virtual_service

R0 = "services.service1.routes[0]"

HEADERS = {
    "request": {
        "set": {"x-canary": "yes", "x-literal": "100% '$HOME' #x {a} -i"},
        "add": {"x-tag": "checkout"},
        "remove": ["x-debug"],
    },
    "response": {
        "set": {"x-served-by": "route-a"},
        "add": {"cache-control": "no-store"},
        "remove": ["server"],
    },
}


def _routes(headers: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"match": {"headers": {"lane": "a"}}, "to": "v2", "headers": headers},
        {"to": "v1"},
    ]


def test_istio_rule_carries_the_changes_with_percent_escaped() -> None:
    rule = virtual_service(load(_routes(HEADERS)), "service1")["spec"]["http"][0]
    assert rule["headers"] == {
        "request": {
            "set": {"x-canary": "yes", "x-literal": "100%% '$HOME' #x {a} -i"},
            "add": {"x-tag": "checkout"},
            "remove": ["x-debug"],
        },
        "response": {
            "set": {"x-served-by": "route-a"},
            "add": {"cache-control": "no-store"},
            "remove": ["server"],
        },
    }


@pytest.mark.haproxy
@pytest.mark.timeout(60)
def test_request_and_response_changes_apply_to_the_route_only() -> None:
    with sidecar(load(_routes(HEADERS))) as proxy:
        reply = proxy.get(headers={"lane": "a", "x-debug": "1", "x-tag": "cart", "x-canary": "no"})
        assert (reply.status, reply.body) == (200, "v2")
        _, _, seen = proxy.last("v2")
        assert values(seen, "x-canary") == ["yes"]
        assert values(seen, "x-literal") == ["100% '$HOME' #x {a} -i"]
        assert values(seen, "x-tag") == ["cart", "checkout"]
        assert values(seen, "x-debug") == []
        assert values(reply.headers, "x-served-by") == ["route-a"]
        assert values(reply.headers, "cache-control") == ["no-store"]
        assert values(reply.headers, "server") == []
        # The other route forwards the request untouched and its answer too.
        other = proxy.get(headers={"x-debug": "1"})
        assert (other.status, other.body) == (200, "v1")
        _, _, seen = proxy.last("v1")
        assert values(seen, "x-debug") == ["1"]
        assert values(seen, "x-canary") == []
        assert values(other.headers, "x-served-by") == []
        assert len(values(other.headers, "server")) == 1


@pytest.mark.haproxy
@pytest.mark.timeout(60)
def test_the_proxys_own_answers_keep_their_headers() -> None:
    """Envoy applies a route's response headers to the upstream's answers, not to its local
    replies (envoyproxy/envoy#8944): an abort gets none of them."""
    routes = [{**_routes(HEADERS)[0], "fault": {"abort": {"status": 503}}}, {"to": "v1"}]
    with sidecar(load(routes)) as proxy:
        reply = proxy.get(headers={"lane": "a"})
        assert (reply.status, reply.body) == (503, "fault filter abort")
        assert values(reply.headers, "x-served-by") == []
        assert values(reply.headers, "cache-control") == []


@pytest.mark.parametrize(
    ("headers", "where", "problem"),
    [
        (
            {"request": {"set": {"x-a": ""}}},
            "headers.request.set.x-a",
            "is empty, and an empty value is not sent: list the header under remove instead",
        ),
        (
            {"request": {"set": {"x-a": "a\r\nb: c"}}},
            "headers.request.set.x-a",
            "'a\\r\\nb: c' cannot be a header value: use printable ASCII, with no space at "
            "either end",
        ),
        (
            {"response": {"add": {"x-a": " padded"}}},
            "headers.response.add.x-a",
            "' padded' cannot be a header value: use printable ASCII, with no space at either end",
        ),
        (
            {"request": {"set": {"x-a": "1"}, "remove": ["x-a"]}},
            "headers.request",
            "'x-a' is both in set and in remove: give a header one change",
        ),
        (
            {"request": {"remove": ["x-a", "x-a"]}},
            "headers.request",
            "'x-a' is removed twice: list it once",
        ),
        (
            {"request": {"set": {"host": "other"}}},
            "headers.request",
            "set 'host': host is the request's authority, which routing reads, so the proxies "
            "own it and a route cannot change it (rewrite.authority changes it)",
        ),
        (
            {"response": {"remove": ["content-length"]}},
            "headers.response",
            "remove 'content-length': content-length frames the message, so the proxies own it "
            "and a route cannot change it",
        ),
        (
            {"request": {"set": {"X-Upper": "1"}}},
            "headers.request.set.X-Upper",
            "'X-Upper' is not a valid header name: use lowercase letters, digits and '-'",
        ),
        ({"request": {}}, "headers.request", "give set, add or remove, with at least one header"),
        ({}, "headers", "give request, response or both"),
    ],
)
def test_bad_header_changes_are_refused(headers: dict[str, Any], where: str, problem: str) -> None:
    assert problems([{"to": "v1", "headers": headers}]) == [f"{R0}.{where}: {problem}"]


def test_headers_need_an_http_service() -> None:
    mesh = spec([{"to": "v1", "headers": {"request": {"set": {"x-a": "1"}}}}])
    mesh["services"]["service1"]["protocol"] = "tcp"
    mesh["dataPlane"] = "istio"
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh_text(yaml.safe_dump(mesh))
    assert [str(p) for p in error.value.problems] == [
        f"{R0}.headers: headers needs protocol http or grpc; this service is tcp"
    ]


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=12)


@pytest.mark.haproxy
@pytest.mark.timeout(120)
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.one_of(_printable, _text), min_size=1, max_size=6))
def test_any_value_is_refused_or_arrives_as_written(texts: list[str]) -> None:
    """Every drawn value, as a request header set and a response header added: refused at its
    path, or sent by real HAProxy exactly as written."""
    accepted = {}
    for index, text in enumerate(texts):
        name = f"x-v{index}"
        try:
            load([{"to": "v1", "headers": {"request": {"set": {name: text}}}}])
        except sailplan.SpecError as error:
            assert [p.path for p in error.problems] == [f"{R0}.headers.request.set.{name}"]
            continue
        accepted[name] = text
    if not accepted:
        return
    headers = {"request": {"set": accepted}, "response": {"add": accepted}}
    with sidecar(load([{"to": "v1", "headers": headers}])) as proxy:
        reply = proxy.get()
        _, _, seen = proxy.last("v1")
        for name, text in accepted.items():
            assert values(seen, name) == [text]
            assert values(reply.headers, name) == [text]
