"""Pulumi components: the only part of sailplan that imports pulumi.

`Mesh` deploys a whole spec; `IstioControlPlane`, `ProxyImage`, `MeshService` and `IngressGateway`
are the parts it is made of, for other IaC repos to compose.
"""

from sailplan.components.istio_control_plane import IstioControlPlane, IstioControlPlaneArgs
from sailplan.components.mesh import Mesh, MeshArgs
from sailplan.components.mesh_service import IngressGateway, MeshService
from sailplan.components.proxy_image import ProxyImage, ProxyImageArgs

__all__ = [
    "IngressGateway",
    "IstioControlPlane",
    "IstioControlPlaneArgs",
    "Mesh",
    "MeshArgs",
    "MeshService",
    "ProxyImage",
    "ProxyImageArgs",
]
