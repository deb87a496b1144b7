"""The reference evaluator on hand-written Istio objects: a wrong evaluator would make every
conformance scenario void."""

from __future__ import annotations

from typing import Any

import pytest

from .istio_reference import (
    GATEWAY_PRINCIPAL,
    Cluster,
    Request,
    Upstreams,
    authorization_rule_matches,
    change_headers,
    evaluate_burst,
    evaluate_direct,
    evaluate_gateway,
    evaluate_mesh,
    redirect_location,
    rewritten_path,
    rule_matches,
)


def _objects(
    http: list[dict[str, Any]],
    *,
    gateway_http: list[dict[str, Any]] | None = None,
    policy: dict[str, Any] | None = None,
    extra: list[dict[str, Any]] | None = None,
) -> Cluster:
    host = "reviews.shop.svc.cluster.local"
    objects: list[dict[str, Any]] = [
        {
            "kind": "Service",
            "metadata": {"name": "reviews", "namespace": "shop"},
            "spec": {"selector": {"app": "reviews"}},
        },
        {
            "kind": "DestinationRule",
            "metadata": {"name": "reviews", "namespace": "shop"},
            "spec": {
                "host": host,
                "subsets": [
                    {"name": "a", "labels": {"version": "v1"}},
                    {"name": "b", "labels": {"version": "v2"}},
                ],
            },
        },
        {
            "kind": "VirtualService",
            "metadata": {"name": "reviews", "namespace": "shop"},
            "spec": {"hosts": [host], "http": http},
        },
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
    if policy is not None:
        objects[1]["spec"]["trafficPolicy"] = policy
    if gateway_http is not None:
        objects += [
            {"kind": "Gateway", "metadata": {"name": "gw", "namespace": "shop"}, "spec": {}},
            {
                "kind": "VirtualService",
                "metadata": {"name": "edge", "namespace": "shop"},
                "spec": {"hosts": ["*.example.com"], "gateways": ["shop/gw"], "http": gateway_http},
            },
        ]
    return Cluster([*objects, *(extra or [])])


def _to(subset: str | None = None, weight: int | None = None) -> dict[str, Any]:
    destination: dict[str, Any] = {"host": "reviews.shop.svc.cluster.local"}
    if subset:
        destination["subset"] = subset
    entry: dict[str, Any] = {"destination": destination}
    if weight is not None:
        entry["weight"] = weight
    return entry


def _mesh(cluster: Cluster, request: Request) -> dict[str, float]:
    return evaluate_mesh(cluster, request, caller_namespace="shop").shares()


@pytest.mark.parametrize(
    ("match", "request_", "expected"),
    [
        ({"uri": {"regex": "/api/v[0-9]"}}, Request("/api/v1"), True),
        ({"uri": {"regex": "/api/v[0-9]"}}, Request("/api/v1/users"), False),
        ({"uri": {"prefix": "/api"}}, Request("/api/v1?x=1"), True),
        ({"uri": {"exact": "/api"}}, Request("/api?x=1"), True),
        (
            {"headers": {"end-user": {"exact": "jason"}}},
            Request(headers={"End-User": "jason"}),
            True,
        ),
        (
            {"headers": {"end-user": {"exact": "jason"}}},
            Request(headers={"end-user": "bob, jason"}),
            False,
        ),
        ({"headers": {"end-user": {"prefix": "ja"}}}, Request(), False),
        ({"queryParams": {"beta": {"exact": "1"}}}, Request("/?beta=1&x=2"), True),
        ({"queryParams": {"beta": {"exact": "1"}}}, Request("/?beta=10"), False),
        ({"method": {"exact": "POST"}, "uri": {"prefix": "/"}}, Request(method="GET"), False),
    ],
)
def test_match_semantics(match: dict[str, Any], request_: Request, expected: bool) -> None:
    assert rule_matches({"match": [match]}, request_) is expected


def test_match_blocks_are_alternatives() -> None:
    rule = {"match": [{"uri": {"exact": "/a"}}, {"uri": {"exact": "/b"}}]}
    assert rule_matches(rule, Request("/b"))
    assert not rule_matches(rule, Request("/c"))


def test_first_matching_rule_wins_and_weights_split() -> None:
    cluster = _objects(
        [
            {"match": [{"uri": {"prefix": "/x"}}], "route": [_to("b")]},
            {"route": [_to("a", 70), _to("b", 30)]},
        ]
    )
    assert _mesh(cluster, Request("/x/1", host="reviews")) == {"reviews/v2": 1.0}
    shares = _mesh(cluster, Request("/", host="reviews.shop.svc:9080"))
    assert shares == pytest.approx({"reviews/v1": 0.7, "reviews/v2": 0.3})


def test_no_subset_spreads_by_pods_and_no_match_is_404() -> None:
    cluster = _objects([{"match": [{"uri": {"prefix": "/x"}}], "route": [_to()]}])
    assert _mesh(cluster, Request("/x", host="reviews")) == pytest.approx(
        {"reviews/v1": 0.25, "reviews/v2": 0.75}
    )
    assert _mesh(cluster, Request("/y", host="reviews")) == {"404": 1.0}


def test_fault_delay_then_abort() -> None:
    fault = {
        "delay": {"fixedDelay": "2s", "percentage": {"value": 100.0}},
        "abort": {"httpStatus": 400, "percentage": {"value": 25.0}},
    }
    cluster = _objects([{"fault": fault, "route": [_to("a")]}])
    outcome = evaluate_mesh(cluster, Request(host="reviews"), caller_namespace="shop")
    assert outcome.shares() == pytest.approx({"reviews/v1": 0.75, "400 fault filter abort": 0.25})
    assert {branch.elapsed_ms for branch in outcome.branches} == {2000.0}


def test_route_timeout_includes_retries() -> None:
    retries = {"attempts": 3, "perTryTimeout": "400ms", "retryOn": "5xx"}
    cluster = _objects([{"timeout": "1s", "retries": retries, "route": [_to("a")]}])
    outcome = evaluate_mesh(
        cluster, Request("/sleep/2000", host="reviews"), caller_namespace="shop"
    )
    (branch,) = outcome.branches
    assert (branch.status, branch.body, branch.elapsed_ms, branch.attempts) == (
        504,
        "upstream request timeout",
        1000.0,
        3,
    )


def test_retries_and_the_istio_default() -> None:
    upstreams = Upstreams()
    retried = _objects([{"retries": {"attempts": 2, "retryOn": "5xx"}, "route": [_to("a")]}])
    outcome = evaluate_mesh(
        retried, Request("/flaky/2", host="reviews"), caller_namespace="shop", upstreams=upstreams
    )
    assert outcome.shares() == {"reviews/v1": 1.0}
    # Without `retries` Istio's default retries connection failures only: a 503 comes back.
    default = _objects([{"route": [_to("a")]}])
    outcome = evaluate_mesh(default, Request("/flaky/1", host="reviews"), caller_namespace="shop")
    assert outcome.shares() == {"503 reviews/v1": 1.0}


def test_gateway_binding() -> None:
    cluster = _objects([{"route": [_to("a")]}], gateway_http=[{"route": [_to("b")]}])
    assert evaluate_gateway(cluster, Request(host="shop.example.com")).shares() == {
        "reviews/v2": 1.0
    }
    assert evaluate_gateway(cluster, Request(host="other.org")).shares() == {"404": 1.0}
    assert _mesh(cluster, Request(host="reviews")) == {"reviews/v1": 1.0}


REFUSED = "503 upstream connect error or disconnect/reset before headers. reset reason: connection failure"


@pytest.mark.parametrize(
    ("retries", "expected"),
    [
        # Istio's default: 2 retries, each on the next pod: the live pod is always reached.
        (None, {"reviews/v2": 1.0}),
        ({"attempts": 1, "retryOn": "5xx"}, {"reviews/v2": 2 / 3, REFUSED: 1 / 3}),
        ({"attempts": 0}, {"reviews/v2": 1 / 3, REFUSED: 2 / 3}),
        # A status code condition does not cover a refused connection.
        (
            {"attempts": 2, "retryOn": "retriable-status-codes"},
            {"reviews/v2": 1 / 3, REFUSED: 2 / 3},
        ),
    ],
)
def test_refused_connections_are_retried_on_the_next_pods(
    retries: dict[str, Any] | None, expected: dict[str, float]
) -> None:
    rule: dict[str, Any] = {"route": [_to("b")]}
    if retries is not None:
        rule["retries"] = retries
    outcome = evaluate_mesh(
        _objects([rule]),
        Request(host="reviews"),
        caller_namespace="shop",
        upstreams=Upstreams(refusing={"reviews/v2": 2}),
    )
    assert outcome.shares() == pytest.approx(expected)


OVERFLOW = "503 upstream connect error or disconnect/reset before headers. reset reason: overflow"


def test_connection_pool_is_per_subset_cluster_across_rules() -> None:
    pool = {
        "connectionPool": {"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}}
    }
    cluster = _objects(
        [
            {"match": [{"uri": {"prefix": "/x"}}], "route": [_to("a")]},
            {"match": [{"uri": {"prefix": "/b"}}], "route": [_to("b")]},
            {"route": [_to("a")]},
        ],
        policy=pool,
    )
    same = [Request(path, host="reviews") for path in ("/x", "/y", "/x")]
    assert evaluate_burst(cluster, same, caller_namespace="shop").shares() == pytest.approx(
        {"reviews/v1": 2 / 3, OVERFLOW: 1 / 3}
    )
    # Another subset is another cluster, with a pool of its own.
    split = [Request(path, host="reviews") for path in ("/x", "/y", "/b", "/b")]
    assert evaluate_burst(cluster, split, caller_namespace="shop").shares() == pytest.approx(
        {"reviews/v1": 0.5, "reviews/v2": 0.5}
    )


def test_mirror_copies_the_request_unless_aborted() -> None:
    rule = {
        "route": [_to("a")],
        "mirror": {"host": "reviews.shop.svc.cluster.local", "subset": "b"},
        "mirrorPercentage": {"value": 50.0},
        "fault": {"abort": {"httpStatus": 503, "percentage": {"value": 50.0}}},
    }
    request = Request("/p?q=1", "PATCH", {}, "reviews:9080", '{"a": 1}')
    outcome = evaluate_mesh(_objects([rule]), request, caller_namespace="shop")
    ((probability, *copy),) = [
        (c.probability, c.to, c.pods, c.method, c.path, c.host, c.body) for c in outcome.copies
    ]
    assert probability == pytest.approx(0.25)
    assert copy == ["reviews/v2", 3, "PATCH", "/p?q=1", "reviews-shadow", '{"a": 1}']
    assert (
        evaluate_mesh(_objects([{"route": [_to("a")]}]), request, caller_namespace="shop").copies
        == ()
    )


def test_header_changes_remove_then_set_then_add_with_literal_percent() -> None:
    lines = (("X-Debug", "1"), ("x-tag", "cart"), ("x-canary", "no"), ("x-canary", "maybe"))
    changes = {"remove": ["x-debug"], "set": {"x-canary": "100%%"}, "add": {"x-tag": "checkout"}}
    assert change_headers(changes, lines) == (
        ("x-tag", "cart"),
        ("x-canary", "100%"),
        ("x-tag", "checkout"),
    )
    assert change_headers(None, lines)[0] == ("x-debug", "1")


def test_route_headers_go_upstream_and_on_the_apps_answers_only() -> None:
    headers = {"request": {"set": {"x-a": "1"}}, "response": {"add": {"x-b": "2"}}}
    cluster = _objects([{"route": [_to("a")], "headers": headers, "fault": {"abort": _abort(50)}}])
    outcome = evaluate_mesh(cluster, Request(host="reviews"), caller_namespace="shop")
    assert ("x-a", "1") in outcome.forwarded
    by_status = {branch.status: branch for branch in outcome.branches}
    assert by_status[200].upstream and ("x-b", "2") in by_status[200].headers
    assert not by_status[503].upstream and by_status[503].headers == ()


def _abort(percent: float) -> dict[str, Any]:
    return {"httpStatus": 503, "percentage": {"value": percent}}


@pytest.mark.parametrize(
    ("rule", "path", "expected"),
    [
        (
            {"match": [{"uri": {"prefix": "/a/"}}], "rewrite": {"uri": "/b/"}},
            "/a/x?q=1",
            "/b/x?q=1",
        ),
        ({"match": [{"uri": {"exact": "/a"}}], "rewrite": {"uri": "/b"}}, "/a?q=1", "/b?q=1"),
        # A block without `uri` is Istio's prefix "/", and Envoy replaces that.
        ({"rewrite": {"uri": "/v2"}}, "/x", "/v2x"),
        (
            {
                "match": [{"uri": {"prefix": "/x"}}, {"uri": {"prefix": "/a"}}],
                "rewrite": {"uri": "/"},
            },
            "/ab",
            "/b",
        ),
        # regex_rewrite substitutes every match.
        ({"rewrite": {"uriRegexRewrite": {"match": "o", "rewrite": "0"}}}, "/foo", "/f00"),
        ({"rewrite": {"authority": "x"}}, "/same", "/same"),
    ],
)
def test_rewritten_path(rule: dict[str, Any], path: str, expected: str) -> None:
    assert rewritten_path(rule, Request(path)) == expected


@pytest.mark.parametrize(
    ("outlier", "paths", "last"),
    [
        # The second 5xx in a row ejects v1's one pod; Istio turns panic routing off.
        ({"consecutive5xxErrors": 2, "maxEjectionPercent": 100}, ["/status/500"] * 2, "ejected"),
        # A success in between starts the count again.
        (
            {"consecutive5xxErrors": 2, "maxEjectionPercent": 100},
            ["/status/500", "/", "/status/500"],
            "answers",
        ),
        # One pod of one is 100% of the cluster: past 50%, so it stays in.
        ({"consecutive5xxErrors": 1, "maxEjectionPercent": 50}, ["/status/500"] * 3, "answers"),
        # Gateway errors count apart; a 500 breaks their run but not the 5xx one.
        (
            {"consecutive5xxErrors": 5, "consecutiveGatewayErrors": 2, "maxEjectionPercent": 100},
            ["/status/502", "/status/500", "/status/503"],
            "answers",
        ),
        (
            {"consecutive5xxErrors": 5, "consecutiveGatewayErrors": 2, "maxEjectionPercent": 100},
            ["/status/502", "/status/504"],
            "ejected",
        ),
    ],
)
def test_outlier_detection_ejects_on_consecutive_errors(
    outlier: dict[str, Any], paths: list[str], last: str
) -> None:
    cluster = _objects([{"route": [_to("a")]}], policy={"outlierDetection": outlier})
    upstreams = Upstreams()
    for path in paths:
        evaluate_mesh(
            cluster, Request(path, host="reviews"), caller_namespace="shop", upstreams=upstreams
        )
    shares = evaluate_mesh(
        cluster, Request("/", host="reviews"), caller_namespace="shop", upstreams=upstreams
    ).shares()
    expected = {"503 no healthy upstream": 1.0} if last == "ejected" else {"reviews/v1": 1.0}
    assert shares == expected


@pytest.mark.parametrize(
    ("redirect", "request_", "location"),
    [
        ({"uri": "/b"}, Request("/a?x=1", host="reviews"), "http://reviews/b?x=1"),
        ({"authority": "n.example", "scheme": "https"}, Request("/a"), "https://n.example/a"),
        ({"port": 8443}, Request("/a", host="reviews:9080"), "http://reviews:8443/a"),
    ],
)
def test_redirect_location(redirect: dict[str, Any], request_: Request, location: str) -> None:
    assert redirect_location(redirect, request_) == location


def test_redirects_and_direct_responses_never_reach_a_pod() -> None:
    cluster = _objects(
        [
            {"match": [{"uri": {"exact": "/r"}}], "redirect": {"uri": "/x", "redirectCode": 308}},
            {"directResponse": {"status": 503, "body": {"string": "down"}}},
        ]
    )
    moved = evaluate_mesh(cluster, Request("/r", host="reviews"), caller_namespace="shop")
    assert [(b.status, b.body, b.attempts, b.headers) for b in moved.branches] == [
        (308, "", 0, (("location", "http://reviews/x"),))
    ]
    assert _mesh(cluster, Request("/", host="reviews")) == {"503 down": 1.0}


@pytest.mark.parametrize(
    ("match", "request_", "expected"),
    [
        ({"headers": {"x": {}}}, Request(headers={"x": ""}), True),
        ({"headers": {"x": {}}}, Request(), False),
        ({"withoutHeaders": {"x": {}}}, Request(), True),
        ({"withoutHeaders": {"x": {}}}, Request(headers={"x": "1"}), False),
        ({"withoutHeaders": {"x": {"exact": "a"}}}, Request(), True),
        ({"withoutHeaders": {"x": {"exact": "a"}}}, Request(headers={"x": "a"}), False),
        ({"withoutHeaders": {"x": {"exact": "a"}}}, Request(headers={"x": "b"}), True),
        # A missing header reads as "", which a prefix "" or regex ".*" matches.
        ({"withoutHeaders": {"x": {"regex": ".*"}}}, Request(), False),
        ({"withoutHeaders": {"x": {"prefix": ""}}}, Request(), False),
        ({"uri": {"prefix": "/API"}, "ignoreUriCase": True}, Request("/api/x"), True),
        ({"uri": {"exact": "/a"}, "ignoreUriCase": True}, Request("/A?q=B"), True),
        ({"uri": {"exact": "/a"}}, Request("/A"), False),
    ],
)
def test_presence_negative_and_case_matches(
    match: dict[str, Any], request_: Request, expected: bool
) -> None:
    assert rule_matches({"match": [match]}, request_) is expected


# -- AuthorizationPolicy ---------------------------------------------------------------------

DENIED = "403 RBAC: access denied"
WEB = "cluster.local/ns/shop/sa/web"


def _authz(*policies: dict[str, Any], mtls: str | None = None) -> Cluster:
    extra: list[dict[str, Any]] = [
        {
            "kind": "AuthorizationPolicy",
            "metadata": {"name": f"p{index}", "namespace": policy.pop("namespace", "shop")},
            "spec": policy,
        }
        for index, policy in enumerate(policies)
    ]
    extra.append(
        {
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "template": {
                    "metadata": {"labels": {"app": "web", "version": "v1"}},
                    "spec": {"serviceAccountName": "web"},
                }
            },
        }
    )
    if mtls is not None:
        extra.append(
            {
                "kind": "PeerAuthentication",
                "metadata": {"name": "default", "namespace": "shop"},
                "spec": {"mtls": {"mode": mtls}},
            }
        )
    return _objects([{"route": [_to()]}], gateway_http=[{"route": [_to("a")]}], extra=extra)


@pytest.mark.parametrize(
    ("rule", "request_", "expected"),
    [
        ({}, Request(), True),
        ({"from": [{"source": {"principals": [WEB]}}]}, Request(principal=WEB), True),
        ({"from": [{"source": {"principals": [WEB]}}]}, Request(principal=f"{WEB}2"), False),
        # A principal needs mTLS: a plaintext caller matches none, not even `*`.
        ({"from": [{"source": {"principals": ["*"]}}]}, Request(), False),
        ({"from": [{"source": {"principals": ["*/sa/web"]}}]}, Request(principal=WEB), True),
        ({"from": [{"source": {"principals": ["cluster.local/ns/shop/*"]}}]}, Request(), False),
        ({"to": [{"operation": {"methods": ["GET"]}}]}, Request(method="POST"), False),
        ({"to": [{"operation": {"paths": ["/api/*"]}}]}, Request("/api/users?x=1"), True),
        ({"to": [{"operation": {"paths": ["/api/*"]}}]}, Request("/api"), False),
        # Paths are compared without the query string.
        ({"to": [{"operation": {"paths": ["/public"]}}]}, Request("/public?x=1"), True),
        ({"to": [{"operation": {"paths": ["/public"]}}]}, Request("/public/more"), False),
        ({"to": [{"operation": {"paths": ["*.png"]}}]}, Request("/a/b.png"), True),
        # from AND to; entries of one list OR.
        (
            {
                "from": [{"source": {"principals": [WEB]}}],
                "to": [{"operation": {"methods": ["GET"]}}, {"operation": {"paths": ["/x"]}}],
            },
            Request("/x", method="POST", principal=WEB),
            True,
        ),
        (
            {"from": [{"source": {"principals": [WEB]}}], "to": [{"operation": {"paths": ["/x"]}}]},
            Request("/x"),
            False,
        ),
    ],
)
def test_authorization_rule_semantics(
    rule: dict[str, Any], request_: Request, expected: bool
) -> None:
    assert authorization_rule_matches(rule, request_) is expected


def test_fields_the_evaluator_does_not_model_are_refused_not_ignored() -> None:
    with pytest.raises(NotImplementedError, match="notPrincipals"):
        authorization_rule_matches({"from": [{"source": {"notPrincipals": [WEB]}}]}, Request())
    with pytest.raises(NotImplementedError, match="when"):
        authorization_rule_matches({"when": [{"key": "request.auth.claims[iss]"}]}, Request())
    cluster = _authz({"action": "DENY", "rules": [{}]})
    with pytest.raises(NotImplementedError, match="DENY"):
        _mesh(cluster, Request(host="reviews"))


def test_no_allow_policy_for_the_workload_lets_everyone_in() -> None:
    elsewhere = {"namespace": "other", "action": "ALLOW"}
    other_app = {"selector": {"matchLabels": {"app": "ratings"}}}
    cluster = _authz(elsewhere, other_app)
    assert _mesh(cluster, Request(host="reviews")) == {"reviews/v1": 0.25, "reviews/v2": 0.75}


def test_an_allow_policy_without_rules_lets_nothing_in() -> None:
    # The `allow-nothing` example: no selector, so every workload of the namespace.
    assert _mesh(_authz({"action": "ALLOW"}), Request(host="reviews")) == {DENIED: 1.0}
    assert _mesh(_authz({}), Request(host="reviews")) == {DENIED: 1.0}


def test_any_selecting_allow_policy_may_let_the_request_in() -> None:
    only_v1 = {
        "selector": {"matchLabels": {"app": "reviews", "version": "v1"}},
        "rules": [{"from": [{"source": {"principals": [WEB]}}]}],
    }
    cluster = _authz({"action": "ALLOW"}, only_v1)
    shares = evaluate_mesh(
        cluster, Request(host="reviews", principal=WEB), caller_namespace="shop"
    ).shares()
    assert shares == {"reviews/v1": 0.25, DENIED: 0.75}


def test_a_denied_request_is_answered_by_the_pods_sidecar_and_not_retried() -> None:
    cluster = _objects(
        [{"route": [_to("a")], "retries": {"attempts": 3, "retryOn": "5xx"}}],
        extra=[{"kind": "AuthorizationPolicy", "metadata": {"namespace": "shop"}, "spec": {}}],
    )
    outcome = evaluate_mesh(cluster, Request(host="reviews"), caller_namespace="shop")
    assert [(b.status, b.body, b.attempts, b.upstream) for b in outcome.branches] == [
        (403, "RBAC: access denied", 1, False)
    ]


def test_the_gateway_calls_with_its_own_principal() -> None:
    gateway_only = {"rules": [{"from": [{"source": {"principals": [GATEWAY_PRINCIPAL]}}]}]}
    cluster = _authz(gateway_only)
    assert evaluate_gateway(cluster, Request(host="shop.example.com")).shares() == {
        "reviews/v1": 1.0
    }
    assert _mesh(cluster, Request(host="reviews")) == {DENIED: 1.0}


def test_principals_come_from_the_deployments_service_account() -> None:
    cluster = _authz()
    assert cluster.principal("web", "shop") == WEB
    assert cluster.principal("reviews", "shop") == "cluster.local/ns/shop/sa/default"
    with pytest.raises(ValueError, match="no Deployment"):
        cluster.principal("web", "other")
    # The control plane's trust domain starts every principal, the gateway's too.
    gateway_only = {"rules": [{"from": [{"source": {"principals": [GATEWAY_PRINCIPAL]}}]}]}
    elsewhere = Cluster(_authz(gateway_only).manifests, "prod.example.com")
    assert elsewhere.principal("web", "shop") == "prod.example.com/ns/shop/sa/web"
    assert evaluate_gateway(elsewhere, Request(host="shop.example.com")).shares() == {DENIED: 1.0}


def test_a_plaintext_client_reaches_the_pods_without_routes_or_identity() -> None:
    public = {"rules": [{"to": [{"operation": {"paths": ["/public/*"]}}]}]}
    cluster = _authz(public, mtls="PERMISSIVE")
    direct = evaluate_direct(cluster, Request("/public/a", host="reviews"), caller_namespace="shop")
    # Every pod of the Service, whatever the VirtualService (which sends all to v1) says.
    assert direct.shares() == {"reviews/v1": 0.25, "reviews/v2": 0.75}
    denied = evaluate_direct(cluster, Request("/api", host="reviews"), caller_namespace="shop")
    assert denied.shares() == {DENIED: 1.0}
    with pytest.raises(NotImplementedError, match="STRICT"):
        evaluate_direct(_authz(mtls="STRICT"), Request(host="reviews"), caller_namespace="shop")
