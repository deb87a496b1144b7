"""`Mesh`: everything one spec describes, deployed as one component."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from sailplan import constants as c
from sailplan.components.istio_control_plane import IstioControlPlane, IstioControlPlaneArgs
from sailplan.components.mesh_service import IngressGateway, MeshService
from sailplan.components.proxy_image import ProxyImage, ProxyImageArgs
from sailplan.components.resources import create_resource
from sailplan.loader import load_mesh
from sailplan.model import DataPlane
from sailplan.model import Mesh as MeshSpec
from sailplan.render.manifests import render_manifests

# Rendered in place of an image reference that is only known once ProxyImage has built it.
_IMAGE_PLACEHOLDER = "sailplan.invalid/proxy-image-placeholder:0"


@dataclass(frozen=True)
class MeshArgs:
    """`spec` is a validated Mesh or the path of a mesh file.

    builtin: `proxy_image` names an existing image; else `build_proxy_image` builds one.
    istio: `control_plane` reuses an installed IstioControlPlane; else one is created from `istio`
    unless `install_control_plane` is False (an Istio installed some other way).
    """

    spec: MeshSpec | str | Path
    data_plane: DataPlane | None = None
    proxy_image: str | None = None
    build_proxy_image: ProxyImageArgs | None = None
    control_plane: IstioControlPlane | None = None
    install_control_plane: bool = True
    istio: IstioControlPlaneArgs | None = None


def group_manifests(
    manifests: Sequence[dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """(mesh-wide objects, objects per service, ingress objects), by the renderers' labels."""
    mesh_wide: list[dict[str, Any]] = []
    per_service: dict[str, list[dict[str, Any]]] = {}
    ingress: list[dict[str, Any]] = []
    for manifest in manifests:
        labels = manifest["metadata"].get("labels", {})
        if labels.get(c.COMPONENT_LABEL) == "ingress-gateway":
            ingress.append(manifest)
        elif c.NAME_LABEL in labels:
            per_service.setdefault(labels[c.NAME_LABEL], []).append(manifest)
        else:
            mesh_wide.append(manifest)
    return mesh_wide, per_service, ingress


def _substitute(value: Any, placeholder: str, replacement: Any) -> Any:
    if value == placeholder:
        return replacement
    if isinstance(value, dict):
        return {k: _substitute(v, placeholder, replacement) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, placeholder, replacement) for v in value]
    return value


class Mesh(pulumi.ComponentResource):
    namespace: pulumi.Output[str]
    ingress_address: pulumi.Output[str | None]
    control_plane_revision: pulumi.Output[str | None]
    proxy_image: pulumi.Output[str | None]

    def __init__(
        self, name: str, args: MeshArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        # Validate and render before registering anything: an invalid spec deploys nothing.
        spec = args.spec if isinstance(args.spec, MeshSpec) else load_mesh(Path(args.spec))
        if args.data_plane is not None and args.data_plane != spec.data_plane:
            spec = spec.with_data_plane(args.data_plane)
        building = (
            spec.data_plane == "builtin"
            and args.proxy_image is None
            and args.build_proxy_image is not None
        )
        image = args.proxy_image or (_IMAGE_PLACEHOLDER if building else c.PROXY_IMAGE_DEFAULT)
        manifests = render_manifests(spec, proxy_image=image)
        super().__init__("sailplan:index:Mesh", name, None, opts)

        self.proxy_image = pulumi.Output.from_input(image if spec.data_plane == "builtin" else None)
        if building:
            assert args.build_proxy_image is not None
            built = ProxyImage(
                f"{name}-proxy-image", args.build_proxy_image, pulumi.ResourceOptions(parent=self)
            )
            manifests = [_substitute(m, _IMAGE_PLACEHOLDER, built.ref) for m in manifests]
            self.proxy_image = built.ref

        prerequisites: list[pulumi.Resource] = []
        self.control_plane_revision = pulumi.Output.from_input(None)
        if spec.data_plane == "istio":
            control_plane = args.control_plane
            if control_plane is None and args.install_control_plane:
                control_plane = IstioControlPlane(
                    f"{name}-istio",
                    args.istio or IstioControlPlaneArgs(),
                    pulumi.ResourceOptions(parent=self),
                )
            if control_plane is not None:
                # A pod created before the injector is ready runs without a sidecar; CRs need the CRDs.
                prerequisites += control_plane.ready
                self.control_plane_revision = control_plane.revision

        mesh_wide, per_service, ingress = group_manifests(manifests)
        namespaces = [m for m in mesh_wide if m["kind"] == "Namespace"]
        namespace_resources = [
            create_resource(
                name, m, pulumi.ResourceOptions(parent=self, depends_on=prerequisites[:1])
            )
            for m in namespaces
        ]
        after = pulumi.ResourceOptions(
            parent=self, depends_on=[*namespace_resources, *prerequisites]
        )
        self.services = {
            service: MeshService(f"{name}-{service}", objects, after)
            for service, objects in sorted(per_service.items())
        }
        self.mesh_wide = [
            create_resource(name, m, after) for m in mesh_wide if m["kind"] != "Namespace"
        ]
        self.ingress_address = pulumi.Output.from_input(None)
        if ingress:
            gateway = IngressGateway(f"{name}-ingress", ingress, after)
            self.ingress_address = gateway.address
        self.namespace = pulumi.Output.from_input(spec.target_namespace)
        self.register_outputs(
            {
                "namespace": self.namespace,
                "ingress_address": self.ingress_address,
                "control_plane_revision": self.control_plane_revision,
                "proxy_image": self.proxy_image,
            }
        )
