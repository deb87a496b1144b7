"""Pulumi components: the only part of sailplan that imports pulumi.

`Mesh` deploys a whole spec; `IstioControlPlane`, `CertManager`, `ProxyImage`, `MeshService` and
`IngressGateway` are the parts it is made of, for other IaC repos to compose (`group_manifests`
sorts rendered manifests into the parts; `service_config_group` registers a service's objects as one
`yaml.v2.ConfigGroup`). Wrong arguments raise `ArgsError` on construction.
"""

from sailplan.components.args import ArgsError
from sailplan.components.cert_manager import CertManager, CertManagerArgs
from sailplan.components.istio_control_plane import IstioControlPlane, IstioControlPlaneArgs
from sailplan.components.mesh import Mesh, MeshArgs
from sailplan.components.mesh_service import (
    IngressGateway,
    ManifestGroups,
    MeshService,
    group_manifests,
    service_config_group,
)
from sailplan.components.proxy_image import ProxyImage, ProxyImageArgs
from sailplan.render.certificates import IssuerRef

__all__ = [
    "ArgsError",
    "CertManager",
    "CertManagerArgs",
    "IngressGateway",
    "IssuerRef",
    "IstioControlPlane",
    "IstioControlPlaneArgs",
    "ManifestGroups",
    "Mesh",
    "MeshArgs",
    "MeshService",
    "ProxyImage",
    "ProxyImageArgs",
    "group_manifests",
    "service_config_group",
]
