"""The ingress gateway's front door: its hosts, then the ingress routes pick a service, then the
same service routing the sidecars use."""

from __future__ import annotations

from sailplan.model.ingress import INGRESS_CERT_DIR_SUFFIX, IngressRoute

from .conditions import alternatives, rule_per_alternative
from .context import Context, Writer
from .globals import NO_ROUTE_BODY
from .observability import flag, frontend_lines
from .quoting import acl_name, bare, quote
from .routing import dispatch_lines, service_frontends
from .security import CERT_FILE

HTTPS_DEFAULT_PORT = 443


def ingress_cert_dir(config_dir: str) -> str:
    """Where the gateway finds the ingress certificate: beside its config, as the mesh one."""
    return f"{config_dir}{INGRESS_CERT_DIR_SUFFIX}"


def ingress(
    ctx: Context,
    out: Writer,
    listen_port: int,
    redirect_port: int | None = None,
    public_port: int | None = None,
) -> None:
    """`redirect_port`: where the plain listener of `tls.httpsRedirect` binds; `public_port`:
    the port clients reach the HTTPS listener on (the redirect's target), `port` by default."""
    assert ctx.mesh.ingress is not None
    spec = ctx.mesh.ingress
    bind = f"bind {ctx.ports.bind_address}:{listen_port}"
    redirect: list[str] = []
    if spec.tls is not None:
        # `crt .../tls.crt` finds its key in `tls.key` (ssl-load-extra-del-ext in `global`).
        bind += (
            f" ssl crt {ingress_cert_dir(ctx.config_dir)}/{CERT_FILE} alpn h2,http/1.1 "
            f"ssl-min-ver {spec.tls.min_version}"
        )
        if spec.tls.https_redirect:
            assert redirect_port is not None
            port = spec.port if public_port is None else public_port
            # The Host without its port (the plain one), then the HTTPS port unless the default.
            suffix = "" if port == HTTPS_DEFAULT_PORT else f":{port}"
            redirect = [
                f"bind {ctx.ports.bind_address}:{redirect_port}",
                "http-request redirect location "
                f"https://%[req.hdr(host),field(1,:)]{suffix}%[capture.req.uri] code 301 "
                "unless { ssl_fc }",
            ]
    body = [
        bind,
        *redirect[:1],
        *frontend_lines("ingress", logged=ctx.mesh.access_log),
        *redirect[1:],
    ]
    if spec.tls is not None:
        # Every request past the redirect came over TLS: the app learns it as behind Envoy's
        # gateway, which sets the header at the edge (one a client sent is replaced).
        body.append("http-request set-header x-forwarded-proto https")
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
