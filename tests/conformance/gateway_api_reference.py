"""A reference evaluator of rendered Gateway API objects: what a GAMMA mesh and a Gateway would
answer for one request.

Written from the Gateway API v1 specification (apis/v1/httproute_types.go, the GAMMA pages), not
from sailplan's renderer: it takes the rendered manifests (Services, Deployments, HTTPRoutes,
Gateways) as its only input. Each rule below cites the documented behaviour it encodes.

What the specification leaves to implementations is a parameter, so the conformance suite can run
every scenario under each choice and demand the same answers (`Implementation`):

- where a RegularExpression path ranks among the other path matches ("The precedence of
  RegularExpression path matches are implementation-specific"): below every prefix (Istio's and
  Linkerd's order), between prefixes and exact paths, or above exact paths;
- whether a regex must match the whole value (Envoy's RE2 `safe_regex`) or only somewhere in it
  (a search, as most regex libraries do by default).

What the Envoy-based implementations (Istio, Envoy Gateway) do where the specification names no
body or header is modelled as they do it, and said so: the 504 body of a request timeout, the
`-shadow` suffix of a mirrored copy's Host. The Gateway API standard channel has no retries; an
implementation's own default retry policy is not modelled (see the D13 divergence).

The upstream apps are the conformance backends, as in istio_reference.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import re2

from .istio_reference import (
    CONNECT_FAILURE_BODY,
    NO_ROUTE,
    TIMEOUT_BODY,
    UPSTREAM_ANSWER_HEADERS,
    Branch,
    Copy,
    Outcome,
    Request,
    Upstreams,
    duration_ms,
)

RegexRank = Literal["below-prefix", "between", "above-exact"]
RegexMode = Literal["full", "search"]
# The default match of a rule without matches (CRD default of `matches`).
EVERY_REQUEST: Mapping[str, Any] = {"path": {"type": "PathPrefix", "value": "/"}}
# "When no rules matching a request have been successfully attached to the parent a request is
# coming from, a HTTP 404 status code MUST be returned."
# A backend without ready endpoints: Envoy-based implementations answer 503 with this body.
NO_HEALTHY_UPSTREAM = "no healthy upstream"


@dataclass(frozen=True)
class Implementation:
    """The choices the specification leaves open."""

    regex_rank: RegexRank = "below-prefix"
    regex_mode: RegexMode = "full"


IMPLEMENTATIONS = tuple(
    Implementation(rank, mode)
    for rank in ("below-prefix", "between", "above-exact")
    for mode in ("full", "search")
)


class Cluster:
    """The rendered objects: Services, the pods of Deployments, HTTPRoutes and Gateways."""

    def __init__(self, manifests: Iterable[Mapping[str, Any]]) -> None:
        self.services: dict[tuple[str, str], Mapping[str, Any]] = {}
        self.deployments: list[Mapping[str, Any]] = []
        self.routes: list[Mapping[str, Any]] = []
        self.gateways: dict[tuple[str, str], Mapping[str, Any]] = {}
        for manifest in manifests:
            kind, meta = manifest["kind"], manifest["metadata"]
            key = (meta.get("namespace", ""), meta["name"])
            if kind == "Service":
                self.services[key] = manifest
            elif kind == "Deployment":
                self.deployments.append(manifest)
            elif kind == "HTTPRoute":
                self.routes.append(manifest)
            elif kind == "Gateway":
                self.gateways[key] = manifest
        # Ties across Routes go to the oldest, then to "{namespace}/{name}" in alphabetical
        # order; objects applied together have no order of creation to go by, so the name.
        self.routes.sort(key=lambda r: (r["metadata"]["namespace"], r["metadata"]["name"]))

    def endpoints(self, namespace: str, name: str) -> list[str]:
        """`<app>/<version>` per pod the Service selects."""
        selector = self.services[(namespace, name)]["spec"].get("selector", {})
        pods = []
        for deployment in self.deployments:
            if deployment["metadata"]["namespace"] != namespace:
                continue
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            if all(labels.get(k) == v for k, v in selector.items()):
                pod = f"{labels.get('app', '')}/{labels.get('version', '')}"
                pods += [pod] * int(deployment["spec"].get("replicas", 1))
        return pods

    def producer_routes(self, namespace: str, service: str) -> list[Mapping[str, Any]]:
        """GAMMA: HTTPRoutes whose parentRef is the Service (group "", kind Service) apply to
        requests for that Service from the mesh."""
        return [
            route
            for route in self.routes
            if any(
                ref.get("group") == ""
                and ref.get("kind") == "Service"
                and ref["name"] == service
                and ref.get("namespace", route["metadata"]["namespace"]) == namespace
                for ref in route["spec"]["parentRefs"]
            )
        ]

    def _listeners(self, route: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """The Gateway listeners a route attaches to: the one its parentRef's `sectionName`
        names, else every listener of the Gateway."""
        namespace = route["metadata"]["namespace"]
        found = []
        for ref in route["spec"]["parentRefs"]:
            gateway = self.gateways.get((ref.get("namespace", namespace), ref["name"]))
            if ref.get("kind") != "Gateway" or gateway is None:
                continue
            found += [
                listener
                for listener in gateway["spec"]["listeners"]
                if ref.get("sectionName", listener["name"]) == listener["name"]
            ]
        return found

    def listener(self, route: Mapping[str, Any], name: str | None) -> Mapping[str, Any]:
        """The listener a request on listener `name` (None: the first) reached `route` by."""
        return next(
            listener
            for listener in self._listeners(route)
            if name is None or listener["name"] == name
        )

    def gateway_routes(self, host: str, listener: str | None = None) -> list[Mapping[str, Any]]:
        """HTTPRoutes attached to a Gateway (to `listener`, when named; else to its first
        listener) whose `hostnames` take the request's host (no hostnames: every host;
        `*.example.com` any name below example.com)."""
        name = host.rsplit(":", 1)[0].lower()
        firsts = {id(g["spec"]["listeners"][0]) for g in self.gateways.values()}
        found = []
        for route in self.routes:
            attached = any(
                listener == reached["name"] if listener is not None else id(reached) in firsts
                for reached in self._listeners(route)
            )
            hostnames = route["spec"].get("hostnames")
            if attached and (
                not hostnames
                or any(
                    pattern == name or (pattern.startswith("*.") and name.endswith(pattern[1:]))
                    for pattern in hostnames
                )
            ):
                found.append(route)
        return found


# -- matching (HTTPRouteMatch) ---------------------------------------------------------------


def _regex(pattern: str, value: str, how: Implementation) -> bool:
    """The dialect is the implementation's; sailplan writes RE2-compatible patterns."""
    if how.regex_mode == "full":
        return re2.fullmatch(pattern, value) is not None
    return re2.search(pattern, value) is not None


def path_matches(rule: Mapping[str, str], path: str, how: Implementation) -> bool:
    kind, value = rule.get("type", "PathPrefix"), rule.get("value", "/")
    if kind == "Exact":
        # "an exact path match on `/abc` will only match requests to `/abc`, NOT `/abc/`"
        return path == value
    if kind == "PathPrefix":
        # "Matches based on a URL path prefix split by `/` ... element by element. When
        # specified, a trailing `/` is ignored": /abc matches /abc, /abc/, /abc/def, not /abcd.
        prefix = value.rstrip("/")
        return path == prefix or path.startswith(prefix + "/") or prefix == ""
    if kind == "RegularExpression":
        return _regex(value, path, how)
    raise ValueError(f"unknown path match type {kind}")


def _value_matches(rule: Mapping[str, str], value: str | None, how: Implementation) -> bool:
    if value is None:
        return False
    if rule.get("type", "Exact") == "Exact":
        return value == rule["value"]
    return _regex(rule["value"], value, how)


def match_matches(match: Mapping[str, Any], request: Request, how: Implementation) -> bool:
    """ "Multiple match values are ANDed together" (HTTPRouteMatch)."""
    split = urlsplit(request.path)
    if not path_matches(match.get("path", EVERY_REQUEST["path"]), split.path, how):
        return False
    if "method" in match and match["method"] != request.method:
        return False
    # Header names match case-insensitively; the value is the whole header as sent.
    headers = {k.lower(): v for k, v in request.headers.items()}
    for header in match.get("headers", []):
        if not _value_matches(header, headers.get(header["name"].lower()), how):
            return False
    query = dict(parse_qsl(split.query, keep_blank_values=True))
    return all(_value_matches(p, query.get(p["name"]), how) for p in match.get("queryParams", []))


def precedence(match: Mapping[str, Any], how: Implementation) -> tuple[float, int, int, int, int]:
    """ "precedence must be given to the match having: "Exact" path match; "Prefix" path match
    with largest number of characters; Method match; Largest number of header matches; Largest
    number of query param matches." Higher sorts first."""
    path = match.get("path", EVERY_REQUEST["path"])
    kind, value = path.get("type", "PathPrefix"), path.get("value", "/")
    rank = {"Exact": 3.0, "PathPrefix": 2.0}.get(kind)
    if rank is None:  # RegularExpression: implementation-specific
        rank = {"below-prefix": 1.0, "between": 2.5, "above-exact": 4.0}[how.regex_rank]
    return (
        rank,
        len(value),
        int("method" in match),
        len(match.get("headers", [])),
        len(match.get("queryParams", [])),
    )


def choose_rule(
    routes: list[Mapping[str, Any]], request: Request, how: Implementation
) -> Mapping[str, Any] | None:
    """The rule of the highest-precedence match the request satisfies, across all rules of all
    `routes`; ties go to the earlier Route (see Cluster), then "to the FIRST matching rule (in
    list order)"."""
    best: tuple[tuple[float, int, int, int, int], int, int] | None = None
    chosen = None
    for route_index, route in enumerate(routes):
        for rule_index, rule in enumerate(route["spec"].get("rules", [])):
            for match in rule.get("matches", [EVERY_REQUEST]):
                if not match_matches(match, request, how):
                    continue
                key = (precedence(match, how), -route_index, -rule_index)
                if best is None or key > best:
                    best, chosen = key, rule
    return chosen


# -- the rule's effect ------------------------------------------------------------------------


# A filter's `type` and the field holding its settings.
_FILTER_FIELDS = {
    "RequestHeaderModifier": "requestHeaderModifier",
    "ResponseHeaderModifier": "responseHeaderModifier",
    "URLRewrite": "urlRewrite",
    "RequestMirror": "requestMirror",
    "RequestRedirect": "requestRedirect",
}
# "the well-known port associated with the redirect scheme" (HTTPRequestRedirectFilter.Port).
WELL_KNOWN_PORTS = {"http": 80, "https": 443}


def _filter(rule: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    field = _FILTER_FIELDS[kind]
    for filter_ in rule.get("filters", []):
        if filter_.get("type") == kind:
            found: Mapping[str, Any] = filter_[field]
            return found
    return None


def change_headers(
    changes: Mapping[str, Any] | None, lines: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    """HTTPHeaderFilter: `set` overwrites a header ("replaced"), `add` "appends to any existing
    values" (one more header line, which HTTP reads as the comma-joined value), `remove` drops
    it; names compare case-insensitively, values are literal."""
    if not changes:
        return lines
    removed = {name.lower() for name in changes.get("remove", [])}
    replaced = {h["name"].lower() for h in changes.get("set", [])}
    kept = tuple((n, v) for n, v in lines if n.lower() not in removed | replaced)
    added = tuple((h["name"], h["value"]) for h in changes.get("set", []) + changes.get("add", []))
    return kept + added


def forwarded(rule: Mapping[str, Any], request: Request) -> tuple[tuple[str, str], ...]:
    """The request's header lines as forwarded: RequestHeaderModifier, then URLRewrite's
    `hostname` ("Hostname is the value to be used to replace the Host header value during
    forwarding")."""
    lines = (("host", request.host), *request.headers.items())
    changed = change_headers(_filter(rule, "RequestHeaderModifier"), lines)
    hostname = (_filter(rule, "URLRewrite") or {}).get("hostname")
    if hostname is None:
        return changed
    return tuple((n, hostname if n.lower() == "host" else v) for n, v in changed)


def rewritten_path(rule: Mapping[str, Any], request: Request, how: Implementation) -> str:
    """URLRewrite `path` (the query string is kept): ReplaceFullPath replaces the path;
    ReplacePrefixMatch replaces the PathPrefix the rule matched, by path elements, as the table
    of HTTPPathModifier.ReplacePrefixMatch shows: "/foo/bar" with prefix "/foo/" and "/xyz/"
    becomes "/xyz/bar", "/foo" with "/" becomes "/"."""
    return modified_path((_filter(rule, "URLRewrite") or {}).get("path"), rule, request, how)


def modified_path(
    modifier: Mapping[str, Any] | None,
    rule: Mapping[str, Any],
    request: Request,
    how: Implementation,
) -> str:
    """The request's path (with its query) after an HTTPPathModifier, of a URLRewrite or a
    RequestRedirect."""
    split = urlsplit(request.path)
    path = split.path
    if modifier is not None and modifier["type"] == "ReplaceFullPath":
        path = modifier["replaceFullPath"]
    elif modifier is not None:
        (match,) = rule["matches"]  # the CRD allows exactly one, a PathPrefix
        assert match_matches(match, request, how)
        prefix = match["path"]["value"].rstrip("/")
        path = modifier["replacePrefixMatch"].rstrip("/") + path[len(prefix) :] or "/"
    return path + (f"?{split.query}" if split.query else "")


def _attempt(
    pod: str, refuses: bool, rule: Mapping[str, Any], request: Request, upstreams: Upstreams
) -> tuple[int, str, float, int]:
    """One request to one pod: no retries (the standard channel has none). `timeouts.request`:
    "the gateway MUST return a timeout error" when it cannot answer in time (Envoy-based
    implementations: 504 `upstream request timeout`)."""
    if refuses:
        return 503, CONNECT_FAILURE_BODY, 0.0, 1
    status, body, took = upstreams.answer(pod, request.path)
    limit = rule.get("timeouts", {}).get("request")
    if limit is not None and duration_ms(limit) > 0 and took >= duration_ms(limit):
        return 504, TIMEOUT_BODY, duration_ms(limit), 1
    return status, body, took, 1


def _backends(
    cluster: Cluster, namespace: str, rule: Mapping[str, Any], request: Request, ups: Upstreams
) -> list[Branch]:
    """backendRefs: "the proportion of requests forwarded to the referenced backend is defined by
    weight/(sum of all weights in this BackendRefs list)" (weight defaults to 1; 0 takes
    nothing); within a Service, round robin over its pods."""
    refs = [ref for ref in rule.get("backendRefs", []) if ref.get("weight", 1) > 0]
    total = sum(ref.get("weight", 1) for ref in refs)
    # Response headers change the app's answers; what the proxy answers itself (a timeout, a
    # refused connection) is modelled as Envoy-based implementations leave their local replies.
    answer = change_headers(_filter(rule, "ResponseHeaderModifier"), UPSTREAM_ANSWER_HEADERS)
    branches: list[Branch] = []
    for ref in refs:
        share = ref.get("weight", 1) / total
        pods = cluster.endpoints(ref.get("namespace", namespace), ref["name"])
        if not pods:
            branches.append(Branch(share, 503, NO_HEALTHY_UPSTREAM, 0.0))
            continue
        ring = []
        for pod in sorted(set(pods)):
            dead = ups.refusing.get(pod, 0)
            ring += [(pod, replica < dead) for replica in range(pods.count(pod))]
        for pod, refuses in ring:
            status, body, elapsed, attempts = _attempt(pod, refuses, rule, request, ups)
            upstream = body == pod  # the pod answered (else the proxy did)
            headers = answer if upstream else ()
            branches.append(
                Branch(share / len(ring), status, body, elapsed, attempts, upstream, headers)
            )
    return _merged(branches)


def _merged(branches: list[Branch]) -> list[Branch]:
    merged: dict[tuple[Any, ...], float] = {}
    for b in branches:
        key = (b.status, b.body, b.elapsed_ms, b.attempts, b.upstream, b.headers)
        merged[key] = merged.get(key, 0.0) + b.probability
    return [Branch(p, *key) for key, p in merged.items()]


def _copies(
    cluster: Cluster, namespace: str, rule: Mapping[str, Any], request: Request
) -> list[Copy]:
    """RequestMirror: the request is also sent to the mirror backend, answers ignored; `percent`
    or `fraction` of requests ("If neither field is specified, 100% of requests will be
    mirrored"); each copy to a single endpoint of the backend. Envoy-based implementations send
    the copy with `-shadow` appended to the Host, method, headers and body unchanged."""
    copies = []
    for filter_ in rule.get("filters", []):
        if filter_.get("type") != "RequestMirror":
            continue
        mirror = filter_["requestMirror"]
        if "fraction" in mirror:
            share = mirror["fraction"]["numerator"] / mirror["fraction"].get("denominator", 100)
        else:
            share = mirror.get("percent", 100) / 100
        ref = mirror["backendRef"]
        pods = cluster.endpoints(ref.get("namespace", namespace), ref["name"])
        if not pods or share <= 0:
            continue
        host = request.host.rsplit(":", 1)[0] if ":" in request.host else request.host
        copies.append(
            Copy(
                share,
                ",".join(sorted(set(pods))),
                len(pods),
                request.method,
                request.path,
                f"{host}-shadow",
                request.body,
            )
        )
    return copies


def redirect_location(
    rule: Mapping[str, Any], request: Request, listener: tuple[str, int], how: Implementation
) -> str:
    """HTTPRequestRedirectFilter: `scheme` "When empty, the scheme of the request is used";
    `hostname` "When empty, the hostname in the Host header of the request is used"; `path` as
    URLRewrite's; `port` when not given: "If redirect scheme is not-empty, the redirect port
    MUST be the well-known port associated with the redirect scheme ... If redirect scheme is
    empty, the redirect port MUST be the Gateway Listener port" (for a Service parent, the
    Service's port), and "Implementations SHOULD NOT add the port number" when it is the
    scheme's well-known one. The query string is kept, as Envoy-based implementations do."""
    redirect = _filter(rule, "RequestRedirect")
    assert redirect is not None
    scheme = redirect.get("scheme", listener[0])
    host = redirect.get("hostname", request.host.rsplit(":", 1)[0])
    if "port" in redirect:
        port = redirect["port"]
    elif "scheme" in redirect:
        port = WELL_KNOWN_PORTS[redirect["scheme"]]
    else:
        port = listener[1]
    authority = host if WELL_KNOWN_PORTS.get(scheme) == port else f"{host}:{port}"
    path = modified_path(redirect.get("path"), rule, request, how)
    return f"{scheme}://{authority}{path}"


def _outcome(
    cluster: Cluster,
    namespace: str,
    rule: Mapping[str, Any],
    request: Request,
    ups: Upstreams,
    how: Implementation,
    listener: tuple[str, int] | None,
) -> Outcome:
    redirect = _filter(rule, "RequestRedirect")
    if redirect is not None:
        assert listener is not None, "a redirect from a Service without ports"
        # "RequestRedirect filter must not be used together with backendRefs": the rule answers.
        status = int(redirect.get("statusCode", 302))
        location = (("location", redirect_location(rule, request, listener, how)),)
        return Outcome((Branch(1.0, status, "", 0.0, headers=location),))
    return Outcome(
        tuple(_backends(cluster, namespace, rule, request, ups)),
        tuple(_copies(cluster, namespace, rule, request)),
        forwarded(rule, request),
        rewritten_path(rule, request, how),
    )


def evaluate_mesh(
    cluster: Cluster,
    request: Request,
    *,
    caller_namespace: str,
    upstreams: Upstreams | None = None,
    how: Implementation = Implementation(),
) -> Outcome:
    """A request from a meshed pod to the Service `request.host` names (`name` or
    `name.namespace...`)."""
    upstreams = upstreams or Upstreams()
    parts = request.host.rsplit(":", 1)[0].lower().split(".")
    service, namespace = parts[0], parts[1] if len(parts) > 1 else caller_namespace
    if (namespace, service) not in cluster.services:
        raise ValueError(f"{request.host!r} is not a Service of the mesh")
    routes = cluster.producer_routes(namespace, service)
    if not routes:
        # No HTTPRoute: the Service's own load balancing over every pod it selects.
        rule: Mapping[str, Any] = {"backendRefs": [{"name": service}]}
    else:
        found = choose_rule(routes, request, how)
        if found is None:
            return Outcome((Branch(1.0, NO_ROUTE, "", 0.0),))
        rule = found
    # A mesh request arrives on the Service's port (sailplan's have one).
    ports = cluster.services[(namespace, service)]["spec"].get("ports", [])
    listener = ("http", ports[0]["port"]) if ports else None
    return _outcome(cluster, namespace, rule, request, upstreams, how, listener)


def evaluate_gateway(
    cluster: Cluster,
    request: Request,
    *,
    upstreams: Upstreams | None = None,
    how: Implementation = Implementation(),
    listener: str | None = None,
) -> Outcome:
    """A request arriving at a Gateway's `listener` (by name; None: the first listener of each
    Gateway): its attached HTTPRoutes whose hostnames take the host. Backends are reached as
    Services (the producer routes of a backend Service are not applied again: sailplan's ingress
    route already carries the service's rules)."""
    upstreams = upstreams or Upstreams()
    routes = cluster.gateway_routes(request.host or "any.example", listener)
    found = choose_rule(routes, request, how) if routes else None
    if found is None:
        return Outcome((Branch(1.0, NO_ROUTE, "", 0.0),))
    route = next(r for r in routes if found in r["spec"].get("rules", []))
    namespace = route["metadata"]["namespace"]
    arrived = cluster.listener(route, listener)
    scheme = "https" if arrived["protocol"] == "HTTPS" else "http"
    return _outcome(cluster, namespace, found, request, upstreams, how, (scheme, arrived["port"]))
