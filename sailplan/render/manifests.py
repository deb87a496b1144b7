"""Everything a mesh deploys, for either data plane, in a stable order."""

from __future__ import annotations

from typing import Any

from sailplan import constants as c
from sailplan.gc_pause import paused_gc
from sailplan.model import DataPlane, Mesh
from sailplan.render.certificates import IssuerRef, render_certificates
from sailplan.render.kubernetes import render_kubernetes
from sailplan.render.network_policy import render_network_policies

# Objects are applied in this order: what others reference comes first.
KIND_ORDER = (
    "Namespace",
    "ServiceAccount",
    "ConfigMap",
    "Service",
    "Deployment",
    "DestinationRule",
    "VirtualService",
    "Gateway",
    "PeerAuthentication",
    "Telemetry",
    # Last, so that adding the gateway-api plane renumbered no other kind's files (`NN-` in
    # `render -o`); it comes after the Gateway its ingress route binds to all the same.
    "HTTPRoute",
    # Appended too, so the apply-order numbers of the kinds above stay.
    "NetworkPolicy",
    "Issuer",
    "Certificate",
    "AuthorizationPolicy",
    "Sidecar",
)


_RANKS = {kind: rank for rank, kind in enumerate(KIND_ORDER)}


def _rank(manifest: dict[str, Any]) -> int:
    return _RANKS.get(manifest["kind"], len(KIND_ORDER))


def render_manifests(
    mesh: Mesh,
    data_plane: DataPlane | None = None,
    *,
    proxy_image: str = c.PROXY_IMAGE_DEFAULT,
    gateway_class: str = c.GATEWAY_CLASS_DEFAULT,
    certificate_issuer: IssuerRef | None = None,
) -> list[dict[str, Any]]:
    """Every object of the mesh. `data_plane` overrides the mesh's own (re-validated for it);
    `proxy_image` is the builtin plane's sidecar, `gateway_class` the gateway-api plane's
    GatewayClass for the ingress. `certificate_issuer` signs the builtin plane's mesh certificates
    instead of a CA sailplan bootstraps in the namespace."""
    if data_plane is not None and data_plane != mesh.data_plane:
        mesh = mesh.with_data_plane(data_plane)
    # Each plane's renderer is imported when it is used: `sailplan render` pays for one (the
    # builtin plane's HAProxy compiler is the largest, ~12 ms of a fresh process's imports).
    with paused_gc():
        if mesh.data_plane == "istio":
            from sailplan.render.authorization import render_authorization_policies
            from sailplan.render.istio import render_istio

            objects = (
                render_kubernetes(mesh, "istio")
                + render_istio(mesh)
                + render_authorization_policies(mesh)
            )
        elif mesh.data_plane == "gateway-api":
            from sailplan.render.gateway_api import render_gateway_api

            objects = render_kubernetes(mesh, "gateway-api") + render_gateway_api(
                mesh, gateway_class=gateway_class
            )
        else:
            from sailplan.render.builtin import render_builtin

            objects = render_builtin(
                mesh, render_kubernetes(mesh, "builtin"), proxy_image=proxy_image
            )
        objects += render_network_policies(mesh)
        objects += render_certificates(mesh, certificate_issuer)
    # A stable sort: within a kind, the renderers' own (sorted) order is kept.
    return sorted(objects, key=_rank)
