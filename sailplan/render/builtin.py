"""The builtin data plane in Kubernetes: sidecar injection at render time, the proxies' configs and
the ingress gateway.

Injection transforms the Deployments `render_kubernetes` produced (as linkerd's `pkg/inject` does),
so the app's shape is defined once. The proxy container, the init container and their volumes each
come from one function here, used by sidecars and the gateway alike.

Route changes change only the ConfigMaps: nothing in a pod template depends on the compiled config,
so no pod rolls; the sidecar notices the mounted file change and reloads without dropping requests.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from sailplan import constants as c
from sailplan.model import Mesh, Problem, SpecError
from sailplan.model.ingress import HTTPS_REDIRECT_PORT, ingress_certificate_name
from sailplan.model.mesh import Interception
from sailplan.model.security import certificate_secret_name
from sailplan.render.haproxy import DnsEndpoints, ProxyConfig, SidecarCompiler, compile_gateway
from sailplan.render.haproxy.globals import APP_HEALTH_PREFIX, METRICS_PATH
from sailplan.render.haproxy.ingress import ingress_cert_dir
from sailplan.render.haproxy.security import cert_dir_of
from sailplan.render.istio import gateway_name, ingress_labels
from sailplan.render.kubernetes import (
    mesh_labels,
    metadata,
    service_labels,
    service_object,
    workload_name,
)

CONFIG_DIR = "/etc/sailplan"
RUNTIME_DIR = "/var/run/sailplan"
GATEWAY_LISTEN_PORT = 8080
# The plain listener of `ingress.tls.httpsRedirect`, behind the Service's port 80.
GATEWAY_REDIRECT_PORT = 8081
_CONFIG_VOLUME = "sailplan-config"
_CERT_VOLUME = "sailplan-certs"
CERT_DIR = cert_dir_of(CONFIG_DIR)
_RUNTIME_VOLUME = "sailplan-runtime"
_INGRESS_CERT_VOLUME = "sailplan-ingress-tls"
INGRESS_CERT_DIR = ingress_cert_dir(CONFIG_DIR)
# Loopback stays direct with explicit-proxy interception: the app's own calls to itself.
_NO_PROXY = "localhost,127.0.0.1"
_PROXY_RESOURCES = {
    "requests": {"cpu": "50m", "memory": "32Mi"},
    "limits": {"cpu": "1", "memory": "128Mi"},
}


def proxy_config_map_name(workload: str) -> str:
    return f"{workload}-proxy"


def scrape_annotations() -> dict[str, str]:
    """Where Prometheus finds the proxy's metrics (the admin port, which iptables leaves alone),
    as Istio annotates its injected pods."""
    return {
        "prometheus.io/path": METRICS_PATH,
        "prometheus.io/port": str(c.PROXY_ADMIN_PORT),
        "prometheus.io/scrape": "true",
    }


def projected_sources(config_maps: list[str]) -> list[dict[str, Any]]:
    """The sources of a projected volume that holds each of `config_maps` whole."""
    return [{"configMap": {"name": name}} for name in config_maps]


def proxy_volumes(
    config_map: str,
    shared: list[dict[str, Any]] | None = None,
    cert_secret: str | None = None,
) -> list[dict[str, Any]]:
    """The config directory, the runtime directory and, with mTLS, the certificate. A sidecar's
    directory projects its own ConfigMap and the mesh's shared outbound ConfigMaps (`shared`,
    their `projected_sources`) into one (their file names differ); the gateway's is its
    ConfigMap alone."""
    # Whole ConfigMaps as a directory (not subPath), so kubelet's updates reach the proxy.
    if shared is None:
        config: dict[str, Any] = {"configMap": {"name": config_map}}
    else:
        # The shared sources are the same dicts in every Deployment (see `SidecarParts`).
        config = {"projected": {"sources": [*projected_sources([config_map]), *shared]}}
    volumes: list[dict[str, Any]] = [
        {"name": _CONFIG_VOLUME, **config},
        {"name": _RUNTIME_VOLUME, "emptyDir": {"medium": "Memory"}},
    ]
    if cert_secret is not None:
        # The workload's certificate as cert-manager keeps it (tls.crt, tls.key, ca.crt), also
        # as a whole directory, so renewals reach the proxy. Mounted into the proxy container
        # only: the app never sees the key. Readable by the proxy's uid (the Secret's files are
        # root's), and by nothing else in that container, which runs the proxy alone.
        volumes.append(
            {"name": _CERT_VOLUME, "secret": {"secretName": cert_secret, "defaultMode": 0o444}}
        )
    return volumes


def outbound_config_map_names(mesh: Mesh, shards: int) -> list[str]:
    """The mesh's shared outbound ConfigMaps: `<mesh>-outbound`, then `<mesh>-outbound-NNN`."""
    return [f"{mesh.name}-outbound", *(f"{mesh.name}-outbound-{i:03d}" for i in range(shards))]


def cert_secret(mesh: Mesh, service_account: str) -> str | None:
    """The Secret with the certificate of `service_account`'s identity; None without mTLS."""
    return None if mesh.mtls == "disable" else certificate_secret_name(service_account)


def proxy_container(
    image: str, mode: str, extra_ports: list[dict[str, Any]], certs: bool
) -> dict[str, Any]:
    """The proxy, as a sidecar (`proxy`) or as the ingress gateway (`gateway`)."""
    ports = [
        {"name": "proxy-admin", "containerPort": c.PROXY_ADMIN_PORT, "protocol": "TCP"},
        {"name": "proxy-health", "containerPort": c.PROXY_HEALTH_PORT, "protocol": "TCP"},
        *extra_ports,
    ]
    health = {"httpGet": {"path": c.PROXY_HEALTH_PATH, "port": c.PROXY_HEALTH_PORT}}
    mounts = [
        {"name": _CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": _RUNTIME_VOLUME, "mountPath": RUNTIME_DIR},
    ]
    if certs:
        mounts.append({"name": _CERT_VOLUME, "mountPath": CERT_DIR, "readOnly": True})
    return {
        "name": c.PROXY_CONTAINER_NAME,
        "image": image,
        "args": [mode],
        "env": [
            {"name": "SAILPLAN_CONFIG_DIR", "value": CONFIG_DIR},
            {"name": "SAILPLAN_RUNTIME_DIR", "value": RUNTIME_DIR},
        ],
        "ports": sorted(ports, key=lambda p: p["containerPort"]),
        "readinessProbe": {**health, "periodSeconds": 2, "failureThreshold": 3},
        "startupProbe": {**health, "periodSeconds": 1, "failureThreshold": 30},
        "resources": {kind: {**amounts} for kind, amounts in _PROXY_RESOURCES.items()},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": c.PROXY_UID,
            "runAsGroup": c.PROXY_UID,
        },
        "volumeMounts": mounts,
    }


def sidecar_container(image: str, certs: bool) -> dict[str, Any]:
    """The proxy as a native sidecar: an init container that keeps running (Kubernetes >= 1.29),
    so it is up before the app starts and stops after it."""
    ports = [
        {"name": "proxy-outbound", "containerPort": c.PROXY_OUTBOUND_PORT, "protocol": "TCP"},
        {"name": "proxy-inbound", "containerPort": c.PROXY_INBOUND_PORT, "protocol": "TCP"},
    ]
    if certs:
        # mTLS: other sidecars dial this one (render/haproxy/security.py).
        ports.append({"name": "proxy-mtls", "containerPort": c.PROXY_MTLS_PORT, "protocol": "TCP"})
    container = proxy_container(image, "proxy", ports, certs)
    container["restartPolicy"] = "Always"
    return container


def init_container(image: str) -> dict[str, Any]:
    """Installs the iptables redirect. The only root in the pod, with NET_ADMIN and NET_RAW and
    nothing else; it exits before any app container starts."""
    return {
        "name": c.PROXY_INIT_CONTAINER_NAME,
        "image": image,
        "args": ["init"],
        "env": [
            {"name": "SAILPLAN_PROXY_UID", "value": str(c.PROXY_UID)},
            {"name": "SAILPLAN_OUTBOUND_PORT", "value": str(c.PROXY_OUTBOUND_PORT)},
            {"name": "SAILPLAN_INBOUND_PORT", "value": str(c.PROXY_INBOUND_PORT)},
            {"name": "SAILPLAN_MTLS_PORT", "value": str(c.PROXY_MTLS_PORT)},
            {
                "name": "SAILPLAN_EXCLUDE_INBOUND_PORTS",
                "value": f"{c.PROXY_ADMIN_PORT},{c.PROXY_HEALTH_PORT}",
            },
        ],
        "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"cpu": "100m", "memory": "64Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": False,
            "runAsUser": 0,
            "runAsGroup": 0,
        },
    }


# Kubernetes refuses a ConfigMap whose data passes 1 MiB; fail at render time, before anything is applied.
CONFIG_MAP_LIMIT_BYTES = 1024 * 1024


def config_map(
    mesh: Mesh, name: str, labels: dict[str, str], config: ProxyConfig
) -> dict[str, Any]:
    size = sum(len(key) + len(text.encode()) for key, text in config.files.items())
    if size > CONFIG_MAP_LIMIT_BYTES:
        raise SpecError(
            [
                Problem(
                    "services",
                    f"the builtin proxy config of {name} would be {size / 1024 / 1024:.1f} MiB, over "
                    "Kubernetes' 1 MiB ConfigMap limit: one service's routes alone fill it, so "
                    "split the service or use the istio data plane",
                )
            ]
        )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(mesh, name, labels),
        "data": dict(sorted(config.files.items())),
    }


def shared_outbound_config_maps(mesh: Mesh, sidecars: SidecarCompiler) -> list[dict[str, Any]]:
    """The outbound config every sidecar shares, once per mesh: the outbound listener and Host
    map, then the services' sections in shards, each a ConfigMap below 1 MiB."""
    shared = sidecars.shared_outbound()
    names = outbound_config_map_names(mesh, len(shared) - 1)
    return [
        config_map(mesh, name, mesh_labels(mesh), ProxyConfig(files))
        for name, files in zip(names, shared, strict=True)
    ]


@dataclass(frozen=True)
class SidecarParts:
    """What every injected pod of a mesh holds alike, built once per render and put into each
    Deployment as the same objects (manifests are data to serialise; the YAML output writes no
    aliases). Built per Deployment, the projected sources of the shared outbound ConfigMaps
    alone made rendering quadratic: their number grows with the mesh (5,000 services: 65 in each
    of 10,000 pod templates, 1.3 million dicts; bench/FINDINGS.md)."""

    init: dict[str, Any] | None
    sidecar: dict[str, Any]
    # `projected_sources` of the mesh's shared outbound ConfigMaps.
    shared: list[dict[str, Any]]

    @staticmethod
    def build(
        image: str, shared: list[str], interception: Interception, certs: bool
    ) -> SidecarParts:
        return SidecarParts(
            init=init_container(image) if interception == "iptables" else None,
            sidecar=sidecar_container(image, certs),
            shared=projected_sources(shared),
        )


def inject(
    deployment: dict[str, Any],
    image: str,
    shared: list[str],
    interception: Interception = "iptables",
    cert_secret: str | None = None,
    strict: bool = False,
    *,
    parts: SidecarParts | None = None,
) -> dict[str, Any]:
    """A copy of an app Deployment with the init container (iptables interception), the sidecar
    and their volumes; `shared`: the outbound ConfigMaps its config directory projects besides
    its own. `strict` (mTLS): iptables would send kubelet's plaintext probes into the TLS-only
    inbound port, so they go through the sidecar's health port instead. `parts`: the containers
    and sources built once for every Deployment of the render (else built for this one)."""
    if parts is None:
        parts = SidecarParts.build(image, shared, interception, cert_secret is not None)
    # Copies of the dicts changed here, the rest shared: a deep copy of every Deployment was
    # half of a large mesh's render time.
    template = {**deployment["spec"]["template"]}
    template["metadata"] = {**template["metadata"]}
    template["spec"] = {**template["spec"]}
    injected = {**deployment, "spec": {**deployment["spec"], "template": template}}
    template["metadata"]["annotations"] = dict(
        sorted({**template["metadata"].get("annotations", {}), **scrape_annotations()}.items())
    )
    pod = template["spec"]
    pod["initContainers"] = [
        *([parts.init] if parts.init is not None else []),
        parts.sidecar,
        *pod.get("initContainers", []),
    ]
    pod["volumes"] = [
        *pod.get("volumes", []),
        *proxy_volumes(
            proxy_config_map_name(injected["metadata"]["name"]), parts.shared, cert_secret
        ),
    ]
    if interception == "explicit-proxy":
        pod["containers"] = [{**container} for container in pod["containers"]]
        for container in pod["containers"]:
            container["env"] = explicit_proxy_env(container["env"])
    elif strict:
        # New dicts along the changed path: the rest of the Deployment is shared, not copied.
        containers = []
        for container in pod["containers"]:
            probe = container.get("readinessProbe", {}).get("httpGet")
            if probe is not None:
                through_sidecar = {
                    **probe,
                    "path": APP_HEALTH_PREFIX + probe["path"],
                    "port": c.PROXY_HEALTH_PORT,
                }
                readiness = {**container["readinessProbe"], "httpGet": through_sidecar}
                container = {**container, "readinessProbe": readiness}
            containers.append(container)
        pod["containers"] = containers
    return injected


def explicit_proxy_env(env: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The app's environment with the sidecar's outbound listener as its HTTP proxy (without
    iptables, the app must address the proxy itself). A `NO_PROXY` from the spec is kept."""
    proxy = f"http://127.0.0.1:{c.PROXY_OUTBOUND_PORT}"
    added = {
        "HTTP_PROXY": proxy,
        # Many clients (curl among them) read only the lower-case name.
        "http_proxy": proxy,
        "NO_PROXY": _NO_PROXY,
        "no_proxy": _NO_PROXY,
    }
    given = {entry["name"].upper() for entry in env}
    kept = {
        name: value
        for name, value in added.items()
        if name.upper() == "HTTP_PROXY" or name.upper() not in given
    }
    merged = [*env, *({"name": name, "value": value} for name, value in kept.items())]
    return sorted(merged, key=lambda entry: entry["name"])


def explicit_proxy_service(service: dict[str, Any]) -> dict[str, Any]:
    """A copy of a Service whose ports lead to the sidecar's inbound listener: without iptables,
    connections to the app's port would bypass the proxy (and the NetworkPolicy refuses them)."""
    redirected = copy.deepcopy(service)
    for port in redirected["spec"]["ports"]:
        port["targetPort"] = c.PROXY_INBOUND_PORT
    return redirected


def headless_service(mesh: Mesh, service_name: str, version: str) -> dict[str, Any]:
    """`<service>-<version>`: the DNS name callers' proxies resolve to find a version's pods."""
    headless = service_object(mesh, service_name, version)
    headless["spec"].update(clusterIP="None", publishNotReadyAddresses=False)
    return headless


def gateway_objects(mesh: Mesh, image: str, endpoints: DnsEndpoints) -> list[dict[str, Any]]:
    assert mesh.ingress is not None
    name = gateway_name(mesh)
    labels = ingress_labels(mesh)
    pod_labels = dict(sorted({**labels, c.APP_LABEL: name}.items()))
    tls = mesh.ingress.tls
    redirect = tls is not None and tls.https_redirect
    config = compile_gateway(
        mesh,
        endpoints=endpoints,
        listen_port=GATEWAY_LISTEN_PORT,
        config_dir=CONFIG_DIR,
        runtime_dir=RUNTIME_DIR,
        redirect_port=GATEWAY_REDIRECT_PORT if redirect else None,
    )
    listen_ports = [{"name": "http", "containerPort": GATEWAY_LISTEN_PORT, "protocol": "TCP"}]
    if redirect:
        listen_ports.append(
            {"name": "http-redirect", "containerPort": GATEWAY_REDIRECT_PORT, "protocol": "TCP"}
        )
    container = proxy_container(image, "gateway", listen_ports, cert_secret(mesh, name) is not None)
    scheme = "http" if tls is None else "https"
    service_port: dict[str, Any] = {
        "name": f"{scheme}-{mesh.ingress.port}",
        "port": mesh.ingress.port,
        "targetPort": "http",
        "protocol": "TCP",
        "appProtocol": scheme,
    }
    if mesh.ingress.node_port is not None:
        service_port["nodePort"] = mesh.ingress.node_port
    service_ports = [service_port]
    if redirect:
        service_ports.append(
            {
                "name": f"http-{HTTPS_REDIRECT_PORT}",
                "port": HTTPS_REDIRECT_PORT,
                "targetPort": "http-redirect",
                "protocol": "TCP",
                "appProtocol": "http",
            }
        )
    volumes = proxy_volumes(proxy_config_map_name(name), cert_secret=cert_secret(mesh, name))
    if tls is not None:
        # The ingress certificate, in the gateway pod only: no sidecar ever holds its key.
        secret = tls.secret_name or ingress_certificate_name(mesh.name)
        volumes.append(
            {
                "name": _INGRESS_CERT_VOLUME,
                "secret": {"secretName": secret, "defaultMode": 0o444},
            }
        )
        container["volumeMounts"].append(
            {"name": _INGRESS_CERT_VOLUME, "mountPath": INGRESS_CERT_DIR, "readOnly": True}
        )
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(mesh, name, labels),
            "automountServiceAccountToken": False,
        },
        config_map(mesh, proxy_config_map_name(name), labels, config),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(mesh, name, labels),
            "spec": {
                "type": "NodePort" if mesh.ingress.node_port is not None else "LoadBalancer",
                "selector": {c.APP_LABEL: name},
                "ports": service_ports,
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(mesh, name, labels),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {c.APP_LABEL: name}},
                "template": {
                    "metadata": {"labels": pod_labels, "annotations": scrape_annotations()},
                    "spec": {
                        "serviceAccountName": name,
                        "automountServiceAccountToken": False,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [container],
                        "volumes": volumes,
                    },
                },
            },
        },
    ]


def render_builtin(
    mesh: Mesh, kubernetes_objects: list[dict[str, Any]], *, proxy_image: str
) -> list[dict[str, Any]]:
    """The shared Kubernetes objects with sidecars injected, plus the mesh's outbound ConfigMaps,
    per workload a ConfigMap and a headless Service, plus the ingress gateway."""
    explicit = mesh.interception == "explicit-proxy"
    endpoints = DnsEndpoints(
        namespace=mesh.target_namespace, port=c.PROXY_INBOUND_PORT if explicit else None
    )
    sidecars = SidecarCompiler(
        mesh,
        endpoints=endpoints,
        config_dir=CONFIG_DIR,
        runtime_dir=RUNTIME_DIR,
        # An explicit proxy is sent `GET http://host/...`: no original destination to return to.
        passthrough="host-header" if explicit else "original-destination",
    )
    # Not when every service lists its `calls`: no sidecar would read them.
    everyone = any(service.calls is None for service in mesh.services.values())
    shared_maps = shared_outbound_config_maps(mesh, sidecars) if everyone else []
    shared = [m["metadata"]["name"] for m in shared_maps]
    certs = mesh.mtls != "disable"
    # A service with `calls` has its outbound config in its own ConfigMap: no shared sources.
    everyone_parts = SidecarParts.build(proxy_image, shared, mesh.interception, certs)
    scoped_parts = SidecarParts(everyone_parts.init, everyone_parts.sidecar, [])
    objects: list[dict[str, Any]] = [*shared_maps]
    for manifest in kubernetes_objects:
        if manifest["kind"] == "Service" and explicit:
            objects.append(explicit_proxy_service(manifest))
            continue
        if manifest["kind"] != "Deployment":
            objects.append(manifest)
            continue
        labels = manifest["spec"]["selector"]["matchLabels"]
        service_name, version = labels[c.APP_LABEL], labels[c.WORKLOAD_VERSION_LABEL]
        # A service with `calls` has its outbound config in its own ConfigMap.
        scoped = sidecars.callees(service_name) is not None
        secret = cert_secret(mesh, service_name)
        objects.append(
            inject(
                manifest,
                proxy_image,
                [] if scoped else shared,
                mesh.interception,
                secret,
                strict=mesh.mtls == "strict",
                parts=scoped_parts if scoped else everyone_parts,
            )
        )
        config = ProxyConfig(sidecars.workload_files(service_name, version))
        workload = workload_name(service_name, version)
        objects.append(
            config_map(
                mesh, proxy_config_map_name(workload), service_labels(mesh, service_name), config
            )
        )
        headless = headless_service(mesh, service_name, version)
        objects.append(explicit_proxy_service(headless) if explicit else headless)
    if mesh.ingress is not None:
        objects += gateway_objects(mesh, proxy_image, endpoints)
    return objects
