"""`sailplan diff`: each kind of mesh change in the spec's words, the Kubernetes objects each plane
changes (and whether pods restart), the formats, the exit codes, and `-` and `git:` sources."""

# The expected output names a route `service1 <angle quote> canary`, on purpose.
# ruff: noqa: RUF001

from __future__ import annotations

import copy
import io
import itertools
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import DEMO_MESH, REPO

from sailplan import Mesh
from sailplan.cli import main
from sailplan.model import LoadBalancer
from sailplan.review.diff import mesh_changes
from sailplan.review.objects import object_changes

Data = dict[str, Any]


def _base() -> Data:
    """The demo, plus two matched routes before the canary, a timeout and a load balancer."""
    data: Data = yaml.safe_load(DEMO_MESH.read_text())
    service1 = data["services"]["service1"]
    service1["routes"] = [
        {"name": "testers", "match": {"headers": {"end-user": "jason"}}, "to": "v2"},
        {"name": "mobile", "match": {"path": {"prefix": "/m/"}}, "to": "v1"},
        {"name": "canary", "split": {"v1": 80, "v2": 20}, "timeout": "1s"},
    ]
    service1["policy"] = {"loadBalancer": "round-robin"}
    return data


def _mesh(data: Data) -> Mesh:
    return Mesh.parse(data)


def _lines(change: Callable[[Data], None], base: Data | None = None) -> list[str]:
    old = base or _base()
    new = copy.deepcopy(old)
    change(new)
    return [c.line for c in mesh_changes(_mesh(old), _mesh(new))]


def _routes(data: Data) -> list[Data]:
    routes: list[Data] = data["services"]["service1"]["routes"]
    return routes


def _canary(data: Data) -> Data:
    return _routes(data)[2]


def _add_testers_to_the_demo(data: Data) -> None:
    _routes(data).insert(
        0, {"name": "testers", "match": {"headers": {"end-user": "jason"}}, "to": "v2"}
    )


def _with_headers(data: Data) -> None:
    _canary(data)["headers"] = {
        "request": {"set": {"x-canary": "true"}, "remove": ["x-debug"]},
        "response": {"add": {"x-served-by": "canary"}},
    }


def _with_answers(data: Data) -> None:
    for route in _routes(data)[:2]:
        del route["to"]
    _routes(data)[0]["respond"] = {"status": 503, "body": "down"}
    _routes(data)[1]["redirect"] = {"uri": "/v2/login", "code": 302}


def _with_mirrors(data: Data) -> None:
    data["services"]["service1"]["versions"]["v4"] = {"image": "registry/users:4"}
    data["services"]["service1"]["versions"]["v3"] = {"image": "registry/users:3"}
    _routes(data)[1]["mirrors"] = [{"to": "v4", "percent": 1}, {"to": "v2", "percent": 10}]


def _with_cors(data: Data) -> None:
    origins = [{"exact": "https://shop.example.com"}, {"regex": "https://.*[.]example[.]org"}]
    _canary(data)["cors"] = {"allowOrigins": origins, "maxAge": "1h"}


def _with_calls(data: Data) -> None:
    data["services"]["service2"]["calls"] = ["service2"]


def _with_allow(data: Data) -> None:
    data["services"]["service1"]["allow"] = [
        {"from": ["service2"], "methods": ["GET"], "paths": [{"prefix": "/api"}]}
    ]


def _with_https_port(data: Data) -> None:
    data["ingress"].update(port=443, hosts=["shop.example.com"])


def _with_tls(data: Data) -> None:
    _with_https_port(data)
    data["ingress"]["tls"] = {"secretName": "shop-tls", "httpsRedirect": True}


Case = (
    tuple[str, Callable[[Data], None], list[str]]
    | tuple[str, Callable[[Data], None], list[str], Callable[[Data], None]]
)


CASES: list[Case] = [
    (
        "route removed",
        lambda d: _routes(d).pop(0),
        ["service1: route testers removed (was end-user: jason → v2)"],
    ),
    (
        "routes reordered",
        lambda d: _routes(d).insert(0, _routes(d).pop(1)),
        [
            "service1: routes reordered: testers, mobile, canary → mobile, testers, canary "
            "(the first matching route decides)"
        ],
    ),
    (
        "weights",
        lambda d: _canary(d).update(split={"v1": 70, "v2": 30}),
        ["service1 › canary: v1 80% → 70%, v2 20% → 30%"],
    ),
    (
        "to another version",
        lambda d: _routes(d)[1].update(to="v2"),
        ["service1 › mobile: to v1 → v2"],
    ),
    (
        "split to one version",
        lambda d: (_canary(d).pop("split"), _canary(d).update(to="v1")),
        ["service1 › canary: v1 80% → 100%, v2 20% → 0%"],
    ),
    (
        "match",
        lambda d: _routes(d)[0].update(match={"headers": {"end-user": {"regex": "ja.*"}}}),
        ["service1 › testers: match end-user: jason → end-user: ~ja.*"],
    ),
    (
        "match that reads the same is said by its keys",
        lambda d: _routes(d)[1].update(match={"path": {"exact": "/m/*"}}),
        ["service1 › mobile: match path prefix /m/ → path exact /m/*"],
    ),
    (
        "fault added",
        lambda d: _canary(d).update(fault={"abort": {"status": 503, "percent": 10}}),
        ["service1 › canary: fault none → abort 503 at 10%"],
    ),
    (
        "timeout",
        lambda d: _canary(d).update(timeout="2s"),
        ["service1 › canary: timeout 1s → 2s"],
    ),
    (
        "timeout removed",
        lambda d: _canary(d).pop("timeout"),
        ["service1 › canary: timeout 1s → none"],
    ),
    (
        "retries",
        lambda d: _canary(d).update(retries={"attempts": 3, "perTryTimeout": "500ms"}),
        ["service1 › canary: retries none → 3 on 5xx, connect-failure, 500ms per try"],
    ),
    (
        "mirror",
        lambda d: _routes(d)[1].update(mirror={"to": "v2", "percent": 10}),
        ["service1 › mobile: mirrors 10% of requests to v2"],
    ),
    (
        "headers with another change of the route",
        lambda d: _canary(d).update(
            timeout="2s",
            headers={
                "request": {"set": {"x-canary": "true"}, "remove": ["x-debug"]},
                "response": {"add": {"x-served-by": "canary"}},
            },
        ),
        [
            "service1 › canary: timeout 1s → 2s",
            "service1 › canary: sets x-canary: true on requests",
            "service1 › canary: removes x-debug from requests",
            "service1 › canary: adds x-served-by: canary to answers",
        ],
    ),
    (
        "headers changed and dropped",
        lambda d: _canary(d).update(headers={"request": {"set": {"x-canary": "yes"}}}),
        [
            "service1 › canary: sets x-canary: yes on requests (was true)",
            "service1 › canary: no longer removes x-debug from requests",
            "service1 › canary: no longer adds x-served-by to answers (was canary)",
        ],
        _with_headers,
    ),
    (
        "destination headers",
        lambda d: _canary(d).update(
            destinationHeaders={"v2": {"response": {"set": {"x-version": "two"}}}}
        ),
        ["service1 › canary: when sent to v2: sets x-version: two on answers"],
    ),
    (
        "rewrite",
        lambda d: _routes(d)[1].update(
            rewrite={"uriRegexRewrite": {"match": "/m/(.*)", "rewrite": "/\\1"}}
        ),
        ["service1 › mobile: rewrite path by regex none → /m/(.*) as /\\1"],
    ),
    (
        "rewrite path and host",
        lambda d: _routes(d)[1].update(rewrite={"uri": "/", "authority": "users.internal"}),
        [
            "service1 › mobile: rewrite path none → /",
            "service1 › mobile: rewrite Host none → users.internal",
        ],
    ),
    (
        "redirect",
        lambda d: (
            _routes(d)[1].pop("to"),
            _routes(d)[1].update(redirect={"scheme": "https", "uri": "/v2/login", "code": 302}),
        ),
        [
            "service1 › mobile: destination v1 → none (answers with redirect)",
            "service1 › mobile: redirect none → 302 (scheme https, path /v2/login)",
        ],
    ),
    (
        "respond",
        lambda d: (
            _routes(d)[1].pop("to"),
            _routes(d)[1].update(respond={"status": 503, "body": "down for maintenance"}),
        ),
        [
            "service1 › mobile: destination v1 → none (answers with respond)",
            'service1 › mobile: respond none → 503 with body "down for maintenance"',
        ],
    ),
    (
        "mirrors added, removed and percent",
        lambda d: _routes(d)[1].update(
            mirrors=[{"to": "v2", "percent": 20}, {"to": "v3", "percent": 5}]
        ),
        [
            "service1 › mobile: no longer mirrors requests to v4 (was 1%)",
            "service1 › mobile: mirrors 20% of requests to v2 (was 10%)",
            "service1 › mobile: mirrors 5% of requests to v3",
        ],
        _with_mirrors,
    ),
    (
        "cors",
        lambda d: _canary(d).update(
            cors={"allowOrigins": ["https://shop.example.com", {"prefix": "https://dev."}]}
        ),
        [
            "service1 › canary: CORS no longer allows origin ~https://.*[.]example[.]org",
            "service1 › canary: CORS allows origin https://dev.*",
            "service1 › canary: CORS maxAge removed (was 1h)",
        ],
        _with_cors,
    ),
    (
        "hash cookie",
        lambda d: d["services"]["service1"]["policy"].update(
            loadBalancer={"hashCookie": {"name": "session", "ttl": "1h"}}
        ),
        ["service1: load balancer round-robin → sticky by cookie session (ttl 1h)"],
    ),
    (
        "hash header",
        lambda d: d["services"]["service1"].update(policy={"loadBalancer": {"hashHeader": "x-u"}}),
        ["service1: load balancer round-robin → sticky by header x-u"],
    ),
    (
        "calls narrowed",
        lambda d: d["services"]["service2"].update(calls=["service2"]),
        ["service2: no longer gets service1's routes; its calls there pass through"],
    ),
    (
        "calls widened",
        lambda d: d["services"]["service2"].pop("calls"),
        ["service2: now gets service1's routes"],
        _with_calls,
    ),
    (
        "allow added",
        lambda d: d["services"]["service1"].update(
            allow=[{"from": ["service2"], "methods": ["GET"], "paths": [{"prefix": "/api"}]}]
        ),
        [
            "service1: allow added: from service2; GET; paths /api* — every other request is "
            "refused with 403"
        ],
    ),
    (
        "allow changed",
        lambda d: d["services"]["service1"].update(
            allow=[{"from": ["ingress"], "paths": [{"exact": "/health"}]}, {"methods": ["GET"]}]
        ),
        [
            "service1: allow[0] callers added: ingress",
            "service1: allow[0] callers removed: service2",
            "service1: allow[0] methods GET → any",
            "service1: allow[0] paths added: /health",
            "service1: allow[0] paths removed: /api*",
            "service1: allow[1] added: GET",
        ],
        _with_allow,
    ),
    (
        "allow paths that read the same are said by their keys",
        lambda d: d["services"]["service1"]["allow"][0].update(paths=[{"exact": "/api*"}]),
        ["service1: allow[0] paths prefix /api → exact /api*"],
        _with_allow,
    ),
    (
        "allow removed",
        lambda d: d["services"]["service1"].pop("allow"),
        [
            "service1: allow removed (was from service2; GET; paths /api*) — the mesh's "
            "authorization default applies"
        ],
        _with_allow,
    ),
    (
        "ingress tls added",
        lambda d: d["ingress"].update(tls={"secretName": "shop-tls", "httpsRedirect": True}),
        [
            "ingress: HTTPS added: certificate Secret shop-tls, TLSv1.2 or newer; plain HTTP on "
            "port 80 is redirected to HTTPS"
        ],
        _with_https_port,
    ),
    (
        "ingress tls changed",
        lambda d: d["ingress"].update(
            tls={
                "issuer": {"name": "letsencrypt", "kind": "ClusterIssuer"},
                "minVersion": "TLSv1.3",
            }
        ),
        [
            "ingress: HTTPS certificate Secret shop-tls → issued by ClusterIssuer letsencrypt",
            "ingress: HTTPS oldest TLS version TLSv1.2 → TLSv1.3",
            "ingress: plain HTTP on port 80 is no longer redirected to HTTPS",
        ],
        _with_tls,
    ),
    (
        "ingress tls removed",
        lambda d: d["ingress"].pop("tls"),
        ["ingress: HTTPS removed — the ingress serves plain HTTP"],
        _with_tls,
    ),
    (
        "respond status and redirect code",
        lambda d: (
            _routes(d)[0].update(respond={"status": 404}),
            _routes(d)[1].update(redirect={"uri": "/v3/login", "code": 301}),
        ),
        [
            'service1 › testers: respond 503 with body "down" → 404',
            "service1 › mobile: redirect 302 (path /v2/login) → 301 (path /v3/login)",
        ],
        _with_answers,
    ),
    (
        "rewrite changed and dropped",
        lambda d: _routes(d)[1].update(rewrite={"uri": "/v3/"}),
        [
            "service1 › mobile: rewrite path /v2/ → /v3/",
            "service1 › mobile: rewrite Host users.internal → none",
        ],
        lambda d: _routes(d)[1].update(rewrite={"uri": "/v2/", "authority": "users.internal"}),
    ),
    (
        "sticky load balancer removed",
        lambda d: d["services"]["service1"].pop("policy"),
        ["service1: load balancer removed (was sticky by source IP)"],
        lambda d: d["services"]["service1"].update(policy={"loadBalancer": {"hashSourceIp": True}}),
    ),
    (
        "calls swapped",
        lambda d: d["services"]["service2"].update(calls=["service1"]),
        [
            "service2: no longer gets service2's routes; its calls there pass through",
            "service2: now gets service1's routes",
        ],
        _with_calls,
    ),
    (
        "load balancer",
        lambda d: d["services"]["service1"]["policy"].update(loadBalancer="least-request"),
        ["service1: load balancer round-robin → least-request"],
    ),
    (
        "connection pool",
        lambda d: d["services"]["service1"]["policy"].update(
            connectionPool={"maxConnections": 100}
        ),
        [
            "service1: connection pool (circuit breaker) added: "
            "maxConnections 100, maxPendingRequests 0"
        ],
    ),
    (
        "outlier detection",
        lambda d: d["services"]["service1"].update(
            policy={
                "loadBalancer": "round-robin",
                "outlierDetection": {"consecutive5xxErrors": 3, "interval": "5s"},
            }
        ),
        [
            "service1: outlier detection (circuit breaker) added: consecutive5xxErrors 3, "
            "interval 5s, baseEjectionTime 30s, maxEjectionPercent 10"
        ],
    ),
    (
        "image",
        lambda d: d["services"]["service2"]["versions"]["v1"].update(
            image="sailplan/demo-greeter:0.2.0"
        ),
        [
            "service2 v1: image sailplan/demo-greeter:0.1.0 → sailplan/demo-greeter:0.2.0 "
            "— pods restart"
        ],
    ),
    (
        "replicas",
        lambda d: d["services"]["service1"]["versions"]["v2"].update(replicas=3),
        ["service1 v2: replicas 1 → 3"],
    ),
    (
        "env",
        lambda d: d["services"]["service1"]["versions"]["v1"].update(
            env={"SERVICE_VERSION": "one", "DEBUG": 1}
        ),
        ["service1 v1: env SERVICE_VERSION v1 → one; DEBUG added: 1 — pods restart"],
    ),
    (
        "env from a secret",
        lambda d: d["services"]["service1"]["versions"]["v1"]["env"].update(
            DB_PASSWORD={"secretKeyRef": {"name": "db", "key": "password"}}
        ),
        [
            "service1 v1: env DB_PASSWORD.secretKeyRef.name added: db; "
            "DB_PASSWORD.secretKeyRef.key added: password — pods restart"
        ],
    ),
    (
        "env from a ConfigMap",
        lambda d: d["services"]["service1"]["versions"]["v1"].update(
            envFrom=[{"configMapRef": {"name": "users-config"}}]
        ),
        ["service1 v1: envFrom added: configMapRef name users-config — pods restart"],
    ),
    (
        "readiness",
        lambda d: d["services"]["service1"]["versions"]["v1"].update(readiness={"path": "/ready"}),
        ["service1 v1: readiness.path /healthz → /ready — pods restart"],
    ),
    (
        "version added",
        lambda d: d["services"]["service1"]["versions"].update(
            v3={"image": "sailplan/demo-users:0.3.0", "replicas": 2}
        ),
        ["service1 v3: new version: sailplan/demo-users:0.3.0, 2 replicas"],
    ),
    (
        "service added",
        lambda d: d["services"].update(
            service3={"port": 9000, "versions": {"v1": {"image": "registry/s3:1.0"}}}
        ),
        ["service3: new service :9000/http, v1 (registry/s3:1.0, 1 replica)"],
    ),
    (
        "ingress route match",
        lambda d: d["ingress"]["routes"][0].update(match={"path": {"prefix": "/api"}}),
        ["ingress › routes[0]: match /api/users* → /api*"],
    ),
    (
        "ingress route added",
        lambda d: d["ingress"]["routes"].insert(
            0, {"name": "users", "match": {"path": {"prefix": "/users"}}, "service": "service1"}
        ),
        ["ingress: new route users (/users* → service1) before routes[1]"],
    ),
    (
        "ingress hosts and node port",
        lambda d: d["ingress"].update(hosts=["shop.example.com"], nodePort=32001),
        ["ingress: nodePort 32000 → 32001", "ingress: hosts * → shop.example.com"],
    ),
    (
        "ingress removed",
        lambda d: d.pop("ingress"),
        ["ingress: removed — the mesh is no longer reachable from outside the cluster"],
    ),
    (
        "data plane",
        lambda d: d.update(dataPlane="istio"),
        ["mesh: dataPlane builtin → istio"],
    ),
    (
        "namespace",
        lambda d: d.update(namespace="shop"),
        ["mesh: namespace demo → shop"],
    ),
    (
        "mtls",
        lambda d: d.update(mtls="disable"),
        [
            "mesh: mTLS permissive → disable — security change: traffic between services is "
            "plaintext; builtin sidecars take it one by one (config reloads, pod restarts), and "
            "calls between one that has it and one that has not can fail until all have"
        ],
    ),
    (
        "mtls on istio",
        lambda d: d.update(mtls="disable"),
        [
            "mesh: mTLS permissive → disable — security change: traffic between services is "
            "plaintext"
        ],
        lambda d: d.update(dataPlane="istio"),
    ),
    (
        "mtls, still with mTLS",
        lambda d: d.update(mtls="strict"),
        [
            "mesh: mTLS permissive → strict — security change: only mutual-TLS callers are "
            "accepted; plaintext is refused"
        ],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_kind_of_change_is_said_in_the_specs_words(case: Case) -> None:
    """Each case: what changes, in the spec's words; a fourth item prepares the base first."""
    base = _base()
    if len(case) == 4:
        case[3](base)
    assert _lines(case[1], base) == case[2]


def test_a_new_route_says_where_it_goes() -> None:
    demo: Data = yaml.safe_load(DEMO_MESH.read_text())
    assert _lines(_add_testers_to_the_demo, demo) == [
        "service1: new route testers (end-user: jason → v2) before canary"
    ]


def test_an_unnamed_route_whose_match_changes_is_one_change_not_two() -> None:
    def unnamed(data: Data) -> Data:
        del _routes(data)[0]["name"]
        return data

    def change(data: Data) -> None:
        _routes(data)[0]["match"] = {"headers": {"end-user": "mike"}}

    assert _lines(change, unnamed(_base())) == [
        "service1 › routes[0]: match end-user: jason → end-user: mike"
    ]


def test_security_changes_come_first_and_are_categorised() -> None:
    old = _base()
    new = copy.deepcopy(old)
    new["dataPlane"] = old["dataPlane"] = "istio"
    new["mtls"] = "strict"
    new["services"]["service2"]["versions"]["v1"]["replicas"] = 2
    changes = mesh_changes(_mesh(old), _mesh(new))
    assert [(c.category, c.line) for c in changes] == [
        (
            "security",
            "mesh: mTLS permissive → strict — security change: only mutual-TLS callers are "
            "accepted; plaintext is refused",
        ),
        ("workload", "service2 v1: replicas 1 → 2"),
    ]


def test_the_same_mesh_reformatted_is_no_change() -> None:
    demo = _mesh(yaml.safe_load(DEMO_MESH.read_text()))
    assert mesh_changes(demo, demo) == []
    assert all(not plane.changes for plane in object_changes(demo, demo))


def _objects(change: Callable[[Data], None]) -> dict[str, list[str]]:
    old = _base()
    new = copy.deepcopy(old)
    change(new)
    planes = object_changes(_mesh(old), _mesh(new))
    return {
        plane.plane: [f"{c.action} {c.ref} {c.effect}".strip() for c in plane.changes]
        for plane in planes
    }


def test_a_weight_change_reloads_sidecars_and_restarts_nothing() -> None:
    assert _objects(lambda d: _canary(d).update(split={"v1": 70, "v2": 30})) == {
        # The mesh's shared outbound config, projected into every sidecar.
        "builtin": ["updated ConfigMap demo/demo-outbound sidecars reload"],
        "istio": ["updated VirtualService demo/service1 istiod pushes to the proxies"],
    }


def test_an_image_change_restarts_the_versions_pods_on_both_planes() -> None:
    objects = _objects(
        lambda d: d["services"]["service2"]["versions"]["v1"].update(image="x/greeter:2")
    )
    assert objects == {
        "builtin": ["updated Deployment demo/service2-v1 pods restart"],
        "istio": ["updated Deployment demo/service2-v1 pods restart"],
    }


def test_replicas_scale_without_restarting() -> None:
    objects = _objects(lambda d: d["services"]["service1"]["versions"]["v2"].update(replicas=3))
    assert objects["istio"] == ["updated Deployment demo/service1-v2 scales 1 → 3"]


def test_a_new_service_creates_its_objects() -> None:
    objects = _objects(
        lambda d: d["services"].update(
            service3={"port": 9000, "versions": {"v1": {"image": "registry/s3:1.0"}}}
        )
    )
    assert objects["istio"] == [
        "created ServiceAccount demo/service3",
        "created Service demo/service3",
        "created Deployment demo/service3-v1 pods start",
        "created DestinationRule demo/service3 istiod pushes to the proxies",
        "created VirtualService demo/service3 istiod pushes to the proxies",
        "created NetworkPolicy demo/service3",
    ]


def test_a_plane_the_new_mesh_cannot_use_is_said_not_compared() -> None:
    old = _base()
    old["dataPlane"] = "istio"
    new = copy.deepcopy(old)
    new["services"]["service2"]["protocol"] = "grpc"
    planes = object_changes(_mesh(old), _mesh(new))
    assert [(p.plane, p.current, p.counts) for p in planes] == [
        ("istio", True, "2 updated"),
        ("builtin", False, "not compared"),
    ]
    assert planes[1].note == (
        "the new mesh cannot use this plane: services.service2.protocol: protocol grpc needs "
        "the istio data plane; the builtin data plane proxies http only"
    )


# The Linkerd example's mesh: the gateway-api plane, with a canary on `reviews`.
SHOP_MESH = REPO / "examples" / "pulumi-linkerd" / "shop.mesh.yaml"


def test_a_gateway_api_mesh_reviews_its_own_plane_first() -> None:
    old = yaml.safe_load(SHOP_MESH.read_text())
    new = copy.deepcopy(old)
    canary = next(r for r in new["services"]["reviews"]["routes"] if r.get("name") == "canary")
    canary["split"] = {"v1": 50, "v2": 50}
    planes = object_changes(_mesh(old), _mesh(new))
    assert [(p.plane, p.current) for p in planes] == [
        ("gateway-api", True),
        ("builtin", False),
        ("istio", False),
    ]
    # By API group: the Gateway API's objects are not Istio's, whatever their kind.
    assert [f"{c.action} {c.ref} {c.effect}" for c in planes[0].changes] == [
        "updated HTTPRoute shop/reviews the mesh implementation reprograms its proxies",
        "updated HTTPRoute shop/shop-ingress the mesh implementation reprograms its proxies",
    ]


def test_the_gateway_api_plane_is_reviewed_only_when_a_mesh_uses_it() -> None:
    # A builtin or istio mesh would mostly read "not compared" there (node ports, tcp services).
    assert list(_objects(lambda d: _canary(d).update(split={"v1": 70, "v2": 30}))) == [
        "builtin",
        "istio",
    ]
    new = yaml.safe_load(SHOP_MESH.read_text())
    old = {**new, "dataPlane": "istio"}
    planes = object_changes(_mesh(old), _mesh(new))
    assert [p.plane for p in planes] == ["istio → gateway-api", "gateway-api", "builtin", "istio"]


# --- the command ---------------------------------------------------------------------------


def _write(path: Path, data: Data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    old = _base()
    new = copy.deepcopy(old)
    _canary(new)["split"] = {"v1": 70, "v2": 30}
    new["services"]["service2"]["versions"]["v1"]["image"] = "sailplan/demo-greeter:0.2.0"
    return _write(tmp_path / "old.yaml", old), _write(tmp_path / "new.yaml", new)


def test_text_output_and_exit_1_when_the_meshes_differ(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = _pair(tmp_path)
    assert main(["diff", str(old), str(new)]) == 1
    assert capsys.readouterr().out == (
        f"mesh 'demo': 2 changes from {old} to {new}\n"
        "\n"
        "Traffic\n"
        "  service1 › canary: v1 80% → 70%, v2 20% → 30%\n"
        "\n"
        "Workloads\n"
        "  service2 v1: image sailplan/demo-greeter:0.1.0 → sailplan/demo-greeter:0.2.0 "
        "— pods restart\n"
        "\n"
        "Kubernetes objects\n"
        "  builtin (this mesh's data plane): 2 updated — pods restart: service2-v1\n"
        "    updated  ConfigMap demo/demo-outbound  sidecars reload\n"
        "    updated  Deployment demo/service2-v1   pods restart\n"
        "  istio: 2 updated — pods restart: service2-v1\n"
        "    updated  Deployment demo/service2-v1   pods restart\n"
        "    updated  VirtualService demo/service1  istiod pushes to the proxies\n"
    )


def test_no_change_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _write(tmp_path / "old.yaml", _base())
    # The same mesh written differently (flow style, comments) is the same mesh.
    new = tmp_path / "new.yaml"
    new.write_text("# reformatted\n" + yaml.safe_dump(_base(), default_flow_style=True))
    assert main(["diff", str(old), str(new)]) == 0
    assert capsys.readouterr().out == f"mesh 'demo': no change from {old} to {new}\n"


def test_invalid_input_exits_2_naming_the_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, _ = _pair(tmp_path)
    bad = _base()
    _canary(bad)["split"] = {"v1": 70, "v2": 20}
    new = _write(tmp_path / "bad.yaml", bad)
    assert main(["diff", str(old), str(new)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"error: 1 problem in {new}:",
        "  line 42: services.service1.routes[2].split: weights add up to 90, they must add up to 100",
    ]


def test_markdown_is_a_pull_request_comment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = _pair(tmp_path)
    assert main(["diff", str(old), str(new), "--format", "markdown"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"### sailplan diff: mesh `demo`: 2 changes from `{old}` to `{new}`\n")
    assert "\n**Traffic**\n\n- **service1 › canary**: v1 80% → 70%, v2 20% → 30%\n" in out
    assert "\n| updated | `Deployment demo/service2-v1` | pods restart |\n" in out
    assert "\n**istio: 2 updated** — pods restart: service2-v1\n" in out


def test_json_carries_every_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = _pair(tmp_path)
    assert main(["diff", str(old), str(new), "--format", "json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["changed"] is True
    assert document["changes"][0] == {
        "category": "traffic",
        "subject": "service1 › canary",
        "text": "v1 80% → 70%, v2 20% → 30%",
        "path": "services.service1.routes[2].split",
    }
    assert [p["plane"] for p in document["objects"]] == ["builtin", "istio"]
    assert document["objects"][1]["changes"][0] == {
        "action": "updated",
        "kind": "Deployment",
        "namespace": "demo",
        "name": "service2-v1",
        "effect": "pods restart",
    }


def test_stdin_is_dash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = _pair(tmp_path)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(new.read_bytes())))
    assert main(["diff", str(old), "-", "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["new"] == "-"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, timeout=60)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with two commits of mesh.yaml: the base, then a canary at 70/30."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "test@example.com")
    _git(repo, "config", "user.name", "test")
    _write(repo / "mesh.yaml", _base())
    _git(repo, "add", "mesh.yaml")
    _git(repo, "commit", "-q", "-m", "base")
    changed = _base()
    _canary(changed)["split"] = {"v1": 70, "v2": 30}
    _write(repo / "mesh.yaml", changed)
    _git(repo, "commit", "-q", "-am", "canary 70/30")
    monkeypatch.chdir(repo)
    return repo


def test_git_sources_read_a_revision(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "git:HEAD~1:mesh.yaml", "mesh.yaml"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("mesh 'demo': 1 change from git:HEAD~1:mesh.yaml to mesh.yaml\n")
    assert "  service1 › canary: v1 80% → 70%, v2 20% → 30%\n" in out
    assert main(["diff", "git:HEAD:mesh.yaml", "mesh.yaml"]) == 0


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "git:nope:mesh.yaml",
            "git:nope:mesh.yaml: git show nope:mesh.yaml: fatal: invalid object name 'nope'.",
        ),
        (
            "git:HEAD:missing.yaml",
            "git:HEAD:missing.yaml: git show HEAD:missing.yaml: "
            "fatal: path 'missing.yaml' does not exist in 'HEAD'",
        ),
        ("git:HEAD", "git:HEAD: write a git source as git:REV:PATH, e.g. git:main:mesh.yaml"),
    ],
)
def test_a_bad_git_source_is_invalid_input(
    repo: Path, capsys: pytest.CaptureFixture[str], source: str, message: str
) -> None:
    assert main(["diff", source, "mesh.yaml"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: 1 problem in {source}:",
        f"  {message}",
    ]


def _readme_change(text: str) -> str:
    """The change the README reviews: a testers route, a 70/30 canary with a timeout, an image."""
    return text.replace(
        "      - name: canary\n        split: {v1: 80, v2: 20}",
        "      - name: testers\n        match: {headers: {end-user: jason}}\n        to: v2\n"
        "      - name: canary\n        split: {v1: 70, v2: 30}\n        timeout: 2s",
    ).replace("demo-greeter:0.1.0", "demo-greeter:0.2.0")


def test_the_readme_shows_real_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (DEMO_MESH.parent.parent / "README.md").read_text()
    command = "sailplan diff git:main:stacks/demo.mesh.yaml stacks/demo.mesh.yaml"
    shown = re.search(rf"\$ {re.escape(command)}\n(.*?)```", readme, flags=re.DOTALL)
    assert shown
    (tmp_path / "stacks").mkdir()
    mesh = tmp_path / "stacks" / "demo.mesh.yaml"
    mesh.write_text(DEMO_MESH.read_text())
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "demo")
    mesh.write_text(_readme_change(DEMO_MESH.read_text()))
    monkeypatch.chdir(tmp_path)
    assert main(command.split()[1:]) == 1
    assert capsys.readouterr().out == shown.group(1)


def test_a_git_source_is_bounded_like_a_file(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diff", "git:HEAD~1:mesh.yaml", "mesh.yaml", "--max-size", "100"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: 1 problem in git:HEAD~1:mesh.yaml:",
        "  git:HEAD~1:mesh.yaml: larger than 100 bytes (see --max-size)",
    ]


def test_markdown_keeps_spec_values_literal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _base()
    new = copy.deepcopy(old)
    _routes(new)[0]["match"] = {"headers": {"end-user": {"regex": "<b>ja.*"}}}
    new["ingress"]["routes"][0]["match"] = {"path": {"prefix": "/api"}}
    assert (
        main(
            [
                "diff",
                str(_write(tmp_path / "my_old.yaml", old)),
                str(_write(tmp_path / "new.yaml", new)),
                "--format",
                "markdown",
            ]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert f"from `{tmp_path / 'my_old.yaml'}` to" in out
    assert "- **service1 › testers**: match end-user: jason → end-user: \\~\\<b\\>ja.\\*\n" in out
    assert "- **ingress › routes\\[0\\]**: match /api/users\\* → /api\\*\n" in out


def test_switching_the_data_plane_shows_what_applying_it_does() -> None:
    old = _base()
    new = copy.deepcopy(old)
    new["dataPlane"] = "istio"
    planes = object_changes(_mesh(old), _mesh(new))
    assert [(p.plane, p.current, p.counts) for p in planes] == [
        ("builtin → istio", True, "7 created, 6 updated, 17 deleted"),
        ("istio", False, "no change"),
        ("builtin", False, "no change"),
    ]
    switch = {f"{c.action} {c.ref} {c.effect}".strip() for c in planes[0].changes}
    assert "deleted ConfigMap demo/service1-v1-proxy" in switch
    assert "updated Deployment demo/service1-v1 pods restart" in switch
    assert "created VirtualService demo/service1 istiod pushes to the proxies" in switch


def test_git_missing_is_a_runtime_failure_said_in_one_line(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(repo / "no-such-bin"))
    assert main(["diff", "git:HEAD~1:mesh.yaml", "mesh.yaml"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "error: git: not installed; a git:REV:PATH source needs it\n"


# Where each object of the spec lives in the every-field test's mesh: (path of keys from the
# mesh's top, the object as the mesh has it before the change, the `path` its changes are under).
MOBILE = ("services", "service1", "routes", 1)
AT_MOBILE = "services.service1.routes[1]"
V1 = ("services", "service1", "versions", "v1")
AT_V1 = "services.service1.versions.v1"
POLICY = ("services", "service1", "policy")
PLACES: dict[str, tuple[tuple[str | int, ...], Data, str]] = {
    "Mesh": ((), {}, ""),
    "Authorization": (("authorization",), {"default": "allow"}, "authorization"),
    "Service": (("services", "service1"), {}, "services.service1"),
    "Version": (V1, {}, AT_V1),
    "Readiness": ((*V1, "readiness"), {"path": "/base"}, f"{AT_V1}.readiness"),
    "LocalRun": ((*V1, "local"), {"command": ["base"]}, f"{AT_V1}.local"),
    "Resources": ((*V1, "resources"), {}, f"{AT_V1}.resources"),
    "ResourceAmounts": ((*V1, "resources", "limits"), {"cpu": "9"}, f"{AT_V1}.resources"),
    "EnvRef": ((*V1, "env", "BASE"), {"secretKeyRef": {"name": "b", "key": "b"}}, f"{AT_V1}.env"),
    "KeyRef": ((*V1, "env", "BASE", "secretKeyRef"), {"name": "b", "key": "b"}, f"{AT_V1}.env"),
    "EnvFrom": ((*V1, "envFrom", 0), {"secretRef": {"name": "b"}}, f"{AT_V1}.envFrom"),
    "NameRef": ((*V1, "envFrom", 0, "secretRef"), {"name": "b"}, f"{AT_V1}.envFrom"),
    "Route": (MOBILE, {}, AT_MOBILE),
    "Match": ((*MOBILE, "match"), {"path": {"prefix": "/m/"}}, f"{AT_MOBILE}.match"),
    "Fault": ((*MOBILE, "fault"), {"delay": {"fixed": "9s", "percent": 1}}, f"{AT_MOBILE}.fault"),
    "Delay": ((*MOBILE, "fault", "delay"), {"fixed": "9s", "percent": 1}, f"{AT_MOBILE}.fault"),
    "Abort": ((*MOBILE, "fault", "abort"), {"status": 599, "percent": 1}, f"{AT_MOBILE}.fault"),
    "Retries": ((*MOBILE, "retries"), {"attempts": 9}, f"{AT_MOBILE}.retries"),
    "Mirror": ((*MOBILE, "mirror"), {"to": "v3", "percent": 1}, f"{AT_MOBILE}.mirror"),
    "Headers": ((*MOBILE, "headers"), {"request": {"set": {"x-b": "b"}}}, f"{AT_MOBILE}.headers"),
    "HeaderChanges": ((*MOBILE, "headers", "request"), {"set": {"x-b": "b"}}, AT_MOBILE),
    "Rewrite": ((*MOBILE, "rewrite"), {"authority": "base.internal"}, f"{AT_MOBILE}.rewrite"),
    "RegexRewrite": (
        (*MOBILE, "rewrite", "uriRegexRewrite"),
        {"match": "/b/(.*)", "rewrite": "/c/\\1"},
        f"{AT_MOBILE}.rewrite",
    ),
    "Redirect": ((*MOBILE, "redirect"), {"uri": "/base"}, f"{AT_MOBILE}.redirect"),
    "Respond": ((*MOBILE, "respond"), {"status": 404}, f"{AT_MOBILE}.respond"),
    "Cors": ((*MOBILE, "cors"), {"allowOrigins": ["https://base.example"]}, f"{AT_MOBILE}.cors"),
    "Policy": (POLICY, {"loadBalancer": "round-robin"}, "services.service1.policy"),
    "LoadBalancer": (
        (*POLICY, "loadBalancer"),
        {"hashHeader": "x-base"},
        "services.service1.policy.loadBalancer",
    ),
    "HashCookie": (
        (*POLICY, "loadBalancer", "hashCookie"),
        {"name": "base", "ttl": "9h"},
        "services.service1.policy.loadBalancer",
    ),
    "ConnectionPool": (
        (*POLICY, "connectionPool"),
        {"maxConnections": 1},
        "services.service1.policy.connectionPool",
    ),
    "OutlierDetection": (
        (*POLICY, "outlierDetection"),
        {"consecutive5xxErrors": 1},
        "services.service1.policy.outlierDetection",
    ),
    "AllowRule": (
        ("services", "service1", "allow", 0),
        {"from": ["service2"]},
        "services.service1.allow[0]",
    ),
    "PathRule": (
        ("services", "service1", "allow", 0, "paths", 0),
        {"exact": "/base"},
        "services.service1.allow[0].paths",
    ),
    "Ingress": (("ingress",), {}, "ingress"),
    "IngressRoute": (("ingress", "routes", 0), {}, "ingress.routes[0]"),
    "IngressTls": (("ingress", "tls"), {"secretName": "base-tls"}, "ingress.tls"),
    "CertificateIssuer": (("ingress", "tls", "issuer"), {"name": "base"}, "ingress.tls"),
}
# A route's name is who it is: a new name reads as the route removed and another added, at the
# route's own path.
IDENTITIES = {"Route.name"}
# The documented example where it names what this mesh does not have, or would shadow a route.
EXAMPLES: dict[str, Any] = {
    "Mesh.services": {
        "service2": {"port": 9000, "versions": {"v1": {"image": "r/s2:1"}}},
        "service3": {"port": 9001, "versions": {"v1": {"image": "r/s3:1"}}},
    },
    "Mesh.ingress": {"hosts": ["shop.example.com"], "routes": [{"service": "service1"}]},
    "AllowRule.from": ["service1", "ingress"],
    "Ingress.routes": [{"match": {"path": {"prefix": "/api/"}}, "service": "service1"}],
    "IngressRoute.service": "service1",
    "Match.headers": {"x-canary": {}},
    "Route.name": "phones",
    "Route.match": [{"headers": {"x-canary": "true"}}],
    "Route.destinationHeaders": {"v1": {"request": {"set": {"x-canary": "true"}}}},
    "Service.allow": [{"from": ["service2", "ingress"], "methods": ["GET"]}],
    "Service.calls": ["service2"],
}


def _spec_fields() -> dict[str, list[tuple[str, Any]]]:
    """Every field of the spec with its first example, per object, as the schema lists them."""
    schema = Mesh.model_json_schema(by_alias=True)
    bodies = {"Mesh": schema, **schema.get("$defs", {})}
    fields = {
        name: [(key, prop["examples"][0]) for key, prop in body.get("properties", {}).items()]
        for name, body in bodies.items()
        if body.get("properties")
    }
    # A load balancer is written as a name or a one-key mapping: its schema has no properties.
    fields["LoadBalancer"] = [
        (info.alias or key, (info.examples or [None])[0])
        for key, info in LoadBalancer.model_fields.items()
    ]
    return fields


def _place(data: Data, keys: tuple[str | int, ...], value: Any, merge: bool) -> None:
    """Put VALUE at KEYS, making the mappings and lists on the way (a plain-name load balancer
    becomes a mapping); with MERGE, into the mapping already there."""
    parent: Any = data
    for key, following in itertools.pairwise(keys):
        if isinstance(parent, list):
            parent = parent[key]
            continue
        if not isinstance(parent.get(key), list | dict):
            parent[key] = [{}] if isinstance(following, int) else {}
        parent = parent[key]
    current = parent[keys[-1]] if isinstance(parent, list) else parent.get(keys[-1])
    parent[keys[-1]] = {**current, **value} if merge and isinstance(current, dict) else value


def _field_base(
    name: str, value: Data | None = None, merge: bool = True, plane: str = "builtin"
) -> Data:
    """The mesh of the every-field test, with the object NAME at its place as VALUE (default:
    its base in PLACES)."""
    keys, base, _ = PLACES[name]
    data = _base()
    service1 = data["services"]["service1"]
    service1["versions"]["v3"] = {"image": "registry/users:3"}
    data["ingress"].update(port=443, hosts=["base.example.com"])
    data["dataPlane"] = plane
    if keys[:4] == MOBILE and keys[4:5] in {("redirect",), ("respond",)}:
        del service1["routes"][1]["to"]  # a route that answers itself sends nowhere
    if keys:
        _place(data, keys, base if value is None else value, merge)
    return data


def _mutated(name: str, key: str, example: Any) -> tuple[Data, Data] | None:
    """(old, new): the base, and the base with KEY of the object NAME set to EXAMPLE beside its
    other fields, or alone when they exclude each other, on the first plane that takes it (builtin
    refuses a few, such as grpc); None when no such mesh is valid."""
    _, value, _ = PLACES[name]
    for plane in ("builtin", "istio"):
        for changed, merge in (({**value, key: example}, True), ({key: example}, False)):
            data = _field_base(name, changed, merge, plane)
            if name == "Mesh":
                data[key] = example
            if name == "Route" and key in {"redirect", "respond", "split"}:
                data["services"]["service1"]["routes"][1].pop("to", None)
            try:
                Mesh.parse(data)
            except Exception:
                continue
            return _field_base(name, plane=plane), data
    return None


def test_every_field_of_the_spec_is_said_when_it_changes() -> None:
    """Each field of each object, set to its documented example beside the object's base: the
    diff says a change at that field's path (or under the object, for nested objects)."""
    fields = _spec_fields()
    assert sorted(set(fields) - set(PLACES)) == [], "give these objects a place in PLACES"
    unsaid, invalid, constant = [], [], []
    for name, entries in fields.items():
        at = PLACES[name][2]
        for key, example in entries:
            pair = _mutated(name, key, EXAMPLES.get(f"{name}.{key}", example))
            if pair is None:
                invalid.append(f"{name}.{key}")
                continue
            old, new = pair
            if Mesh.parse(old).to_dict() == Mesh.parse(new).to_dict():
                constant.append(f"{name}.{key}")  # its example is its only value
                continue
            # A field of one of these is said at its own path; a nested object's under it.
            expected = at
            own = {"Mesh", "Service", "Version", "Route", "Policy", "Ingress"}
            if name in own and f"{name}.{key}" not in IDENTITIES:
                expected = f"{at}.{key}" if at else key
            paths = [c.path for c in mesh_changes(Mesh.parse(old), Mesh.parse(new))]
            if not any(
                p == expected or p.startswith((f"{expected}.", f"{expected}[")) for p in paths
            ):
                unsaid.append(f"{name}.{key}: {paths}")
    assert constant == ["Mesh.apiVersion", "Mesh.kind"]
    assert invalid == [], f"these examples make no valid mesh here: adjust PLACES: {invalid}"
    assert unsaid == [], "a change of these fields is not said at their path:\n" + "\n".join(unsaid)
