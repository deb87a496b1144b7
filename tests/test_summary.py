"""The summary `sailplan check` prints names what a reviewer must see: images, replicas, policies."""

from __future__ import annotations

import sailplan
from sailplan.summary import summarize

MESH = """
apiVersion: sailplan/v1
kind: Mesh
name: shop
services:
  reviews:
    port: 9080
    versions: {v1: {image: r:1}, canary: {image: r:2, replicas: 3}}
    policy:
      loadBalancer: least-request
      connectionPool: {maxConnections: 100, maxPendingRequests: 10}
      outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}
    routes: [{name: canary, split: {v1: 90, canary: 10}, timeout: 2s}]
"""


def test_images_replicas_and_policies_are_in_the_summary() -> None:
    assert summarize(sailplan.load_mesh_text(MESH), "mesh.yaml").splitlines() == [
        "mesh.yaml: mesh 'shop' is valid",
        "  namespace shop, data plane builtin, mTLS permissive",
        "  1 service, 2 versions, 1 route, no ingress",
        "  mTLS permissive: sidecars call each other over mTLS and also accept plaintext",
        "",
        "  reviews  :9080/http",
        "    v1      r:1  1 replica",
        "    canary  r:2  3 replicas",
        "    policy: load balancer least-request, at most 100 connections, 10 pending, "
        "eject after 5 consecutive 5xx for 30s",
        "    canary: any request: split v1 90% / canary 10%, timeout 2s",
    ]


def test_an_image_bump_changes_the_summary() -> None:
    before = summarize(sailplan.load_mesh_text(MESH), "m")
    after = summarize(sailplan.load_mesh_text(MESH.replace("r:2", "r:3")), "m")
    assert before != after


def test_every_connection_pool_limit_is_in_the_summary() -> None:
    pool = (
        "connectionPool: {maxRequestsPerConnection: 1, http2MaxRequests: 50, connectTimeout: 0.25s}"
    )
    text = MESH.replace("connectionPool: {maxConnections: 100, maxPendingRequests: 10}", pool)
    assert text != MESH
    lines = summarize(sailplan.load_mesh_text(text), "m").splitlines()
    assert (
        "    policy: load balancer least-request, 1 request per connection, at most 50 requests "
        "in flight, connect timeout 250ms, eject after 5 consecutive 5xx for 30s"
    ) in lines
