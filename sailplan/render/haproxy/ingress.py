"""The ingress gateway's front door: its hosts, then the ingress routes pick a service, then the
same service routing the sidecars use."""

from __future__ import annotations

from sailplan.model.ingress import IngressRoute

from .conditions import alternatives, rule_per_alternative
from .context import Context, Writer
from .globals import NO_ROUTE_BODY
from .observability import flag, frontend_lines
from .quoting import acl_name, bare, quote
from .routing import dispatch_lines, service_frontends


def ingress(ctx: Context, out: Writer, listen_port: int) -> None:
    assert ctx.mesh.ingress is not None
    spec = ctx.mesh.ingress
    body = [f"bind {ctx.ports.bind_address}:{listen_port}", *frontend_lines("ingress")]
    if "*" not in spec.hosts:
        body.append("http-request set-var(txn.host) req.hdr(host),field(1,:),lower")
        allowed = []
        for host in spec.hosts:
            if host.startswith("*."):
                allowed.append(f"{{ var(txn.host) -m end {bare(host[1:])} }}")
            else:
                allowed.append(f"{{ var(txn.host) -m str {bare(host)} }}")
        body.append(
            f"http-request return status 404 content-type text/plain string {quote(NO_ROUTE_BODY)}"
            f"{flag('NR')} unless {' or '.join(allowed)}"
        )
    for index, ingress_route in enumerate(spec.routes):
        body += _ingress_route_lines(ingress_route, index)
    targets = sorted({r.service for r in spec.routes})
    body += dispatch_lines(ctx, targets, "g")
    body.append("default_backend no_route")
    out.section("frontend ingress", *body, comment="ingress: the mesh's front door")
    out.section(
        "backend no_route",
        f"http-request return status 404 content-type text/plain string {quote(NO_ROUTE_BODY)}"
        + flag("NR"),
        comment="no ingress route matched",
    )
    service_frontends(ctx, out, targets, "g")


def _ingress_route_lines(ingress_route: IngressRoute, index: int) -> list[str]:
    unset = "!{ var(txn.svc) -m found }"
    # `:` cannot occur in a service name, so these ACL names never meet a service's.
    acls, groups = alternatives(ingress_route.match, acl_name(f"ingress:r{index}"))
    rule = f"http-request set-var(txn.svc) str({ingress_route.service})"
    return [*acls, *rule_per_alternative(rule, [unset], groups)]
