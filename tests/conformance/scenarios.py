"""Conformance scenarios: a mesh, the requests sent to it, and what must come back on every plane.

A reply's label is its body for a 200 (`<service>/<version>`, the pod that answered), `404` for
"no route" (Envoy sends no body, the builtin gateway says "no route"), else `<status> <body>`.
`diverges` names a plane that does not yet do what the spec says, with the divergence's id from the
conformance issue: the scenario then must fail there (a strict xfail), so closing a divergence
shows up as an unexpected pass.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

Via = Literal["mesh", "ingress"]

# The caller of a mesh request with no `caller`: the `caller` service of `mesh()`.
DEFAULT_CALLER = "caller"
# A caller without a sidecar or certificate: it connects in plaintext straight to the pods of the
# Service (as kube-proxy spreads them), so no mesh routing applies and it carries no identity.
PLAINTEXT = "plaintext"
INGRESS = "ingress"


@dataclass(frozen=True)
class Send:
    path: str = "/"
    host: str = "service1"
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    via: Via = "mesh"
    count: int = 1
    # Sends of one step in flight at once on the builtin plane; 1 keeps round robin's order.
    concurrency: int = 16
    body: str = ""
    # Who sends it: a service of the mesh (through its sidecar, with its mTLS identity),
    # `ingress` (through the ingress gateway: `via` becomes "ingress") or PLAINTEXT. None: the
    # default caller for a mesh request, an outside client of the gateway for an ingress one.
    caller: str | None = None

    def __post_init__(self) -> None:
        if self.caller == INGRESS:
            object.__setattr__(self, "via", "ingress")
        assert self.via == "mesh" or self.caller in (None, INGRESS), "via ingress: no caller"

    @property
    def sender(self) -> str:
        """The caller of a mesh request: the named one, else the default."""
        return self.caller or DEFAULT_CALLER


@dataclass(frozen=True)
class Burst:
    """Requests in flight together: each is sent before any is answered (they ask for slow
    answers, `/sleep/<ms>`), so connection pools see them all at once. Only the mesh side."""

    sends: tuple[Send, ...]


@dataclass(frozen=True)
class Expect:
    shares: dict[str, float]
    # Allowed |observed - expected| share on the sampled (builtin) plane: at least 4.5 standard
    # deviations of the sample, so a correct plane fails about once in 150,000 runs.
    tolerance: float = 0.0
    seconds: tuple[float, float] | None = None  # every reply's time, lower and upper bound
    # Every request is also copied to this `<service>/<version>`: same method, path and body,
    # the Host with `-shadow`, the copies spread evenly over all its pods.
    mirrored: str | None = None
    # Further versions every request is also copied to, likewise (a route's `mirrors`).
    also_mirrored: tuple[str, ...] = ()
    # Requests the pods saw per send (attempts, retries included); checked with `count` 1.
    attempts: int | None = None
    # Headers of every request the pods saw, all lines of a name joined with ", " (None: absent).
    upstream_headers: dict[str, str | None] = field(default_factory=dict)
    # Headers of every answer a pod gave, likewise; the proxy's own answers are not checked.
    answer_headers: dict[str, str | None] = field(default_factory=dict)
    # The path (with query) of every request the pods saw.
    upstream_path: str | None = None
    # The Location of every answer (a redirect).
    location: str | None = None
    # Headers of every reply the caller gets, the proxy's own answers included, likewise.
    reply_headers: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    name: str
    spec: dict[str, Any]
    steps: list[tuple[Send | Burst, Expect]]
    diverges: dict[str, str] = field(default_factory=dict)
    # `<service>/<version>` -> how many of its pods (the first ones) refuse every connection.
    refusing: dict[str, int] = field(default_factory=dict)


def label(status: int, body: str) -> str:
    if status == 200:
        return body
    if status == 404:
        return "404"
    return f"{status} {body}"


def mesh(
    service1_routes: list[dict[str, Any]] | None = None,
    *,
    ingress: dict[str, Any] | None = None,
    replicas: dict[str, int] | None = None,
    service2: bool = False,
    policy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """service1 with v1/v2 (and the routes given), a caller to send from, optionally service2."""
    versions = {
        name: {"image": f"example/{name}", "replicas": (replicas or {}).get(name, 1)}
        for name in ("v1", "v2")
    }
    services: dict[str, Any] = {
        "service1": {"port": 8088, "versions": versions},
        "caller": {"port": 9000, "versions": {"v1": {"image": "example/caller"}}},
    }
    if policy is not None:
        services["service1"]["policy"] = copy.deepcopy(policy)
    if service1_routes is not None:
        services["service1"]["routes"] = copy.deepcopy(service1_routes)
    if service2:
        services["service2"] = {"port": 8880, "versions": {"v1": {"image": "example/greeter"}}}
    spec: dict[str, Any] = {
        "apiVersion": "sailplan/v1",
        "kind": "Mesh",
        "name": "conformance",
        "services": services,
    }
    if ingress is not None:
        spec["ingress"] = ingress
    return spec


V1, V2 = "service1/v1", "service1/v2"
# Envoy's local reply when a circuit breaker of the cluster is full.
OVERFLOW = "upstream connect error or disconnect/reset before headers. reset reason: overflow"
EVEN = {V1: 0.5, V2: 0.5}


def _with_v3(spec: dict[str, Any]) -> dict[str, Any]:
    """The mesh with a third version of service1, one pod."""
    spec["services"]["service1"]["versions"]["v3"] = {"image": "example/v3", "replicas": 1}
    return spec


# Envoy's RBAC filter's answer to a request no ALLOW policy lets in.
DENIED = "403 RBAC: access denied"


def _secured(
    spec: dict[str, Any],
    *,
    allow: list[dict[str, Any]],
    mtls: str | None = None,
    default: str | None = None,
) -> dict[str, Any]:
    """The mesh with `allow` on service1, and `mtls` and `authorization.default` when given."""
    spec["services"]["service1"]["allow"] = copy.deepcopy(allow)
    if mtls is not None:
        spec["mtls"] = mtls
    if default is not None:
        spec["authorization"] = {"default": default}
    return spec


def _with_service3(spec: dict[str, Any], *, allow: list[dict[str, Any]]) -> dict[str, Any]:
    """The mesh with a third service to call from, and `allow` on service1."""
    spec["services"]["service3"] = {"port": 8881, "versions": {"v1": {"image": "example/other"}}}
    return _secured(spec, allow=allow)


def _preflight(origin: str) -> dict[str, str]:
    return {"origin": origin, "access-control-request-method": "POST"}


# A preflight's answer from an allowed origin under the first route of the CORS scenario.
_CORS_ALL: dict[str, str | None] = {
    "access-control-allow-origin": "https://shop.example.com",
    "access-control-allow-methods": "GET,POST",
    "access-control-allow-headers": "content-type",
    "access-control-max-age": "3600",
    "access-control-allow-credentials": "true",
    "access-control-expose-headers": "x-request-id",
}


def _calling(spec: dict[str, Any], calls: list[str]) -> dict[str, Any]:
    """The mesh with the default caller's sidecar scoped to `calls`."""
    spec["services"][DEFAULT_CALLER]["calls"] = list(calls)
    return spec


# service1 with one pod (v1), whose routes a caller's sidecar applies only when it knows
# service1: a header match that marks the request, then an abort of everything else.
_SCOPED_ROUTES: list[dict[str, Any]] = [
    {
        "name": "testers",
        "match": [{"headers": {"end-user": "jason"}}],
        "to": "v1",
        "headers": {"request": {"set": {"x-route": "testers"}}},
    },
    {"name": "default", "to": "v1", "fault": {"abort": {"status": 503, "percent": 100}}},
]


SCENARIOS = [
    Scenario(
        "split-80-20",
        mesh([{"name": "canary", "split": {"v1": 80, "v2": 20}}]),
        [(Send(count=600), Expect({V1: 0.8, V2: 0.2}, tolerance=0.075))],
    ),
    Scenario(
        "header-match-then-default",
        mesh(
            [
                {"name": "testers", "match": [{"headers": {"end-user": "jason"}}], "to": "v2"},
                {"name": "default", "to": "v1"},
            ]
        ),
        [
            (Send(headers={"end-user": "jason"}), Expect({V2: 1.0})),
            (Send(headers={"end-user": "jasonx"}), Expect({V1: 1.0})),
            (Send(), Expect({V1: 1.0})),
        ],
    ),
    Scenario(
        "path-method-and-query-matches-in-order",
        mesh(
            [
                {"match": [{"path": {"exact": "/exact"}}], "to": "v2"},
                {"match": [{"method": "POST", "path": {"prefix": "/api/"}}], "to": "v2"},
                {"match": [{"query": {"beta": "1"}}], "to": "v2"},
                {"match": [{"path": {"regex": "/items/[0-9]+"}}], "to": "v2"},
                {"to": "v1"},
            ]
        ),
        [
            (Send("/exact"), Expect({V2: 1.0})),
            (Send("/exact/more"), Expect({V1: 1.0})),
            (Send("/api/users", method="POST"), Expect({V2: 1.0})),
            (Send("/api/users"), Expect({V1: 1.0})),
            (Send("/list?beta=1"), Expect({V2: 1.0})),
            (Send("/list?beta=10"), Expect({V1: 1.0})),
            (Send("/items/42"), Expect({V2: 1.0})),
            (Send("/items/x"), Expect({V1: 1.0})),
        ],
    ),
    Scenario(
        "unmatched-requests-reach-every-version",
        mesh([{"match": [{"path": {"prefix": "/only"}}], "to": "v2"}]),
        [
            (Send("/only/this"), Expect({V2: 1.0})),
            (Send("/other", count=200), Expect(EVEN, tolerance=0.16)),
        ],
    ),
    Scenario(
        "no-routes-spread-by-pods",
        mesh(replicas={"v1": 3, "v2": 1}),
        [(Send(count=400), Expect({V1: 0.75, V2: 0.25}, tolerance=0.07))],
    ),
    Scenario(
        "abort-half",
        mesh([{"to": "v1", "fault": {"abort": {"status": 400, "percent": 50}}}]),
        [
            (
                Send(count=600),
                Expect({V1: 0.5, "400 fault filter abort": 0.5}, tolerance=0.09),
            )
        ],
    ),
    Scenario(
        "delay-every-request",
        mesh([{"to": "v2", "fault": {"delay": {"fixed": "300ms", "percent": 100}}}]),
        [(Send(count=3), Expect({V2: 1.0}, seconds=(0.29, 0.9)))],
    ),
    Scenario(
        "timeout-answers-504",
        mesh([{"to": "v1", "timeout": "300ms"}]),
        [
            (
                Send("/sleep/1500"),
                Expect({"504 upstream request timeout": 1.0}, seconds=(0.29, 0.9)),
            ),
            (Send("/sleep/20"), Expect({V1: 1.0}, seconds=(0.0, 0.29))),
        ],
    ),
    Scenario(
        "retries-turn-flaky-into-success",
        mesh([{"to": "v1", "retries": {"attempts": 3, "on": ["5xx"]}}]),
        [
            (Send("/flaky/2"), Expect({V1: 1.0})),
            (Send("/flaky/9"), Expect({"503 service1/v1": 1.0})),
        ],
    ),
    Scenario(
        # Istio's VirtualService reference, with Istio's durations: gateway-error retries 503.
        "retries-as-istio-writes-retry-on",
        mesh(
            [
                {
                    "to": "v1",
                    "retries": {
                        "attempts": 3,
                        "perTryTimeout": "0.5s",
                        "on": "gateway-error,connect-failure,refused-stream",
                    },
                }
            ]
        ),
        [
            (Send("/flaky/2"), Expect({V1: 1.0})),
            (Send("/flaky/9"), Expect({"503 service1/v1": 1.0})),
        ],
    ),
    Scenario(
        # A refused HTTP/2 stream never comes from an HTTP/1.1 app: a 503 is not retried.
        "retries-on-refused-stream-only",
        mesh([{"to": "v1", "retries": {"attempts": 3, "on": "refused-stream"}}]),
        [(Send("/flaky/1"), Expect({"503 service1/v1": 1.0}))],
    ),
    Scenario(
        "experiment-fault-delay-abort",
        mesh(
            [
                {
                    "name": "chaos",
                    "to": "v1",
                    "fault": {
                        "delay": {"fixed": "200ms", "percent": 100},
                        "abort": {"status": 400, "percent": 50},
                    },
                }
            ]
        ),
        [
            (
                Send(count=200),
                Expect(
                    {V1: 0.5, "400 fault filter abort": 0.5}, tolerance=0.16, seconds=(0.19, 1.5)
                ),
            )
        ],
    ),
    Scenario(
        "ingress-picks-the-service-then-its-rules",
        mesh(
            [
                {"match": [{"headers": {"end-user": "jason"}}], "to": "v2"},
                {"to": "v1"},
            ],
            ingress={
                "port": 80,
                "routes": [{"match": {"path": {"prefix": "/api"}}, "service": "service1"}],
            },
        ),
        [
            (Send("/api/users", via="ingress", host="shop.example"), Expect({V1: 1.0})),
            (
                Send("/api/users", via="ingress", headers={"end-user": "jason"}),
                Expect({V2: 1.0}),
            ),
            (Send("/elsewhere", via="ingress"), Expect({"404": 1.0})),
        ],
    ),
    # -- the divergences found by probing (issue: one spec, one behaviour) ----------------------
    Scenario(
        "D1-path-regex-matches-the-whole-path",
        mesh([{"match": [{"path": {"regex": "/api/v[0-9]"}}], "to": "v2"}, {"to": "v1"}]),
        [
            (Send("/api/v1"), Expect({V2: 1.0})),
            (Send("/api/v1/users"), Expect({V1: 1.0})),
            (Send("/xx/api/v1"), Expect({V1: 1.0})),
        ],
    ),
    Scenario(
        "D3-timeout-bounds-the-request-including-retries",
        mesh(
            [
                {
                    "to": "v1",
                    "timeout": "1s",
                    "retries": {"attempts": 3, "perTryTimeout": "400ms", "on": ["5xx"]},
                }
            ]
        ),
        [
            (
                Send("/sleep/2000"),
                # Attempts start at 0, 400 and 800 ms; the third is cut short at 1 s.
                Expect({"504 upstream request timeout": 1.0}, seconds=(0.95, 1.3), attempts=3),
            ),
            # Fast failures are retried inside the same budget.
            (Send("/flaky/2"), Expect({V1: 1.0}, seconds=(0.0, 0.5), attempts=3)),
        ],
    ),
    Scenario(
        # Istio's default retry policy (2 retries on connect-failure, on another endpoint) turns
        # two refusing pods out of three into no failure at all; one retry would fail 1 in 3.
        "D13-a-route-without-retries-retries-refused-connections-twice",
        mesh([{"to": "v1"}], replicas={"v1": 3}),
        [(Send(count=12, concurrency=1), Expect({V1: 1.0}))],
        refusing={V1: 2},
    ),
    Scenario(
        # Envoy counts a connection pool per upstream cluster (a version's subset), whichever
        # route sends the request there: 1 connection + 1 pending, the other two overflow.
        "D11-connection-pool-counts-every-route-to-the-version",
        mesh(
            [{"match": [{"headers": {"lane": "a"}}], "to": "v1"}, {"to": "v1"}],
            policy={"connectionPool": {"maxConnections": 1, "maxPendingRequests": 1}},
        ),
        [
            (
                Burst(
                    (
                        Send("/sleep/700", headers={"lane": "a"}),
                        Send("/sleep/700", headers={"lane": "a"}),
                        Send("/sleep/700"),
                        Send("/sleep/700"),
                    )
                ),
                Expect({V1: 0.5, f"503 {OVERFLOW}": 0.5}),
            )
        ],
    ),
    Scenario(
        "D4-mirror-copies-method-body-to-every-pod",
        mesh([{"to": "v1", "mirror": {"to": "v2", "percent": 100}}], replicas={"v2": 3}),
        [
            (
                Send("/things/7?x=1", method=method, body=body, count=6, concurrency=1),
                Expect({V1: 1.0}, mirrored=V2),
            )
            for method, body in (("PATCH", '{"a": 1}'), ("OPTIONS", ""), ("POST", "form=1"))
        ],
    ),
    Scenario(
        "D6-regex-service-rule-behind-an-ingress-prefix",
        mesh(
            [{"match": [{"path": {"regex": "/api/v1/.*"}}], "to": "v2"}, {"to": "v1"}],
            ingress={
                "port": 80,
                "routes": [{"match": {"path": {"prefix": "/api"}}, "service": "service1"}],
            },
        ),
        [
            (Send("/api/v1/users", via="ingress"), Expect({V2: 1.0})),
            (Send("/api/v2/users", via="ingress"), Expect({V1: 1.0})),
        ],
    ),
    Scenario(
        # The Gateway API's PathPrefix /api/ also takes /api; sailplan's prefix does not.
        "prefix-ending-in-slash-leaves-the-bare-path-to-later-routes",
        mesh(
            [
                {"match": [{"path": {"exact": "/api/login"}, "method": "POST"}], "to": "v1"},
                {"match": [{"path": {"prefix": "/api/"}}], "to": "v2"},
                {"to": "v1"},
            ]
        ),
        [
            (Send("/api/login", method="POST"), Expect({V1: 1.0})),
            (Send("/api/login"), Expect({V2: 1.0})),
            (Send("/api/"), Expect({V2: 1.0})),
            (Send("/api"), Expect({V1: 1.0})),
            (Send("/apix"), Expect({V1: 1.0})),
        ],
    ),
    Scenario(
        "D16-header-exact-compares-the-whole-value",
        mesh([{"match": [{"headers": {"end-user": "jason"}}], "to": "v2"}, {"to": "v1"}]),
        [(Send(headers={"end-user": "bob, jason"}), Expect({V1: 1.0}))],
    ),
    Scenario(
        # Outlier detection reacts to answers only, each step one request: three 503s in a row
        # from v1's one pod eject it (a 200 in between starts the count again), and then no
        # endpoint is left (Istio turns Envoy's panic routing off).
        "D10-outlier-detection-ejects-after-consecutive-errors",
        mesh(
            [{"to": "v1"}],
            policy={
                "outlierDetection": {
                    "consecutive5xxErrors": 3,
                    "maxEjectionPercent": 100,
                    "baseEjectionTime": "5m",
                }
            },
        ),
        [
            (Send("/flaky/2"), Expect({"503 service1/v1": 1.0})),
            (Send("/flaky/2"), Expect({"503 service1/v1": 1.0})),
            (Send("/"), Expect({V1: 1.0})),
            (Send("/flaky/9"), Expect({"503 service1/v1": 1.0})),
            (Send("/flaky/9"), Expect({"503 service1/v1": 1.0})),
            (Send("/flaky/9"), Expect({"503 service1/v1": 1.0})),
            (Send("/"), Expect({"503 no healthy upstream": 1.0})),
        ],
    ),
    Scenario(
        "route-headers-change-the-request-and-the-apps-answer",
        mesh(
            [
                {
                    "match": [{"headers": {"lane": "a"}}],
                    "to": "v2",
                    "headers": {
                        "request": {
                            "set": {"x-canary": "100%"},
                            "add": {"x-tag": "checkout"},
                            "remove": ["x-debug"],
                        },
                        "response": {"set": {"x-route": "a"}, "remove": ["server"]},
                    },
                },
                {
                    "to": "v1",
                    "fault": {"abort": {"status": 503, "percent": 50}},
                    "headers": {"response": {"add": {"x-route": "other"}}},
                },
            ]
        ),
        [
            (
                Send(headers={"lane": "a", "x-debug": "1", "x-tag": "cart", "x-canary": "no"}),
                Expect(
                    {V2: 1.0},
                    upstream_headers={
                        "x-canary": "100%",
                        "x-tag": "cart, checkout",
                        "x-debug": None,
                        "lane": "a",
                    },
                    answer_headers={"x-route": "a", "server": None},
                ),
            ),
            (
                Send(headers={"x-debug": "1"}, count=200),
                Expect(
                    {V1: 0.5, "503 fault filter abort": 0.5},
                    tolerance=0.16,
                    upstream_headers={"x-debug": "1", "x-canary": None},
                    answer_headers={"x-route": "other"},
                ),
            ),
        ],
    ),
    Scenario(
        # What the Gateway API's filters can say: header changes, a prefix rewrite on a prefix
        # ending in /, a full-path rewrite of an exact path, the authority.
        "route-changes-the-gateway-api-can-say",
        mesh(
            [
                {
                    "match": [{"path": {"prefix": "/old/"}}],
                    "to": "v2",
                    "rewrite": {"uri": "/new/", "authority": "users.internal"},
                    "headers": {
                        "request": {
                            "set": {"x-canary": "100%"},
                            "add": {"x-tag": "checkout"},
                            "remove": ["x-debug"],
                        },
                        "response": {"set": {"x-route": "old"}, "remove": ["server"]},
                    },
                },
                {"match": [{"path": "/exact"}], "to": "v2", "rewrite": {"uri": "/replaced"}},
                {"to": "v1"},
            ]
        ),
        [
            (
                Send("/old/items?x=1", headers={"x-debug": "1", "x-tag": "cart"}),
                Expect(
                    {V2: 1.0},
                    upstream_path="/new/items?x=1",
                    upstream_headers={
                        "host": "users.internal",
                        "x-canary": "100%",
                        "x-tag": "cart, checkout",
                        "x-debug": None,
                    },
                    answer_headers={"x-route": "old", "server": None},
                ),
            ),
            (Send("/old/"), Expect({V2: 1.0}, upstream_path="/new/")),
            (
                Send("/old", headers={"x-debug": "1"}),
                Expect(
                    {V1: 1.0},
                    upstream_path="/old",
                    upstream_headers={"host": "service1", "x-debug": "1", "x-canary": None},
                ),
            ),
            (Send("/exact?q=2"), Expect({V2: 1.0}, upstream_path="/replaced?q=2")),
        ],
    ),
    Scenario(
        "rewrite-prefix-exact-regex-and-authority",
        mesh(
            [
                {
                    "match": [{"path": {"prefix": "/old/"}}, {"path": {"prefix": "/legacy"}}],
                    "to": "v2",
                    "rewrite": {"uri": "/new/", "authority": "users.internal"},
                },
                {"match": [{"path": "/exact"}], "to": "v2", "rewrite": {"uri": "/replaced"}},
                {
                    "match": [{"path": {"prefix": "/api/"}}],
                    "to": "v1",
                    "rewrite": {
                        "uriRegexRewrite": {"match": "/api/v([0-9]+)/(.*)", "rewrite": "/\\2/v\\1"}
                    },
                },
                {"to": "v1"},
            ]
        ),
        [
            (
                Send("/old/items?x=1"),
                Expect(
                    {V2: 1.0},
                    upstream_path="/new/items?x=1",
                    upstream_headers={"host": "users.internal"},
                ),
            ),
            (Send("/legacy/old/a"), Expect({V2: 1.0}, upstream_path="/new//old/a")),
            (
                Send("/exact?q=2"),
                Expect(
                    {V2: 1.0}, upstream_path="/replaced?q=2", upstream_headers={"host": "service1"}
                ),
            ),
            (Send("/api/v12/users/7"), Expect({V1: 1.0}, upstream_path="/users/7/v12")),
            (Send("/api/other"), Expect({V1: 1.0}, upstream_path="/api/other")),
        ],
    ),
    Scenario(
        "redirect-and-direct-response-answer-without-forwarding",
        mesh(
            [
                {"match": [{"path": "/login"}], "redirect": {"uri": "/v2/login", "code": 302}},
                {
                    "match": [{"path": {"prefix": "/secure"}}],
                    "redirect": {"scheme": "https", "authority": "shop.example.com", "port": 8443},
                },
                {
                    "match": [{"path": {"prefix": "/maintenance"}}],
                    "respond": {"status": 503, "body": "down for maintenance"},
                },
                {"match": [{"path": "/ok"}], "respond": {"status": 200, "body": "fine"}},
                {"to": "v1"},
            ]
        ),
        [
            (
                Send("/login?next=%2F"),
                Expect({"302 ": 1.0}, location="http://service1/v2/login?next=%2F"),
            ),
            (
                Send("/secure/cart"),
                Expect({"301 ": 1.0}, location="https://shop.example.com:8443/secure/cart"),
            ),
            (Send("/maintenance/x"), Expect({"503 down for maintenance": 1.0}, attempts=0)),
            (Send("/ok"), Expect({"fine": 1.0}, attempts=0)),
            (Send("/other"), Expect({V1: 1.0})),
        ],
    ),
    Scenario(
        "presence-negative-and-any-case-matches",
        mesh(
            [
                {"match": [{"headers": {"x-canary": {}}}], "to": "v2"},
                {
                    "match": [{"path": "/ok", "withoutHeaders": {"x-debug": {}}}],
                    "respond": {"status": 200, "body": "no debug"},
                },
                {
                    "match": [{"path": "/any", "withoutHeaders": {"x-v": {"regex": ".*"}}}],
                    "respond": {"status": 200, "body": "never"},
                },
                {
                    "match": [{"path": {"prefix": "/API/"}, "ignoreUriCase": True}],
                    "respond": {"status": 200, "body": "api"},
                },
                {"to": "v1"},
            ]
        ),
        [
            (Send(headers={"x-canary": ""}), Expect({V2: 1.0})),
            (Send("/ok"), Expect({"no debug": 1.0})),
            (Send("/ok", headers={"x-debug": "1"}), Expect({V1: 1.0})),
            (Send("/any"), Expect({V1: 1.0})),
            (Send("/Api/users"), Expect({"api": 1.0})),
            (Send("/apix"), Expect({V1: 1.0})),
        ],
    ),
    Scenario(
        "several-mirrors-each-copy-method-path-and-body",
        _with_v3(
            mesh(
                [{"to": "v1", "mirrors": [{"to": "v2"}, {"to": "v3", "percent": 100}]}],
                replicas={"v2": 2},
            )
        ),
        [
            (
                Send("/orders?id=3", method="PUT", body='{"n": 1}', count=4, concurrency=1),
                Expect({V1: 1.0}, mirrored=V2, also_mirrored=("service1/v3",)),
            )
        ],
    ),
    # -- authorization (`allow`, `authorization.default`): the caller's identity decides ----------
    Scenario(
        "allow-by-caller-method-and-path",
        _with_service3(
            mesh(
                [{"to": "v1"}],
                service2=True,
                ingress={"port": 80, "routes": [{"service": "service1"}]},
            ),
            allow=[
                {"from": ["service2"], "methods": ["GET"], "paths": [{"prefix": "/api/"}]},
                {"from": ["ingress"], "paths": [{"exact": "/public"}]},
            ],
        ),
        [
            (Send("/api/users", caller="service2"), Expect({V1: 1.0})),
            # The prefix is `/api/`: the bare `/api` is not under it.
            (Send("/api", caller="service2"), Expect({DENIED: 1.0})),
            (Send("/api/users", method="POST", caller="service2"), Expect({DENIED: 1.0})),
            (Send("/public", caller="service2"), Expect({DENIED: 1.0})),
            (Send("/api/users", caller="service3"), Expect({DENIED: 1.0})),
            (Send("/api/users"), Expect({DENIED: 1.0})),
            (Send("/api/users", caller="ingress"), Expect({DENIED: 1.0})),
            (Send("/public", caller="ingress"), Expect({V1: 1.0})),
            # Paths are compared without the query string.
            (Send("/public?page=2", caller="ingress"), Expect({V1: 1.0})),
            (Send("/public/more", caller="ingress"), Expect({DENIED: 1.0})),
        ],
    ),
    Scenario(
        "default-deny-lets-in-only-what-allow-says",
        _secured(
            mesh([{"to": "v1"}], service2=True),
            mtls="strict",
            allow=[{"from": ["caller"]}],
            default="deny",
        ),
        [
            (Send("/any", method="DELETE"), Expect({V1: 1.0})),
            (Send("/", caller="service2"), Expect({DENIED: 1.0})),
            (Send("/", host="service2"), Expect({DENIED: 1.0})),
        ],
    ),
    Scenario(
        # Permissive takes plaintext on the same port, but a plaintext caller has no identity:
        # only a rule without `from` lets it in.
        "permissive-plaintext-caller-has-no-identity",
        _secured(
            mesh([{"to": "v1"}], replicas={"v2": 0}),
            mtls="permissive",
            allow=[{"from": ["caller"]}, {"paths": [{"prefix": "/public/"}]}],
        ),
        [
            (Send("/api/users"), Expect({V1: 1.0})),
            (Send("/api/users", caller=PLAINTEXT), Expect({DENIED: 1.0})),
            (Send("/public/x", caller=PLAINTEXT), Expect({V1: 1.0})),
        ],
    ),
    Scenario(
        "cors-preflights-answered-and-allowed-origins-get-the-headers",
        mesh(
            [
                {
                    "match": [{"path": {"prefix": "/api/"}}],
                    "to": "v2",
                    "cors": {
                        "allowOrigins": [
                            {"exact": "https://shop.example.com"},
                            {"regex": "https://[a-z]+[.]example[.]org"},
                        ],
                        "allowMethods": ["GET", "POST"],
                        "allowHeaders": ["content-type"],
                        "exposeHeaders": ["x-request-id"],
                        "maxAge": "1h",
                        "allowCredentials": True,
                    },
                },
                {
                    "match": [{"path": {"prefix": "/down/"}}],
                    "respond": {"status": 503, "body": "down"},
                    "cors": {"allowOrigins": ["*"]},
                },
                {"to": "v1"},
            ],
            ingress={
                "port": 80,
                "routes": [{"match": {"path": {"prefix": "/api/"}}, "service": "service1"}],
            },
        ),
        [
            (
                Send(
                    "/api/items", method="OPTIONS", headers=_preflight("https://shop.example.com")
                ),
                Expect({"": 1.0}, attempts=0, reply_headers=_CORS_ALL),
            ),
            # The gateway repeats the service's rules, its CORS policy included.
            (
                Send(
                    "/api/items",
                    method="OPTIONS",
                    headers=_preflight("https://shop.example.com"),
                    via="ingress",
                ),
                Expect({"": 1.0}, attempts=0, reply_headers=_CORS_ALL),
            ),
            (
                Send("/api/items", headers={"origin": "https://abc.example.org"}),
                Expect(
                    {V2: 1.0},
                    reply_headers={
                        "access-control-allow-origin": "https://abc.example.org",
                        "access-control-allow-credentials": "true",
                        "access-control-expose-headers": "x-request-id",
                        "access-control-allow-methods": None,
                    },
                ),
            ),
            (
                Send("/api/items", method="OPTIONS", headers=_preflight("https://evil.example")),
                Expect({V2: 1.0}, attempts=1, reply_headers=dict.fromkeys(_CORS_ALL)),
            ),
            (
                Send("/down/x", headers={"origin": "https://any.where"}),
                Expect(
                    {"503 down": 1.0},
                    reply_headers={
                        "access-control-allow-origin": "https://any.where",
                        "access-control-allow-credentials": None,
                    },
                ),
            ),
            (
                Send("/other", headers={"origin": "https://shop.example.com"}),
                Expect({V1: 1.0}, reply_headers=dict.fromkeys(_CORS_ALL)),
            ),
        ],
    ),
    # -- `calls`: a caller's sidecar scoped to the services it lists (issue 13) ---------------
    Scenario(
        "calls-listed-service-gets-its-routes-and-faults",
        _calling(mesh(_SCOPED_ROUTES, replicas={"v2": 0}, service2=True), ["service1"]),
        [
            (
                Send(headers={"end-user": "jason"}),
                Expect({V1: 1.0}, upstream_headers={"x-route": "testers"}),
            ),
            (Send(), Expect({"503 fault filter abort": 1.0}, attempts=0)),
        ],
    ),
    Scenario(
        # Not listed: the caller's proxy does not know service1, so the request passes through
        # to the Service's address (any pod), its routes, match and fault unused.
        "calls-unlisted-service-passes-through-without-its-routes",
        _calling(mesh(_SCOPED_ROUTES, replicas={"v2": 0}, service2=True), ["service2"]),
        [
            (
                Send(headers={"end-user": "jason"}),
                Expect({V1: 1.0}, upstream_headers={"x-route": None}),
            ),
            (Send(), Expect({V1: 1.0}, attempts=1)),
            (Send(host="service2"), Expect({"service2/v1": 1.0})),
        ],
    ),
    Scenario(
        # Passed through, the request leaves without the caller's certificate: the callee's
        # authorization still applies, to a caller with no identity (plaintext, as `permissive`
        # takes it).
        "calls-unlisted-callee-still-applies-authorization",
        _calling(
            _secured(
                mesh([{"to": "v1"}], replicas={"v2": 0}, service2=True),
                mtls="permissive",
                allow=[{"from": ["caller", "service2"]}, {"paths": [{"prefix": "/public/"}]}],
            ),
            ["service2"],
        ),
        [
            (Send("/api/users"), Expect({DENIED: 1.0})),
            (Send("/public/x"), Expect({V1: 1.0})),
            (Send("/api/users", caller="service2"), Expect({V1: 1.0})),
        ],
    ),
    Scenario(
        # Header changes per destination: the one destination's, which Istio appends to the
        # rule's, and a split's, which each weighted cluster makes itself (the same changes on
        # both, so one forwarded request shows them).
        "headers-per-destination",
        mesh(
            [
                {
                    "match": [{"headers": {"lane": "a"}}],
                    "to": "v2",
                    "headers": {
                        "request": {"set": {"x-route": "a"}},
                        "response": {"set": {"x-route": "a"}},
                    },
                    "destinationHeaders": {
                        "v2": {
                            "request": {"set": {"x-dest": "v2"}, "remove": ["x-debug"]},
                            "response": {"add": {"x-dest": "v2"}, "remove": ["server"]},
                        }
                    },
                },
                {
                    "split": {"v1": 50, "v2": 50},
                    "destinationHeaders": {
                        version: {
                            "request": {"add": {"x-tag": "split"}},
                            "response": {"set": {"x-dest": "split"}},
                        }
                        for version in ("v1", "v2")
                    },
                },
            ]
        ),
        [
            (
                Send(headers={"lane": "a", "x-debug": "1", "x-dest": "client"}),
                Expect(
                    {V2: 1.0},
                    upstream_headers={"x-route": "a", "x-dest": "v2", "x-debug": None},
                    answer_headers={"x-route": "a", "x-dest": "v2", "server": None},
                ),
            ),
            (
                Send(headers={"x-tag": "cart", "x-debug": "1"}, count=200),
                Expect(
                    EVEN,
                    tolerance=0.16,
                    upstream_headers={"x-tag": "cart, split", "x-debug": "1", "x-route": None},
                    answer_headers={"x-dest": "split", "x-route": None},
                ),
            ),
        ],
    ),
    # -- redirects alone, which the gateway-api plane says too (it cannot say `respond`) ----------
    Scenario(
        "redirects-replace-what-they-name-and-keep-the-rest",
        mesh(
            [
                {"match": [{"path": "/login"}], "redirect": {"uri": "/v2/login", "code": 302}},
                {
                    "match": [{"path": {"prefix": "/secure/"}}],
                    "redirect": {"scheme": "https", "authority": "shop.example.com", "port": 8443},
                },
                {"match": [{"path": {"prefix": "/tls/"}}], "redirect": {"scheme": "https"}},
                {
                    "match": [{"path": {"prefix": "/moved/"}}],
                    "redirect": {"authority": "a.example"},
                },
                {"to": "v1"},
            ],
            ingress={"port": 80, "routes": [{"service": "service1"}]},
        ),
        [
            # Callers name the Service's port in Host, as clients name the port they send to.
            (
                Send("/login?next=%2F", host="service1:8088"),
                Expect({"302 ": 1.0}, location="http://service1:8088/v2/login?next=%2F"),
            ),
            (
                Send("/secure/cart", host="service1:8088"),
                Expect({"301 ": 1.0}, location="https://shop.example.com:8443/secure/cart"),
            ),
            (
                Send("/tls/x?y=1", host="service1:8088"),
                Expect({"301 ": 1.0}, location="https://service1:8088/tls/x?y=1"),
            ),
            (
                Send("/moved/a", host="service1:8088"),
                Expect({"301 ": 1.0}, location="http://a.example/moved/a"),
            ),
            (Send("/tls", host="service1:8088"), Expect({V1: 1.0})),
            (
                Send("/tls/x", host="shop.example.com", via="ingress"),
                Expect({"301 ": 1.0}, location="https://shop.example.com/tls/x"),
            ),
        ],
    ),
]
