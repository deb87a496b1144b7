"""Istio resources for a mesh: VirtualServices, DestinationRules, the ingress Gateway, PeerAuthentication.

Written as an Istio expert would by hand on `networking.istio.io/v1`: FQDN hosts, one ordered
VirtualService per service, faults always with `percentage`, durations at millisecond precision.
"""

from __future__ import annotations

from typing import Any

from sailplan import constants as c
from sailplan.model import Cors, Duration, HeaderChanges, Match, Mesh, Route, Service, StringMatch
from sailplan.model.ingress import (
    HTTPS_REDIRECT_PORT,
    Ingress,
    IngressRoute,
    ingress_certificate_name,
)
from sailplan.model.intersect import Inexpressible, intersect_lists
from sailplan.model.policy import ConnectionPool, LoadBalancer
from sailplan.model.route import Headers, folded_prefix_rewrite
from sailplan.render.kubernetes import mesh_labels, metadata, service_labels

NETWORKING = "networking.istio.io/v1"
SECURITY = "security.istio.io/v1"
TELEMETRY = "telemetry.istio.io/v1"
CLUSTER_DOMAIN = "cluster.local"

_LOAD_BALANCER = {
    "round-robin": "ROUND_ROBIN",
    "random": "RANDOM",
    "least-request": "LEAST_REQUEST",
}
_MTLS = {"strict": "STRICT", "permissive": "PERMISSIVE", "disable": "DISABLE"}


def istio_duration(duration: Duration) -> str:
    """Seconds with up to millisecond decimals ("0.5s", "2s"): the protobuf JSON form Istio accepts."""
    seconds, millis = divmod(duration.ms, 1000)
    if millis == 0:
        return f"{seconds}s"
    return f"{seconds}.{millis:03d}".rstrip("0") + "s"


def fqdn(mesh: Mesh, service_name: str) -> str:
    return f"{service_name}.{mesh.target_namespace}.svc.{CLUSTER_DOMAIN}"


def gateway_name(mesh: Mesh) -> str:
    return f"{mesh.name}-gateway"


def ingress_labels(mesh: Mesh) -> dict[str, str]:
    return {**mesh_labels(mesh), c.COMPONENT_LABEL: "ingress-gateway"}


def _string_match(match: StringMatch) -> dict[str, str]:
    # `{}`: Istio's "the header is present" (Envoy's present_match).
    return {} if match.kind == "present" else {match.kind: match.value}


def _http_match(match: Match) -> dict[str, Any]:
    rendered: dict[str, Any] = {}
    if match.path is not None:
        rendered["uri"] = _string_match(match.path)
    if match.method is not None:
        rendered["method"] = _string_match(match.method)
    if match.headers:
        rendered["headers"] = {k: _string_match(v) for k, v in sorted(match.headers.items())}
    if match.query:
        rendered["queryParams"] = {k: _string_match(v) for k, v in sorted(match.query.items())}
    if match.without_headers:
        rendered["withoutHeaders"] = {
            k: _string_match(v) for k, v in sorted(match.without_headers.items())
        }
    if match.ignore_uri_case:
        rendered["ignoreUriCase"] = True
    return rendered


def _envoy_literal(value: str) -> str:
    """Envoy reads `%...%` in a header value as a command (`%DOWNSTREAM_REMOTE_ADDRESS%`); the
    spec's values are literal text, so each `%` is escaped as `%%`."""
    return value.replace("%", "%%")


def _header_changes(changes: HeaderChanges) -> dict[str, Any]:
    rendered: dict[str, Any] = {}
    if changes.set:
        rendered["set"] = {k: _envoy_literal(v) for k, v in sorted(changes.set.items())}
    if changes.add:
        rendered["add"] = {k: _envoy_literal(v) for k, v in sorted(changes.add.items())}
    if changes.remove:
        rendered["remove"] = list(changes.remove)
    return rendered


def re2_escape(text: str) -> str:
    """Text as an RE2 pattern of itself: punctuation escaped with a backslash, which RE2 reads
    as the character."""
    return "".join(f"\\{char}" if not char.isalnum() and char != "/" else char for char in text)


def _rewrite(route: Route, matches: list[Match] | None) -> dict[str, Any]:
    assert route.rewrite is not None
    rewrite = route.rewrite
    rendered: dict[str, Any] = {}
    if rewrite.uri is not None:
        how = folded_prefix_rewrite(route, matches or [])
        if how == "uri":
            rendered["uri"] = rewrite.uri
        elif how == "regex":
            # The gateway's rule matches a narrower prefix than the route's own, and Envoy would
            # replace that one: replace the route's own prefix, as the sidecars do.
            own = next(m.path for m in route.match or [] if m.path is not None)
            pattern = "^" + re2_escape(own.value) + ("" if own.kind == "prefix" else "$")
            rendered["uriRegexRewrite"] = {"match": pattern, "rewrite": rewrite.uri}
        else:
            # check() refuses it for the istio plane (model/analysis.py).
            raise ValueError("a prefix rewrite the gateway's rule cannot express")
    if rewrite.uri_regex_rewrite is not None:
        # The spec's pattern matches the whole path; Envoy substitutes every match it finds.
        rendered["uriRegexRewrite"] = {
            "match": f"^(?:{rewrite.uri_regex_rewrite.match})$",
            "rewrite": rewrite.uri_regex_rewrite.rewrite,
        }
    if rewrite.authority is not None:
        rendered["authority"] = rewrite.authority
    return rendered


def _redirect(route: Route) -> dict[str, Any]:
    assert route.redirect is not None
    redirect = route.redirect
    rendered: dict[str, Any] = {}
    if redirect.uri is not None:
        rendered["uri"] = redirect.uri
    if redirect.authority is not None:
        rendered["authority"] = redirect.authority
    if redirect.scheme is not None:
        rendered["scheme"] = redirect.scheme
    if redirect.port is not None:
        rendered["port"] = redirect.port
    rendered["redirectCode"] = redirect.code
    return rendered


def _destination(mesh: Mesh, service_name: str, version: str | None) -> dict[str, Any]:
    destination: dict[str, Any] = {
        "host": fqdn(mesh, service_name),
        "port": {"number": mesh.services[service_name].port},
    }
    if version is not None:
        destination["subset"] = version
    return destination


def _headers(changes: Headers) -> dict[str, Any]:
    """HTTPRoute.headers, of a rule or of one of its destinations."""
    headers: dict[str, Any] = {}
    if changes.request is not None:
        headers["request"] = _header_changes(changes.request)
    if changes.response is not None:
        headers["response"] = _header_changes(changes.response)
    return headers


def _http_route(
    mesh: Mesh, service_name: str, route: Route, name: str, matches: list[Match] | None
) -> dict[str, Any]:
    rule: dict[str, Any] = {"name": name}
    if matches:
        rule["match"] = [_http_match(m) for m in matches]
    weights = {version: weight for version, weight in route.weights.items() if weight > 0}
    if route.redirect is not None:
        rule["redirect"] = _redirect(route)
    elif route.respond is not None:
        response: dict[str, Any] = {"status": route.respond.status}
        if route.respond.body is not None:
            response["body"] = {"string": route.respond.body}
        rule["directResponse"] = response
    elif len(weights) == 1:
        rule["route"] = [{"destination": _destination(mesh, service_name, next(iter(weights)))}]
    else:
        rule["route"] = [
            {"destination": _destination(mesh, service_name, version), "weight": weight}
            for version, weight in weights.items()
        ]
    for destination in rule.get("route", []):
        changes = (route.destination_headers or {}).get(destination["destination"]["subset"])
        if changes is not None:
            destination["headers"] = _headers(changes)
    if route.fault is not None:
        fault: dict[str, Any] = {}
        if route.fault.delay is not None:
            fault["delay"] = {
                "fixedDelay": istio_duration(route.fault.delay.fixed),
                "percentage": {"value": route.fault.delay.percent},
            }
        if route.fault.abort is not None:
            fault["abort"] = {
                "httpStatus": route.fault.abort.status,
                "percentage": {"value": route.fault.abort.percent},
            }
        rule["fault"] = fault
    if route.timeout is not None:
        rule["timeout"] = istio_duration(route.timeout)
    if route.retries is not None:
        retries: dict[str, Any] = {"attempts": route.retries.attempts}
        if route.retries.attempts > 0:
            retries["retryOn"] = ",".join(route.retries.conditions)
            if route.retries.per_try_timeout is not None:
                retries["perTryTimeout"] = istio_duration(route.retries.per_try_timeout)
        rule["retries"] = retries
    if route.headers is not None:
        rule["headers"] = _headers(route.headers)
    if route.rewrite is not None:
        rule["rewrite"] = _rewrite(route, matches)
    if route.mirror is not None:
        rule["mirror"] = _destination(mesh, service_name, route.mirror.to)
        rule["mirrorPercentage"] = {"value": route.mirror.percent}
    if route.cors is not None:
        rule["corsPolicy"] = _cors_policy(route.cors)
    if route.mirrors is not None:
        rule["mirrors"] = [
            {
                "destination": _destination(mesh, service_name, mirror.to),
                "percentage": {"value": mirror.percent},
            }
            for mirror in route.mirrors
        ]
    return rule


def _cors_policy(cors: Cors) -> dict[str, Any]:
    # Lists stay lists: istiod joins allowMethods, allowHeaders and exposeHeaders with "," for
    # Envoy, and sends maxAge as whole seconds (the model takes whole seconds only).
    policy: dict[str, Any] = {"allowOrigins": [_string_match(m) for m in cors.allow_origins]}
    if cors.allow_methods is not None:
        policy["allowMethods"] = list(cors.allow_methods)
    if cors.allow_headers is not None:
        policy["allowHeaders"] = list(cors.allow_headers)
    if cors.expose_headers is not None:
        policy["exposeHeaders"] = list(cors.expose_headers)
    if cors.max_age is not None:
        policy["maxAge"] = istio_duration(cors.max_age)
    if cors.allow_credentials is not None:
        policy["allowCredentials"] = cors.allow_credentials
    return policy


def _fallthrough(
    mesh: Mesh, service_name: str, name: str, matches: list[Match] | None
) -> dict[str, Any]:
    # Requests no rule matched go to every version, as the plain Kubernetes Service would send
    # them; without this rule Envoy answers 404 "no route" and the mesh changes behaviour.
    rule: dict[str, Any] = {"name": name}
    if matches:
        rule["match"] = [_http_match(m) for m in matches]
    rule["route"] = [{"destination": _destination(mesh, service_name, None)}]
    return rule


def route_name(route: Route, index: int) -> str:
    return route.name or f"route-{index}"


def service_http_rules(
    mesh: Mesh, service_name: str, within: list[Match] | None = None, prefix: str = ""
) -> list[dict[str, Any]]:
    """The service's rules in order; `within` narrows every rule to requests that also match it
    (the ingress route that chose this service)."""
    service = mesh.services[service_name]
    rules = []
    for index, route in enumerate(service.routes):
        matches = intersect_lists(within, route.match)
        if isinstance(matches, Inexpressible):
            # check() refuses such meshes for the istio plane (model/analysis.py).
            raise ValueError(f"services.{service_name}.routes[{index}]: {matches.reason}")
        if matches == []:
            continue  # this rule can never see a request the ingress route sends here
        rules.append(
            _http_route(mesh, service_name, route, prefix + route_name(route, index), matches)
        )
    if not service.routes or not service.routes[-1].is_catch_all:
        rules.append(_fallthrough(mesh, service_name, prefix + "all-versions", within))
    return rules


def virtual_service(mesh: Mesh, service_name: str) -> dict[str, Any]:
    host = fqdn(mesh, service_name)
    return {
        "apiVersion": NETWORKING,
        "kind": "VirtualService",
        "metadata": metadata(mesh, service_name, service_labels(mesh, service_name)),
        "spec": {
            "hosts": [host],
            "http": service_http_rules(mesh, service_name),
        },
    }


def _traffic_policy(service: Service) -> dict[str, Any]:
    policy = service.policy
    if policy is None:
        return {}
    rendered: dict[str, Any] = {}
    if policy.load_balancer is not None:
        if policy.load_balancer.algorithm is not None:
            rendered["loadBalancer"] = {"simple": _LOAD_BALANCER[policy.load_balancer.algorithm]}
        else:
            rendered["loadBalancer"] = {"consistentHash": _consistent_hash(policy.load_balancer)}
    if policy.connection_pool is not None:
        rendered["connectionPool"] = _connection_pool(policy.connection_pool, service.protocol)
    if policy.outlier_detection is not None:
        outlier = policy.outlier_detection
        rendered["outlierDetection"] = {
            "consecutive5xxErrors": outlier.consecutive_5xx_errors,
            "interval": istio_duration(outlier.interval),
            "baseEjectionTime": istio_duration(outlier.base_ejection_time),
            "maxEjectionPercent": outlier.max_ejection_percent,
        }
        if outlier.consecutive_gateway_errors is not None:
            rendered["outlierDetection"]["consecutiveGatewayErrors"] = (
                outlier.consecutive_gateway_errors
            )
    return rendered


def _consistent_hash(balancer: LoadBalancer) -> dict[str, Any]:
    if balancer.hash_cookie is not None:
        cookie = balancer.hash_cookie
        rendered: dict[str, Any] = {"name": cookie.name}
        if cookie.path is not None:
            rendered["path"] = cookie.path
        if cookie.ttl is not None:
            rendered["ttl"] = istio_duration(cookie.ttl)
        return {"httpCookie": rendered}
    if balancer.hash_source_ip:
        return {"useSourceIp": True}
    if balancer.hash_query_parameter is not None:
        return {"httpQueryParameterName": balancer.hash_query_parameter}
    return {"httpHeaderName": balancer.hash_header}


def _connection_pool(pool: ConnectionPool, protocol: str) -> dict[str, Any]:
    """Istio's tcp and http settings; each group only when it has a field."""
    tcp: dict[str, Any] = {}
    http: dict[str, Any] = {}
    if pool.max_connections is not None:
        tcp["maxConnections"] = pool.max_connections
    if pool.connect_timeout is not None:
        tcp["connectTimeout"] = istio_duration(pool.connect_timeout)
    if pool.max_connections is not None or pool.max_pending_requests > 0:
        # Envoy reads 0 as "unset" (unlimited); 1 is the smallest queue it can express.
        http["http1MaxPendingRequests"] = max(pool.max_pending_requests, 1)
    if pool.http2_max_requests is not None:
        http["http2MaxRequests"] = pool.http2_max_requests
    if pool.max_requests_per_connection is not None:
        http["maxRequestsPerConnection"] = pool.max_requests_per_connection
    if pool.max_retries is not None:
        http["maxRetries"] = pool.max_retries
    if pool.idle_timeout is not None:
        # A tcp service has no HTTP pool: its connections' idle time is the tcp setting.
        idle = tcp if protocol == "tcp" else http
        idle["idleTimeout"] = istio_duration(pool.idle_timeout)
    rendered: dict[str, Any] = {}
    if tcp:
        rendered["tcp"] = tcp
    if http:
        rendered["http"] = http
    return rendered


def destination_rule(mesh: Mesh, service_name: str) -> dict[str, Any]:
    service = mesh.services[service_name]
    spec: dict[str, Any] = {
        "host": fqdn(mesh, service_name),
        "subsets": [
            {"name": version, "labels": {c.WORKLOAD_VERSION_LABEL: version}}
            for version in sorted(service.versions)
        ],
    }
    policy = _traffic_policy(service)
    if policy:
        spec["trafficPolicy"] = policy
    return {
        "apiVersion": NETWORKING,
        "kind": "DestinationRule",
        "metadata": metadata(mesh, service_name, service_labels(mesh, service_name)),
        "spec": spec,
    }


def sidecar(mesh: Mesh, service_name: str) -> dict[str, Any] | None:
    """The `Sidecar` of a service with `calls`: its pods' proxies learn only the listed hosts.
    A host not listed is unknown to them and, under Istio's default `ALLOW_ANY`, goes to
    `PassthroughCluster`: to the address dialled, without the mesh's routes or policies."""
    calls = mesh.services[service_name].calls
    if calls is None:
        return None
    # istio-system/*: the control plane's own services stay known, as without a Sidecar.
    hosts = [f"./{fqdn(mesh, callee)}" for callee in sorted(set(calls))] + ["istio-system/*"]
    return {
        "apiVersion": NETWORKING,
        "kind": "Sidecar",
        "metadata": metadata(mesh, service_name, service_labels(mesh, service_name)),
        "spec": {
            "workloadSelector": {"labels": {c.APP_LABEL: service_name}},
            "egress": [{"hosts": hosts}],
        },
    }


def gateway(mesh: Mesh) -> dict[str, Any]:
    assert mesh.ingress is not None
    return {
        "apiVersion": NETWORKING,
        "kind": "Gateway",
        "metadata": metadata(mesh, gateway_name(mesh), ingress_labels(mesh)),
        "spec": {
            "selector": dict(c.ISTIO_GATEWAY_SELECTOR),
            "servers": _gateway_servers(mesh.name, mesh.ingress),
        },
    }


_TLS_VERSIONS = {"TLSv1.2": "TLSV1_2", "TLSv1.3": "TLSV1_3"}


def _gateway_servers(mesh_name: str, ingress: Ingress) -> list[dict[str, Any]]:
    hosts = list(ingress.hosts)
    tls = ingress.tls
    if tls is None:
        port = {"number": ingress.port, "name": f"http-{ingress.port}", "protocol": "HTTP"}
        return [{"port": port, "hosts": hosts}]
    secret = tls.secret_name or ingress_certificate_name(mesh_name)
    servers: list[dict[str, Any]] = [
        {
            "port": {"number": ingress.port, "name": f"https-{ingress.port}", "protocol": "HTTPS"},
            "hosts": hosts,
            "tls": {
                "mode": "SIMPLE",
                "credentialName": secret,
                "minProtocolVersion": _TLS_VERSIONS[tls.min_version],
            },
        }
    ]
    if tls.https_redirect:
        plain = HTTPS_REDIRECT_PORT
        servers.append(
            {
                "port": {"number": plain, "name": f"http-{plain}", "protocol": "HTTP"},
                "hosts": hosts,
                "tls": {"httpsRedirect": True},
            }
        )
    return servers


def _ingress_rule_prefix(ingress_route: IngressRoute, index: int) -> str:
    return f"{ingress_route.name or f'ingress-{index}'}-"


def ingress_virtual_service(mesh: Mesh) -> dict[str, Any]:
    """The gateway's routes. A gateway ignores mesh-bound VirtualServices, so the target service's
    own rules are repeated here, each narrowed to the ingress route that picks the service."""
    assert mesh.ingress is not None
    http = []
    for index, ingress_route in enumerate(mesh.ingress.routes):
        http += service_http_rules(
            mesh,
            ingress_route.service,
            within=ingress_route.match,
            prefix=_ingress_rule_prefix(ingress_route, index),
        )
    return {
        "apiVersion": NETWORKING,
        "kind": "VirtualService",
        "metadata": metadata(mesh, f"{mesh.name}-ingress", ingress_labels(mesh)),
        "spec": {
            "hosts": list(mesh.ingress.hosts),
            "gateways": [f"{mesh.target_namespace}/{gateway_name(mesh)}"],
            "http": http,
        },
    }


def peer_authentication(mesh: Mesh) -> dict[str, Any]:
    return {
        "apiVersion": SECURITY,
        "kind": "PeerAuthentication",
        "metadata": metadata(mesh, "default", mesh_labels(mesh)),
        "spec": {"mtls": {"mode": _MTLS[mesh.mtls]}},
    }


def access_log_telemetry(mesh: Mesh) -> dict[str, Any]:
    """Envoy's access log for every sidecar of the namespace, through Istio's built-in `envoy`
    provider (stdout); without a selector a Telemetry applies to the whole namespace."""
    return {
        "apiVersion": TELEMETRY,
        "kind": "Telemetry",
        "metadata": metadata(mesh, f"{mesh.name}-access-log", mesh_labels(mesh)),
        "spec": {"accessLogging": [{"providers": [{"name": "envoy"}]}]},
    }


def tcp_virtual_service(mesh: Mesh, service_name: str) -> dict[str, Any] | None:
    """A tcp service's route splits connections (a tcp route has no match, so only one applies);
    without a route, connections spread over every pod as the Kubernetes Service spreads them."""
    service = mesh.services[service_name]
    if not service.routes:
        return None
    weights = {v: w for v, w in service.routes[0].weights.items() if w > 0}
    route = [
        {"destination": _destination(mesh, service_name, version), "weight": weight}
        for version, weight in weights.items()
    ]
    if len(route) == 1:
        del route[0]["weight"]
    return {
        "apiVersion": NETWORKING,
        "kind": "VirtualService",
        "metadata": metadata(mesh, service_name, service_labels(mesh, service_name)),
        "spec": {"hosts": [fqdn(mesh, service_name)], "tcp": [{"route": route}]},
    }


def render_istio(mesh: Mesh) -> list[dict[str, Any]]:
    """Per service (sorted): DestinationRule, VirtualService (tcp services: one only when they
    route), Sidecar (services with `calls`); then the Gateway and its VirtualService; then PeerAuthentication; then the
    access-log Telemetry when the mesh asks for one."""
    objects: list[dict[str, Any]] = []
    for service_name in sorted(mesh.services):
        objects.append(destination_rule(mesh, service_name))
        if mesh.services[service_name].protocol != "tcp":
            objects.append(virtual_service(mesh, service_name))
        elif (tcp := tcp_virtual_service(mesh, service_name)) is not None:
            objects.append(tcp)
        if (scope := sidecar(mesh, service_name)) is not None:
            objects.append(scope)
    if mesh.ingress is not None:
        objects.append(gateway(mesh))
        objects.append(ingress_virtual_service(mesh))
    objects.append(peer_authentication(mesh))
    if mesh.access_log:
        objects.append(access_log_telemetry(mesh))
    return objects
