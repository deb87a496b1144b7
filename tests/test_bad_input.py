"""Every bad spec gets every problem reported, each at its path with a plain sentence."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from model_support import DELETE, edited

import sailplan

R0 = "services.service1.routes[0]"
V1 = "services.service1.versions.v1"

CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    # -- names
    (
        "mesh name not DNS",
        {"name": "Demo_Mesh"},
        [
            "name: 'Demo_Mesh' is not a valid name: use lowercase letters, digits and '-', start and end with a letter or digit, at most 63 characters"
        ],
    ),
    (
        "namespace too long",
        {"namespace": "n" * 64},
        [
            f"namespace: '{'n' * 64}' is not a valid name: use lowercase letters, digits and '-', start and end with a letter or digit, at most 63 characters"
        ],
    ),
    (
        "service name uppercase",
        {"services.Service3": {"port": 80, "versions": {"v1": {"image": "x"}}}},
        [
            "services.Service3: 'Service3' is not a valid name: use lowercase letters, digits and '-', start and end with a letter or digit, at most 63 characters"
        ],
    ),
    (
        "service name starts with digit",
        {"services.3d": {"port": 80, "versions": {"v1": {"image": "x"}}}},
        ["services.3d: '3d' is not a valid service name: it must start with a letter"],
    ),
    (
        "workload name too long",
        {"services.service1.versions." + "v" * 60: {"image": "x"}},
        [
            f"services.service1.versions.{'v' * 60}: the workload name 'service1-{'v' * 60}' is longer than 63 characters; shorten the service or version name"
        ],
    ),
    (
        "route name invalid",
        {f"{R0}.name": "Canary!"},
        [
            f"{R0}.name: 'Canary!' is not a valid name: use lowercase letters, digits and '-', start and end with a letter or digit, at most 63 characters"
        ],
    ),
    # -- ports
    (
        "port zero",
        {"services.service1.port": 0},
        ["services.service1.port: 0 is not a valid port: use a number from 1 to 65535"],
    ),
    (
        "port too big",
        {"services.service1.port": 70000},
        ["services.service1.port: 70000 is not a valid port: use a number from 1 to 65535"],
    ),
    (
        "port as text",
        {"services.service1.port": "http"},
        ["services.service1.port: must be a whole number, got 'http'"],
    ),
    (
        "ingress port",
        {"ingress.port": -1},
        ["ingress.port: -1 is not a valid port: use a number from 1 to 65535"],
    ),
    (
        "node port range",
        {"ingress.nodePort": 8080},
        ["ingress.nodePort: 8080 is outside the NodePort range 30000-32767"],
    ),
    # -- references
    (
        "route to unknown version",
        {f"{R0}.split": DELETE, f"{R0}.to": "v3"},
        [f"{R0}.to: unknown version 'v3'; this service has: v1, v2"],
    ),
    (
        "split with unknown version",
        {f"{R0}.split": {"v1": 80, "v9": 20}},
        [f"{R0}.split.v9: unknown version 'v9'; this service has: v1, v2"],
    ),
    (
        "mirror unknown version",
        {f"{R0}.mirror": {"to": "v7"}},
        [f"{R0}.mirror.to: unknown version 'v7'; this service has: v1, v2"],
    ),
    (
        "mirror to its own destination",
        {f"{R0}.split": DELETE, f"{R0}.to": "v2", f"{R0}.mirror": {"to": "v2"}},
        [
            f"{R0}.mirror.to: 'v2' already receives this route's requests; mirror to a version the route does not send to"
        ],
    ),
    (
        "ingress unknown service",
        {"ingress.routes[0].service": "service9"},
        ["ingress.routes[0].service: unknown service 'service9'; services are: service1, service2"],
    ),
    # -- splits and routes
    (
        "split sums to 90",
        {f"{R0}.split": {"v1": 80, "v2": 10}},
        [f"{R0}.split: weights add up to 90, they must add up to 100"],
    ),
    (
        "split sums to 110",
        {f"{R0}.split": {"v1": 90, "v2": 20}},
        [f"{R0}.split: weights add up to 110, they must add up to 100"],
    ),
    (
        "negative weight",
        {f"{R0}.split": {"v1": 110, "v2": -10}},
        [
            f"{R0}.split.v1: must be at most 100, got 110",
            f"{R0}.split.v2: must be at least 0, got -10",
        ],
    ),
    ("empty split", {f"{R0}.split": {}}, [f"{R0}.split: a split needs at least one version"]),
    ("to and split", {f"{R0}.to": "v1"}, [f"{R0}: give either `to` or `split`, not both"]),
    (
        "no destination",
        {f"{R0}.split": DELETE},
        [
            f"{R0}: a route needs a destination: `to: <version>` or a `split`, or an answer: "
            "`redirect` or `respond`"
        ],
    ),
    (
        "duplicate route names",
        {
            "services.service1.routes[1]": {
                "name": "canary",
                "to": "v1",
                "match": [{"path": {"prefix": "/a"}}],
            }
        },
        [
            f"{R0}: this route matches every request, so routes[1] after it can never match; move it last or give it a match",
            "services.service1.routes[1].name: route name 'canary' is already used by routes[0]",
        ],
    ),
    (
        "catch-all first",
        {"services.service1.routes[1]": {"to": "v1", "match": [{"path": {"prefix": "/a"}}]}},
        [
            f"{R0}: this route matches every request, so routes[1] after it can never match; move it last or give it a match"
        ],
    ),
    ("empty match list", {f"{R0}.match": []}, [f"{R0}.match: must not be empty"]),
    (
        "ingress catch-all first",
        {
            "ingress.routes[0].match": DELETE,
            "ingress.routes[1]": {"service": "service1", "match": {"path": {"prefix": "/x"}}},
        },
        [
            "ingress.routes[0]: this route matches every request, so routes[1] after it can never match; move it last or give it a match"
        ],
    ),
    # -- matches
    (
        "two string kinds",
        {f"{R0}.match": [{"path": {"exact": "/a", "prefix": "/b"}}]},
        [f"{R0}.match[0].path: give exactly one of exact, prefix or regex (found: exact, prefix)"],
    ),
    (
        "no string kind",
        {f"{R0}.match": [{"path": {}}]},
        [f"{R0}.match[0].path: give exactly one of exact, prefix or regex (found: none)"],
    ),
    (
        "relative path",
        {f"{R0}.match": [{"path": {"prefix": "api"}}]},
        [f"{R0}.match[0].path: 'api' must start with '/'"],
    ),
    (
        "bad regex",
        {f"{R0}.match": [{"path": {"regex": "/(a"}}]},
        [
            f"{R0}.match[0].path.regex: '/(a' is not a valid regular expression (RE2 syntax): missing ): /(a"
        ],
    ),
    (
        # RE2 takes both; HAProxy's PCRE2 refused them, so builtin pods would crash-loop.
        "regex too long",
        {f"{R0}.match": [{"path": {"regex": "/" + "a" * 70_000}}]},
        [
            f"{R0}.match[0].path.regex: is 70001 characters long: a regular expression may have at most 1024"
        ],
    ),
    (
        "regex nested too deep",
        {f"{R0}.match": [{"path": {"regex": "/" + "(" * 260 + "a" + ")" * 260}}]},
        [
            f"{R0}.match[0].path.regex: nests groups 260 deep: a regular expression may nest at most 50"
        ],
    ),
    (
        "lookahead regex",
        {f"{R0}.match": [{"path": {"regex": "/(?!admin)"}}]},
        [
            f"{R0}.match[0].path.regex: '/(?!admin)' uses lookaround or a backreference, which RE2 (Envoy) does not support"
        ],
    ),
    (
        "uppercase header",
        {f"{R0}.match": [{"headers": {"End-User": "jason"}}]},
        [
            f"{R0}.match[0].headers.End-User: 'End-User' is not a valid header name: use lowercase letters, digits and '-'"
        ],
    ),
    (
        "unknown method",
        {f"{R0}.match": [{"method": "FETCH"}]},
        [
            f"{R0}.match[0].method: 'FETCH' is not an HTTP method: use one of CONNECT, DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT, TRACE"
        ],
    ),
    # -- faults
    (
        "abort status 600",
        {f"{R0}.fault": {"abort": {"status": 600}}},
        [f"{R0}.fault.abort.status: 600 is not an HTTP status to abort with: use 200 to 599"],
    ),
    (
        "abort status 199",
        {f"{R0}.fault": {"abort": {"status": 199}}},
        [f"{R0}.fault.abort.status: 199 is not an HTTP status to abort with: use 200 to 599"],
    ),
    (
        "abort percent 150",
        {f"{R0}.fault": {"abort": {"status": 503, "percent": 150}}},
        [f"{R0}.fault.abort.percent: 150 is not a percentage: use a number from 0 to 100"],
    ),
    (
        "delay percent negative",
        {f"{R0}.fault": {"delay": {"fixed": "1s", "percent": -1}}},
        [f"{R0}.fault.delay.percent: -1 is not a percentage: use a number from 0 to 100"],
    ),
    (
        "percent too small",
        {f"{R0}.fault": {"delay": {"fixed": "1s", "percent": 0.00001}}},
        [f"{R0}.fault.delay.percent: 1e-05 is too small: use 0 or at least 0.0001"],
    ),
    ("empty fault", {f"{R0}.fault": {}}, [f"{R0}.fault: a fault needs a delay, an abort or both"]),
    (
        "delay without duration",
        {f"{R0}.fault": {"delay": {"percent": 10}}},
        [f"{R0}.fault.delay.fixed: is required"],
    ),
    # -- durations
    (
        "duration without unit",
        {f"{R0}.timeout": 2},
        [f"{R0}.timeout: 2 has no unit: write 2s or 2ms"],
    ),
    (
        "duration finer than a millisecond",
        {f"{R0}.timeout": "1.5ms"},
        [
            f"{R0}.timeout: '1.5ms' is finer than a millisecond: Istio takes whole milliseconds, so write 2ms or another whole number of milliseconds"
        ],
    ),
    (
        "duration unknown unit",
        {f"{R0}.timeout": "2d"},
        [
            f"{R0}.timeout: '2d' is not a duration: write a number with a unit, such as 500ms, 0.5s, 1m30s or 2h"
        ],
    ),
    (
        "duration negative",
        {f"{R0}.timeout": "-1s"},
        [f"{R0}.timeout: '-1s' is negative: a duration must be at least 1ms"],
    ),
    (
        "duration zero",
        {f"{R0}.timeout": "0s"},
        [f"{R0}.timeout: '0s' is too short: a duration must be at least 1ms"],
    ),
    (
        # 900h passed check and made haproxy refuse the config (timer overflow past 24.8 days).
        "duration past a day",
        {f"{R0}.timeout": "900h"},
        [f"{R0}.timeout: '900h' is too long: a duration must be at most 24h"],
    ),
    ("duration of a day", {f"{R0}.timeout": "24h"}, []),
    # Istio's Request Timeouts task and Go write these; each is a whole number of milliseconds.
    ("duration with a decimal", {f"{R0}.timeout": "0.5s"}, []),
    ("duration of two units", {f"{R0}.timeout": "1m30s"}, []),
    (
        "outlier interval bad",
        {"services.service1.policy": {"outlierDetection": {"interval": "soon"}}},
        [
            "services.service1.policy.outlierDetection.interval: 'soon' is not a duration: write a number with a unit, such as 500ms, 0.5s, 1m30s or 2h"
        ],
    ),
    # -- retries
    (
        "retries zero with perTryTimeout",
        {f"{R0}.retries": {"attempts": 0, "perTryTimeout": "1s"}},
        [
            f"{R0}.retries: attempts is 0, so perTryTimeout and on have no effect: set attempts to 1 or more, or remove them"
        ],
    ),
    (
        "unknown retry condition",
        {f"{R0}.retries": {"attempts": 2, "on": ["5xx", "timeouts"]}},
        [
            f"{R0}.retries.on: 'timeouts' is not a retry condition: use 5xx, gateway-error, reset, reset-before-request, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, retriable-headers, envoy-ratelimited, http3-post-connect-failure, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable or an HTTP status code such as 503"
        ],
    ),
    (
        "retry on a status code Go does not name",
        {f"{R0}.retries": {"attempts": 2, "on": ["599"]}},
        [
            f"{R0}.retries.on: '599' is not a retry condition: use 5xx, gateway-error, reset, reset-before-request, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, retriable-headers, envoy-ratelimited, http3-post-connect-failure, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable or an HTTP status code such as 503"
        ],
    ),
    # Istio's VirtualService reference writes `retryOn: gateway-error,connect-failure,refused-stream`.
    (
        "retry conditions of Istio's reference",
        {
            f"{R0}.retries": {
                "attempts": 3,
                "on": ["gateway-error", "connect-failure", "refused-stream"],
            }
        },
        [],
    ),
    (
        "retry conditions as Istio writes retryOn",
        {f"{R0}.retries": {"attempts": 3, "on": "gateway-error,connect-failure,refused-stream"}},
        [],
    ),
    (
        "one retry condition as a string",
        {f"{R0}.retries": {"attempts": 3, "on": "refused-stream"}},
        [],
    ),
    (
        "unknown retry condition comma-separated",
        {f"{R0}.retries": {"attempts": 2, "on": "5xx,timeouts"}},
        [
            f"{R0}.retries.on: 'timeouts' is not a retry condition: use 5xx, gateway-error, reset, reset-before-request, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, retriable-headers, envoy-ratelimited, http3-post-connect-failure, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable or an HTTP status code such as 503"
        ],
    ),
    (
        "comma-separated retry conditions HAProxy cannot honour on builtin",
        {f"{R0}.retries": {"attempts": 2, "on": "5xx,cancelled"}},
        [
            f"{R0}.retries.on[1]: cancelled retries on a gRPC status read from the answer's trailers, which HAProxy cannot do: use the istio data plane, or conditions the builtin data plane honours"
        ],
    ),
    (
        "retry conditions HAProxy cannot honour on builtin",
        {f"{R0}.retries": {"attempts": 2, "on": ["unavailable", "retriable-4xx", "429"]}},
        [
            f"{R0}.retries.on[0]: unavailable retries on a gRPC status read from the answer's trailers, which HAProxy cannot do: use the istio data plane, or conditions the builtin data plane honours",
            f"{R0}.retries.on[1]: retriable-4xx retries answers 409 Conflict, which HAProxy cannot retry on: use the istio data plane, or conditions the builtin data plane honours",
            f"{R0}.retries.on[2]: HAProxy retries on the status codes 401, 403, 404, 408, 425, 500, 501, 502, 503, 504 only, not 429: use the istio data plane, or one of these",
        ],
    ),
    (
        "retry headers and rate limits on builtin",
        {f"{R0}.retries": {"attempts": 2, "on": ["retriable-headers", "envoy-ratelimited"]}},
        [
            f"{R0}.retries.on[0]: retriable-headers retries answers carrying the headers the request names in x-envoy-retriable-header-names, which HAProxy cannot do: use the istio data plane, or conditions the builtin data plane honours",
            f"{R0}.retries.on[1]: envoy-ratelimited retries answers carrying Envoy's x-envoy-ratelimited header, which HAProxy cannot do: use the istio data plane, or conditions the builtin data plane honours",
        ],
    ),
    (
        "every retry condition of Istio on istio",
        {
            "dataPlane": "istio",
            f"{R0}.retries": {
                "attempts": 2,
                "on": [
                    "5xx",
                    "gateway-error",
                    "reset",
                    "reset-before-request",
                    "connect-failure",
                    "retriable-4xx",
                    "refused-stream",
                    "retriable-status-codes",
                    "retriable-headers",
                    "envoy-ratelimited",
                    "http3-post-connect-failure",
                    "cancelled",
                    "deadline-exceeded",
                    "internal",
                    "resource-exhausted",
                    "unavailable",
                    "429",
                    "100",
                    "511",
                ],
            },
        },
        [],
    ),
    (
        "negative attempts",
        {f"{R0}.retries": {"attempts": -1}},
        [f"{R0}.retries.attempts: must be at least 0, got -1"],
    ),
    # -- policy
    (
        "unknown load balancer",
        {"services.service1.policy": {"loadBalancer": "fastest"}},
        [
            "services.service1.policy.loadBalancer.algorithm: 'fastest' is not allowed: use one of 'round-robin', 'random' or 'least-request'"
        ],
    ),
    (
        "zero max connections",
        {"services.service1.policy": {"connectionPool": {"maxConnections": 0}}},
        ["services.service1.policy.connectionPool.maxConnections: must be at least 1, got 0"],
    ),
    (
        "empty connection pool",
        {"services.service1.policy": {"connectionPool": {}}},
        [
            "services.service1.policy.connectionPool: a connection pool needs at least one field, such as maxConnections"
        ],
    ),
    # Istio's Circuit Breaking task, as Istio writes it.
    (
        "connection pool of the circuit breaking task",
        {
            "services.service1.policy": {
                "connectionPool": {
                    "maxConnections": 1,
                    "maxPendingRequests": 1,
                    "maxRequestsPerConnection": 1,
                },
            }
        },
        [],
    ),
    (
        "connection pool HAProxy cannot honour on builtin",
        {
            "services.service1.policy": {
                "connectionPool": {
                    "maxRequestsPerConnection": 10,
                    "maxRetries": 3,
                    "idleTimeout": "30s",
                },
            }
        },
        [
            "services.service1.policy.connectionPool.idleTimeout: HAProxy does not close a connection to an endpoint after a set idle time, so the builtin data plane cannot honour idleTimeout: remove it or use the istio data plane",
            "services.service1.policy.connectionPool.maxRequestsPerConnection: HAProxy cannot count requests per connection to an endpoint, so 10 cannot be honoured on the builtin data plane: use 1 (no keep-alive), 0 (no limit), or the istio data plane",
            "services.service1.policy.connectionPool.maxRetries: HAProxy has no limit on retries in flight to a service, so the builtin data plane cannot honour maxRetries: remove it (a route's retries.attempts bounds each request's retries) or use the istio data plane",
        ],
    ),
    (
        "every connection pool field on istio",
        {
            "dataPlane": "istio",
            "services.service1.policy": {
                "connectionPool": {
                    "maxConnections": 100,
                    "maxPendingRequests": 10,
                    "http2MaxRequests": 1000,
                    "maxRequestsPerConnection": 10,
                    "maxRetries": 3,
                    "connectTimeout": "0.25s",
                    "idleTimeout": "1m30s",
                },
            },
        },
        [],
    ),
    (
        "negative max retries",
        {"services.service1.policy": {"connectionPool": {"maxRetries": -1}}},
        ["services.service1.policy.connectionPool.maxRetries: must be at least 0, got -1"],
    ),
    (
        "max ejection percent",
        {"services.service1.policy": {"outlierDetection": {"maxEjectionPercent": 101}}},
        [
            "services.service1.policy.outlierDetection.maxEjectionPercent: must be at most 100, got 101"
        ],
    ),
    (
        "max ejection percent zero",
        {"services.service1.policy": {"outlierDetection": {"maxEjectionPercent": 0}}},
        ["services.service1.policy.outlierDetection.maxEjectionPercent: must be at least 1, got 0"],
    ),
    (
        "consecutive gateway errors zero",
        {"services.service1.policy": {"outlierDetection": {"consecutiveGatewayErrors": 0}}},
        [
            "services.service1.policy.outlierDetection.consecutiveGatewayErrors: must be at least 1, got 0"
        ],
    ),
    # -- versions
    ("missing image", {f"{V1}.image": DELETE}, [f"{V1}.image: is required"]),
    ("negative replicas", {f"{V1}.replicas": -1}, [f"{V1}.replicas: must be at least 0, got -1"]),
    (
        "bad env name",
        {f"{V1}.env": {"1BAD": "x"}},
        [
            f"{V1}.env.1BAD: '1BAD' is not a valid environment variable name: use letters, digits and '_', not starting with a digit"
        ],
    ),
    (
        "reserved PORT",
        {f"{V1}.env": {"PORT": "1"}},
        [f"{V1}.env: PORT is set by sailplan to the service port; remove it"],
    ),
    (
        "bad cpu quantity",
        {f"{V1}.resources": {"limits": {"cpu": "lots"}}},
        [
            f"{V1}.resources.limits.cpu: 'lots' is not a Kubernetes quantity: write e.g. 100m or 0.5 for CPU, 128Mi for memory"
        ],
    ),
    (
        "empty local command",
        {f"{V1}.local": {"command": []}},
        [f"{V1}.local.command: must not be empty"],
    ),
    (
        "no versions",
        {"services.service2.versions": {}},
        ["services.service2.versions: must not be empty"],
    ),
    (
        "versions as list",
        {"services.service2.versions": ["v1"]},
        ["services.service2.versions: must be a mapping, got a list"],
    ),
    (
        "unknown protocol",
        {"services.service1.protocol": "udp"},
        ["services.service1.protocol: 'udp' is not allowed: use one of 'http', 'tcp' or 'grpc'"],
    ),
    (
        "http features on tcp",
        {"dataPlane": "istio", "services.service1.protocol": "tcp", f"{R0}.timeout": "1s"},
        [f"{R0}.timeout: timeout needs protocol http or grpc; this service is tcp"],
    ),
    (
        "grpc on the builtin plane",
        {"services.service2.protocol": "grpc"},
        [
            "services.service2.protocol: protocol grpc needs the istio data plane; "
            "the builtin data plane proxies http only"
        ],
    ),
    # -- unknown keys
    (
        "typo in version",
        {f"{V1}.replicaz": 2},
        [f"{V1}.replicaz: unknown key; did you mean 'replicas'?"],
    ),
    (
        "typo in route",
        {f"{R0}.timout": "1s"},
        [f"{R0}.timout: unknown key; did you mean 'timeout'?"],
    ),
    (
        "unknown top-level key",
        {"sidecars": True},
        [
            "sidecars: unknown key; allowed keys here: apiVersion, kind, name, namespace, allowSystemNamespace, dataPlane, interception, networkPolicies, mtls, trustDomain, authorization, services, ingress, accessLog"
        ],
    ),
    # -- top level
    (
        "wrong api version",
        {"apiVersion": "sailplan/v2"},
        ["apiVersion: 'sailplan/v2' is not allowed: use one of 'sailplan/v1'"],
    ),
    ("wrong kind", {"kind": "Cluster"}, ["kind: 'Cluster' is not allowed: use one of 'Mesh'"]),
    (
        "unknown data plane",
        {"dataPlane": "linkerd"},
        ["dataPlane: 'linkerd' is not allowed: use one of 'builtin', 'istio' or 'gateway-api'"],
    ),
    (
        "allow from an unknown caller",
        {"services.service1.allow": [{"from": ["nobody"]}]},
        [
            "services.service1.allow[0].from[0]: unknown caller 'nobody'; callers are: "
            "service1, service2, ingress"
        ],
    ),
    ("missing services", {"services": DELETE}, ["services: is required"]),
    # -- strict types: no quiet coercion of text or booleans into numbers, nor the reverse
    (
        "replicas true",
        {f"{V1}.replicas": True},
        [f"{V1}.replicas: must be a whole number, got True"],
    ),
    (
        "replicas as text",
        {f"{V1}.replicas": "2"},
        [f"{V1}.replicas: must be a whole number, got '2'"],
    ),
    (
        "replicas float",
        {f"{V1}.replicas": 2.0},
        [f"{V1}.replicas: must be a whole number, got 2.0"],
    ),
    (
        "port as text",
        {"services.service2.port": "8880"},
        ["services.service2.port: must be a whole number, got '8880'"],
    ),
    (
        "weight true",
        {f"{R0}.split": {"v1": True, "v2": 99}},
        [f"{R0}.split.v1: must be a whole number, got True"],
    ),
    (
        "percent as text",
        {f"{R0}.fault": {"abort": {"status": 503, "percent": "50"}}},
        [f"{R0}.fault.abort.percent: must be a number, got '50'"],
    ),
    (
        "abort status as text",
        {f"{R0}.fault": {"abort": {"status": "503"}}},
        [f"{R0}.fault.abort.status: must be a whole number, got '503'"],
    ),
    (
        "allowSystemNamespace as text",
        {"allowSystemNamespace": "yes"},
        ["allowSystemNamespace: input should be a valid boolean"],
    ),
    (
        "env value true",
        {f"{V1}.env": {"DEBUG": True}},
        [
            f"{V1}.env.DEBUG: must be text or a reference such as {{secretKeyRef: {{name: db, key: password}}}}, got True"
        ],
    ),
    # -- Kubernetes and proxy limits
    (
        "replicas beyond int32",
        {f"{V1}.replicas": 2**31},
        [f"{V1}.replicas: must be at most 2147483647, got 2147483648"],
    ),
    (
        "retry attempts beyond int32",
        {f"{R0}.retries": {"attempts": 2**40}},
        [f"{R0}.retries.attempts: must be at most 2147483647, got 1099511627776"],
    ),
    (
        "kube-system namespace",
        {"namespace": "kube-system"},
        [
            "namespace: 'kube-system' is a namespace Kubernetes itself uses: sailplan creates, labels and on destroy deletes the mesh's namespace, with everything in it. Choose another namespace, or set allowSystemNamespace: true if you mean it"
        ],
    ),
    (
        "default namespace through the mesh name",
        {"name": "default", "namespace": DELETE},
        [
            "name: 'default' is a namespace Kubernetes itself uses: sailplan creates, labels and on destroy deletes the mesh's namespace, with everything in it. Choose another namespace, or set allowSystemNamespace: true if you mean it"
        ],
    ),
    (
        "kube-public allowed explicitly",
        {"namespace": "kube-public", "allowSystemNamespace": True},
        [],
    ),
    (
        "gateway name over 63",
        {"name": "m" * 63, "namespace": "demo"},
        [
            f"name: the ingress gateway's Service would be named '{'m' * 63}-gateway', longer than the 63 characters Kubernetes allows; shorten the mesh name to 55 characters"
        ],
    ),
    ("gateway name at 63", {"name": "m" * 55, "namespace": "demo"}, []),
    (
        "app port on the sidecar's outbound port",
        {"services.service2.port": 15001},
        [
            "services.service2.port: 15001 is a port the builtin sidecar listens on in every pod (15001, 15006, 15007, 15020, 15021); choose another port for the app"
        ],
    ),
    (
        "app port on istio's prometheus port",
        {"dataPlane": "istio", "services.service2.port": 15090},
        [
            "services.service2.port: 15090 is a port the istio sidecar listens on in every pod (15000, 15001, 15004, 15006, 15008, 15009, 15020, 15021, 15053, 15090); choose another port for the app"
        ],
    ),
    (
        "readiness path with a space",
        {f"{V1}.readiness.path": "/health check"},
        [
            f"{V1}.readiness.path: '/health check' is not a URL path: use visible ASCII characters and percent-encode the rest (a space is %20)"
        ],
    ),
    (
        "readiness path with a newline",
        {f"{V1}.readiness.path": "/healthz\nX: y"},
        [
            f"{V1}.readiness.path: '/healthz\\nX: y' is not a URL path: use visible ASCII characters and percent-encode the rest (a space is %20)"
        ],
    ),
    (
        "env value with NUL",
        {f"{V1}.env.MODE": "a\x00b"},
        [f"{V1}.env.MODE: an environment value cannot contain a NUL character"],
    ),
    (
        "local env value with NUL",
        {f"{V1}.local.env": {"MODE": "a\x00b"}},
        [f"{V1}.local.env.MODE: an environment value cannot contain a NUL character"],
    ),
    # -- secrets by reference
    (
        "secret reference",
        {f"{V1}.env.DB_PASSWORD": {"secretKeyRef": {"name": "db", "key": "password"}}},
        [],
    ),
    (
        "secret reference without key",
        {f"{V1}.env.DB_PASSWORD": {"secretKeyRef": {"name": "db"}}},
        [f"{V1}.env.DB_PASSWORD.secretKeyRef.key: is required"],
    ),
    (
        "secret reference typo",
        {f"{V1}.env.DB_PASSWORD": {"secretKeyRf": {"name": "db", "key": "k"}}},
        [f"{V1}.env.DB_PASSWORD.secretKeyRf: unknown key; did you mean 'secretKeyRef'?"],
    ),
    (
        "two references in one value",
        {
            f"{V1}.env.DB": {
                "secretKeyRef": {"name": "db", "key": "k"},
                "configMapKeyRef": {"name": "c", "key": "k"},
            }
        },
        [f"{V1}.env.DB: give exactly one of secretKeyRef or configMapKeyRef"],
    ),
    (
        "bad secret name and key",
        {f"{V1}.env.DB": {"configMapKeyRef": {"name": "Db", "key": "a b"}}},
        [
            # In the file's order: safe_dump sorts `key` before `name`.
            f"{V1}.env.DB.configMapKeyRef.key: 'a b' is not a valid Secret or ConfigMap key: use letters, digits, '-', '_' and '.', at most 253 characters",
            f"{V1}.env.DB.configMapKeyRef.name: 'Db' is not a valid Secret or ConfigMap name: use lowercase letters, digits, '-' and '.', at most 253 characters",
        ],
    ),
    (
        "envFrom with neither source",
        {f"{V1}.envFrom": [{"prefix": "DB_"}]},
        [f"{V1}.envFrom[0]: give exactly one of secretRef or configMapRef"],
    ),
    (
        "envFrom with a bad prefix",
        {f"{V1}.envFrom": [{"secretRef": {"name": "db"}, "prefix": "1X"}]},
        [
            f"{V1}.envFrom[0].prefix: '1X' is not a valid environment variable name: use letters, digits and '_', not starting with a digit"
        ],
    ),
    (
        "bad ingress host",
        {"ingress.hosts": ["shop_example.com"]},
        [
            "ingress.hosts[0]: 'shop_example.com' is not a valid host: use a DNS name such as 'shop.example.com', '*.example.com' or '*'"
        ],
    ),
]


@pytest.mark.parametrize(
    ("edits", "expected"), [(e, x) for _, e, x in CASES], ids=[c[0] for c in CASES]
)
def test_bad_spec_reports_every_problem_at_its_path(
    edits: dict[str, Any], expected: list[str]
) -> None:
    text = yaml.safe_dump(edited(edits))
    if not expected:
        # A case that must stay valid: the limits above must not refuse their neighbours.
        assert sailplan.load_mesh_text(text)
        return
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh_text(text)
    assert [str(problem) for problem in error.value.problems] == expected


def test_there_are_at_least_forty_cases() -> None:
    assert len([case for case in CASES if case[2]]) >= 40


def test_problems_anywhere_in_the_file_are_reported_together() -> None:
    edits = {
        f"{V1}.replicaz": 2,
        f"{R0}.split": {"v1": 80, "v2": 10},
        "ingress.nodePort": 1,
        "services.service2.port": 0,
    }
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh_text(yaml.safe_dump(edited(edits), sort_keys=False))
    # In the order of the file (keys kept in the demo's order), not the order of the checks.
    assert [str(problem) for problem in error.value.problems] == [
        "services.service1.versions.v1.replicaz: unknown key; did you mean 'replicas'?",
        "services.service1.routes[0].split: weights add up to 90, they must add up to 100",
        "services.service2.port: 0 is not a valid port: use a number from 1 to 65535",
        "ingress.nodePort: 1 is outside the NodePort range 30000-32767",
    ]


def test_a_typo_does_not_hide_a_reference_problem_elsewhere() -> None:
    edits = {
        "services.service2.versions.v1.replicaz": 2,
        f"{R0}.split": {"v1": 80, "v3": 20},
        "ingress.routes[0].service": "nope",
    }
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh_text(yaml.safe_dump(edited(edits), sort_keys=False))
    assert [str(problem) for problem in error.value.problems] == [
        "services.service1.routes[0].split.v3: unknown version 'v3'; this service has: v1, v2",
        "services.service2.versions.v1.replicaz: unknown key; did you mean 'replicas'?",
        "ingress.routes[0].service: unknown service 'nope'; services are: service1, service2",
    ]


def test_an_unknown_version_is_reported_beside_a_wrong_sum() -> None:
    edits = {f"{R0}.split": {"v1": 80, "v3": 10}, f"{R0}.mirror": {"to": "v9"}}
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh_text(yaml.safe_dump(edited(edits), sort_keys=False))
    assert [str(problem) for problem in error.value.problems] == [
        f"{R0}.split: weights add up to 90, they must add up to 100",
        f"{R0}.split.v3: unknown version 'v3'; this service has: v1, v2",
        f"{R0}.mirror.to: unknown version 'v9'; this service has: v1, v2",
    ]
