"""Kubernetes objects shared by both data planes: Namespace, ServiceAccounts, Services, Deployments.

The builtin data plane injects its sidecar into these Deployments afterwards (as linkerd's inject
does), so one function shapes every app workload.
"""

from __future__ import annotations

from typing import Any

from sailplan import constants as c
from sailplan.model import DataPlane, Mesh, Service, Version
from sailplan.model.service import EnvRef

POD_SECURITY_ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
# The uid/gid apps run as when the image does not say: any non-root id works with runAsNonRoot.
APP_UID = 10001

_PORT_PREFIX = {"http": "http", "tcp": "tcp", "grpc": "grpc"}
_APP_PROTOCOL = {"http": "http", "tcp": "tcp", "grpc": "grpc"}


def mesh_labels(mesh: Mesh) -> dict[str, str]:
    return {c.PART_OF_LABEL: mesh.name, c.MANAGED_BY_LABEL: c.MANAGED_BY}


def service_labels(mesh: Mesh, service: str) -> dict[str, str]:
    return {**mesh_labels(mesh), c.NAME_LABEL: service}


def metadata(mesh: Mesh, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": mesh.target_namespace,
        "labels": dict(sorted(labels.items())),
    }


def port_name(service: Service) -> str:
    return f"{_PORT_PREFIX[service.protocol]}-{service.port}"


def namespace(mesh: Mesh, data_plane: DataPlane) -> dict[str, Any]:
    labels = mesh_labels(mesh)
    if data_plane == "istio":
        # Namespace-wide injection, so pods created by anything else in it are meshed too; the
        # pod label below makes sailplan's own workloads explicit even under a revision tag.
        labels[c.ISTIO_NAMESPACE_INJECTION_LABEL] = "enabled"
    if data_plane == "builtin" and mesh.interception == "explicit-proxy":
        # The mode exists so that pods meet `restricted`: have the API server hold them to it.
        labels[POD_SECURITY_ENFORCE_LABEL] = "restricted"
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": mesh.target_namespace, "labels": dict(sorted(labels.items()))},
    }


def service_account(mesh: Mesh, service_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(mesh, service_name, service_labels(mesh, service_name)),
        "automountServiceAccountToken": False,
    }


def kubernetes_service(mesh: Mesh, service_name: str) -> dict[str, Any]:
    service = service_object(mesh, service_name)
    protocol = mesh.services[service_name].protocol
    service["spec"]["ports"][0]["appProtocol"] = _APP_PROTOCOL[protocol]
    return service


def service_object(mesh: Mesh, service_name: str, version: str | None = None) -> dict[str, Any]:
    """A Service on the service's port: the service's own (all its pods), or with `version` the
    Service `<service>-<version>` selecting that version's pods (what the builtin plane's proxies
    resolve and an HTTPRoute's backendRefs name). Each plane adds what it needs to the copy."""
    service = mesh.services[service_name]
    selector = {c.APP_LABEL: service_name}
    name = service_name
    if version is not None:
        selector[c.WORKLOAD_VERSION_LABEL] = version
        name = workload_name(service_name, version)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(mesh, name, service_labels(mesh, service_name)),
        "spec": {
            "selector": selector,
            "ports": [
                {
                    "name": port_name(service),
                    "port": service.port,
                    "targetPort": port_name(service),
                    "protocol": "TCP",
                }
            ],
        },
    }


def workload_name(service_name: str, version_name: str) -> str:
    return f"{service_name}-{version_name}"


def pod_labels(
    mesh: Mesh, service_name: str, version_name: str, data_plane: DataPlane
) -> dict[str, str]:
    labels = {
        **service_labels(mesh, service_name),
        c.VERSION_LABEL: version_name,
        c.APP_LABEL: service_name,
        c.WORKLOAD_VERSION_LABEL: version_name,
    }
    if data_plane == "istio":
        labels[c.ISTIO_INJECT_LABEL] = "true"
    return dict(sorted(labels.items()))


def app_container(service_name: str, service: Service, version: Version) -> dict[str, Any]:
    env = {**(version.env or {}), c.APP_PORT_ENV: str(service.port)}
    env_list = [
        {"name": name, "value": value}
        if not isinstance(value, EnvRef)
        else {
            "name": name,
            "valueFrom": {value.kind: {"name": value.ref.name, "key": value.ref.key}},
        }
        for name, value in sorted(env.items())
    ]
    container: dict[str, Any] = {
        "name": service_name,
        "image": version.image,
        "ports": [{"name": port_name(service), "containerPort": service.port, "protocol": "TCP"}],
        "env": env_list,
        "resources": version.resources.to_dict(),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": APP_UID,
            "runAsGroup": APP_UID,
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if version.env_from:
        # In the order given: Kubernetes lets a later source win over an earlier one.
        container["envFrom"] = [
            {
                **(
                    {"secretRef": {"name": source.secret_ref.name}}
                    if source.secret_ref is not None
                    else {"configMapRef": {"name": source.config_map_ref.name}}
                    if source.config_map_ref is not None
                    else {}
                ),
                **({"prefix": source.prefix} if source.prefix else {}),
            }
            for source in version.env_from
        ]
    if version.readiness is not None:
        container["readinessProbe"] = {
            "httpGet": {"path": version.readiness.path, "port": port_name(service)},
            "periodSeconds": 5,
            "failureThreshold": 3,
        }
    return container


def deployment(
    mesh: Mesh, service_name: str, version_name: str, data_plane: DataPlane
) -> dict[str, Any]:
    service = mesh.services[service_name]
    version = service.versions[version_name]
    labels = pod_labels(mesh, service_name, version_name, data_plane)
    name = workload_name(service_name, version_name)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(
            mesh, name, {k: v for k, v in labels.items() if k != c.ISTIO_INJECT_LABEL}
        ),
        "spec": {
            "replicas": version.replicas,
            # Never changes for a version: Kubernetes rejects a changed selector.
            "selector": {
                "matchLabels": {c.APP_LABEL: service_name, c.WORKLOAD_VERSION_LABEL: version_name}
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": service_name,
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                        "fsGroup": APP_UID,
                    },
                    "containers": [app_container(service_name, service, version)],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def render_kubernetes(mesh: Mesh, data_plane: DataPlane) -> list[dict[str, Any]]:
    """Namespace, then per service (sorted): ServiceAccount, Service, one Deployment per version."""
    objects = [namespace(mesh, data_plane)]
    for service_name in sorted(mesh.services):
        objects.append(service_account(mesh, service_name))
        objects.append(kubernetes_service(mesh, service_name))
        for version_name in sorted(mesh.services[service_name].versions):
            objects.append(deployment(mesh, service_name, version_name, data_plane))
    return objects
