"""A reference evaluator of rendered Istio objects: what Envoy would answer for one request.

Written from Istio's and Envoy's documentation, not from sailplan's renderer: it takes the rendered
manifests (Services, Deployments, VirtualServices, DestinationRules, Gateway) as its only input.
Each rule below cites the documented behaviour it encodes.

The upstream apps are the conformance backends (tests/conformance/builtin_runner.py): every pod
answers 200 with the body `<service>/<version>`; `/status/<code>` answers that code; `/sleep/<ms>`
answers after that long; `/flaky/<n>` answers 503 to the first n requests it sees on that path.

Outlier detection is modelled for consecutive errors of versions with one pod (the evaluator
tells pods apart by version only), without time: an ejected pod stays out for the rest of the
scenario (scenarios use an ejection time far longer than they run).
Authorization: `security.istio.io/v1` AuthorizationPolicies with action ALLOW, enforced by the
called pod's sidecar on the caller's mTLS principal, method and path (see `authorized`); a
plaintext caller (no sidecar) reaches the pods directly (`evaluate_direct`).
Sidecar resources: a caller whose Sidecar's `egress.hosts` leave out the destination's host does
not know that Service, so its VirtualService and DestinationRule do not apply: the request goes,
plaintext, to the address dialled (see `scoped_out`), and the callee's sidecar sees no principal.
Out of scope (no scenario relies on them yet): consistent-hash load balancing, TLS between
gateway and app, DENY/CUSTOM/AUDIT policies, `when` conditions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import re2

from .scenarios import label

# Envoy's router answers these itself; bodies as Envoy writes them.
NO_ROUTE = 404  # "If no route matches, Envoy responds with a 404 (NR response flag)."
FAULT_ABORT_BODY = "fault filter abort"  # Envoy HTTP fault filter, abort response body
TIMEOUT_BODY = "upstream request timeout"  # Envoy router, 504 on route/per-try timeout
# Envoy router, 503 when a circuit breaker (connections + pending requests) is full.
OVERFLOW_BODY = "upstream connect error or disconnect/reset before headers. reset reason: overflow"
# Envoy router, 503 when the last attempt could not connect (local reply "upstream connect error
# or disconnect/reset before headers", with the reset reason).
CONNECT_FAILURE_BODY = (
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
)

# Envoy's RBAC filter answers a request no policy lets in with 403 and this body.
RBAC_DENIED_BODY = "RBAC: access denied"
# Istio's default trust domain (MeshConfig.trustDomain): principals are
# `<trust domain>/ns/<namespace>/sa/<service account>`.
TRUST_DOMAIN = "cluster.local"
# The ingress gateway's pods run as the ServiceAccount the istio gateway chart creates, named
# after its release: sailplan installs the chart as `istio-ingressgateway` in `istio-ingress`.
GATEWAY_ACCOUNT = "ns/istio-ingress/sa/istio-ingressgateway"
GATEWAY_PRINCIPAL = f"{TRUST_DOMAIN}/{GATEWAY_ACCOUNT}"

# Istio's mesh-wide default retry policy, applied to every HTTP route whose VirtualService sets no
# `retries` (MeshConfig.defaultHttpRetryPolicy; the route config istiod generates shows
# numRetries 2, retryOn "connect-failure,refused-stream,unavailable,cancelled,
# retriable-status-codes" and no retriableStatusCodes): twice, on connection problems only; a
# status code an app answers, 503 included, is not retried.
ISTIO_DEFAULT_RETRIES = {
    "attempts": 2,
    "retryOn": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
}
ISTIO_DEFAULT_RETRIABLE_CODES: frozenset[int] = frozenset()
# Istio's retry policies (the default and every VirtualService `retries`) carry Envoy's
# `envoy.retry_host_predicates.previous_hosts` with host_selection_retry_max_attempts 5 (istiod's
# route/retry package): a retry goes to an endpoint not tried yet when the cluster has one. With
# round robin that is the next endpoint in turn, which is how the evaluator picks it.

_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_MS = {"ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def duration_ms(text: str) -> float:
    return sum(float(n) * _UNIT_MS[u] for n, u in _GO_DURATION_PART.findall(text))


@dataclass(frozen=True)
class Request:
    path: str = "/"
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    host: str = ""  # the Host/:authority header; for mesh requests the service name by default
    body: str = ""
    # The caller's mTLS principal as the called sidecar sees it; None for a plaintext caller.
    principal: str | None = None


@dataclass(frozen=True)
class Copy:
    """A mirrored copy of the request, with the probability it is sent."""

    probability: float
    to: str  # `<service>/<version>` of the pods it goes to
    pods: int  # how many pods round robin spreads the copies over
    method: str
    path: str
    host: str
    body: str


@dataclass(frozen=True)
class Branch:
    """One way a request can end, with its probability."""

    probability: float
    status: int
    body: str
    elapsed_ms: float  # the modelled time to the answer (delays, timeouts, backend sleeps)
    attempts: int = 0  # upstream attempts made
    # The answer came from a pod (else Envoy answered itself), with its header lines.
    upstream: bool = False
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Outcome:
    branches: tuple[Branch, ...]
    copies: tuple[Copy, ...] = ()
    # Header lines (`host` first) and path of the request as forwarded upstream, when it is.
    forwarded: tuple[tuple[str, str], ...] = ()
    forwarded_path: str = ""

    def shares(self) -> dict[str, float]:
        """Label (see scenarios.label) -> probability."""
        shares: dict[str, float] = {}
        for branch in self.branches:
            key = label(branch.status, branch.body)
            shares[key] = shares.get(key, 0.0) + branch.probability
        return shares


class Cluster:
    """The rendered objects, indexed the way Envoy's configuration is built from them."""

    def __init__(
        self, manifests: Iterable[Mapping[str, Any]], trust_domain: str = TRUST_DOMAIN
    ) -> None:
        # MeshConfig.trustDomain of the control plane: the first part of every principal.
        self.trust_domain = trust_domain
        self.virtual_services: list[Mapping[str, Any]] = []
        self.destination_rules: dict[str, Mapping[str, Any]] = {}
        self.services: dict[tuple[str, str], Mapping[str, Any]] = {}
        self.deployments: list[Mapping[str, Any]] = []
        self.gateways: dict[str, Mapping[str, Any]] = {}
        self.authorization_policies: list[Mapping[str, Any]] = []
        self.peer_authentications: list[Mapping[str, Any]] = []
        self.sidecars: list[Mapping[str, Any]] = []
        # `<service>/<version>` -> (namespace, pod labels), filled as endpoints are looked up.
        self.pods: dict[str, tuple[str, Mapping[str, str]]] = {}
        self.manifests = list(manifests)
        for manifest in self.manifests:
            kind = manifest["kind"]
            meta = manifest["metadata"]
            if kind == "VirtualService":
                self.virtual_services.append(manifest)
            elif kind == "DestinationRule":
                self.destination_rules[manifest["spec"]["host"]] = manifest
            elif kind == "Service":
                self.services[(meta["namespace"], meta["name"])] = manifest
            elif kind == "Deployment":
                self.deployments.append(manifest)
            elif kind == "Gateway":
                self.gateways[f"{meta['namespace']}/{meta['name']}"] = manifest
            elif kind == "AuthorizationPolicy":
                self.authorization_policies.append(manifest)
            elif kind == "PeerAuthentication":
                self.peer_authentications.append(manifest)
            elif kind == "Sidecar":
                self.sidecars.append(manifest)

    # -- hosts -----------------------------------------------------------------------------

    def fqdn(self, host: str, namespace: str) -> str | None:
        """The Service FQDN a sidecar's outbound route for `host` serves. Istio builds one virtual
        host per Service with the domains `name`, `name.ns`, `name.ns.svc`,
        `name.ns.svc.cluster.local` (each also with `:port`); the short forms only for callers in
        the same namespace (Istio traffic management, "Virtual services: hosts")."""
        name = host.rsplit(":", 1)[0].lower() if ":" in host else host.lower()
        parts = name.split(".")
        if len(parts) == 1:
            parts += [namespace]
        if len(parts) == 2:
            parts += ["svc"]
        if len(parts) == 3 and parts[2] == "svc":
            parts += ["cluster", "local"]
        fqdn = ".".join(parts)
        service_name, service_ns = parts[0], parts[1]
        if (service_ns, service_name) not in self.services:
            return None
        return fqdn

    def endpoints(self, fqdn: str, labels: Mapping[str, str] | None) -> list[str]:
        """`<service>/<version>` per pod the Service (narrowed to a subset's labels) selects."""
        name, namespace = fqdn.split(".")[:2]
        service = self.services[(namespace, name)]
        selector = dict(service["spec"].get("selector", {}))
        selector.update(labels or {})
        pods = []
        for deployment in self.deployments:
            if deployment["metadata"]["namespace"] != namespace:
                continue
            pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
            if all(pod_labels.get(k) == v for k, v in selector.items()):
                version = pod_labels.get("version", "")
                pods += [f"{name}/{version}"] * int(deployment["spec"].get("replicas", 1))
                self.pods[f"{name}/{version}"] = (namespace, pod_labels)
        return pods

    def principal(self, service: str, namespace: str) -> str:
        """The principal of `service`'s pods: the ServiceAccount their Deployment runs as
        (Kubernetes' `default` when none is named), in Istio's principal form."""
        for deployment in self.deployments:
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            if deployment["metadata"]["namespace"] == namespace and labels.get("app") == service:
                pod_spec = deployment["spec"]["template"].get("spec", {})
                account = pod_spec.get("serviceAccountName", "default")
                return f"{self.trust_domain}/ns/{namespace}/sa/{account}"
        raise ValueError(f"no Deployment runs {service!r} in {namespace!r}")

    def workload(self, principal: str) -> tuple[str, Mapping[str, str]]:
        """(namespace, pod labels) of the pods that run as `principal`'s ServiceAccount: the
        caller a request with that principal comes from (sailplan gives each service its own
        account)."""
        for deployment in self.deployments:
            namespace = deployment["metadata"]["namespace"]
            template = deployment["spec"]["template"]
            account = template.get("spec", {}).get("serviceAccountName", "default")
            if principal == f"{self.trust_domain}/ns/{namespace}/sa/{account}":
                return namespace, template["metadata"]["labels"]
        raise ValueError(f"no Deployment runs as {principal!r}")

    def sidecar(self, namespace: str, labels: Mapping[str, str]) -> Mapping[str, Any] | None:
        """The Sidecar that configures a workload's proxy: the one of its namespace whose
        `workloadSelector` selects its pods, else the namespace's one without a selector (Istio
        Sidecar reference: "The Sidecar resource with a workloadSelector takes precedence over
        a Sidecar resource without one"; two that apply to one workload are undefined, refused
        here). A mesh-wide default in the root namespace is not modelled."""
        selecting, fallback = [], []
        for sidecar in self.sidecars:
            if sidecar["metadata"]["namespace"] != namespace:
                continue
            selector = sidecar["spec"].get("workloadSelector")
            if selector is None:
                fallback.append(sidecar)
            elif all(labels.get(k) == v for k, v in selector["labels"].items()):
                selecting.append(sidecar)
        found = selecting or fallback
        assert len(found) <= 1, f"{len(found)} Sidecars configure one workload"
        return found[0] if found else None

    def subset_labels(self, fqdn: str, subset: str) -> Mapping[str, str]:
        rule = self.destination_rules[fqdn]
        for entry in rule["spec"]["subsets"]:
            if entry["name"] == subset:
                return dict(entry.get("labels", {}))
        raise KeyError(f"DestinationRule for {fqdn} has no subset {subset}")

    # -- which VirtualService --------------------------------------------------------------

    def mesh_virtual_service(self, fqdn: str) -> Mapping[str, Any] | None:
        """VirtualServices without `gateways` apply to sidecars ("mesh") only (Istio VirtualService
        reference, `gateways`: "If this field is omitted, the default gateway (mesh) will be
        used")."""
        for vs in self.virtual_services:
            gateways = vs["spec"].get("gateways", ["mesh"])
            if "mesh" in gateways and fqdn in vs["spec"]["hosts"]:
                return vs
        return None

    def gateway_virtual_service(self, gateway: str, host: str) -> Mapping[str, Any] | None:
        name = host.rsplit(":", 1)[0].lower()
        for vs in self.virtual_services:
            if gateway in vs["spec"].get("gateways", []) and any(
                pattern == "*"
                or pattern == name
                or (pattern.startswith("*.") and name.endswith(pattern[1:]))
                for pattern in vs["spec"]["hosts"]
            ):
                return vs
        return None


# -- authorization (Istio AuthorizationPolicy, enforced by the called pod's sidecar) ---------


def _value_matches(pattern: str, value: str) -> bool:
    """Istio's string fields of a rule: exact, `prefix*`, `*suffix`, or `*` for any non-empty
    value (AuthorizationPolicy reference, "Rule": "prefix match, suffix match and presence
    match")."""
    if pattern == "*":
        return value != ""
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern


_SOURCE_FIELDS = {"principals"}
_OPERATION_FIELDS = {"methods", "paths"}


def _source_matches(source: Mapping[str, Any], request: Request) -> bool:
    unknown = set(source) - _SOURCE_FIELDS
    if unknown:
        raise NotImplementedError(f"source fields not modelled: {sorted(unknown)}")
    if "principals" in source:
        # Principals come from the peer certificate: a plaintext caller has none and matches
        # no principal ("This field requires mTLS enabled").
        principal = request.principal
        if principal is None or not any(_value_matches(p, principal) for p in source["principals"]):
            return False
    return True


def _operation_matches(operation: Mapping[str, Any], request: Request) -> bool:
    unknown = set(operation) - _OPERATION_FIELDS
    if unknown:
        raise NotImplementedError(f"operation fields not modelled: {sorted(unknown)}")
    if "methods" in operation and request.method not in operation["methods"]:
        return False
    # Envoy's RBAC `url_path` matcher: the path without the query string.
    path = urlsplit(request.path).path
    return "paths" not in operation or any(_value_matches(p, path) for p in operation["paths"])


def authorization_rule_matches(rule: Mapping[str, Any], request: Request) -> bool:
    """`from`, `to` and `when` must all match; within `from` (or `to`) any entry will do; a
    rule with none of them matches every request."""
    if "when" in rule:
        raise NotImplementedError("when conditions are not modelled")
    sources = rule.get("from")
    if sources is not None and not any(_source_matches(s["source"], request) for s in sources):
        return False
    operations = rule.get("to")
    return operations is None or any(
        _operation_matches(o["operation"], request) for o in operations
    )


def authorized(cluster: Cluster, pod: str, request: Request) -> bool:
    """Whether the sidecar of `pod` lets the request in. The ALLOW policies of the pod's
    namespace that select it (`selector.matchLabels` within the pod's labels; no selector:
    every workload of the namespace) decide: "If there are no ALLOW policies for the workload,
    allow the request. If any of the ALLOW policies match the request, allow the request. Deny
    the request." A policy without rules matches nothing (the `allow-nothing` example)."""
    namespace, labels = cluster.pods[pod]
    selecting = []
    for policy in cluster.authorization_policies:
        if policy["metadata"]["namespace"] != namespace:
            continue
        spec = policy.get("spec") or {}
        selector = spec.get("selector", {}).get("matchLabels", {})
        if not all(labels.get(k) == v for k, v in selector.items()):
            continue
        if spec.get("action", "ALLOW") != "ALLOW" or "provider" in spec:
            raise NotImplementedError(f"action {spec.get('action')} is not modelled")
        selecting.append(spec)
    if not selecting:
        return True
    return any(
        authorization_rule_matches(rule, request)
        for spec in selecting
        for rule in spec.get("rules", [])
    )


# -- matching (Istio HTTPMatchRequest) --------------------------------------------------------


def string_matches(rule: Mapping[str, str], value: str | None) -> bool:
    """StringMatch: `exact`, `prefix`, or `regex` ("RE2 style regex-based match"). Envoy's
    safe_regex matches the WHOLE value, not a substring (Envoy RegexMatcher: "The regex match
    string... is matched against the full string")."""
    if value is None:
        return False
    if not rule:
        return True  # `{}`: the header is present (Envoy's present_match)
    if "exact" in rule:
        return value == rule["exact"]
    if "prefix" in rule:
        return value.startswith(rule["prefix"])
    if "regex" in rule:
        return re2.fullmatch(rule["regex"], value) is not None
    raise ValueError(f"unknown StringMatch {rule}")


def request_matches(match: Mapping[str, Any], request: Request) -> bool:
    """ "All conditions inside a single match block have AND semantics" (HTTPMatchRequest)."""
    split = urlsplit(request.path)
    uri, path = match.get("uri"), split.path
    if uri is not None and match.get("ignoreUriCase"):
        # RouteMatch.case_sensitive false: exact and prefix paths compare without case.
        uri, path = {kind: text.lower() for kind, text in uri.items()}, path.lower()
    if uri is not None and not string_matches(uri, path):
        return False
    if "method" in match and not string_matches(match["method"], request.method):
        return False
    # Header names are compared lowercased; the value is the whole header value as sent (Envoy
    # does not split a header value on commas for matching).
    headers = {k.lower(): v for k, v in request.headers.items()}
    for name, rule in match.get("headers", {}).items():
        if not string_matches(rule, headers.get(name)):
            return False
    # withoutHeaders: Istio sets invert_match, and treat_missing_header_as_empty unless the
    # condition is a present match (`{}`), so `{}` holds for a missing header and any other
    # condition holds when the value, or "" for a missing header, does not match it.
    for name, rule in match.get("withoutHeaders", {}).items():
        if not rule and name in headers:
            return False
        if rule and string_matches(rule, headers.get(name, "")):
            return False
    query = dict(parse_qsl(split.query, keep_blank_values=True))
    return all(
        string_matches(rule, query.get(name)) for name, rule in match.get("queryParams", {}).items()
    )


def rule_matches(rule: Mapping[str, Any], request: Request) -> bool:
    """ "...while the list of match blocks have OR semantics"; no `match` matches everything."""
    blocks = rule.get("match")
    if not blocks:
        return True
    return any(request_matches(block, request) for block in blocks)


# -- header changes (HTTPRoute.headers) ------------------------------------------------------

# The answer headers of a conformance backend (`server` as any app sends one).
UPSTREAM_ANSWER_HEADERS = (("content-type", "text/plain"), ("server", "upstream"))


def _literal(value: str) -> str:
    """Envoy formats header values: `%%` is a literal `%`; any other `%` starts a command, which
    no sailplan rendering writes."""
    assert "%" not in value.replace("%%", ""), f"{value!r} holds an Envoy command"
    return value.replace("%%", "%")


def change_headers(
    operations: Mapping[str, Any] | None, lines: Iterable[tuple[str, str]]
) -> tuple[tuple[str, str], ...]:
    """HeaderOperations as Envoy's HeaderParser applies them: `remove` first ("remove-before-add
    is the default"), then `set` replaces every line of the name (OVERWRITE_IF_EXISTS_OR_ADD) and
    `add` appends one more line (APPEND_IF_EXISTS_OR_ADD)."""
    result = [(name.lower(), value) for name, value in lines]
    if not operations:
        return tuple(result)
    for name in operations.get("remove", []):
        result = [line for line in result if line[0] != name]
    for name, value in operations.get("set", {}).items():
        result = [line for line in result if line[0] != name] + [(name, _literal(value))]
    for name, value in operations.get("add", {}).items():
        result.append((name, _literal(value)))
    return tuple(result)


# -- the upstream ------------------------------------------------------------------------------


@dataclass
class Upstreams:
    """The conformance backends' answers, with the `/flaky/<n>` counters they keep per pod."""

    flaky_seen: dict[tuple[str, str], int] = field(default_factory=dict)
    # `<service>/<version>` -> how many of its pods refuse every connection (the first ones).
    refusing: dict[str, int] = field(default_factory=dict)
    # Outlier detection, per (upstream cluster, pod): the consecutive 5xx and gateway-error
    # counts, and the pods ejected. An upstream cluster is (host, subset), as istiod builds one
    # per DestinationRule subset plus one for the host without subset.
    errors: dict[tuple[str, str | None, str], list[int]] = field(default_factory=dict)
    ejected: set[tuple[str, str | None, str]] = field(default_factory=set)
    hosts: dict[tuple[str, str | None], int] = field(default_factory=dict)  # pods per cluster

    def observe(
        self, key: tuple[str, str | None], pod: str, status: int, policy: Mapping[str, Any]
    ) -> None:
        """Envoy's DetectorHostMonitorImpl::putHttpResponseCode: a 5xx adds to the 5xx count, a
        502/503/504 also to the gateway count (another 5xx resets that one), anything else
        resets both. A count that reaches its limit (consecutive5xxErrors, default 5;
        consecutiveGatewayErrors, off unless set) ejects the pod unless the ejected share would
        then pass maxEjectionPercent (default 10; DetectorImpl::ejectHost), and starts again."""
        counts = self.errors.setdefault((*key, pod), [0, 0])
        if not 500 <= status <= 599:
            counts[:] = [0, 0]
            return
        gateway = status in (502, 503, 504)
        counts[1] = counts[1] + 1 if gateway else 0
        counts[0] += 1
        limits = (policy.get("consecutive5xxErrors", 5), policy.get("consecutiveGatewayErrors", 0))
        # Only a count that has just grown is compared; a limit of 0 is off.
        grown = [(1, limits[1]), (0, limits[0])] if gateway else [(0, limits[0])]
        for index, limit in grown:
            if limit <= 0 or counts[index] != limit or (*key, pod) in self.ejected:
                continue
            out = sum(1 for e in self.ejected if e[:2] == key)
            if 100 * (out + 1) / self.hosts[key] <= policy.get("maxEjectionPercent", 10):
                self.ejected.add((*key, pod))
            counts[index] = 0

    def answer(self, pod: str, path: str) -> tuple[int, str, float]:
        """(status, body, milliseconds) of one attempt."""
        parts = urlsplit(path).path.strip("/").split("/")
        if parts[0] == "status" and len(parts) > 1:
            return int(parts[1]), pod, 0.0
        if parts[0] == "sleep" and len(parts) > 1:
            return 200, pod, float(parts[1])
        if parts[0] == "flaky" and len(parts) > 1:
            key = (pod, path)
            self.flaky_seen[key] = self.flaky_seen.get(key, 0) + 1
            return (503 if self.flaky_seen[key] <= int(parts[1]) else 200), pod, 0.0
        return 200, pod, 0.0


def _should_retry(
    retry_on: set[str], status: int | None, codes: frozenset[int], *, refused: bool = False
) -> bool:
    """Envoy's x-envoy-retry-on conditions (Envoy router filter docs). `status None` = the
    attempt timed out (per-try timeout): covered by 5xx and gateway-error. A refused connection
    is retried by `connect-failure` ("a connection failure to the upstream server ... Included
    in 5xx"), and, since Envoy counts an upstream reset as a 5xx, by 5xx, gateway-error and reset
    too (RetryStateImpl::wouldRetryFromReset)."""
    if refused:
        return bool(retry_on & {"connect-failure", "5xx", "gateway-error", "reset"})
    if status is None:
        return bool(retry_on & {"5xx", "gateway-error"})
    if "5xx" in retry_on and status >= 500:
        return True
    if "gateway-error" in retry_on and status in (502, 503, 504):
        return True
    return "retriable-status-codes" in retry_on and status in codes


def _attempts(
    cluster: Cluster,
    rule: Mapping[str, Any],
    pods: list[tuple[str, bool]],
    request: Request,
    upstreams: Upstreams,
    outlier: tuple[tuple[str, str | None], Mapping[str, Any]] | None = None,
) -> tuple[int, str, float, int]:
    """Envoy's router with the rule's timeout and retry policy against one pod.

    Route `timeout` bounds the whole request *including retries* (Envoy RouteAction.timeout: "the
    timeout includes all retries"); on expiry Envoy answers 504 "upstream request timeout".
    `perTryTimeout` bounds each attempt ("Timeout per attempt for a given request, including the
    initial call and any retries"). Retry back-off (25 ms base) is not modelled in elapsed time.
    `pods` are (pod, refuses connections) in the order attempts reach them (see previous_hosts
    above); attempt k goes to pods[k % len(pods)].
    """
    retries = rule.get("retries", ISTIO_DEFAULT_RETRIES)
    codes = ISTIO_DEFAULT_RETRIABLE_CODES if "retries" not in rule else frozenset()
    max_attempts = 1 + int(retries.get("attempts", 0))
    retry_on = {token.strip() for token in retries.get("retryOn", "").split(",") if token}
    total = duration_ms(rule["timeout"]) if "timeout" in rule else float("inf")
    per_try = duration_ms(retries["perTryTimeout"]) if "perTryTimeout" in retries else total
    elapsed = 0.0
    for attempt in range(1, max_attempts + 1):
        pod, refuses = pods[(attempt - 1) % len(pods)]
        if refuses:
            if attempt < max_attempts and _should_retry(retry_on, None, codes, refused=True):
                continue
            return 503, CONNECT_FAILURE_BODY, elapsed, attempt
        if authorized(cluster, pod, request):
            status, body, took = upstreams.answer(pod, request.path)
        else:  # the pod's sidecar answers; a 403 is no reason to retry
            status, body, took = 403, RBAC_DENIED_BODY, 0.0
        if outlier is not None:  # every attempt's answer counts, retried ones included
            upstreams.observe(outlier[0], pod, status, outlier[1])
        budget = min(per_try, total - elapsed)
        if took >= budget:
            elapsed += budget
            if elapsed >= total:
                return 504, TIMEOUT_BODY, total, attempt
            if attempt < max_attempts and _should_retry(retry_on, None, codes):
                continue
            return 504, TIMEOUT_BODY, elapsed, attempt
        elapsed += took
        if attempt < max_attempts and _should_retry(retry_on, status, codes):
            continue
        return status, body, elapsed, attempt
    raise AssertionError("unreachable")


def _route(
    cluster: Cluster, rule: Mapping[str, Any], request: Request, upstreams: Upstreams
) -> list[Branch]:
    """`route`: weighted destinations ("If there is only one destination in a rule, the weight
    value is assumed to be 100"); a destination without `subset` spreads over every endpoint of
    the host (round robin: in proportion to pods)."""
    destinations = rule["route"]
    total_weight = sum(d.get("weight", 100 if len(destinations) == 1 else 0) for d in destinations)
    branches = []
    for destination in destinations:
        weight = destination.get("weight", 100 if len(destinations) == 1 else 0)
        if weight == 0:
            continue
        host = destination["destination"]["host"]
        subset = destination["destination"].get("subset")
        labels = cluster.subset_labels(host, subset) if subset else None
        pods = cluster.endpoints(host, labels)
        outlier = _outlier_policy(cluster, host, subset)
        if outlier is not None:
            upstreams.hosts[(host, subset)] = len(pods)
            # Istio sets Envoy's healthy panic threshold to minHealthPercent (default 0): with
            # every pod ejected nothing is sent, instead of spreading over all in panic.
            pods = [pod for pod in pods if (host, subset, pod) not in upstreams.ejected]
        if not pods:  # Envoy: no healthy upstream
            branches.append(
                Branch(weight / total_weight, 503, "no healthy upstream", 0.0, attempts=0)
            )
            continue
        if not any(upstreams.refusing.get(pod) for pod in pods):
            for pod in sorted(set(pods)):
                share = weight / total_weight * pods.count(pod) / len(pods)
                status, body, elapsed, attempts = _attempts(
                    cluster,
                    rule,
                    [(pod, False)],
                    request,
                    upstreams,
                    None if outlier is None else ((host, subset), outlier),
                )
                branches.append(
                    Branch(share, status, body, elapsed, attempts, upstream=body in pods)
                )
            continue
        # Some pods refuse connections: each pod round robin can start at, then its successors.
        ring = []
        for pod in sorted(set(pods)):
            dead = upstreams.refusing.get(pod, 0)
            ring += [(pod, replica < dead) for replica in range(pods.count(pod))]
        for start in range(len(ring)):
            order = ring[start:] + ring[:start]
            status, body, elapsed, attempts = _attempts(cluster, rule, order, request, upstreams)
            branches.append(
                Branch(
                    weight / total_weight / len(ring),
                    status,
                    body,
                    elapsed,
                    attempts,
                    upstream=body in pods,
                )
            )
    return branches


def redirect_location(redirect: Mapping[str, Any], request: Request) -> str:
    """HTTPRedirect as Envoy's redirect builds the Location: each part given replaces the
    request's (`uri` the whole path, `authority` the host, `port` the Host's port), the scheme
    is the request's (http here) unless given, and the query string is kept (strip_query is
    false)."""
    split = urlsplit(request.path)
    scheme = redirect.get("scheme", "http")
    host = redirect.get("authority", request.host)
    if "port" in redirect:
        host = f"{host.split(':', 1)[0]}:{redirect['port']}"
    path = redirect.get("uri", split.path)
    query = f"?{split.query}" if split.query else ""
    return f"{scheme}://{host}{path}{query}"


def _answer_or_route(
    cluster: Cluster, rule: Mapping[str, Any], request: Request, upstreams: Upstreams
) -> list[Branch]:
    """A rule with `redirect` or `directResponse` answers itself ("A HTTP rule can either
    return a direct_response, redirect or forward (default) traffic"): the redirect with an empty
    body, the direct response with its body; else the rule routes."""
    if "redirect" in rule:
        redirect = rule["redirect"]
        location = (("location", redirect_location(redirect, request)),)
        status = int(redirect.get("redirectCode", 301))
        return [Branch(1.0, status, "", 0.0, headers=location)]
    if "directResponse" in rule:
        response = rule["directResponse"]
        body = response.get("body", {}).get("string", "")
        return [Branch(1.0, int(response["status"]), body, 0.0)]
    return _route_destinations(cluster, rule, request, upstreams)


def _origin_allowed(policy: Mapping[str, Any], origin: str) -> bool:
    """CorsPolicy.allowOrigins as Envoy's CORS filter reads them (CorsFilter::isOriginAllowed):
    an entry matching the text `*` allows every origin, else one must match the origin."""
    return any(
        string_matches(rule, "*") or string_matches(rule, origin)
        for rule in policy.get("allowOrigins", [])
    )


def _with_header_lines(
    lines: tuple[tuple[str, str], ...], added: list[tuple[str, str]]
) -> tuple[tuple[str, str], ...]:
    """`lines` with each of `added` set, replacing lines of that name (Envoy's setInline)."""
    names = {name for name, _ in added}
    return (*[(n, v) for n, v in lines if n.lower() not in names], *added)


def _apply_rule(
    cluster: Cluster, rule: Mapping[str, Any], request: Request, upstreams: Upstreams
) -> list[Branch]:
    """`corsPolicy`: Envoy's CORS filter, which Istio puts before the fault filter. A request
    with a non-empty Origin the policy allows is a CORS request; if it is a preflight (OPTIONS
    with a non-empty Access-Control-Request-Method) the filter answers it 200 itself, with
    allow-methods, allow-headers (each list joined by ",") and max-age (seconds). Its encoder
    side then sets allow-origin (the request's origin), allow-credentials `true` and
    expose-headers on every answer to the request, the filter's own and other local replies
    included. Another origin's preflight is forwarded (unmatchedPreflights FORWARD, the
    default); its answers are left alone."""
    policy = rule.get("corsPolicy")
    headers = {k.lower(): v for k, v in request.headers.items()}
    origin = headers.get("origin", "")
    if policy is None or not origin or not _origin_allowed(policy, origin):
        return _fault_and_route(cluster, rule, request, upstreams)
    added = [("access-control-allow-origin", origin)]
    if policy.get("allowCredentials"):
        added.append(("access-control-allow-credentials", "true"))
    if policy.get("exposeHeaders"):
        added.append(("access-control-expose-headers", ",".join(policy["exposeHeaders"])))
    if request.method == "OPTIONS" and headers.get("access-control-request-method"):
        answer: list[tuple[str, str]] = []
        for key, name in (
            ("allowMethods", "access-control-allow-methods"),
            ("allowHeaders", "access-control-allow-headers"),
        ):
            if policy.get(key):
                answer.append((name, ",".join(policy[key])))
        if "maxAge" in policy:
            answer.append(
                ("access-control-max-age", str(int(duration_ms(policy["maxAge"]) // 1000)))
            )
        return [Branch(1.0, 200, "", 0.0, headers=_with_header_lines(tuple(answer), added))]
    return [
        replace(branch, headers=_with_header_lines(branch.headers, added))
        for branch in _fault_and_route(cluster, rule, request, upstreams)
    ]


def _fault_and_route(
    cluster: Cluster, rule: Mapping[str, Any], request: Request, upstreams: Upstreams
) -> list[Branch]:
    """HTTPFaultInjection: a delay is injected first, then an abort ("delay and abort can be
    specified together"); an aborted request never reaches the upstream."""
    fault = rule.get("fault", {})
    delay_ms, delayed = 0.0, 0.0
    if "delay" in fault:
        delay_ms = duration_ms(fault["delay"]["fixedDelay"])
        delayed = fault["delay"].get("percentage", {}).get("value", 100.0) / 100
    aborted = 0.0
    if "abort" in fault:
        aborted = fault["abort"].get("percentage", {}).get("value", 100.0) / 100
    branches: list[Branch] = []
    routed = _answer_or_route(cluster, rule, request, upstreams) if aborted < 1 else []
    # Route response headers go on the upstream's answers only, not on Envoy's local replies
    # (envoyproxy/envoy#8944: sendLocalReply does not apply response_headers_to_add).
    route_answer = rule.get("headers", {}).get("response")
    for is_delayed, p_delay in ((True, delayed), (False, 1 - delayed)):
        if p_delay <= 0:
            continue
        extra = delay_ms if is_delayed else 0.0
        if aborted > 0:
            status = int(fault["abort"]["httpStatus"])
            branches.append(Branch(p_delay * aborted, status, FAULT_ABORT_BODY, extra))
        if aborted < 1:
            for branch in routed:
                branches.append(
                    Branch(
                        branch.probability * p_delay * (1 - aborted),
                        branch.status,
                        branch.body,
                        branch.elapsed_ms + extra,
                        branch.attempts,
                        branch.upstream,
                        # A destination's own changes come first (below), then the rule's.
                        change_headers(route_answer, branch.headers or UPSTREAM_ANSWER_HEADERS)
                        if branch.upstream
                        else branch.headers,
                    )
                )
    return branches


def _copies(cluster: Cluster, rule: Mapping[str, Any], request: Request) -> list[Copy]:
    """`mirror` + `mirrorPercentage` (absent: 100%): "Mirror HTTP traffic to another destination
    in addition to forwarding the requests to the intended destination ... the Host/Authority
    header is appended with -shadow" (Istio VirtualService, HTTPRoute.mirror). Envoy's router
    shadows the whole request, method, headers and body included (RouteAction
    request_mirror_policies), to the mirror cluster, whose load balancer (round robin) picks a
    host per copy like for any request. The router shadows only what reaches it: an aborted
    request is not copied. `mirrors` lists several such policies."""
    policies = []
    if "mirror" in rule:
        policies.append((rule["mirror"], rule.get("mirrorPercentage", {}).get("value", 100.0)))
    # `mirrors`: one request_mirror_policy each, each sampled on its own (HTTPMirrorPolicy).
    for entry in rule.get("mirrors", []):
        policies.append((entry["destination"], entry.get("percentage", {}).get("value", 100.0)))
    aborted = rule.get("fault", {}).get("abort", {})
    reached = 1 - (aborted.get("percentage", {}).get("value", 100.0) / 100 if aborted else 0.0)
    name = request.host.rsplit(":", 1)[0] if ":" in request.host else request.host
    copies = []
    for mirror, value in policies:
        percent = value / 100
        host = mirror["host"]
        labels = cluster.subset_labels(host, mirror["subset"]) if "subset" in mirror else None
        pods = cluster.endpoints(host, labels)
        if not pods or reached * percent <= 0:
            continue
        copies.append(
            Copy(
                reached * percent,
                ",".join(sorted(set(pods))),
                len(pods),
                request.method,
                request.path,
                f"{name}-shadow",
                request.body,
            )
        )
    return copies


def _forwarded(rule: Mapping[str, Any], request: Request) -> tuple[tuple[str, str], ...]:
    """The request's headers as the router forwards them: the rule's request header changes and
    its authority rewrite (Envoy's host_rewrite_literal) are applied before the request (and its
    mirror copy) leaves."""
    lines = (("host", request.host), *request.headers.items())
    lines = change_headers(destination_request_changes(rule), lines)
    changed = change_headers(rule.get("headers", {}).get("request"), lines)
    authority = rule.get("rewrite", {}).get("authority")
    if authority is None:
        return changed
    return tuple((name, authority if name == "host" else value) for name, value in changed)


def rewritten_path(rule: Mapping[str, Any], request: Request) -> str:
    """HTTPRewrite of the path; the query string is kept either way.

    `uri` becomes Envoy's prefix_rewrite on the route Istio makes of the match block that
    matched: "the matched prefix (or path) should be swapped with this value" — a `uri.prefix`
    block's prefix, a `uri.exact` block's whole path, and for a block without `uri` Istio's
    default prefix `/`. `uriRegexRewrite` is Envoy's regex_rewrite: every match of the pattern
    in the path is substituted (RE2 GlobalReplace, `\1` for groups)."""
    split = urlsplit(request.path)
    path = split.path
    rewrite = rule.get("rewrite", {})
    if "uri" in rewrite:
        block = next(b for b in rule.get("match", [{}]) if request_matches(b, request))
        uri = block.get("uri", {"prefix": "/"})
        assert "regex" not in uri, "a prefix rewrite of a regex match is not modelled"
        matched = uri.get("prefix", uri.get("exact", ""))
        path = rewrite["uri"] + path[len(matched) :]
    if "uriRegexRewrite" in rewrite:
        regex = rewrite["uriRegexRewrite"]
        path = re2.sub(regex["match"], regex["rewrite"], path)
    return path + (f"?{split.query}" if split.query else "")


def _egress_host_matches(entry: str, sidecar_namespace: str, fqdn: str) -> bool:
    """One `egress.hosts` entry, `namespace/dnsName` (Istio Sidecar reference, IstioEgressListener
    `hosts`): the namespace `.` is the Sidecar's own, `*` any, `~` none; the dnsName is a FQDN, or
    `*` for every host, or `*.suffix`."""
    namespace, _, dns_name = entry.partition("/")
    service_namespace = fqdn.split(".")[1]
    if namespace == ".":
        namespace = sidecar_namespace
    if namespace == "~" or namespace not in ("*", service_namespace):
        return False
    if dns_name == "*":
        return True
    if dns_name.startswith("*."):
        return fqdn.endswith(dns_name[1:])
    return dns_name == fqdn


def scoped_out(cluster: Cluster, request: Request, fqdn: str) -> Mapping[str, Any] | None:
    """The caller's Sidecar when it leaves `fqdn` out of every egress listener's hosts, else
    None. The proxy then has no cluster or route for that Service: "the sidecar proxy ... will
    only be able to reach" the hosts listed, and a host it does not know goes to the listener's
    catch-all, `PassthroughCluster` under `outboundTrafficPolicy` ALLOW_ANY (the default), or
    `BlackHoleCluster` under REGISTRY_ONLY (Istio Sidecar reference, OutboundTrafficPolicy)."""
    if request.principal is None:
        return None  # no known caller, no Sidecar
    namespace, labels = cluster.workload(request.principal)
    sidecar = cluster.sidecar(namespace, labels)
    if sidecar is None:
        return None
    for listener in sidecar["spec"].get("egress", []):
        if any(_egress_host_matches(h, namespace, fqdn) for h in listener.get("hosts", [])):
            return None
    return sidecar


def _passthrough(
    cluster: Cluster,
    sidecar: Mapping[str, Any],
    request: Request,
    caller_namespace: str,
    upstreams: Upstreams,
) -> Outcome:
    """A request for a host the caller's proxy does not know. ALLOW_ANY: `PassthroughCluster`, an
    ORIGINAL_DST cluster without TLS, sends it to the address the app dialled, the Service's
    ClusterIP, which kube-proxy spreads over every pod of the Service; no VirtualService,
    DestinationRule or retry policy applies, and the callee's sidecar gets plaintext, so sees no
    principal: exactly a client without a sidecar (`evaluate_direct`). REGISTRY_ONLY: Envoy's
    `BlackHoleCluster` has no endpoint, so 502 (not rendered by sailplan, refused here)."""
    mode = sidecar["spec"].get("outboundTrafficPolicy", {}).get("mode", "ALLOW_ANY")
    if mode != "ALLOW_ANY":
        raise NotImplementedError(f"outboundTrafficPolicy {mode} is not modelled")
    return evaluate_direct(
        cluster,
        replace(request, principal=None),
        caller_namespace=caller_namespace,
        upstreams=upstreams,
    )


def _first_rule(vs: Mapping[str, Any], request: Request) -> Mapping[str, Any] | None:
    """ "The first rule matching an incoming request is used" (VirtualService.http)."""
    for rule in vs["spec"].get("http", []):
        if rule_matches(rule, request):
            return rule
    return None


def evaluate_mesh(
    cluster: Cluster,
    request: Request,
    *,
    caller_namespace: str,
    upstreams: Upstreams | None = None,
) -> Outcome:
    """A request sent by an app through its sidecar to `request.host`."""
    upstreams = upstreams or Upstreams()
    fqdn = cluster.fqdn(request.host, caller_namespace)
    if fqdn is None:
        raise ValueError(f"{request.host!r} is not a service of the mesh")
    sidecar = scoped_out(cluster, request, fqdn)
    if sidecar is not None:
        return _passthrough(cluster, sidecar, request, caller_namespace, upstreams)
    vs = cluster.mesh_virtual_service(fqdn)
    if vs is None:
        # No VirtualService: Istio's default route sends the request to every endpoint.
        rule: Mapping[str, Any] = {"route": [{"destination": {"host": fqdn}}]}
    else:
        found = _first_rule(vs, request)
        if found is None:
            return Outcome((Branch(1.0, NO_ROUTE, "", 0.0),))
        rule = found
    return Outcome(
        tuple(_apply_rule(cluster, rule, request, upstreams)),
        tuple(_copies(cluster, rule, request)),
        _forwarded(rule, request),
        rewritten_path(rule, request),
    )


def _outlier_policy(cluster: Cluster, fqdn: str, subset: str | None) -> Mapping[str, Any] | None:
    """The DestinationRule's outlierDetection for the upstream cluster, a subset's own
    trafficPolicy taking the place of the rule's."""
    rule = cluster.destination_rules.get(fqdn)
    if rule is None:
        return None
    policy = rule["spec"].get("trafficPolicy", {})
    for entry in rule["spec"].get("subsets", []):
        if subset is not None and entry["name"] == subset and "trafficPolicy" in entry:
            policy = entry["trafficPolicy"]
    found: Mapping[str, Any] | None = policy.get("outlierDetection")
    return found


def _pool_limit(cluster: Cluster, fqdn: str, subset: str | None) -> float:
    """Requests one upstream cluster takes at once: connections plus pending requests.

    Envoy tracks each circuit-breaking limit "on a per upstream cluster and per priority basis"
    (Envoy arch overview, circuit breaking), and istiod builds one cluster per DestinationRule
    subset (`outbound|<port>|<subset>|<host>`) plus one for the host without subset, each with
    the DR's trafficPolicy unless the subset overrides it. For HTTP/1.1 a connection carries one
    request at a time; past `maxConnections` a request waits while fewer than
    `http1MaxPendingRequests` wait, else it overflows (503).
    """
    rule = cluster.destination_rules.get(fqdn)
    if rule is None:
        return float("inf")
    policy = rule["spec"].get("trafficPolicy", {})
    for entry in rule["spec"].get("subsets", []):
        if subset is not None and entry["name"] == subset and "trafficPolicy" in entry:
            policy = entry["trafficPolicy"]
    pool = policy.get("connectionPool")
    if pool is None:
        return float("inf")
    connections = pool.get("tcp", {}).get("maxConnections", 2**32 - 1)
    pending = pool.get("http", {}).get("http1MaxPendingRequests", 2**32 - 1)
    return float(connections + pending)


def evaluate_burst(
    cluster: Cluster,
    requests: list[Request],
    *,
    caller_namespace: str,
    upstreams: Upstreams | None = None,
) -> Outcome:
    """Requests sent through one sidecar, all in flight together; the outcome's shares are over
    the burst. Each request must go to one cluster (a rule with a single destination)."""
    upstreams = upstreams or Upstreams()
    admitted: dict[tuple[str, str | None], int] = {}
    branches: list[Branch] = []
    share = 1 / len(requests)
    for request in requests:
        fqdn = cluster.fqdn(request.host, caller_namespace)
        assert fqdn is not None, f"{request.host!r} is not a service of the mesh"
        assert scoped_out(cluster, request, fqdn) is None, "a burst past the caller's Sidecar"
        vs = cluster.mesh_virtual_service(fqdn)
        rule = _first_rule(vs, request) if vs is not None else None
        assert rule is not None and len(rule["route"]) == 1, "a burst needs one destination"
        destination = rule["route"][0]["destination"]
        key = (destination["host"], destination.get("subset"))
        admitted[key] = admitted.get(key, 0) + 1
        if admitted[key] > _pool_limit(cluster, *key):
            branches.append(Branch(share, 503, OVERFLOW_BODY, 0.0))
            continue
        for branch in _apply_rule(cluster, rule, request, upstreams):
            branches.append(
                Branch(
                    branch.probability * share,
                    branch.status,
                    branch.body,
                    branch.elapsed_ms,
                    branch.attempts,
                )
            )
    return Outcome(tuple(branches))


def evaluate_gateway(
    cluster: Cluster, request: Request, *, upstreams: Upstreams | None = None
) -> Outcome:
    """A request arriving at the ingress gateway: only VirtualServices bound to a Gateway apply
    there ("The names of gateways and sidecars that should apply these routes"). The gateway
    calls the pods with its own mTLS identity, whoever sent the request to it."""
    upstreams = upstreams or Upstreams()
    request = replace(request, principal=f"{cluster.trust_domain}/{GATEWAY_ACCOUNT}")
    for gateway in sorted(cluster.gateways):
        vs = cluster.gateway_virtual_service(gateway, request.host or "any.example")
        if vs is None:
            continue
        found = _first_rule(vs, request)
        if found is None:
            return Outcome((Branch(1.0, NO_ROUTE, "", 0.0),))
        return Outcome(
            tuple(_apply_rule(cluster, found, request, upstreams)),
            tuple(_copies(cluster, found, request)),
            _forwarded(found, request),
            rewritten_path(found, request),
        )
    return Outcome((Branch(1.0, NO_ROUTE, "", 0.0),))


def evaluate_direct(
    cluster: Cluster,
    request: Request,
    *,
    caller_namespace: str,
    upstreams: Upstreams | None = None,
) -> Outcome:
    """A request from a client without a sidecar: plaintext, straight to the Service's pods
    (kube-proxy spreads connections over every endpoint), so no VirtualService and no retry
    applies, and the pods' sidecars see no principal. Under a STRICT PeerAuthentication the
    connection itself is refused, which no scenario asks about."""
    assert request.principal is None, "a client without a sidecar has no principal"
    for peer in cluster.peer_authentications:
        mode = peer["spec"].get("mtls", {}).get("mode", "PERMISSIVE")
        if mode == "STRICT":
            raise NotImplementedError("a plaintext client of a STRICT workload is not modelled")
    upstreams = upstreams or Upstreams()
    fqdn = cluster.fqdn(request.host, caller_namespace)
    if fqdn is None:
        raise ValueError(f"{request.host!r} is not a service of the mesh")
    rule = {"route": [{"destination": {"host": fqdn}}], "retries": {"attempts": 0}}
    return Outcome(
        tuple(_apply_rule(cluster, rule, request, upstreams)), (), _forwarded(rule, request)
    )


# -- headers per destination (HTTPRouteDestination.headers) -----------------------------------


def _route_destinations(
    cluster: Cluster, rule: Mapping[str, Any], request: Request, upstreams: Upstreams
) -> list[Branch]:
    """`route` whose destinations change headers: Istio gives each weighted cluster its own
    header operations (WeightedCluster.ClusterWeight request/response_headers_to_add/remove), or
    appends the one destination's to the route's. Envoy evaluates a weighted cluster's before
    the route's (most_specific_header_mutations_wins is off); sailplan gives a header one change,
    on the route or on a destination, so either order gives the same lines. Each destination is
    routed alone, its branches scaled by its share of the weights, in the order `_route` takes
    them, so the pods' counters see the same sequence."""
    destinations = rule["route"]
    if not any("headers" in destination for destination in destinations):
        return _route(cluster, rule, request, upstreams)
    weights = [d.get("weight", 100 if len(destinations) == 1 else 0) for d in destinations]
    total = sum(weights)
    branches = []
    for destination, weight in zip(destinations, weights, strict=True):
        if weight == 0:
            continue
        answer = change_headers(
            destination.get("headers", {}).get("response"), UPSTREAM_ANSWER_HEADERS
        )
        alone = {**rule, "route": [{**destination, "weight": weight}]}
        for branch in _route(cluster, alone, request, upstreams):
            branches.append(
                replace(
                    branch,
                    probability=branch.probability * weight / total,
                    headers=answer if branch.upstream else branch.headers,
                )
            )
    return branches


def destination_request_changes(rule: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The request changes of the rule's destinations, which one forwarded request shows only
    when every destination that takes requests makes the same ones (Outcome.forwarded is one
    request): a scenario whose destinations differ here is refused, not evaluated wrongly."""
    destinations = rule.get("route", [])
    taking = [d for d in destinations if d.get("weight", 100 if len(destinations) == 1 else 0) > 0]
    changes = [d.get("headers", {}).get("request") for d in taking]
    if any(change != changes[0] for change in changes[1:]):
        raise ValueError(
            "the destinations change the request differently; one forwarded request cannot "
            "show that: give them the same request changes in a scenario"
        )
    return changes[0] if changes else None
