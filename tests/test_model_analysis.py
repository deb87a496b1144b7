"""istioctl-analyze-style checks: unreachable rules, routes to versions without pods, and ingress
rules the istio gateway cannot express (model/analysis.py)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

import sailplan


def _spec(routes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sailplan/v1",
        "kind": "Mesh",
        "name": "shop",
        "services": {
            "reviews": {
                "port": 9080,
                "versions": {"v1": {"image": "r:1"}, "v2": {"image": "r:2"}},
                "routes": routes,
            }
        },
        **extra,
    }


def _problems(spec: dict[str, Any]) -> list[str]:
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh_text(yaml.safe_dump(spec))
    return [f"{p.path}: {p.message}" for p in error.value.problems]


def test_a_rule_an_earlier_prefix_covers_is_unreachable() -> None:
    routes = [
        {"match": {"path": {"prefix": "/api"}}, "to": "v1"},
        {
            "match": [{"path": {"prefix": "/api/users"}, "headers": {"end-user": "jason"}}],
            "to": "v2",
        },
        {"to": "v1"},
    ]
    assert _problems(_spec(routes)) == [
        "services.reviews.routes[1].match: routes[0] before this route already takes every "
        "request it matches, so it can never match; reorder the routes or narrow the earlier one"
    ]


def test_a_repeated_alternative_is_reported() -> None:
    routes = [{"match": [{"path": "/a"}, {"path": "/a"}], "to": "v2"}, {"to": "v1"}]
    assert _problems(_spec(routes)) == [
        "services.reviews.routes[0].match[1]: this alternative repeats match[0]; remove one"
    ]


def test_rules_that_only_overlap_are_fine() -> None:
    routes = [
        {"match": {"path": {"prefix": "/api/users"}}, "to": "v2"},
        {"match": {"path": {"prefix": "/api"}}, "to": "v1"},
        {"match": {"path": {"regex": "/api/.*"}, "method": "POST"}, "to": "v2"},
        {"to": "v1"},
    ]
    assert sailplan.load_mesh_text(yaml.safe_dump(_spec(routes)))


def test_routes_to_a_version_without_pods_are_refused() -> None:
    spec = _spec([{"split": {"v1": 90, "v2": 10}}])
    spec["services"]["reviews"]["versions"]["v2"]["replicas"] = 0
    assert _problems(spec) == [
        "services.reviews.routes[0]: sends 10% of its requests to 'v2', which has replicas: 0, "
        "so they would fail with 503; give the version replicas or route elsewhere"
    ]


def test_a_version_without_pods_that_no_route_names_is_fine() -> None:
    spec = _spec([{"to": "v1"}])
    spec["services"]["reviews"]["versions"]["v2"]["replicas"] = 0
    assert sailplan.load_mesh_text(yaml.safe_dump(spec))


def test_an_ingress_rule_istio_cannot_express_is_refused_on_istio_only() -> None:
    routes = [{"match": {"path": {"regex": "/ap[i]/v1/.*"}}, "to": "v2"}, {"to": "v1"}]
    ingress = {"routes": [{"match": {"path": {"prefix": "/api"}}, "service": "reviews"}]}
    spec = _spec(routes, ingress=ingress)
    assert sailplan.load_mesh_text(yaml.safe_dump(spec)).data_plane == "builtin"
    assert _problems({**spec, "dataPlane": "istio"}) == [
        "services.reviews.routes[0].match: the istio gateway cannot apply this rule to requests "
        "of ingress.routes[0]: an Istio rule matches the path with one condition, and the regex "
        "'/ap[i]/v1/.*' does not provably start with the prefix '/api'; write the regex so "
        "that it starts with '/api'"
    ]


def test_a_regex_that_starts_with_the_ingress_prefix_is_expressed() -> None:
    routes = [{"match": {"path": {"regex": "/api/v1/.*"}}, "to": "v2"}, {"to": "v1"}]
    ingress = {"routes": [{"match": {"path": {"prefix": "/api"}}, "service": "reviews"}]}
    mesh = sailplan.load_mesh_text(
        yaml.safe_dump(_spec(routes, ingress=ingress, dataPlane="istio"))
    )
    assert mesh.data_plane == "istio"
