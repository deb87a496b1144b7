"""The Pulumi program: deploy the stack's mesh file. Stack config (stacks/Pulumi.<stack>.yaml):

sailplan:meshFile      the mesh file, relative to this directory (default stacks/demo.mesh.yaml)
sailplan:dataPlane     builtin | istio | gateway-api, overriding the file's dataPlane
sailplan:proxyImage    an existing proxy image (builtin); else proxyRepository builds one
sailplan:proxyRepository, sailplan:pushProxyImage
sailplan:istioVersion  the Istio charts' version (istio)
sailplan:installCertManager  false when the cluster already runs cert-manager (builtin with mTLS)
sailplan:gatewayClass  the ingress Gateway's GatewayClass (gateway-api; default istio)
"""

import sys
from pathlib import Path

import pulumi

from sailplan.components import (
    ArgsError,
    CertManager,
    CertManagerArgs,
    IstioControlPlaneArgs,
    Mesh,
    MeshArgs,
    ProxyImageArgs,
)
from sailplan.loader import load_mesh
from sailplan.model import SpecError

config = pulumi.Config("sailplan")
mesh_file = Path(__file__).parent / (config.get("meshFile") or "stacks/demo.mesh.yaml")
repository = config.get("proxyRepository")
istio_version = config.get("istioVersion")
try:
    spec = load_mesh(mesh_file)
    data_plane = config.get("dataPlane") or spec.data_plane
    # Each data plane takes only its own arguments (MeshArgs refuses the other plane's).
    builtin = data_plane == "builtin"
    # Only a builtin mesh with mTLS has certificates to issue (MeshArgs refuses it otherwise).
    existing_cert_manager = (
        CertManager("cert-manager", CertManagerArgs(install=False))
        if builtin and spec.mtls != "disable" and config.get_bool("installCertManager") is False
        else None
    )
    mesh = Mesh(
        "mesh",
        MeshArgs(
            spec=spec,
            data_plane=data_plane,  # type: ignore[arg-type]
            proxy_image=config.get("proxyImage") if builtin else None,
            build_proxy_image=ProxyImageArgs(
                repository=repository, push=config.get_bool("pushProxyImage") or False
            )
            if builtin and repository and not config.get("proxyImage")
            else None,
            istio=IstioControlPlaneArgs(version=istio_version)
            if data_plane == "istio" and istio_version
            else None,
            gateway_class=config.get("gatewayClass") if data_plane == "gateway-api" else None,
            cert_manager=existing_cert_manager,
        ),
    )
except SpecError as error:
    print(f"error: {len(error.problems)} problem(s) in {mesh_file}:", file=sys.stderr)
    for problem in error.problems:
        print(f"  {problem}", file=sys.stderr)
    sys.exit(2)
except ArgsError as error:
    print(f"error: stack config: {error}", file=sys.stderr)
    sys.exit(2)

pulumi.export("namespace", mesh.namespace)
pulumi.export("ingress_address", mesh.ingress_address)
pulumi.export("control_plane_revision", mesh.control_plane_revision)
pulumi.export("proxy_image", mesh.proxy_image)
