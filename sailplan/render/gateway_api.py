"""Kubernetes Gateway API objects for a mesh: the `gateway-api` data plane.

Written on the v1 standard channel, for any implementation of GAMMA (mesh routing through
HTTPRoutes bound to a Service, e.g. Linkerd or Istio) and of Gateway (the ingress): per http
service an HTTPRoute whose parent is the Service itself, and a Service per version for its
backends; for the ingress a Gateway of a configurable class and one HTTPRoute bound to it, which
repeats each target service's rules narrowed to the ingress route (as the istio plane does, since
whether a gateway applies the mesh's routes too is up to the implementation). With `ingress.tls`
the Gateway's listener terminates TLS, and `httpsRedirect` adds a plain listener on port 80 with
an HTTPRoute of its own that redirects to https. Which rules there are and why their order is
safe: sailplan/model/gateway_api.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sailplan.model import Duration, Match, Mesh, Route
from sailplan.model.gateway_api import (
    Rule,
    authority_parts,
    ingress_rules,
    mesh_rules,
    path_match,
    path_rewrite,
    string_match,
)
from sailplan.model.ingress import HTTPS_REDIRECT_PORT, ingress_certificate_name
from sailplan.model.route import HeaderChanges, Redirect
from sailplan.render.istio import gateway_name, ingress_labels
from sailplan.render.kubernetes import metadata, service_labels, service_object, workload_name

GATEWAY_API = "gateway.networking.k8s.io/v1"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"
LISTENER = "http"
HTTPS_LISTENER = "https"
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Listener:
    """Where a rule's requests arrive: the scheme and port a redirect without them keeps."""

    scheme: str
    port: int


def gateway_api_duration(duration: Duration) -> str:
    """The Gateway API's duration form: up to four `<1-5 digits><h|m|s|ms>` parts, no fractions
    ("1s500ms", "2m")."""
    hours, rest = divmod(duration.ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    parts = [(hours, "h"), (minutes, "m"), (seconds, "s"), (millis, "ms")]
    text = "".join(f"{value}{unit}" for value, unit in parts if value)
    return text or "0s"


def _match(match: Match) -> dict[str, Any]:
    kind, value = path_match(match)
    rendered: dict[str, Any] = {"path": {"type": kind, "value": value}}
    if match.method is not None:
        rendered["method"] = match.method.value  # check() refused non-exact methods
    if match.headers:
        rendered["headers"] = [
            {"type": kind, "name": name, "value": value}
            for name, (kind, value) in sorted(
                (name, string_match(header)) for name, header in match.headers.items()
            )
        ]
    if match.query:
        rendered["queryParams"] = [
            {"type": kind, "name": name, "value": value}
            for name, (kind, value) in sorted(
                (name, string_match(param)) for name, param in match.query.items()
            )
        ]
    return rendered


def _backend(mesh: Mesh, service_name: str, version: str | None) -> dict[str, Any]:
    name = service_name if version is None else workload_name(service_name, version)
    return {"name": name, "port": mesh.services[service_name].port}


def _mirror_share(percent: float) -> dict[str, Any]:
    """`percent` (whole numbers) or `fraction` (numerator/denominator) of a RequestMirror."""
    if percent == int(percent):
        return {"percent": int(percent)}
    share = Fraction(str(percent)) / 100
    return {"fraction": {"numerator": share.numerator, "denominator": share.denominator}}


def _header_changes(changes: HeaderChanges) -> dict[str, Any]:
    """An HTTPHeaderFilter. Values are literal in the Gateway API (no `%` formatting), as in
    sailplan; each header takes one change, so the order of set, add and remove does not
    matter."""
    rendered: dict[str, Any] = {}
    for kind, values in (("set", changes.set), ("add", changes.add)):
        if values:
            rendered[kind] = [{"name": n, "value": v} for n, v in sorted(values.items())]
    if changes.remove:
        rendered["remove"] = sorted(changes.remove)
    return rendered


def _filters(mesh: Mesh, rule: Rule, route: Route) -> list[dict[str, Any]]:
    """In the order sailplan applies them ("implementations SHOULD implement filters in the order
    they are specified"): request headers, then the rewrite, then the mirror copies the changed
    request; response headers on the way back."""
    filters: list[dict[str, Any]] = []
    headers = route.headers
    if headers is not None and headers.request is not None:
        filters.append(
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": _header_changes(headers.request),
            }
        )
    if route.rewrite is not None:
        rewrite: dict[str, Any] = {}
        if route.rewrite.authority is not None:
            rewrite["hostname"] = route.rewrite.authority
        path = path_rewrite(rule)  # check() refused what it cannot say
        if path is not None:
            kind, value = path
            field = "replaceFullPath" if kind == "ReplaceFullPath" else "replacePrefixMatch"
            rewrite["path"] = {"type": kind, field: value}
        if rewrite:
            filters.append({"type": "URLRewrite", "urlRewrite": rewrite})
    for copy in route.copies:  # a RequestMirror filter per version, each with its own share
        mirror: dict[str, Any] = {"backendRef": _backend(mesh, rule.service, copy.to)}
        if copy.percent < 100:
            mirror.update(_mirror_share(copy.percent))
        filters.append({"type": "RequestMirror", "requestMirror": mirror})
    if headers is not None and headers.response is not None:
        filters.append(
            {
                "type": "ResponseHeaderModifier",
                "responseHeaderModifier": _header_changes(headers.response),
            }
        )
    return filters


def redirect_filter(redirect: Redirect, listener: Listener) -> dict[str, Any]:
    """An HTTPRequestRedirectFilter giving the Location sailplan means.

    sailplan keeps the request's scheme and Host port (as Envoy does) where the redirect gives
    none, and `authority` replaces the host and its port; a Gateway API redirect without a port
    takes the scheme's well-known port when it gives a scheme, else the listener's. A client
    names the port it sends to in Host unless it is the scheme's default (RFC 9110), so the
    request's port is the listener's, and the port is written out where the two rules differ."""
    rendered: dict[str, Any] = {}
    if redirect.scheme is not None:
        rendered["scheme"] = redirect.scheme
    scheme = redirect.scheme or listener.scheme
    if redirect.authority is not None:
        rendered["hostname"], port = authority_parts(redirect.authority)
    elif listener.port != DEFAULT_PORTS[listener.scheme]:
        port = listener.port
    else:
        port = None
    if redirect.port is not None:
        port = redirect.port
    if redirect.uri is not None:
        rendered["path"] = {"type": "ReplaceFullPath", "replaceFullPath": redirect.uri}
    wanted = DEFAULT_PORTS[scheme] if port is None else port
    derived = DEFAULT_PORTS[redirect.scheme] if redirect.scheme is not None else listener.port
    if wanted != derived:
        rendered["port"] = wanted
    rendered["statusCode"] = redirect.code  # check() refused the codes the channel lacks
    return rendered


def _rule(mesh: Mesh, rule: Rule, listener: Listener) -> dict[str, Any]:
    rendered: dict[str, Any] = {"name": rule.name}
    if rule.matches is not None:
        rendered["matches"] = [_match(m) for m in rule.matches]
    route = rule.route
    if route is None:
        rendered["backendRefs"] = [_backend(mesh, rule.service, None)]
        return rendered
    if route.redirect is not None:
        # A redirect answers instead of forwarding: no backends (the CRD forbids both).
        redirect = redirect_filter(route.redirect, listener)
        rendered["filters"] = [{"type": "RequestRedirect", "requestRedirect": redirect}]
        return rendered
    filters = _filters(mesh, rule, route)
    if filters:
        rendered["filters"] = filters
    weights = {version: weight for version, weight in route.weights.items() if weight > 0}
    if len(weights) == 1:
        rendered["backendRefs"] = [_backend(mesh, rule.service, next(iter(weights)))]
    else:
        rendered["backendRefs"] = [
            {**_backend(mesh, rule.service, version), "weight": weight}
            for version, weight in weights.items()
        ]
    if route.timeout is not None:
        rendered["timeouts"] = {"request": gateway_api_duration(route.timeout)}
    return rendered


def version_service(mesh: Mesh, service_name: str, version: str) -> dict[str, Any]:
    """A Service selecting one version's pods: what an HTTPRoute's backendRefs can name."""
    selected = service_object(mesh, service_name, version)
    selected["spec"]["ports"][0]["appProtocol"] = "http"
    return selected


def service_route(mesh: Mesh, service_name: str) -> dict[str, Any]:
    """The service's HTTPRoute, bound to its Service (GAMMA): callers' requests to the Service
    follow its rules."""
    rules = mesh_rules(mesh, service_name)
    # Callers send plain HTTP to the Service's port; the mesh's proxies encrypt it.
    listener = Listener("http", mesh.services[service_name].port)
    return {
        "apiVersion": GATEWAY_API,
        "kind": "HTTPRoute",
        "metadata": metadata(mesh, service_name, service_labels(mesh, service_name)),
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": service_name}],
            "rules": [_rule(mesh, rule, listener) for rule in rules],
        },
    }


def _listener(name: str, port: int, protocol: str, **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "port": port,
        "protocol": protocol,
        **more,
        "allowedRoutes": {"namespaces": {"from": "Same"}},
    }


def gateway(mesh: Mesh, gateway_class: str) -> dict[str, Any]:
    """One HTTP listener on `ingress.port`; with `tls`, an HTTPS listener there instead that
    terminates TLS with the Secret (the one cert-manager issues for `issuer`, in the Gateway's
    namespace), and with `httpsRedirect` an HTTP listener on port 80."""
    assert mesh.ingress is not None
    tls = mesh.ingress.tls
    if tls is None:
        listeners = [_listener(LISTENER, mesh.ingress.port, "HTTP")]
    else:
        secret = tls.secret_name or ingress_certificate_name(mesh.name)
        terminate = {
            "mode": "Terminate",
            "certificateRefs": [{"group": "", "kind": "Secret", "name": secret}],
        }
        listeners = [_listener(HTTPS_LISTENER, mesh.ingress.port, "HTTPS", tls=terminate)]
        if tls.https_redirect:
            listeners.append(_listener(LISTENER, HTTPS_REDIRECT_PORT, "HTTP"))
    return {
        "apiVersion": GATEWAY_API,
        "kind": "Gateway",
        "metadata": metadata(mesh, gateway_name(mesh), ingress_labels(mesh)),
        "spec": {"gatewayClassName": gateway_class, "listeners": listeners},
    }


def _gateway_route(
    mesh: Mesh, name: str, listener: str, rules: list[dict[str, Any]]
) -> dict[str, Any]:
    assert mesh.ingress is not None
    spec: dict[str, Any] = {
        "parentRefs": [
            {
                "group": GATEWAY_API_GROUP,
                "kind": "Gateway",
                "name": gateway_name(mesh),
                "sectionName": listener,
            }
        ]
    }
    # A Gateway API hostname cannot be `*`: a route without hostnames takes every host.
    if "*" not in mesh.ingress.hosts:
        spec["hostnames"] = list(mesh.ingress.hosts)
    spec["rules"] = rules
    return {
        "apiVersion": GATEWAY_API,
        "kind": "HTTPRoute",
        "metadata": metadata(mesh, name, ingress_labels(mesh)),
        "spec": spec,
    }


def ingress_route(mesh: Mesh) -> dict[str, Any]:
    assert mesh.ingress is not None
    rules = ingress_rules(mesh)
    if isinstance(rules, tuple):
        index, why = rules
        # check() refuses such meshes for the gateway-api plane (model/gateway_api.py).
        raise ValueError(f"ingress.routes[{index}]: {why.reason}")
    if mesh.ingress.tls is None:
        listener = Listener("http", mesh.ingress.port)
        section = LISTENER
    else:
        listener, section = Listener("https", mesh.ingress.port), HTTPS_LISTENER
    rendered = [_rule(mesh, rule, listener) for rule in rules]
    return _gateway_route(mesh, f"{mesh.name}-ingress", section, rendered)


def https_redirect_route(mesh: Mesh) -> dict[str, Any]:
    """`tls.httpsRedirect`: every request on the plain listener is answered 301 with the same
    host, path and query on https, its port `ingress.port` (left out when 443)."""
    assert mesh.ingress is not None
    port = None if mesh.ingress.port == DEFAULT_PORTS["https"] else mesh.ingress.port
    redirect = Redirect(scheme="https", port=port, code=301)
    rule = {
        "name": "https-redirect",
        "filters": [
            {
                "type": "RequestRedirect",
                "requestRedirect": redirect_filter(redirect, Listener("http", HTTPS_REDIRECT_PORT)),
            }
        ],
    }
    return _gateway_route(mesh, f"{mesh.name}-https-redirect", LISTENER, [rule])


def render_gateway_api(mesh: Mesh, *, gateway_class: str) -> list[dict[str, Any]]:
    """Per service (sorted): a Service per version (sorted), then the HTTPRoute; then the
    Gateway, its HTTPRoute, and the HTTPRoute of `httpsRedirect`."""
    objects: list[dict[str, Any]] = []
    for service_name in sorted(mesh.services):
        for version in sorted(mesh.services[service_name].versions):
            objects.append(version_service(mesh, service_name, version))
        objects.append(service_route(mesh, service_name))
    if mesh.ingress is not None:
        objects.append(gateway(mesh, gateway_class))
        objects.append(ingress_route(mesh))
        if mesh.ingress.tls is not None and mesh.ingress.tls.https_redirect:
            objects.append(https_redirect_route(mesh))
    return objects
