"""The scenarios the gateway-api plane refuses, and why: `check` must refuse exactly these (with
a problem at the path given), and the suite runs every other scenario on the plane; those in
DIVERGES must fail there (a strict xfail). Kept here rather than in Scenario.diverges, whose
reasons are the istio/builtin divergences the spec reference notes per field."""

from __future__ import annotations

# scenario -> (the path of the first problem `check` reports, what the standard channel lacks)
REFUSED: dict[str, tuple[str, str]] = {
    "path-method-and-query-matches-in-order": (
        "services.service1.routes[4]",
        "a regex path ranks against the catch-all as each implementation chooses",
    ),
    "unmatched-requests-reach-every-version": (
        "services.service1.routes[0]",
        "the prefix /only, not ending in /, is a regex path, whose rank against the rule for "
        "unmatched requests each implementation chooses",
    ),
    "cors-preflights-answered-and-allowed-origins-get-the-headers": (
        "services.service1.routes[0].cors",
        "HTTPRoute's CORS filter is experimental",
    ),
    "abort-half": ("services.service1.routes[0].fault", "no fault injection"),
    "delay-every-request": ("services.service1.routes[0].fault", "no fault injection"),
    "retries-turn-flaky-into-success": (
        "services.service1.routes[0].retries",
        "retries are experimental",
    ),
    "retries-as-istio-writes-retry-on": (
        "services.service1.routes[0].retries",
        "retries are experimental",
    ),
    "retries-on-refused-stream-only": (
        "services.service1.routes[0].retries",
        "retries are experimental",
    ),
    "experiment-fault-delay-abort": ("services.service1.routes[0].fault", "no fault injection"),
    "D1-path-regex-matches-the-whole-path": (
        "services.service1.routes[1]",
        "a regex path ranks against the catch-all as each implementation chooses",
    ),
    "D3-timeout-bounds-the-request-including-retries": (
        "services.service1.routes[0].retries",
        "retries are experimental",
    ),
    "D11-connection-pool-counts-every-route-to-the-version": (
        "services.service1.policy.connectionPool",
        "no connection pool",
    ),
    "D6-regex-service-rule-behind-an-ingress-prefix": (
        "services.service1.routes[1]",
        "two different regex paths rank as each implementation chooses",
    ),
    "D10-outlier-detection-ejects-after-consecutive-errors": (
        "services.service1.policy.outlierDetection",
        "no outlier detection",
    ),
    "route-headers-change-the-request-and-the-apps-answer": (
        "services.service1.routes[1].fault",
        "no fault injection",
    ),
    "rewrite-prefix-exact-regex-and-authority": (
        "services.service1.routes[2].rewrite.uriRegexRewrite",
        "no regex path rewrite",
    ),
    "redirect-and-direct-response-answer-without-forwarding": (
        "services.service1.routes[2].respond",
        "no direct response",
    ),
    "presence-negative-and-any-case-matches": (
        "services.service1.routes[0].match[0].headers.x-canary",
        "no presence-only header match",
    ),
    "allow-by-caller-method-and-path": (
        "services.service1.allow",
        "no authorization: which callers a service admits is each mesh's own API",
    ),
    "default-deny-lets-in-only-what-allow-says": (
        "mtls",
        "no mutual TLS between services and no authorization: each mesh's own API",
    ),
    "permissive-plaintext-caller-has-no-identity": (
        "services.service1.allow",
        "no authorization: which callers a service admits is each mesh's own API",
    ),
    "calls-listed-service-gets-its-routes-and-faults": (
        "services.caller.calls",
        "no scoping of a workload's proxy to the services it calls (Istio's Sidecar is its own "
        "API)",
    ),
    "calls-unlisted-service-passes-through-without-its-routes": (
        "services.caller.calls",
        "no scoping of a workload's proxy to the services it calls (Istio's Sidecar is its own "
        "API)",
    ),
    "calls-unlisted-callee-still-applies-authorization": (
        "services.caller.calls",
        "no scoping of a workload's proxy to the services it calls (Istio's Sidecar is its own "
        "API)",
    ),
    "headers-per-destination": (
        "services.service1.routes[0].destinationHeaders",
        "filters per backend are implementation-specific",
    ),
}

# scenario -> why the plane answers differently (what the Gateway API leaves to implementations)
DIVERGES: dict[str, str] = {
    "D13-a-route-without-retries-retries-refused-connections-twice": (
        "G1 the Gateway API's standard channel has no retries, so nothing it says retries a "
        "refused connection; Istio's own default policy still would under GAMMA, Linkerd's would "
        "not"
    ),
}
