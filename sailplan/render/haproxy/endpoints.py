"""Where a version's pods are: `server` lines for static addresses, a `server-template` resolved
through the version's headless Service in a cluster."""

from __future__ import annotations

import math

from sailplan import constants as c

from .context import Context, DnsEndpoints
from .quoting import bare
from .security import meshed, server_tls


def slot_count(replicas: int, minimum: int) -> int:
    """Server slots for a version: every pod during a rolling update (Kubernetes' default
    maxSurge adds a quarter of the replicas, rounded up, while the old pods still run), and at
    least `minimum`, so a `kubectl scale` past the spec still gets traffic up to it."""
    return max(minimum, replicas + math.ceil(replicas / 4))


def servers(ctx: Context, service_name: str, version: str, options: str) -> list[str]:
    service = ctx.mesh.services[service_name]
    options = " ".join(part for part in (options, server_tls(ctx, service_name)) if part)
    suffix = f" {options}" if options else ""
    if isinstance(ctx.endpoints, DnsEndpoints):
        host = bare(
            f"{service_name}-{version}.{ctx.endpoints.namespace}.svc.{ctx.endpoints.cluster_domain}"
        )
        slots = slot_count(service.versions[version].replicas, ctx.endpoints.slots)
        # With mTLS every pod's sidecar binds the mTLS port, which takes TLS without detecting it.
        port = c.PROXY_MTLS_PORT if meshed(ctx) else ctx.endpoints.port or service.port
        return [
            f"server-template {version}- {slots} {host}:{port} "
            f"resolvers kubedns init-addr none resolve-prefer ipv4{suffix}"
        ]
    static = ctx.endpoints.addresses
    if meshed(ctx) and ctx.endpoints.mtls is not None:
        static = ctx.endpoints.mtls
    addresses = static.get(service_name, {}).get(version, ())
    return [
        f"server {version}-{index} {host}:{port}{suffix}"
        for index, (host, port) in enumerate(addresses)
    ]


def mirror_socket(ctx: Context, tag: str, service_name: str, version: str) -> str | None:
    """The unix socket of the listener that spreads a route's mirror copies over every pod of
    `version`; None when the version has no address to copy to."""
    service = ctx.mesh.services[service_name]
    if not isinstance(ctx.endpoints, DnsEndpoints) and not ctx.endpoints.addresses.get(
        service_name, {}
    ).get(version):
        return None
    key = ctx.service_key(service_name)
    return f"unix@{ctx.runtime_dir}/{tag}m{key}.{sorted(service.versions).index(version)}.sock"
