"""A sailplan mesh on Linkerd, through the Kubernetes Gateway API (the gateway-api data plane).

The cluster brings what sailplan does not install on this plane:

- Linkerd (`linkerd install --crds | kubectl apply -f -`, then `linkerd install | kubectl apply
  -f -`), which reads the mesh's HTTPRoutes (GAMMA) and needs the Gateway API CRDs
  (`kubectl apply -f .../gateway-api/releases/download/v1.4.1/standard-install.yaml`);
- for the ingress, a Gateway implementation whose GatewayClass is the stack config
  `sailplan:gatewayClass` (default `eg`, Envoy Gateway's), since Linkerd has no gateway of its own.

This program creates the namespace with Linkerd's injection annotation, so every pod the mesh
deploys gets Linkerd's proxy, then the mesh itself: Services, Deployments, an HTTPRoute per
service bound to its Service, a Service per version, and the Gateway with its HTTPRoute.
"""

from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from sailplan.components import Mesh, MeshArgs
from sailplan.loader import load_mesh

# Linkerd's proxy injector meshes every pod created in a namespace carrying this annotation.
LINKERD_INJECT = "linkerd.io/inject"

config = pulumi.Config("sailplan")
spec = load_mesh(Path(__file__).parent / "shop.mesh.yaml")
namespace = k8s.core.v1.Namespace(
    "shop-namespace",
    metadata={
        "name": spec.target_namespace,
        "annotations": {LINKERD_INJECT: "enabled"},
        "labels": {"app.kubernetes.io/part-of": spec.name},
    },
)
mesh = Mesh(
    "shop",
    MeshArgs(
        spec=spec,
        gateway_class=config.get("gatewayClass") or "eg",
        # The namespace above, with Linkerd's annotation, instead of sailplan's own.
        create_namespace=False,
    ),
    pulumi.ResourceOptions(depends_on=[namespace]),
)

pulumi.export("namespace", mesh.namespace)
