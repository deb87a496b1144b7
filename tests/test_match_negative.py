"""Presence, negative and case-insensitive matches (issue 15, item 4): validation, the istio rule,
check's unreachable-rule analysis, and behaviour on real HAProxy."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from conformance.istio_reference import Cluster, Request, evaluate_mesh
from route_support import load, problems, sidecar, spec

import sailplan
from sailplan.render.istio import ingress_virtual_service, virtual_service
from sailplan.render.manifests import render_manifests

R0 = "services.service1.routes[0]"


def _answer(status: int, match: dict[str, Any]) -> dict[str, Any]:
    """A route that answers `status` itself, so a reply names the route it took."""
    return {"match": [match], "respond": {"status": status}}


ROUTES = [
    _answer(201, {"headers": {"x-canary": {}}}),
    _answer(202, {"path": "/ok", "withoutHeaders": {"x-debug": {}}}),
    _answer(203, {"path": "/user", "withoutHeaders": {"end-user": "jason"}}),
    _answer(205, {"path": "/any", "withoutHeaders": {"x-v": {"regex": ".*"}}}),
    _answer(206, {"path": {"prefix": "/API/"}, "ignoreUriCase": True}),
    _answer(207, {"path": "/Exact", "ignoreUriCase": True}),
    {"respond": {"status": 299}},
]


def test_istio_rule_carries_presence_negatives_and_case() -> None:
    rules = virtual_service(load(ROUTES), "service1")["spec"]["http"]
    assert [rule.get("match") for rule in rules[:6]] == [
        [{"headers": {"x-canary": {}}}],
        [{"uri": {"exact": "/ok"}, "withoutHeaders": {"x-debug": {}}}],
        [{"uri": {"exact": "/user"}, "withoutHeaders": {"end-user": {"exact": "jason"}}}],
        [{"uri": {"exact": "/any"}, "withoutHeaders": {"x-v": {"regex": ".*"}}}],
        [{"uri": {"prefix": "/API/"}, "ignoreUriCase": True}],
        [{"uri": {"exact": "/Exact"}, "ignoreUriCase": True}],
    ]


CASES = [
    ("/", {"x-canary": ""}, 201),
    ("/", {"x-canary": "no"}, 201),
    ("/", {}, 299),
    ("/ok", {}, 202),
    ("/ok", {"x-debug": "1"}, 299),
    ("/user", {}, 203),
    ("/user", {"end-user": "bob"}, 203),
    ("/user", {"end-user": "jason"}, 299),
    # Istio reads a missing header as empty there, and `.*` matches "".
    ("/any", {}, 299),
    ("/any", {"x-v": "1"}, 299),
    ("/api/users", {}, 206),
    ("/Api/x?Q=1", {}, 206),
    ("/apix", {}, 299),
    ("/exact", {}, 207),
    ("/EXACT", {}, 207),
    ("/exactly", {}, 299),
]


def test_the_istio_reference_reads_them_alike() -> None:
    """The expectations below are Istio's: the conformance suite's evaluator agrees."""
    cluster = Cluster(render_manifests(load(ROUTES), "istio"))
    for path, headers, status in CASES:
        request = Request(path, headers=headers, host="service1")
        outcome = evaluate_mesh(cluster, request, caller_namespace="routes")
        assert [branch.status for branch in outcome.branches] == [status], (path, headers)


@pytest.mark.haproxy
@pytest.mark.timeout(60)
def test_haproxy_routes_as_istio_reads_them() -> None:
    with sidecar(load(ROUTES)) as proxy:
        for path, headers, status in CASES:
            assert proxy.get(path, headers=headers).status == status, (path, headers)


@pytest.mark.haproxy
@pytest.mark.timeout(60)
def test_a_prefix_rewrite_replaces_the_prefix_in_the_case_it_came() -> None:
    routes = [
        {
            "match": {"path": {"prefix": "/api/"}, "ignoreUriCase": True},
            "to": "v2",
            "rewrite": {"uri": "/v2/"},
        },
        {"to": "v1"},
    ]
    with sidecar(load(routes)) as proxy:
        assert proxy.get("/API/Users").body == "v2"
        assert proxy.last("v2")[1] == "/v2/Users"


def test_a_negative_condition_does_not_hide_a_later_route() -> None:
    """`/a without x-debug` does not take every `/a` request: the later route stays."""
    load(
        [
            _answer(201, {"path": "/a", "withoutHeaders": {"x-debug": {}}}),
            _answer(202, {"path": "/a"}),
        ]
    )
    assert problems(
        [
            _answer(201, {"path": {"prefix": "/"}, "headers": {"x": {}}}),
            _answer(202, {"path": "/a", "headers": {"x": "1"}}),
        ]
    ) == [
        "services.service1.routes[1].match: routes[0] before this route already takes every "
        "request it matches, so it can never match; reorder the routes or narrow the earlier one"
    ]


def test_the_gateway_folds_negatives_and_case() -> None:
    mesh = spec(
        [
            {
                "match": {
                    "path": {"prefix": "/API/v1"},
                    "ignoreUriCase": True,
                    "withoutHeaders": {"x-debug": {}},
                },
                "to": "v2",
            },
            {"to": "v1"},
        ]
    )
    mesh["ingress"] = {
        "port": 80,
        "routes": [
            {
                "match": {
                    "path": {"prefix": "/api"},
                    "ignoreUriCase": True,
                    "withoutHeaders": {"x-test": {}},
                },
                "service": "service1",
            }
        ],
    }
    rules = ingress_virtual_service(sailplan.load_mesh_text(yaml.safe_dump(mesh)))["spec"]["http"]
    assert rules[0]["match"] == [
        {
            "uri": {"prefix": "/api/v1"},
            "withoutHeaders": {"x-debug": {}, "x-test": {}},
            "ignoreUriCase": True,
        }
    ]


def test_the_istio_gateway_refuses_what_one_rule_cannot_say() -> None:
    mesh = spec([{"match": {"path": {"prefix": "/a"}}, "to": "v2"}, {"to": "v1"}])
    mesh["dataPlane"] = "istio"
    mesh["ingress"] = {
        "port": 80,
        "routes": [
            {"match": {"path": {"prefix": "/"}, "ignoreUriCase": True}, "service": "service1"}
        ],
    }
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh_text(yaml.safe_dump(mesh))
    assert [str(p) for p in error.value.problems] == [
        f"{R0}.match: the istio gateway cannot apply this rule to requests of ingress.routes[0]: "
        "an Istio rule matches the path with one condition, and one side ignores the path's "
        "letter case and the other does not"
    ]


@pytest.mark.parametrize(
    ("match", "problem"),
    [
        (
            {"path": {"regex": "/a.*"}, "ignoreUriCase": True},
            "match[0]: ignoreUriCase applies to an exact or prefix path only: write the regex "
            "case-insensitively, such as (?i)/api/.*",
        ),
        (
            {"headers": {"x": "1"}, "ignoreUriCase": True},
            "match[0]: ignoreUriCase applies to an exact or prefix path only: give a path, or "
            "remove ignoreUriCase",
        ),
        (
            {"withoutHeaders": {"x": {"exact": "a", "prefix": "b"}}},
            "match[0].withoutHeaders.x: give at most one of exact, prefix or regex (found: exact, "
            "prefix); {} means the header is present",
        ),
        (
            {"path": {}},
            "match[0].path: give exactly one of exact, prefix or regex (found: none)",
        ),
        (
            {"withoutHeaders": {"X-A": {}}},
            "match[0].withoutHeaders.X-A: 'X-A' is not a valid header name: use lowercase "
            "letters, digits and '-'",
        ),
    ],
)
def test_bad_matches_are_refused(match: dict[str, Any], problem: str) -> None:
    assert problems([{"match": [match], "to": "v1"}, {"to": "v2"}]) == [f"{R0}.{problem}"]
