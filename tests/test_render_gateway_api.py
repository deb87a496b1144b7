"""The gateway-api data plane: Gateway API v1 standard-channel objects, schema-valid, and `check`
refusing what they cannot say, each with its sentence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import DEMO_MESH, EXAMPLE_MESHES, GOLDEN
from golden_support import check_golden
from schema_support import validate_manifest

import sailplan
from sailplan.model import Duration, SpecError
from sailplan.render.gateway_api import gateway_api_duration
from sailplan.render.manifests import render_manifests

# The examples run on kind with a node port, which the Gateway API cannot ask for; the copies
# rendered here drop it. The others are refused for this plane, the first problem at this path:
REFUSED_EXAMPLES = {
    "fault-delay-abort": "services.service1.routes[0].fault",
    "timeout": "services.service1.routes[0].fault",
    # A negative header condition, which an HTTPRoute match cannot say.
    "route-changes": "services.service1.routes[0].match[0].withoutHeaders",
    # HTTPRoute's CORS filter is experimental.
    "cors": "services.service2.routes[0].cors",
}
RENDERABLE = [DEMO_MESH, *(p for p in EXAMPLE_MESHES if p.stem not in REFUSED_EXAMPLES)]

RICH = """
apiVersion: sailplan/v1
kind: Mesh
name: shop
dataPlane: gateway-api
services:
  reviews:
    port: 9080
    versions:
      v1: {image: reviews:1}
      v2: {image: reviews:2}
      v3: {image: reviews:3}
    routes:
      - name: login
        match:
          - path: {exact: /login}
            method: POST
        to: v3
      - name: jason
        match:
          - headers: {end-user: jason, x-beta: {regex: "b[0-9]+"}}
          - query: {debug: "1", lang: {prefix: en}}
        to: v2
        timeout: 1500ms
      - name: rest
        split: {v1: 90, v3: 10}
        mirror: {to: v2, percent: 12.5}
  web:
    port: 8080
    versions:
      v1: {image: web:1}
ingress:
  port: 8000
  hosts: [shop.example.com, "*.shop.example.com"]
  routes:
    - name: api
      match: {path: {prefix: /reviews/}}
      service: reviews
    - service: web
"""


def _load(text: str, **changes: Any) -> sailplan.Mesh:
    data = yaml.safe_load(text)
    data.update(changes)
    return sailplan.Mesh.parse(data)


def _without_node_port(path: Path) -> sailplan.Mesh:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.get("ingress", {}).pop("nodePort", None)
    data["dataPlane"] = "gateway-api"
    return sailplan.Mesh.parse(data)


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def _problems(text: str, **changes: Any) -> list[str]:
    with pytest.raises(SpecError) as error:
        _load(text, **changes)
    return [f"{p.path}: {p.message}" for p in error.value.problems]


@pytest.fixture(scope="module")
def rich() -> list[dict[str, Any]]:
    return render_manifests(_load(RICH))


@pytest.mark.parametrize("scenario", RENDERABLE, ids=lambda p: p.stem)
def test_golden(scenario: Path, update_golden: bool) -> None:
    manifests = render_manifests(_without_node_port(scenario))
    check_golden(GOLDEN / "gateway-api" / f"{scenario.stem}.yaml", manifests, update_golden)


@pytest.mark.parametrize("scenario", RENDERABLE, ids=lambda p: p.stem)
def test_every_object_validates_strictly(scenario: Path) -> None:
    for manifest in render_manifests(_without_node_port(scenario)):
        validate_manifest(manifest)


def test_rich_objects_validate_strictly(rich: list[dict[str, Any]]) -> None:
    kinds = sorted({o["kind"] for o in rich})
    assert kinds == [
        "Deployment",
        "Gateway",
        "HTTPRoute",
        "Namespace",
        "NetworkPolicy",
        "Service",
        "ServiceAccount",
    ]
    for manifest in rich:
        validate_manifest(manifest)


def test_examples_the_plane_cannot_say_are_refused_with_their_reasons() -> None:
    for path in EXAMPLE_MESHES:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["ingress"].pop("nodePort")
        if path.stem not in REFUSED_EXAMPLES:
            continue
        with pytest.raises(SpecError) as error:
            sailplan.Mesh.parse({**data, "dataPlane": "gateway-api"})
        assert error.value.problems[0].path == REFUSED_EXAMPLES[path.stem], path.name


def test_a_node_port_is_refused_on_every_example() -> None:
    for path in EXAMPLE_MESHES:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        with pytest.raises(SpecError) as error:
            sailplan.Mesh.parse({**data, "dataPlane": "gateway-api"})
        assert "ingress.nodePort" in [p.path for p in error.value.problems], path.name


def test_a_service_route_is_bound_to_its_service_and_backed_by_version_services(
    rich: list[dict[str, Any]],
) -> None:
    route = _find(rich, "HTTPRoute", "reviews")["spec"]
    assert route["parentRefs"] == [{"group": "", "kind": "Service", "name": "reviews"}]
    assert [rule["name"] for rule in route["rules"]] == ["login", "jason", "rest"]
    login, jason, rest = route["rules"]
    assert login == {
        "name": "login",
        "matches": [{"path": {"type": "Exact", "value": "/login"}, "method": "POST"}],
        "backendRefs": [{"name": "reviews-v3", "port": 9080}],
    }
    assert jason["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/"},
            "headers": [
                {"type": "Exact", "name": "end-user", "value": "jason"},
                {"type": "RegularExpression", "name": "x-beta", "value": "^(?:b[0-9]+)$"},
            ],
        },
        {
            "path": {"type": "PathPrefix", "value": "/"},
            "queryParams": [
                {"type": "Exact", "name": "debug", "value": "1"},
                {"type": "RegularExpression", "name": "lang", "value": "^en.*"},
            ],
        },
    ]
    assert jason["timeouts"] == {"request": "1s500ms"}
    assert rest == {
        "name": "rest",
        "filters": [
            {
                "type": "RequestMirror",
                "requestMirror": {
                    "backendRef": {"name": "reviews-v2", "port": 9080},
                    "fraction": {"numerator": 1, "denominator": 8},
                },
            }
        ],
        "backendRefs": [
            {"name": "reviews-v1", "port": 9080, "weight": 90},
            {"name": "reviews-v3", "port": 9080, "weight": 10},
        ],
    }
    version = _find(rich, "Service", "reviews-v2")["spec"]
    assert version["selector"] == {"app": "reviews", "version": "v2"}
    assert version["ports"][0]["port"] == 9080


def test_unmatched_requests_go_to_every_version_through_a_last_rule(
    rich: list[dict[str, Any]],
) -> None:
    # The Gateway API answers 404 when no rule matches; sailplan sends such requests to the
    # Service, as a plain Kubernetes Service would.
    web = _find(rich, "HTTPRoute", "web")["spec"]["rules"]
    assert web == [{"name": "all-versions", "backendRefs": [{"name": "web", "port": 8080}]}]


def test_the_ingress_is_a_gateway_and_a_route_repeating_the_services_rules(
    rich: list[dict[str, Any]],
) -> None:
    gateway = _find(rich, "Gateway", "shop-gateway")["spec"]
    assert gateway == {
        "gatewayClassName": "istio",
        "listeners": [
            {
                "name": "http",
                "port": 8000,
                "protocol": "HTTP",
                "allowedRoutes": {"namespaces": {"from": "Same"}},
            }
        ],
    }
    route = _find(rich, "HTTPRoute", "shop-ingress")["spec"]
    assert route["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "shop-gateway",
            "sectionName": "http",
        }
    ]
    assert route["hostnames"] == ["shop.example.com", "*.shop.example.com"]
    assert [rule["name"] for rule in route["rules"]] == [
        "ingress-1-all-versions-exact-1",
        "api-jason",
        "api-rest",
        "ingress-1-all-versions",
    ]
    # /reviews/ ∩ /login is empty: the login route has no ingress rule.
    assert route["rules"][2]["matches"] == [{"path": {"type": "PathPrefix", "value": "/reviews/"}}]
    # A PathPrefix /reviews/ also takes /reviews, which sailplan's prefix does not: that exact
    # path gets the rules sailplan would apply to it, first (Exact outranks every prefix).
    assert route["rules"][0] == {
        "name": "ingress-1-all-versions-exact-1",
        "matches": [{"path": {"type": "Exact", "value": "/reviews"}}],
        "backendRefs": [{"name": "web", "port": 8080}],
    }


def test_the_gateway_class_is_a_parameter() -> None:
    objects = render_manifests(_load(RICH), gateway_class="eg")
    assert _find(objects, "Gateway", "shop-gateway")["spec"]["gatewayClassName"] == "eg"


def test_a_star_host_leaves_the_route_without_hostnames() -> None:
    objects = render_manifests(_without_node_port(DEMO_MESH))
    assert "hostnames" not in _find(objects, "HTTPRoute", "demo-ingress")["spec"]


@pytest.mark.parametrize(
    ("ms", "text"),
    [(1, "1ms"), (1500, "1s500ms"), (60_000, "1m"), (3_723_004, "1h2m3s4ms"), (0, "0s")],
)
def test_durations_use_the_gateway_api_form(ms: int, text: str) -> None:
    assert gateway_api_duration(Duration(ms)) == text


BASE = """
apiVersion: sailplan/v1
kind: Mesh
name: shop
dataPlane: gateway-api
services:
  reviews:
    port: 9080
    versions:
      v1: {image: reviews:1}
      v2: {image: reviews:2}
"""


def _with_routes(routes: list[dict[str, Any]], **service: Any) -> str:
    data = yaml.safe_load(BASE)
    data["services"]["reviews"]["routes"] = routes
    data["services"]["reviews"].update(service)
    return yaml.safe_dump(data)


OTHER = "use the istio or builtin data plane"


@pytest.mark.parametrize(
    ("text", "changes", "expected"),
    [
        (
            _with_routes([{"to": "v1", "fault": {"abort": {"status": 503}}}]),
            {},
            f"services.reviews.routes[0].fault: the Gateway API has no fault injection; {OTHER}",
        ),
        (
            _with_routes([{"to": "v1", "cors": {"allowOrigins": ["https://a.example"]}}]),
            {},
            "services.reviews.routes[0].cors: HTTPRoute's CORS filter is in the Gateway API's "
            f"experimental channel only, which sailplan does not render; {OTHER}",
        ),
        (
            _with_routes([{"to": "v1", "retries": {"attempts": 2}}]),
            {},
            "services.reviews.routes[0].retries: HTTPRoute retries are in the Gateway API's "
            f"experimental channel only, which sailplan does not render; {OTHER}",
        ),
        (
            _with_routes([], policy={"outlierDetection": {"consecutive5xxErrors": 3}}),
            {},
            "services.reviews.policy.outlierDetection: the Gateway API's standard channel has "
            f"no outlier-detection setting; {OTHER}",
        ),
        (
            _with_routes([], policy={"loadBalancer": {"algorithm": "random"}}),
            {},
            "services.reviews.policy.loadBalancer: the Gateway API's standard channel has no "
            f"load-balancing setting; {OTHER}",
        ),
        (
            _with_routes([], policy={"connectionPool": {"maxConnections": 5}}),
            {},
            "services.reviews.policy.connectionPool: the Gateway API's standard channel has no "
            f"connection-pool setting; {OTHER}",
        ),
        (
            BASE,
            {"mtls": "strict"},
            "mtls: mtls strict: the Gateway API does not say how services authenticate each "
            "other (the mesh implementation does, e.g. Linkerd encrypts between meshed pods and "
            f"accepts plaintext from others); use mtls: permissive, or {OTHER}",
        ),
        (
            BASE,
            {"accessLog": True},
            "accessLog: the Gateway API has no access-log setting: turn access logs on in the "
            f"mesh implementation and set accessLog: false, or {OTHER}",
        ),
        (
            BASE,
            {"ingress": {"nodePort": 30080, "routes": [{"service": "reviews"}]}},
            "ingress.nodePort: the Gateway API has no node port: the Gateway's implementation "
            "creates the gateway's Service itself; drop nodePort, or use the istio or builtin "
            "data plane",
        ),
        (
            BASE,
            {
                "ingress": {
                    "port": 443,
                    "tls": {"secretName": "shop-tls", "minVersion": "TLSv1.3"},
                    "routes": [{"service": "reviews"}],
                }
            },
            "ingress.tls.minVersion: TLSv1.3: the Gateway API's standard channel has no setting "
            "for the oldest TLS version a client may use (a listener's tls.options are each "
            "implementation's own, and TLSv1.2 is the usual default); drop minVersion, or use "
            "the istio or builtin data plane",
        ),
        (
            _with_routes([{"match": {"method": {"prefix": "P"}}, "to": "v2"}]),
            {},
            "services.reviews.routes[0].match[0].method: the Gateway API matches a method "
            f"exactly only, not by prefix; list the methods as alternatives, or {OTHER}",
        ),
        (
            _with_routes([{"match": {"path": {"exact": "/a//b"}}, "to": "v2"}]),
            {},
            "services.reviews.routes[0].match[0].path: '/a//b' cannot be a Gateway API Exact "
            "path: use letters, digits, -/._~!$&'()*+,;=:@ and %XX escapes, without //, /./, "
            "/../ or %2F",
        ),
        (
            _with_routes([{"match": {"headers": {f"h{i}": "x" for i in range(17)}}, "to": "v2"}]),
            {},
            "services.reviews.routes[0].match[0].headers: 17 headers conditions: an HTTPRoute "
            "match has at most 16",
        ),
        (
            _with_routes([{"match": {"path": f"/{i}"}, "to": "v2"} for i in range(16)]),
            {},
            "services.reviews.routes: renders 17 HTTPRoute rules (with the rule for requests no "
            "route matches); an HTTPRoute has at most 16, and splitting it into several would "
            "order the rules by creation time",
        ),
        (
            _with_routes([], allow=[]),
            {},
            "services.reviews.allow: the Gateway API says nothing about which callers a service "
            "admits (Linkerd's AuthorizationPolicy and Istio's are their own APIs); drop allow, "
            f"or {OTHER}",
        ),
        (
            _with_routes([], calls=["reviews"]),
            {},
            "services.reviews.calls: the Gateway API cannot scope a workload's proxy to the "
            f"services it calls (Istio's Sidecar is its own API); drop calls, or {OTHER}",
        ),
        (
            BASE,
            {"authorization": {"default": "deny"}},
            "authorization.default: the Gateway API says nothing about which callers a service "
            "admits (Linkerd's AuthorizationPolicy and Istio's are their own APIs); use "
            f"authorization: {{default: allow}}, or {OTHER}",
        ),
        (
            BASE,
            {"trustDomain": "corp.example"},
            "trustDomain: the Gateway API does not name workload identities: the mesh "
            f"implementation chooses its trust domain; drop trustDomain, or {OTHER}",
        ),
        (
            BASE,
            {"interception": "explicit-proxy"},
            "interception: explicit-proxy: on the gateway-api data plane the mesh implementation "
            "injects its own proxy and decides how traffic reaches it (Linkerd: its init "
            "container or CNI plugin); use iptables, or the builtin data plane",
        ),
    ],
    ids=[
        "fault",
        "cors",
        "retries",
        "outlier-detection",
        "load-balancer",
        "connection-pool",
        "mtls-strict",
        "access-log",
        "node-port",
        "ingress-tls-min-version",
        "method-prefix",
        "exact-path-characters",
        "too-many-headers",
        "too-many-rules",
        "allow",
        "calls",
        "authorization-default-deny",
        "trust-domain",
        "explicit-proxy",
    ],
)
def test_what_the_standard_channel_cannot_say_is_refused(
    text: str, changes: dict[str, Any], expected: str
) -> None:
    assert _problems(text, **changes) == [expected]


def test_a_tcp_service_is_refused() -> None:
    text = _with_routes([], protocol="tcp")
    assert _problems(text) == [
        "services.reviews.protocol: protocol tcp: the gateway-api data plane renders "
        f"HTTPRoutes, for http services only; {OTHER}"
    ]


# -- first match against most specific match ------------------------------------------------


def test_a_later_route_with_more_headers_would_win_so_it_is_refused() -> None:
    text = _with_routes(
        [
            {"name": "testers", "match": {"headers": {"end-user": "jason"}}, "to": "v2"},
            {"name": "beta", "match": {"headers": {"x": "1", "y": "2"}}, "to": "v1"},
        ]
    )
    assert _problems(text) == [
        "services.reviews.routes[1]: beta would take requests that testers also matches, since "
        "it has more header conditions and the Gateway API prefers the more specific match over "
        f"rule order: make the two matches disjoint, or {OTHER}"
    ]


def test_a_later_exact_path_would_win_so_it_is_refused() -> None:
    text = _with_routes(
        [
            {"name": "testers", "match": {"headers": {"end-user": "jason"}}, "to": "v2"},
            {"name": "login", "match": {"path": "/login"}, "to": "v1"},
        ]
    )
    assert _problems(text) == [
        "services.reviews.routes[1]: login would take requests that testers also matches, since "
        "its path is exact and the Gateway API prefers the more specific match over rule order: "
        f"make the two matches disjoint, or {OTHER}"
    ]


def test_a_later_longer_path_prefix_would_win_so_it_is_refused() -> None:
    text = _with_routes(
        [
            {
                "name": "api",
                "match": {"path": {"prefix": "/api/"}, "headers": {"a": "1"}},
                "to": "v2",
            },
            {"name": "users", "match": {"path": {"prefix": "/api/users/"}}, "to": "v1"},
        ]
    )
    assert _problems(text) == [
        "services.reviews.routes[1]: users would take requests that api also matches, since its "
        "path prefix is longer and the Gateway API prefers the more specific match over rule "
        f"order: make the two matches disjoint, or {OTHER}"
    ]


def test_a_prefix_route_before_the_catch_all_rule_is_refused_as_implementation_specific() -> None:
    text = _with_routes([{"name": "api", "match": {"path": {"prefix": "/api"}}, "to": "v2"}])
    assert _problems(text) == [
        "services.reviews.routes[0]: api (RegularExpression '^/api.*') and the rule for "
        "unmatched requests (PathPrefix '/') can match the same request, and how a regex path (a "
        "regex, or a prefix not ending in /) ranks against another path is up to each Gateway API "
        "implementation: make the matches disjoint, give them the same path, end the prefix with "
        f"/, or {OTHER}"
    ]


@pytest.mark.parametrize(
    "routes",
    [
        # Same path, and the earlier is more specific: the Gateway API's order is sailplan's.
        [
            {"match": {"path": {"prefix": "/api/"}, "headers": {"a": "1"}}, "to": "v2"},
            {"match": {"path": {"prefix": "/api/"}}, "to": "v1"},
            {"to": "v1"},
        ],
        # Disjoint matches never compete.
        [
            {"match": {"headers": {"lane": "a"}}, "to": "v2"},
            {"match": {"headers": {"lane": "b"}, "method": "GET"}, "to": "v1"},
        ],
        # Equal actions: whichever wins does the same.
        [
            {"match": {"headers": {"lane": "a"}}, "to": "v2"},
            {"match": {"path": "/x"}, "to": "v2"},
        ],
        # A later, more specific match to the same place as the catch-all.
        [{"match": {"path": "/login"}, "to": "v1"}, {"to": "v1"}],
    ],
    ids=["same-path-earlier-more-specific", "disjoint", "equal-actions", "exact-then-catch-all"],
)
def test_orders_the_gateway_api_keeps_are_accepted(routes: list[dict[str, Any]]) -> None:
    mesh = sailplan.load_mesh_text(_with_routes(routes))
    for manifest in render_manifests(mesh):
        validate_manifest(manifest)


def test_an_ingress_fold_no_single_match_can_say_is_refused() -> None:
    # Both routes do the same, so their ranks do not matter; the ingress prefix is the problem.
    text = _with_routes([{"match": {"path": {"regex": "/(api|web)/.*"}}, "to": "v1"}, {"to": "v1"}])
    data = yaml.safe_load(text)
    data["ingress"] = {"routes": [{"match": {"path": {"prefix": "/api"}}, "service": "reviews"}]}
    with pytest.raises(SpecError) as error:
        sailplan.Mesh.parse(data)
    assert [f"{p.path}: {p.message}" for p in error.value.problems] == [
        "ingress.routes[0].match: an HTTPRoute rule of the gateway would need to match both this "
        "route and one of reviews's routes, and no single match can (path: the regex "
        "'/(api|web)/.*' does not provably start with the prefix '/api'; write the regex so that "
        "it starts with '/api')"
    ]


def test_render_cli_takes_the_plane_and_the_gateway_class(tmp_path: Path) -> None:
    mesh = tmp_path / "mesh.yaml"
    data = yaml.safe_load(RICH)
    del data["dataPlane"]
    mesh.write_text(yaml.safe_dump(data), encoding="utf-8")
    command = [sys.executable, "-m", "sailplan", "render", str(mesh)]
    done = subprocess.run(
        [*command, "--data-plane", "gateway-api", "--gateway-class", "eg"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    objects = list(yaml.safe_load_all(done.stdout))
    assert _find(objects, "Gateway", "shop-gateway")["spec"]["gatewayClassName"] == "eg"
    bad = subprocess.run(
        [*command, "--data-plane", "gateway-api", "--gateway-class", "Not_A_Name"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert (
        "argument --gateway-class: 'Not_A_Name' is not a GatewayClass name: use lowercase "
        "letters, digits, '-' and '.', such as istio or eg"
    ) in bad.stderr
    assert "Traceback" not in bad.stderr


CHANGES = """
apiVersion: sailplan/v1
kind: Mesh
name: shop
dataPlane: gateway-api
services:
  reviews:
    port: 9080
    versions:
      v1: {image: reviews:1}
      v2: {image: reviews:2}
    routes:
      - name: old
        match: {path: {prefix: /old/}}
        to: v2
        mirror: {to: v1, percent: 5}
        rewrite: {uri: /new/, authority: reviews.internal}
        headers:
          request: {set: {x-canary: "100%"}, add: {x-tag: b}, remove: [x-debug]}
          response: {remove: [server]}
      - name: exact
        match: [{path: /a}, {path: /b}]
        to: v2
        rewrite: {uri: /c}
      - to: v1
"""


def test_header_changes_rewrites_and_mirrors_become_filters_in_sailplan_s_order() -> None:
    objects = render_manifests(sailplan.load_mesh_text(CHANGES))
    for manifest in objects:
        validate_manifest(manifest)
    rules = _find(objects, "HTTPRoute", "reviews")["spec"]["rules"]
    # The bare /old first (the catch-all's, carved out), then the routes in order.
    assert [rule["name"] for rule in rules] == ["route-2-exact-1", "old", "exact", "route-2"]
    old, exact = rules[1], rules[2]
    assert old["filters"] == [
        {
            "type": "RequestHeaderModifier",
            "requestHeaderModifier": {
                "set": [{"name": "x-canary", "value": "100%"}],
                "add": [{"name": "x-tag", "value": "b"}],
                "remove": ["x-debug"],
            },
        },
        {
            "type": "URLRewrite",
            "urlRewrite": {
                "hostname": "reviews.internal",
                "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new/"},
            },
        },
        {
            "type": "RequestMirror",
            "requestMirror": {"backendRef": {"name": "reviews-v1", "port": 9080}, "percent": 5},
        },
        {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"remove": ["server"]}},
    ]
    assert exact["filters"] == [
        {
            "type": "URLRewrite",
            "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/c"}},
        }
    ]


def test_each_mirror_is_a_request_mirror_filter_with_its_own_share() -> None:
    text = _with_routes(
        [
            {
                "to": "v1",
                "mirrors": [
                    {"to": "v2", "percent": 0.5},
                    {"to": "v3", "percent": 25},
                    {"to": "v4"},
                ],
            }
        ]
    )
    data = yaml.safe_load(text)
    for version in ("v3", "v4"):
        data["services"]["reviews"]["versions"][version] = {"image": f"reviews:{version}"}
    objects = render_manifests(sailplan.Mesh.parse(data))
    for manifest in objects:
        validate_manifest(manifest)
    (rule,) = _find(objects, "HTTPRoute", "reviews")["spec"]["rules"]
    assert rule["filters"] == [
        {
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": {"name": "reviews-v2", "port": 9080},
                "fraction": {"numerator": 1, "denominator": 200},
            },
        },
        {
            "type": "RequestMirror",
            "requestMirror": {"backendRef": {"name": "reviews-v3", "port": 9080}, "percent": 25},
        },
        # 100%: the filter's default share.
        {
            "type": "RequestMirror",
            "requestMirror": {"backendRef": {"name": "reviews-v4", "port": 9080}},
        },
    ]


def _changes(**route: Any) -> str:
    return _with_routes(
        [{"match": {"path": {"prefix": "/old/"}}, "to": "v2", **route}, {"to": "v1"}]
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            _changes(rewrite={"uriRegexRewrite": {"match": "/old/(.*)", "rewrite": "/\\1"}}),
            "services.reviews.routes[0].rewrite.uriRegexRewrite: the Gateway API rewrites a path "
            f"prefix or the full path only, not by a regular expression; use uri, or {OTHER}",
        ),
        (
            _changes(rewrite={"authority": "reviews.internal:8080"}),
            "services.reviews.routes[0].rewrite.authority: 'reviews.internal:8080': the Gateway "
            "API rewrites the host to a lowercase host name without a port; drop the port, or "
            f"{OTHER}",
        ),
        (
            _changes(rewrite={"uri": "/new"}),
            "services.reviews.routes[0].rewrite.uri: the Gateway API puts one / between the new "
            "prefix and the rest of the path, so '/new' must end with / (as the prefix it "
            f"replaces does) to mean the same; or {OTHER}",
        ),
        (
            _with_routes(
                [
                    {"match": {"path": {"prefix": "/old"}}, "to": "v2", "rewrite": {"uri": "/n/"}},
                    {"to": "v2"},
                ]
            ),
            "services.reviews.routes[0].rewrite.uri: the Gateway API rewrites the prefix a "
            "PathPrefix matched, and this rule's path is a regular expression, not the route's "
            "own prefix '/old': end the prefix with / (and let no ingress route narrow it); or "
            f"{OTHER}",
        ),
        (
            _with_routes(
                [
                    {
                        "match": [{"path": {"prefix": "/a/"}}, {"path": {"prefix": "/b/"}}],
                        "to": "v2",
                        "rewrite": {"uri": "/n/"},
                    }
                ]
            ),
            "services.reviews.routes[0].rewrite.uri: the Gateway API rewrites a prefix only in a "
            "rule with exactly one match, a PathPrefix, and the full path only for exact paths: "
            f"give the route one prefix, or exact paths; or {OTHER}",
        ),
    ],
    ids=[
        "regex-rewrite",
        "authority-with-port",
        "uri-without-slash",
        "regex-prefix",
        "two-prefixes",
    ],
)
def test_rewrites_the_gateway_api_cannot_say_are_refused(text: str, expected: str) -> None:
    assert _problems(text) == [expected]


REDIRECTS = [
    {"name": "login", "match": {"path": "/login"}, "redirect": {"uri": "/v2/login", "code": 302}},
    {
        "name": "secure",
        "match": {"path": {"prefix": "/secure/"}},
        "redirect": {"scheme": "https", "authority": "shop.example.com", "port": 8443},
    },
    {"name": "tls", "match": {"path": {"prefix": "/tls/"}}, "redirect": {"scheme": "https"}},
    {
        "name": "moved",
        "match": {"path": {"prefix": "/moved/"}},
        "redirect": {"authority": "a.example"},
    },
    {"name": "port", "match": {"path": {"prefix": "/p/"}}, "redirect": {"port": 8081}},
    {"name": "rest", "to": "v1"},
]


def _redirects(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        rule["name"]: rule["filters"][0]["requestRedirect"]
        for rule in rules
        if "filters" in rule and rule["filters"][0]["type"] == "RequestRedirect"
    }


def test_a_redirect_is_a_request_redirect_rule_without_backends() -> None:
    objects = render_manifests(sailplan.load_mesh_text(_with_routes(REDIRECTS)))
    for manifest in objects:
        validate_manifest(manifest)
    rules = _find(objects, "HTTPRoute", "reviews")["spec"]["rules"]
    assert not any("backendRefs" in rule for rule in rules if rule["name"] in _redirects(rules))
    # The Service's port 9080 is what callers' Host names; a redirect that keeps the request's
    # port says it where the Gateway API would take the scheme's (tls) and one that names a
    # host without a port says 80 where it would take the Service's (moved).
    assert _redirects(rules) == {
        "login": {
            "path": {"type": "ReplaceFullPath", "replaceFullPath": "/v2/login"},
            "statusCode": 302,
        },
        "secure": {
            "scheme": "https",
            "hostname": "shop.example.com",
            "port": 8443,
            "statusCode": 301,
        },
        "tls": {"scheme": "https", "port": 9080, "statusCode": 301},
        "moved": {"hostname": "a.example", "port": 80, "statusCode": 301},
        "port": {"port": 8081, "statusCode": 301},
    }


@pytest.mark.parametrize("ingress_port", [80, 8000])
def test_redirects_give_sailplan_s_locations_on_the_mesh_and_at_the_gateway(
    ingress_port: int,
) -> None:
    from conformance import gateway_api_reference as gateway_api
    from conformance import istio_reference as istio

    data = yaml.safe_load(_with_routes(REDIRECTS))
    data["ingress"] = {"port": ingress_port, "hosts": ["shop.example.com"]}
    data["ingress"]["routes"] = [{"service": "reviews"}]
    mesh = sailplan.Mesh.parse(data)
    reference = istio.Cluster(render_manifests(mesh, "istio"))
    rendered = gateway_api.Cluster(render_manifests(mesh))
    # A client names the port it sends to in Host, unless it is the scheme's default.
    gateway_host = "shop.example.com" + ("" if ingress_port == 80 else f":{ingress_port}")
    for path in ("/login?next=%2F", "/secure/cart", "/tls/x?y=1", "/moved/a", "/p/q", "/tls"):
        mesh_request = istio.Request(path, host="reviews:9080")
        want = istio.evaluate_mesh(reference, mesh_request, caller_namespace="shop")
        got = gateway_api.evaluate_mesh(rendered, mesh_request, caller_namespace="shop")
        assert [(b.status, b.headers) for b in got.branches] == [
            (b.status, b.headers) for b in want.branches
        ], path
        request = istio.Request(path, host=gateway_host)
        want = istio.evaluate_gateway(reference, request)
        got = gateway_api.evaluate_gateway(rendered, request)
        assert [(b.status, b.headers) for b in got.branches] == [
            (b.status, b.headers) for b in want.branches
        ], path


@pytest.mark.parametrize(
    ("redirect", "expected"),
    [
        (
            {"scheme": "https", "code": 308},
            "services.reviews.routes[0].redirect.code: 308: the Gateway API's standard channel "
            f"redirects with 301 or 302 only; use one of them, or {OTHER}",
        ),
        (
            {"authority": "Shop.example.com:8080"},
            "services.reviews.routes[0].redirect.authority: 'Shop.example.com:8080': the Gateway "
            f"API redirects to a lowercase host name (and a port); write the host in lowercase, "
            f"or {OTHER}",
        ),
        (
            {"uri": "/" + "a" * 1024},
            "services.reviews.routes[0].redirect.uri: has 1025 characters; a Gateway API "
            "redirect path has at most 1024",
        ),
    ],
    ids=["code-308", "uppercase-host", "long-path"],
)
def test_redirects_the_standard_channel_cannot_say_are_refused(
    redirect: dict[str, Any], expected: str
) -> None:
    text = _with_routes([{"match": {"path": "/a"}, "redirect": redirect}, {"to": "v1"}])
    assert _problems(text) == [expected]


def test_a_direct_response_is_refused() -> None:
    text = _with_routes([{"match": {"path": "/a"}, "respond": {"status": 503}}, {"to": "v1"}])
    assert _problems(text) == [
        "services.reviews.routes[0].respond: the Gateway API's standard channel has no direct "
        f"response (a fixed status and body); {OTHER}"
    ]


HTTPS = """
apiVersion: sailplan/v1
kind: Mesh
name: shop
dataPlane: gateway-api
services:
  web:
    port: 8080
    versions:
      v1: {image: web:1}
      v2: {image: web:2}
    routes:
      - name: old
        match: {path: {prefix: /old/}}
        redirect: {uri: /new, code: 302}
      - name: copied
        to: v1
        mirrors: [{to: v2, percent: 2.5}]
ingress:
  port: 8443
  hosts: [shop.example.com]
  tls:
    issuer: {name: letsencrypt}
    httpsRedirect: true
  routes:
    - service: web
"""


def test_golden_of_https_redirects_and_mirrors(update_golden: bool) -> None:
    manifests = render_manifests(sailplan.load_mesh_text(HTTPS))
    for manifest in manifests:
        validate_manifest(manifest)
    check_golden(GOLDEN / "gateway-api" / "https-redirects-mirrors.yaml", manifests, update_golden)


def test_https_at_the_ingress_is_a_terminating_listener_with_the_secret() -> None:
    data = yaml.safe_load(HTTPS)
    data["ingress"]["tls"] = {"secretName": "shop-cert"}
    objects = render_manifests(sailplan.Mesh.parse(data))
    for manifest in objects:
        validate_manifest(manifest)
    assert _find(objects, "Gateway", "shop-gateway")["spec"]["listeners"] == [
        {
            "name": "https",
            "port": 8443,
            "protocol": "HTTPS",
            "tls": {
                "mode": "Terminate",
                "certificateRefs": [{"group": "", "kind": "Secret", "name": "shop-cert"}],
            },
            "allowedRoutes": {"namespaces": {"from": "Same"}},
        }
    ]
    route = _find(objects, "HTTPRoute", "shop-ingress")
    assert route["spec"]["parentRefs"][0]["sectionName"] == "https"
    # No Certificate without an issuer, and no plain listener without httpsRedirect.
    assert not [o for o in objects if o["kind"] == "Certificate"]
    assert not [o for o in objects if o["metadata"]["name"] == "shop-https-redirect"]


def test_an_issuer_s_certificate_is_in_the_gateway_s_namespace_and_its_secret_is_served() -> None:
    objects = render_manifests(sailplan.load_mesh_text(HTTPS))
    (certificate,) = [o for o in objects if o["kind"] == "Certificate"]
    assert certificate["metadata"]["namespace"] == "shop"
    assert certificate["spec"]["secretName"] == "shop-ingress-tls"
    assert certificate["spec"]["dnsNames"] == ["shop.example.com"]
    assert certificate["spec"]["issuerRef"] == {
        "name": "letsencrypt",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    gateway = _find(objects, "Gateway", "shop-gateway")
    assert gateway["metadata"]["namespace"] == "shop"
    https, http = gateway["spec"]["listeners"]
    assert https["tls"]["certificateRefs"] == [
        {"group": "", "kind": "Secret", "name": "shop-ingress-tls"}
    ]
    assert (http["name"], http["port"], http["protocol"]) == ("http", 80, "HTTP")
    assert "tls" not in http


@pytest.mark.parametrize(
    ("port", "location"),
    [(443, "https://shop.example.com/a/b?c=1"), (8443, "https://shop.example.com:8443/a/b?c=1")],
)
def test_https_redirect_answers_the_plain_listener_with_a_301_to_https(
    port: int, location: str
) -> None:
    from conformance import gateway_api_reference as gateway_api
    from conformance import istio_reference as istio

    data = yaml.safe_load(HTTPS)
    data["ingress"]["port"] = port
    objects = render_manifests(sailplan.Mesh.parse(data))
    redirect = _find(objects, "HTTPRoute", "shop-https-redirect")
    assert redirect["spec"]["parentRefs"][0]["sectionName"] == "http"
    assert redirect["spec"]["hostnames"] == ["shop.example.com"]
    cluster = gateway_api.Cluster(objects)
    request = istio.Request("/a/b?c=1", host="shop.example.com")
    plain = gateway_api.evaluate_gateway(cluster, request, listener="http")
    assert [(b.status, b.body, b.headers) for b in plain.branches] == [
        (301, "", (("location", location),))
    ]
    # On the HTTPS listener the ingress routes apply.
    secure = gateway_api.evaluate_gateway(cluster, request, listener="https")
    assert secure.shares() == {"web/v1": 1.0}
    assert [(c.probability, c.to) for c in secure.copies] == [(0.025, "web/v2")]
    # A route's redirect there keeps https and the port the client named (none for 443).
    host = "shop.example.com" + ("" if port == 443 else f":{port}")
    moved = gateway_api.evaluate_gateway(
        cluster, istio.Request("/old/x?c=1", host=host), listener="https"
    )
    assert [(b.status, b.headers) for b in moved.branches] == [
        (302, (("location", f"https://{host}/new?c=1"),))
    ]


def test_the_oldest_tls_version_may_be_the_default() -> None:
    data = yaml.safe_load(HTTPS)
    data["ingress"]["tls"]["minVersion"] = "TLSv1.2"
    assert render_manifests(sailplan.Mesh.parse(data))


def test_two_routes_rewriting_alike_from_overlapping_prefixes_still_keep_their_order() -> None:
    # Same rewrite, same version: different results, since each replaces its own prefix.
    text = _with_routes(
        [
            {
                "match": {"path": {"prefix": "/a/"}, "headers": {"x": "1"}},
                "to": "v2",
                "rewrite": {"uri": "/n/"},
            },
            {"match": {"path": {"prefix": "/a/b/"}}, "to": "v2", "rewrite": {"uri": "/n/"}},
        ]
    )
    assert [p.split(":")[0] for p in _problems(text)] == ["services.reviews.routes[1]"]


def test_a_carved_out_path_gets_the_route_s_rewrite_as_a_full_path() -> None:
    # /a/b/ carves /a/b out; there route 0 (prefix /a/) still applies, rewriting /a/b to /n/b.
    from conformance import gateway_api_reference as gateway_api
    from conformance import istio_reference as istio

    text = _with_routes(
        [
            {
                "match": {"path": {"prefix": "/a/"}, "headers": {"x": "1"}},
                "to": "v2",
                "rewrite": {"uri": "/n/"},
            },
            {"match": {"path": {"prefix": "/a/b/"}, "headers": {"x": "2"}}, "to": "v1"},
        ]
    )
    mesh = sailplan.load_mesh_text(text)
    objects = render_manifests(mesh)
    rules = _find(objects, "HTTPRoute", "reviews")["spec"]["rules"]
    carved = next(rule for rule in rules if rule["name"] == "route-0-exact-2")
    assert carved["matches"][0]["path"] == {"type": "Exact", "value": "/a/b"}
    assert carved["filters"] == [
        {
            "type": "URLRewrite",
            "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/n/b"}},
        }
    ]
    reference = istio.Cluster(render_manifests(mesh, "istio"))
    rendered = gateway_api.Cluster(objects)
    for path in ("/a/b", "/a/b/c", "/a/x"):
        request = istio.Request(path, headers={"x": "1"}, host="reviews")
        want = istio.evaluate_mesh(reference, request, caller_namespace="shop")
        got = gateway_api.evaluate_mesh(rendered, request, caller_namespace="shop")
        assert (got.shares(), got.forwarded_path) == (want.shares(), want.forwarded_path), path


def test_every_spec_field_is_decided_for_this_plane() -> None:
    # A field added to the spec must be rendered or refused here, never silently dropped: this
    # list changes together with gateway_api_problems() and the renderer.
    from sailplan.model.route import Route
    from sailplan.model.service import Service

    assert list(sailplan.Mesh.model_fields) == [
        "api_version",
        "kind",
        "name",
        "namespace",
        "allow_system_namespace",
        "data_plane",
        "interception",
        "network_policies",
        "mtls",
        "trust_domain",
        "authorization",
        "services",
        "ingress",
        "access_log",
    ]
    assert list(Service.model_fields) == [
        "port",
        "protocol",
        "versions",
        "routes",
        "policy",
        "allow",
        "calls",
    ]
    assert list(Route.model_fields) == [
        "name",
        "match",
        "to",
        "split",
        "fault",
        "timeout",
        "retries",
        "mirror",
        "headers",
        "destination_headers",
        "rewrite",
        "mirrors",
        "redirect",
        "respond",
        "cors",
    ]


# What the gateway-api plane does with every field of the spec: rendered, refused by `check`
# (with a sentence, tested above), or not about routing at all. A field added to the model fails
# this test until someone decides, so no field is silently accepted and ignored on this plane.
RENDERED, REFUSED, SHARED = "rendered", "refused", "Kubernetes objects all planes share"
FIELDS = {
    "Mesh.apiVersion": "checked",
    "Mesh.kind": "checked",
    "Mesh.name": "labels; <name>-gateway, <name>-ingress",
    "Mesh.namespace": SHARED,
    "Mesh.allowSystemNamespace": "checked",
    "Mesh.dataPlane": RENDERED,
    "Mesh.interception": "iptables only; explicit-proxy refused",
    "Mesh.networkPolicies": RENDERED,
    "Mesh.mtls": "permissive only; others refused",
    "Mesh.trustDomain": "the default only; others refused",
    "Mesh.authorization": "allow only; deny refused",
    "Mesh.services": RENDERED,
    "Mesh.ingress": RENDERED,
    "Mesh.accessLog": "false only; true refused",
    "Authorization.default": "allow only; deny refused",
    "AllowRule.from": REFUSED,
    "AllowRule.methods": REFUSED,
    "AllowRule.paths": REFUSED,
    "PathRule.exact": REFUSED,
    "PathRule.prefix": REFUSED,
    "Service.port": RENDERED,
    "Service.protocol": "http only; others refused",
    "Service.versions": RENDERED,
    "Service.routes": RENDERED,
    "Service.policy": REFUSED,
    "Service.allow": REFUSED,
    "Service.calls": REFUSED,
    "Policy.loadBalancer": REFUSED,
    **{f"HashCookie.{f}": REFUSED for f in ("name", "ttl", "path")},
    "Policy.connectionPool": REFUSED,
    "Policy.outlierDetection": REFUSED,
    **{
        f"ConnectionPool.{f}": REFUSED
        for f in (
            "maxConnections",
            "maxPendingRequests",
            "http2MaxRequests",
            "maxRequestsPerConnection",
            "maxRetries",
            "connectTimeout",
            "idleTimeout",
        )
    },
    **{
        f"OutlierDetection.{f}": REFUSED
        for f in (
            "consecutive5xxErrors",
            "consecutiveGatewayErrors",
            "interval",
            "baseEjectionTime",
            "maxEjectionPercent",
        )
    },
    **{
        f"Version.{f}": SHARED
        for f in (
            "image",
            "replicas",
            "env",
            "envFrom",
            "resources",
            "readiness",
        )
    },
    "Version.local": "sandbox only",
    **{f"LocalRun.{f}": "sandbox only" for f in ("command", "cwd", "env", "envFile")},
    **dict.fromkeys(
        (
            "EnvFrom.secretRef",
            "EnvFrom.configMapRef",
            "EnvFrom.prefix",
            "EnvRef.secretKeyRef",
            "EnvRef.configMapKeyRef",
            "KeyRef.name",
            "KeyRef.key",
            "NameRef.name",
            "ResourceAmounts.cpu",
            "ResourceAmounts.memory",
            "Resources.requests",
            "Resources.limits",
            "Readiness.path",
        ),
        SHARED,
    ),
    "Route.name": RENDERED,
    "Route.match": RENDERED,
    "Route.to": RENDERED,
    "Route.split": RENDERED,
    "Route.fault": REFUSED,
    "Route.timeout": RENDERED,
    "Route.retries": REFUSED,
    "Route.mirror": RENDERED,
    "Route.headers": RENDERED,
    "Route.destinationHeaders": "refused (filters per backend are implementation-specific)",
    "Route.rewrite": RENDERED,
    "Route.mirrors": RENDERED,
    "Route.redirect": RENDERED,
    "Route.respond": REFUSED,
    "Route.cors": REFUSED,
    **{
        f"Cors.{f}": REFUSED
        for f in (
            "allowOrigins",
            "allowMethods",
            "allowHeaders",
            "exposeHeaders",
            "maxAge",
            "allowCredentials",
        )
    },
    **{f"Redirect.{f}": RENDERED for f in ("uri", "scheme", "port")},
    "Redirect.authority": "lowercase host names (and a port); others refused",
    "Redirect.code": "301 and 302; others refused",
    **{f"Respond.{f}": REFUSED for f in ("status", "body")},
    "Match.withoutHeaders": REFUSED,
    "Match.ignoreUriCase": REFUSED,
    **{f"Fault.{f}": REFUSED for f in ("delay", "abort")},
    **dict.fromkeys(("Delay.fixed", "Delay.percent", "Abort.status", "Abort.percent"), REFUSED),
    **{f"Retries.{f}": REFUSED for f in ("attempts", "perTryTimeout", "on")},
    "Mirror.to": RENDERED,
    "Mirror.percent": RENDERED,
    **{f"Headers.{f}": RENDERED for f in ("request", "response")},
    **{f"HeaderChanges.{f}": RENDERED for f in ("set", "add", "remove")},
    "Rewrite.uri": "PathPrefix ending in / or exact paths; others refused",
    "Rewrite.uriRegexRewrite": REFUSED,
    "Rewrite.authority": "host names without a port; others refused",
    "RegexRewrite.match": REFUSED,
    "RegexRewrite.rewrite": REFUSED,
    "Match.path": "exact, prefix, regex (ranked safely or refused)",
    "Match.headers": RENDERED,
    "Match.method": "exact only; others refused",
    "Match.query": RENDERED,
    "Ingress.port": RENDERED,
    "Ingress.nodePort": REFUSED,
    "Ingress.hosts": RENDERED,
    "Ingress.tls": RENDERED,
    **{f"IngressTls.{f}": RENDERED for f in ("secretName", "issuer", "httpsRedirect")},
    "IngressTls.minVersion": "TLSv1.2 (the usual default) only; TLSv1.3 refused",
    "CertificateIssuer.name": RENDERED,
    "CertificateIssuer.kind": RENDERED,
    "Ingress.routes": RENDERED,
    "IngressRoute.name": RENDERED,
    "IngressRoute.match": RENDERED,
    "IngressRoute.service": RENDERED,
}


def test_every_field_of_the_spec_is_rendered_or_refused_on_this_plane() -> None:
    schema = sailplan.Mesh.model_json_schema(by_alias=True)
    fields = {f"Mesh.{name}" for name in schema["properties"]}
    for definition, body in schema.get("$defs", {}).items():
        fields |= {f"{definition}.{name}" for name in body.get("properties", {})}
    assert sorted(fields - set(FIELDS)) == [], "decide what gateway-api does with these"
    assert sorted(set(FIELDS) - fields) == [], "these fields are gone"
