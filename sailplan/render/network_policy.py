"""NetworkPolicies: a service's pods admit connections only from the mesh's own pods.

One policy per service, selecting its pods (every version) by the `app` label. The port admitted
is where callers' proxies connect: the service port when iptables inside the pod redirect it to
the sidecar (builtin `iptables`, and Istio's sidecar), the sidecar's inbound port with builtin
`explicit-proxy`, where the app's own port must stay unreachable from other pods; with builtin
mTLS also the sidecar's mTLS port, which the other sidecars and the gateway dial. Kubernetes
always admits the node's own traffic (kubelet probes), so health ports need no rule; the metrics
ports are open to every source, since Prometheus usually runs in another namespace.
"""

from __future__ import annotations

from typing import Any

from sailplan import constants as c
from sailplan.model import Mesh
from sailplan.render.certificates import needs_certificates
from sailplan.render.kubernetes import metadata, service_labels

# Envoy's own Prometheus port (Istio's sidecar; 15020 serves the merged metrics).
ISTIO_ENVOY_METRICS_PORT = 15090
_NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def admitted_port(mesh: Mesh, service_name: str) -> int:
    """The port other pods connect to on a pod of `service_name`."""
    if mesh.data_plane == "builtin" and mesh.interception == "explicit-proxy":
        return c.PROXY_INBOUND_PORT
    return mesh.services[service_name].port


def _peers(mesh: Mesh) -> list[dict[str, Any]]:
    # No namespaceSelector: pods of this namespace only. The builtin gateway carries the label too.
    peers: list[dict[str, Any]] = [{"podSelector": {"matchLabels": {c.PART_OF_LABEL: mesh.name}}}]
    if mesh.data_plane == "istio" and mesh.ingress is not None:
        # Istio's gateway runs in its own namespace (the `gateway` chart IstioControlPlane installs).
        peers.append(
            {
                "namespaceSelector": {
                    "matchLabels": {_NAMESPACE_NAME_LABEL: c.ISTIO_GATEWAY_NAMESPACE}
                },
                "podSelector": {"matchLabels": dict(c.ISTIO_GATEWAY_SELECTOR)},
            }
        )
    if mesh.data_plane == "gateway-api" and mesh.ingress is not None:
        # The Gateway's implementation runs its gateway pods where it chooses (Envoy Gateway in
        # its own namespace, Istio beside the Gateway) and labels them as it likes: admit pods of
        # every namespace rather than cut the ingress off.
        peers.append({"namespaceSelector": {}})
    return peers


def _metrics_ports(mesh: Mesh) -> list[int]:
    if mesh.data_plane == "istio":
        return [c.PROXY_ADMIN_PORT, ISTIO_ENVOY_METRICS_PORT]
    return [c.PROXY_ADMIN_PORT]


def network_policy(mesh: Mesh, service_name: str) -> dict[str, Any]:
    tcp = [
        {"protocol": "TCP", "port": admitted_port(mesh, service_name)},
    ]
    if needs_certificates(mesh):  # builtin with mTLS: the sidecars bind the mTLS port
        tcp.append({"protocol": "TCP", "port": c.PROXY_MTLS_PORT})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(mesh, service_name, service_labels(mesh, service_name)),
        "spec": {
            "podSelector": {"matchLabels": {c.APP_LABEL: service_name}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": _peers(mesh), "ports": tcp},
                {"ports": [{"protocol": "TCP", "port": port} for port in _metrics_ports(mesh)]},
            ],
        },
    }


def render_network_policies(mesh: Mesh) -> list[dict[str, Any]]:
    """A NetworkPolicy per service (sorted), or none when the mesh opts out."""
    if not mesh.network_policies:
        return []
    return [network_policy(mesh, name) for name in sorted(mesh.services)]
