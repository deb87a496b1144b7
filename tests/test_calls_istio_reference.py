"""The Istio evaluator's Sidecar semantics (tests/conformance/istio_reference.py) on hand-written
objects: which egress hosts a caller's proxy knows, which Sidecar configures it, and what a host
it does not know gets. A wrong evaluator would void the `calls` conformance scenarios."""

from __future__ import annotations

from typing import Any

import pytest
from conformance.istio_reference import (
    Cluster,
    Request,
    _egress_host_matches,
    evaluate_mesh,
    scoped_out,
)

REVIEWS = "reviews.shop.svc.cluster.local"
CALLER = "cluster.local/ns/shop/sa/productpage"


def _deployment(app: str, version: str = "v1") -> dict[str, Any]:
    labels = {"app": app, "version": version}
    return {
        "kind": "Deployment",
        "metadata": {"name": f"{app}-{version}", "namespace": "shop"},
        "spec": {
            "replicas": 1,
            "template": {"metadata": {"labels": labels}, "spec": {"serviceAccountName": app}},
        },
    }


def _sidecar(hosts: list[str], selector: str | None = "productpage", **spec: Any) -> Any:
    body: dict[str, Any] = {"egress": [{"hosts": hosts}], **spec}
    if selector is not None:
        body["workloadSelector"] = {"labels": {"app": selector}}
    name = selector or "default"
    return {"kind": "Sidecar", "metadata": {"name": name, "namespace": "shop"}, "spec": body}


def _cluster(*sidecars: dict[str, Any]) -> Cluster:
    objects: list[dict[str, Any]] = [
        {
            "kind": "Service",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"selector": {"app": name}},
        }
        for name in ("reviews", "productpage", "ratings")
    ]
    objects += [_deployment("reviews"), _deployment("productpage"), _deployment("ratings")]
    objects.append(
        {
            "kind": "VirtualService",
            "metadata": {"name": "reviews", "namespace": "shop"},
            "spec": {
                "hosts": [REVIEWS],
                "http": [
                    {
                        "fault": {"abort": {"httpStatus": 503, "percentage": {"value": 100}}},
                        "route": [{"destination": {"host": REVIEWS}}],
                    }
                ],
            },
        }
    )
    return Cluster([*objects, *sidecars])


@pytest.mark.parametrize(
    ("entry", "matches"),
    [
        ("./reviews.shop.svc.cluster.local", True),
        ("./ratings.shop.svc.cluster.local", False),
        ("shop/reviews.shop.svc.cluster.local", True),
        ("other/reviews.shop.svc.cluster.local", False),
        ("*/reviews.shop.svc.cluster.local", True),
        ("./*", True),
        ("*/*.svc.cluster.local", True),
        ("./*.example.com", False),
        ("~/*", False),
        ("istio-system/*", False),
    ],
)
def test_an_egress_host_entry_is_a_namespace_and_a_dns_name(entry: str, matches: bool) -> None:
    assert _egress_host_matches(entry, "shop", REVIEWS) is matches


def test_without_a_sidecar_the_service_s_routes_apply() -> None:
    outcome = evaluate_mesh(
        _cluster(), Request(host="reviews", principal=CALLER), caller_namespace="shop"
    )
    assert outcome.shares() == {"503 fault filter abort": 1.0}


def test_a_host_the_callers_sidecar_lists_gets_its_routes() -> None:
    cluster = _cluster(_sidecar([f"./{REVIEWS}"]))
    outcome = evaluate_mesh(
        cluster, Request(host="reviews", principal=CALLER), caller_namespace="shop"
    )
    assert outcome.shares() == {"503 fault filter abort": 1.0}


def test_a_host_the_callers_sidecar_leaves_out_passes_through_without_routes() -> None:
    cluster = _cluster(_sidecar(["./ratings.shop.svc.cluster.local", "istio-system/*"]))
    outcome = evaluate_mesh(
        cluster, Request(host="reviews", principal=CALLER), caller_namespace="shop"
    )
    assert outcome.shares() == {"reviews/v1": 1.0}
    # Another workload's Sidecar does not scope this caller.
    other = _cluster(_sidecar(["./ratings.shop.svc.cluster.local"], selector="ratings"))
    assert scoped_out(other, Request(host="reviews", principal=CALLER), REVIEWS) is None


def test_a_selecting_sidecar_takes_precedence_over_the_namespaces_default() -> None:
    default = _sidecar(["./ratings.shop.svc.cluster.local"], selector=None)
    cluster = _cluster(default, _sidecar([f"./{REVIEWS}"]))
    assert scoped_out(cluster, Request(host="reviews", principal=CALLER), REVIEWS) is None
    alone = _cluster(default)
    assert scoped_out(alone, Request(host="reviews", principal=CALLER), REVIEWS) == default


def test_registry_only_is_not_modelled() -> None:
    sidecar = _sidecar(["./ratings.shop.svc.cluster.local"])
    sidecar["spec"]["outboundTrafficPolicy"] = {"mode": "REGISTRY_ONLY"}
    with pytest.raises(NotImplementedError, match="REGISTRY_ONLY"):
        evaluate_mesh(
            _cluster(sidecar), Request(host="reviews", principal=CALLER), caller_namespace="shop"
        )
