"""The objects of one service (and of the ingress gateway), created from rendered manifests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import pulumi
from pulumi_kubernetes.yaml.v2 import ConfigGroup

from sailplan import constants as c
from sailplan.components.resources import PROVIDER_VERSION, create_resource

Registration = Literal["per-object", "grouped"]
"""How `Mesh` registers a service's objects: one Pulumi resource each under a `MeshService`
("per-object"), or one `pulumi_kubernetes` `yaml.v2.ConfigGroup` that the Kubernetes provider
expands into those objects ("grouped", `service_config_group`)."""
REGISTRATIONS: tuple[Registration, ...] = ("per-object", "grouped")
# cli-utils' explicit ordering annotation, which the ConfigGroup reads to order its children.
DEPENDS_ON_ANNOTATION = "config.kubernetes.io/depends-on"


class ManifestGroups(NamedTuple):
    """Rendered manifests sorted by what deploys them (see `group_manifests`)."""

    mesh_wide: list[dict[str, Any]]
    """Namespace, PeerAuthentication and other objects of the whole mesh."""
    services: dict[str, list[dict[str, Any]]]
    """Service name -> its objects, for one `MeshService` each."""
    ingress: list[dict[str, Any]]
    """The ingress gateway's objects, for `IngressGateway`."""


def group_manifests(manifests: Sequence[dict[str, Any]]) -> ManifestGroups:
    """Group manifests from `sailplan.render.manifests.render_manifests` by the labels the
    renderers put on them, for composing `MeshService` / `IngressGateway` without `Mesh`:

        groups = group_manifests(render_manifests(spec, proxy_image="..."))
        for service, objects in sorted(groups.services.items()):
            MeshService(f"shop-{service}", objects)
        IngressGateway("shop-ingress", groups.ingress)

    Order within each group is the renderers' order, so resource names stay deterministic.
    """
    groups = ManifestGroups([], {}, [])
    for manifest in manifests:
        labels = manifest["metadata"].get("labels", {})
        if labels.get(c.COMPONENT_LABEL) == "ingress-gateway":
            groups.ingress.append(manifest)
        elif c.NAME_LABEL in labels:
            groups.services.setdefault(labels[c.NAME_LABEL], []).append(manifest)
        else:
            groups.mesh_wide.append(manifest)
    return groups


def _reference(manifest: dict[str, Any]) -> str:
    """cli-utils' reference to a namespaced object: "<group>/namespaces/<ns>/<kind>/<name>"."""
    api_version: str = manifest["apiVersion"]
    group = api_version.rpartition("/")[0]  # "" for the core group ("v1")
    metadata = manifest["metadata"]
    return f"{group}/namespaces/{metadata['namespace']}/{manifest['kind']}/{metadata['name']}"


def grouped_objects(manifests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects of a service's ConfigGroup: the manifests, each Deployment annotated to wait for
    the group's Certificates (its pods mount their Secret), as `depends_on` does per object.
    Inside a group, the annotation is the only ordering the provider honours beyond its kind
    heuristics (namespaces and CRDs first); the manifests given are not modified."""
    certificates = [_reference(m) for m in manifests if m["kind"] == "Certificate"]
    objects = []
    for manifest in manifests:
        if manifest["kind"] == "Deployment" and certificates:
            metadata = dict(manifest["metadata"])
            metadata["annotations"] = {
                **metadata.get("annotations", {}),
                DEPENDS_ON_ANNOTATION: ",".join(certificates),
            }
            manifest = {**manifest, "metadata": metadata}
        objects.append(manifest)
    return objects


def grouped_text(manifests: Sequence[dict[str, Any]]) -> str:
    """The ConfigGroup's `yaml` input: `grouped_objects`, one compact JSON object per line.

    JSON is YAML, and the provider reads this input with Kubernetes' YAML-or-JSON stream decoder
    (pulumi-kubernetes provider/pkg/provider/yaml/v2/yaml.go, `yamlDecode`), which takes a stream
    of JSON objects as kubectl does. A string rather than the `objs` list is what makes grouping
    pay off: the SDK serializes a list value by value, each an awaited call (and the mock
    engine's echo of it comes back the same way); a string goes in one piece
    (bench/FINDINGS.md)."""
    return "\n".join(json.dumps(obj, separators=(",", ":")) for obj in grouped_objects(manifests))


def service_config_group(
    name: str,
    manifests: Sequence[dict[str, Any]],
    opts: pulumi.ResourceOptions | None = None,
) -> ConfigGroup:
    """One service's objects as one `yaml.v2.ConfigGroup` (what `Mesh` registers in place of a
    `MeshService` with `registration="grouped"`): the Kubernetes provider registers each object
    as a child of the group, named "<name>:<namespace>/<object name>", so `pulumi preview` still
    diffs them one by one, while the program registers one resource instead of one per object.
    `opts.depends_on` orders the whole group: the program sends the group to the provider only
    once what it depends on is created."""
    return ConfigGroup(
        name,
        yaml=grouped_text(manifests),
        opts=pulumi.ResourceOptions.merge(pulumi.ResourceOptions(version=PROVIDER_VERSION), opts),
    )


class _ManifestGroup(pulumi.ComponentResource):
    children: list[pulumi.CustomResource]

    def __init__(
        self,
        token: str,
        name: str,
        manifests: Sequence[dict[str, Any]],
        opts: pulumi.ResourceOptions | None,
    ) -> None:
        super().__init__(token, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # A workload's pods mount its certificate's Secret: its Deployments wait for the
        # Certificate (which Pulumi awaits until cert-manager has issued it).
        certificates = {
            index: create_resource(name, manifest, child)
            for index, manifest in enumerate(manifests)
            if manifest["kind"] == "Certificate"
        }
        after_certificates = pulumi.ResourceOptions(
            parent=self, depends_on=list(certificates.values())
        )
        self.children = [
            certificates[index]
            if index in certificates
            else create_resource(
                name,
                manifest,
                after_certificates if manifest["kind"] == "Deployment" and certificates else child,
            )
            for index, manifest in enumerate(manifests)
        ]


class MeshService(_ManifestGroup):
    """One service: its ServiceAccount, Services, Deployments, proxy ConfigMaps and routing rules,
    each a child resource (`service_config_group` registers them as one ConfigGroup instead)."""

    def __init__(
        self,
        name: str,
        manifests: Sequence[dict[str, Any]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sailplan:index:MeshService", name, manifests, opts)
        self.register_outputs({})


class IngressGateway(_ManifestGroup):
    """The ingress: the builtin gateway's Deployment and Service, or Istio's Gateway and its routes."""

    address: pulumi.Output[str | None]

    def __init__(
        self,
        name: str,
        manifests: Sequence[dict[str, Any]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sailplan:index:IngressGateway", name, manifests, opts)
        self.address = pulumi.Output.from_input(None)
        for manifest, resource in zip(manifests, self.children, strict=True):
            if manifest["kind"] == "Service":
                self.address = _created_service_address(resource, manifest)
        self.register_outputs({"address": self.address})


def _created_service_address(
    resource: pulumi.CustomResource, manifest: dict[str, Any]
) -> pulumi.Output[str | None]:
    spec = manifest["spec"]
    first = spec["ports"][0]
    service_type = spec.get("type", "ClusterIP")
    if service_type == "NodePort" and first.get("nodePort"):
        return pulumi.Output.from_input(f"<any node address>:{first['nodePort']}")
    state: pulumi.Output[Any] = pulumi.Output.all(
        resource.spec,  # type: ignore[attr-defined]
        resource.status,  # type: ignore[attr-defined]
    )
    return state.apply(
        lambda spec_status: service_address(
            service_type, first.get("name"), first["port"], *spec_status
        )
    )


def _field(value: Any, wire: str, python: str) -> Any:
    """A field of live state: plain data with the wire names, plain data the SDK translated to
    snake_case, or a typed output object (snake_case attributes)."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value[wire] if wire in value else value.get(python)
    return getattr(value, python, None)


def service_address(
    service_type: str, port_name: str | None, port: int, spec: Any, status: Any
) -> str | None:
    """Where a Service of this type is reached from outside the cluster, from its live state:
    "<ip or hostname>:<port>" of a LoadBalancer, "<any node address>:<nodePort>" of a NodePort
    Service; None while the load balancer has no address yet, and for ClusterIP.
    """
    if service_type == "NodePort":
        for entry in _field(spec, "ports", "ports") or []:
            if port_name is None or _field(entry, "name", "name") == port_name:
                node_port = _field(entry, "nodePort", "node_port")
                return f"<any node address>:{node_port}" if node_port else None
        return None
    if service_type == "LoadBalancer":
        ingress = _field(_field(status, "loadBalancer", "load_balancer"), "ingress", "ingress")
        for entry in ingress or []:
            host = _field(entry, "ip", "ip") or _field(entry, "hostname", "hostname")
            if host:
                return f"{host}:{port}"
    return None


def unknown_in_preview() -> pulumi.Output[str | None]:
    """An Output shown as "output<string>" in a preview: the value exists only after `up`."""

    async def value() -> None:
        return None

    async def known() -> bool:
        return False

    return pulumi.Output(set(), value(), known())
