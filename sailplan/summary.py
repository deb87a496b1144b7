"""The one-screen summary `sailplan check` prints for a valid mesh."""

from __future__ import annotations

import re

from sailplan.model import AllowRule, EnvRef, Mesh, Problem, Route
from sailplan.model.policy import Policy

# Variable names that usually hold a credential.
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|KEY", re.IGNORECASE)


def secret_warnings(mesh: Mesh) -> list[Problem]:
    """Inline env values whose names suggest a credential: the mesh file (and the Deployment
    rendered from it, readable by anyone who can read the namespace) would hold it in clear."""
    warnings = []
    for service_name, service in sorted(mesh.services.items()):
        for version_name, version in sorted(service.versions.items()):
            for name, value in sorted((version.env or {}).items()):
                if not isinstance(value, EnvRef) and value and _SECRET_NAME.search(name):
                    warnings.append(
                        Problem(
                            f"services.{service_name}.versions.{version_name}.env.{name}",
                            "looks like a secret but is written inline; keep it in a Secret "
                            f"and refer to it: {name}: {{secretKeyRef: {{name: <secret>, key: "
                            "<key>}}",
                        )
                    )
    return warnings


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _destination(route: Route) -> str:
    if route.to is not None:
        return f"-> {route.to}"
    return "split " + " / ".join(f"{v} {w}%" for v, w in (route.split or {}).items())


def _extras(route: Route) -> list[str]:
    extras = []
    if route.fault and route.fault.delay:
        extras.append(f"delay {route.fault.delay.fixed} at {route.fault.delay.percent:g}%")
    if route.fault and route.fault.abort:
        extras.append(f"abort {route.fault.abort.status} at {route.fault.abort.percent:g}%")
    if route.timeout:
        extras.append(f"timeout {route.timeout}")
    if route.retries:
        extras.append(f"retries {route.retries.attempts}")
    for mirror in route.copies:
        extras.append(f"mirror {mirror.percent:g}% to {mirror.to}")
    return extras


def _policy(policy: Policy) -> str:
    parts = []
    if policy.load_balancer is not None:
        balancer = policy.load_balancer
        if balancer.algorithm is not None:
            parts.append(f"load balancer {balancer.algorithm}")
        elif balancer.hash_source_ip:
            parts.append("load balancer hash of the source address")
        elif balancer.hash_query_parameter is not None:
            parts.append(f"load balancer hash of query parameter {balancer.hash_query_parameter}")
        elif balancer.hash_cookie is not None:
            parts.append(f"load balancer hash of cookie {balancer.hash_cookie.name}")
        else:
            parts.append(f"load balancer hash of header {balancer.hash_header}")
    if policy.connection_pool is not None:
        pool = policy.connection_pool
        if pool.max_connections is not None:
            parts.append(
                f"at most {_plural(pool.max_connections, 'connection')}, "
                f"{pool.max_pending_requests} pending"
            )
        parts += pool.limits()
    if policy.outlier_detection is not None:
        parts.append(policy.outlier_detection.phrase())
    return ", ".join(parts) or "none"


# What `mtls` does on the planes whose sidecars sailplan or Istio configure; said, not implied.
_MTLS_MEANING = {
    "strict": "sidecars accept only mTLS from the mesh's workloads",
    "permissive": "sidecars call each other over mTLS and also accept plaintext",
    "disable": "sidecars call each other in plaintext",
}


def _security_lines(mesh: Mesh) -> list[str]:
    lines = []
    if mesh.data_plane in ("builtin", "istio"):
        lines.append(f"  mTLS {mesh.mtls}: {_MTLS_MEANING[mesh.mtls]}")
    if mesh.authorization.default == "deny":
        lines.append("  authorization: services without allow refuse every request")
    return lines


def _allow(rule: AllowRule) -> str:
    parts = [f"from {', '.join(rule.sources)}" if rule.sources else "from anyone"]
    if rule.methods:
        parts.append(" ".join(rule.methods))
    if rule.paths:
        parts.append(" ".join(p.value + ("*" if p.kind == "prefix" else "") for p in rule.paths))
    return " ".join(parts)


def summarize(mesh: Mesh, source: str) -> str:
    routes = sum(len(s.routes) for s in mesh.services.values())
    versions = sum(len(s.versions) for s in mesh.services.values())
    lines = [
        f"{source}: mesh {mesh.name!r} is valid",
        f"  namespace {mesh.target_namespace}, data plane {mesh.data_plane}, mTLS {mesh.mtls}",
        f"  {_plural(len(mesh.services), 'service')}, {_plural(versions, 'version')}, "
        f"{_plural(routes, 'route')}, {'an ingress' if mesh.ingress else 'no ingress'}",
        *_security_lines(mesh),
        "",
    ]
    for name, service in sorted(mesh.services.items()):
        lines.append(f"  {name}  :{service.port}/{service.protocol}")
        # Images and replicas: a version bump is a change a reviewer must see here too.
        width = max(len(v) for v in service.versions)
        for version_name, version in service.versions.items():
            lines.append(
                f"    {version_name:<{width}}  {version.image}  "
                f"{_plural(version.replicas, 'replica')}"
            )
        if service.policy is not None:
            lines.append(f"    policy: {_policy(service.policy)}")
        if service.allow is not None:
            allowed = " | ".join(_allow(rule) for rule in service.allow)
            lines.append(f"    allow: {allowed or 'nobody'}")
        for index, route in enumerate(service.routes):
            label = route.name or f"routes[{index}]"
            when = " | ".join(m.describe() for m in route.match) if route.match else "any request"
            detail = ", ".join([_destination(route), *_extras(route)])
            lines.append(f"    {label}: {when}: {detail}")
        if not service.routes:
            lines.append("    (no routes: requests are spread over every version)")
    if mesh.ingress:
        node = f", nodePort {mesh.ingress.node_port}" if mesh.ingress.node_port else ""
        lines.append(f"  ingress :{mesh.ingress.port}{node}  hosts {', '.join(mesh.ingress.hosts)}")
        for ingress_route in mesh.ingress.routes:
            when = (
                " | ".join(m.describe() for m in ingress_route.match)
                if ingress_route.match
                else "any request"
            )
            lines.append(f"    {when} -> {ingress_route.service}")
    return "\n".join(lines)
