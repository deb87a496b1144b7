"""The Gateway API reference evaluator on hand-written objects: a wrong evaluator would make every
gateway-api conformance case void."""

from __future__ import annotations

from typing import Any

import pytest

from .gateway_api_reference import (
    IMPLEMENTATIONS,
    Cluster,
    Implementation,
    evaluate_gateway,
    evaluate_mesh,
    path_matches,
)
from .istio_reference import Request, Upstreams

FULL = Implementation("below-prefix", "full")


def _service(name: str, **selector: str) -> dict[str, Any]:
    return {
        "kind": "Service",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"selector": selector or {"app": name}, "ports": [{"port": 9080}]},
    }


def _cluster(*rules: dict[str, Any], gateway_rules: list[dict[str, Any]] | None = None) -> Cluster:
    objects: list[dict[str, Any]] = [
        {"kind": "Namespace", "metadata": {"name": "shop"}},
        _service("reviews"),
        _service("reviews-v1", app="reviews", version="v1"),
        _service("reviews-v2", app="reviews", version="v2"),
    ]
    for version, replicas in (("v1", 1), ("v2", 3)):
        objects.append(
            {
                "kind": "Deployment",
                "metadata": {"name": f"reviews-{version}", "namespace": "shop"},
                "spec": {
                    "replicas": replicas,
                    "template": {"metadata": {"labels": {"app": "reviews", "version": version}}},
                },
            }
        )
    if rules:
        objects.append(
            {
                "kind": "HTTPRoute",
                "metadata": {"name": "reviews", "namespace": "shop"},
                "spec": {
                    "parentRefs": [{"group": "", "kind": "Service", "name": "reviews"}],
                    "rules": list(rules),
                },
            }
        )
    if gateway_rules is not None:
        objects += [
            {
                "kind": "Gateway",
                "metadata": {"name": "gw", "namespace": "shop"},
                "spec": {
                    "listeners": [
                        {"name": "http", "port": 8000, "protocol": "HTTP"},
                        {"name": "https", "port": 443, "protocol": "HTTPS"},
                    ]
                },
            },
            {
                "kind": "HTTPRoute",
                "metadata": {"name": "ingress", "namespace": "shop"},
                "spec": {
                    "parentRefs": [
                        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}
                    ],
                    "hostnames": ["shop.example.com", "*.example.org"],
                    "rules": gateway_rules,
                },
            },
        ]
    return Cluster(objects)


def _to(version: str, *matches: dict[str, Any], **extra: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"backendRefs": [{"name": f"reviews-{version}", "port": 80}], **extra}
    if matches:
        rule["matches"] = list(matches)
    return rule


def _path(kind: str, value: str, **more: Any) -> dict[str, Any]:
    return {"path": {"type": kind, "value": value}, **more}


def _answer(cluster: Cluster, path: str = "/", how: Implementation = FULL, **request: Any) -> Any:
    outcome = evaluate_mesh(
        cluster, Request(path, host="reviews", **request), caller_namespace="shop", how=how
    )
    return {key: round(value, 6) for key, value in outcome.shares().items()}


@pytest.mark.parametrize(
    ("kind", "value", "path", "matches"),
    [
        ("PathPrefix", "/abc", "/abc", True),
        ("PathPrefix", "/abc", "/abc/", True),
        ("PathPrefix", "/abc", "/abc/def", True),
        ("PathPrefix", "/abc", "/abcd", False),
        ("PathPrefix", "/abc/", "/abc", True),  # "a trailing `/` is ignored"
        ("PathPrefix", "/", "/anything", True),
        ("Exact", "/abc", "/abc/", False),
        ("Exact", "/abc", "/Abc", False),
        ("RegularExpression", "/a.c", "/abc", True),
    ],
)
def test_path_matches_as_the_specification_says(
    kind: str, value: str, path: str, matches: bool
) -> None:
    assert path_matches({"type": kind, "value": value}, path, FULL) is matches


def test_a_regex_matches_the_whole_value_or_anywhere_as_the_implementation_does() -> None:
    rule = {"type": "RegularExpression", "value": "/api"}
    assert not path_matches(rule, "/api/users", Implementation("below-prefix", "full"))
    assert path_matches(rule, "/api/users", Implementation("below-prefix", "search"))
    anchored = {"type": "RegularExpression", "value": "^/api.*"}
    for how in IMPLEMENTATIONS:
        assert path_matches(anchored, "/api/users", how)
        assert not path_matches(anchored, "/x/api", how)


def test_the_most_specific_match_wins_not_the_first() -> None:
    cluster = _cluster(
        _to("v1", _path("PathPrefix", "/")),
        _to("v2", _path("PathPrefix", "/api")),
        _to("v1", _path("Exact", "/api/login")),
        _to("v2", _path("PathPrefix", "/api", method="POST")),
        _to(
            "v1", _path("PathPrefix", "/api", method="POST", headers=[{"name": "a", "value": "1"}])
        ),
    )
    assert _answer(cluster, "/x") == {"reviews/v1": 1.0}
    assert _answer(cluster, "/api/x") == {"reviews/v2": 1.0}  # longer prefix
    assert _answer(cluster, "/api/login", method="POST") == {"reviews/v1": 1.0}  # exact path
    assert _answer(cluster, "/api/x", method="POST") == {"reviews/v2": 1.0}  # method
    assert _answer(cluster, "/api/x", method="POST", headers={"A": "1"}) == {"reviews/v1": 1.0}


def test_more_headers_beat_more_query_parameters_and_ties_go_to_the_first_rule() -> None:
    header = {"name": "lane", "value": "a"}
    query = {"name": "q", "value": "1"}
    cluster = _cluster(
        _to("v1", {"queryParams": [query, {"name": "r", "value": "2"}]}),
        _to("v2", {"headers": [header]}),
        _to("v1", {"headers": [header]}),
    )
    assert _answer(cluster, "/?q=1&r=2", headers={"lane": "a"}) == {"reviews/v2": 1.0}
    assert _answer(cluster, "/?q=1&r=2") == {"reviews/v1": 1.0}


def test_no_matching_rule_answers_404_and_no_route_spreads_over_the_service() -> None:
    assert _answer(_cluster(_to("v2", _path("Exact", "/only"))), "/other") == {"404": 1.0}
    assert _answer(_cluster()) == {"reviews/v1": 0.25, "reviews/v2": 0.75}


@pytest.mark.parametrize("how", IMPLEMENTATIONS, ids=str)
def test_a_regex_path_ranks_where_the_implementation_puts_it(how: Implementation) -> None:
    cluster = _cluster(
        _to("v1", _path("PathPrefix", "/")),
        _to("v2", _path("RegularExpression", "^/api.*")),
    )
    expected = "reviews/v1" if how.regex_rank == "below-prefix" else "reviews/v2"
    assert _answer(cluster, "/api/x", how) == {expected: 1.0}


def test_weights_split_and_pods_share_their_backend() -> None:
    rule = {
        "backendRefs": [
            {"name": "reviews-v1", "port": 80, "weight": 3},
            {"name": "reviews-v2", "port": 80, "weight": 1},
            {"name": "reviews", "port": 80, "weight": 0},
        ]
    }
    assert _answer(_cluster(rule)) == {"reviews/v1": 0.75, "reviews/v2": 0.25}


def test_a_request_timeout_answers_504_at_the_deadline() -> None:
    cluster = _cluster(_to("v1", timeouts={"request": "1s500ms"}))
    outcome = evaluate_mesh(
        cluster, Request("/sleep/2000", host="reviews"), caller_namespace="shop"
    )
    assert [(b.status, b.body, b.elapsed_ms) for b in outcome.branches] == [
        (504, "upstream request timeout", 1500.0)
    ]
    fast = evaluate_mesh(cluster, Request("/sleep/20", host="reviews"), caller_namespace="shop")
    assert [(b.status, b.elapsed_ms) for b in fast.branches] == [(200, 20.0)]


def test_a_mirror_copies_a_fraction_to_the_backend_s_pods() -> None:
    mirror = {
        "type": "RequestMirror",
        "requestMirror": {
            "backendRef": {"name": "reviews-v2", "port": 80},
            "fraction": {"numerator": 1, "denominator": 8},
        },
    }
    cluster = _cluster(_to("v1", filters=[mirror]))
    outcome = evaluate_mesh(
        cluster, Request("/x", "PUT", {}, "reviews", "b=1"), caller_namespace="shop"
    )
    assert [(c.probability, c.to, c.pods, c.method, c.host, c.body) for c in outcome.copies] == [
        (0.125, "reviews/v2", 3, "PUT", "reviews-shadow", "b=1")
    ]


def test_refusing_pods_fail_without_retries() -> None:
    outcome = evaluate_mesh(
        _cluster(_to("v2")),
        Request("/", host="reviews"),
        caller_namespace="shop",
        upstreams=Upstreams(refusing={"reviews/v2": 1}),
    )
    shares = {key: round(value, 6) for key, value in outcome.shares().items()}
    assert shares == {
        "reviews/v2": round(2 / 3, 6),
        "503 upstream connect error or disconnect/reset before headers. reset reason: "
        "connection failure": round(1 / 3, 6),
    }


def test_the_gateway_takes_its_hostnames_and_not_the_mesh_routes() -> None:
    cluster = _cluster(
        _to("v2"),  # the mesh route: not applied at the gateway
        gateway_rules=[_to("v1", _path("PathPrefix", "/api"))],
    )

    def at_gateway(path: str, host: str) -> dict[str, float]:
        return dict(evaluate_gateway(cluster, Request(path, host=host), how=FULL).shares())

    assert at_gateway("/api/x", "shop.example.com") == {"reviews/v1": 1.0}
    assert at_gateway("/api/x", "a.example.org:8080") == {"reviews/v1": 1.0}
    assert at_gateway("/api/x", "other.example.com") == {"404": 1.0}
    assert at_gateway("/x", "shop.example.com") == {"404": 1.0}


@pytest.mark.parametrize(
    ("path", "prefix", "replacement", "expected"),
    [
        # HTTPPathModifier.ReplacePrefixMatch's table, and the query string kept.
        ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
        ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
        ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
        ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
        ("/foo", "/foo", "/xyz", "/xyz"),
        ("/foo/", "/foo", "/xyz", "/xyz/"),
        ("/foo/bar", "/foo", "", "/bar"),
        ("/foo/", "/foo", "", "/"),
        ("/foo", "/foo", "", "/"),
        ("/foo/", "/foo", "/", "/"),
        ("/foo", "/foo", "/", "/"),
        ("/foo/bar?x=1", "/foo/", "/xyz/", "/xyz/bar?x=1"),
    ],
)
def test_a_prefix_rewrite_follows_the_specification_s_table(
    path: str, prefix: str, replacement: str, expected: str
) -> None:
    rewrite = {
        "type": "URLRewrite",
        "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": replacement}},
    }
    cluster = _cluster(_to("v1", _path("PathPrefix", prefix), filters=[rewrite]))
    outcome = evaluate_mesh(cluster, Request(path, host="reviews"), caller_namespace="shop")
    assert outcome.forwarded_path == expected


def test_header_modifiers_and_the_hostname_change_what_is_forwarded_and_answered() -> None:
    filters = [
        {
            "type": "RequestHeaderModifier",
            "requestHeaderModifier": {
                "set": [{"name": "X-Canary", "value": "100%"}],
                "add": [{"name": "x-tag", "value": "b"}],
                "remove": ["x-debug"],
            },
        },
        {
            "type": "URLRewrite",
            "urlRewrite": {
                "hostname": "users.internal",
                "path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"},
            },
        },
        {
            "type": "ResponseHeaderModifier",
            "responseHeaderModifier": {
                "remove": ["server"],
                "add": [{"name": "x-r", "value": "1"}],
            },
        },
    ]
    cluster = _cluster(_to("v1", filters=filters))
    request = Request(
        "/old?q=1", headers={"x-canary": "no", "x-tag": "a", "X-Debug": "1"}, host="reviews"
    )
    outcome = evaluate_mesh(cluster, request, caller_namespace="shop")
    assert outcome.forwarded == (
        ("host", "users.internal"),
        ("x-tag", "a"),
        ("X-Canary", "100%"),
        ("x-tag", "b"),
    )
    assert outcome.forwarded_path == "/new?q=1"
    assert [b.headers for b in outcome.branches] == [(("content-type", "text/plain"), ("x-r", "1"))]


def _redirect(**redirect: Any) -> dict[str, Any]:
    rule = {
        "matches": [_path("PathPrefix", "/old/")],
        "filters": [{"type": "RequestRedirect", "requestRedirect": redirect}],
    }
    return rule


@pytest.mark.parametrize(
    ("redirect", "host", "location"),
    [
        # "When empty, the scheme of the request is used" and the hostname of its Host; the
        # port "MUST be the Gateway Listener port" (a Service parent's: its port).
        ({}, "reviews", "http://reviews:9080/old/a?x=1"),
        ({}, "reviews:9080", "http://reviews:9080/old/a?x=1"),
        # A scheme brings its well-known port, left out of the Location.
        ({"scheme": "https"}, "reviews:9080", "https://reviews/old/a?x=1"),
        ({"scheme": "https", "port": 8443}, "reviews", "https://reviews:8443/old/a?x=1"),
        ({"hostname": "a.example", "port": 80}, "reviews", "http://a.example/old/a?x=1"),
        (
            {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"}},
            "reviews",
            "http://reviews:9080/new?x=1",
        ),
        (
            {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new/"}},
            "reviews",
            "http://reviews:9080/new/a?x=1",
        ),
    ],
)
def test_a_redirect_builds_the_location_as_the_specification_says(
    redirect: dict[str, Any], host: str, location: str
) -> None:
    cluster = _cluster(_redirect(**redirect), _to("v1"))
    outcome = evaluate_mesh(
        cluster, Request("/old/a?x=1", host=host), caller_namespace="shop", how=FULL
    )
    assert [(b.status, b.body, b.headers) for b in outcome.branches] == [
        (302, "", (("location", location),))  # statusCode's default
    ]
    assert outcome.copies == () and outcome.forwarded == ()


def test_a_gateway_redirect_keeps_the_listener_s_scheme_and_port() -> None:
    cluster = _cluster(gateway_rules=[_redirect(statusCode=301)])
    for listener, location in (
        ("http", "http://shop.example.com:8000/old/a"),
        ("https", "https://shop.example.com/old/a"),
    ):
        outcome = evaluate_gateway(
            cluster, Request("/old/a", host="shop.example.com"), how=FULL, listener=listener
        )
        assert [(b.status, b.headers) for b in outcome.branches] == [
            (301, (("location", location),))
        ]
