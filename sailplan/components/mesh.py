"""`Mesh`: everything one spec describes, deployed as one component."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime.settings import get_monitor
from pulumi_kubernetes.yaml.v2 import ConfigGroup

from sailplan import constants as c
from sailplan.components.args import (
    ArgsError,
    require_bool,
    require_choice,
    require_gateway_class,
    require_input_str,
    require_instance,
    require_name_prefix,
    require_str,
)
from sailplan.components.cert_manager import CertManager
from sailplan.components.istio_control_plane import IstioControlPlane, IstioControlPlaneArgs
from sailplan.components.mesh_service import (
    REGISTRATIONS,
    IngressGateway,
    MeshService,
    Registration,
    group_manifests,
    service_config_group,
)
from sailplan.components.proxy_image import ProxyImage, ProxyImageArgs
from sailplan.components.resources import create_resource
from sailplan.loader import load_mesh
from sailplan.model import DataPlane
from sailplan.model import Mesh as MeshSpec
from sailplan.model.security import DEFAULT_TRUST_DOMAIN
from sailplan.render.certificates import IssuerRef, needs_certificates
from sailplan.render.manifests import render_manifests

# Rendered in place of an image reference that is only known at deploy time (a build, an Output).
_IMAGE_PLACEHOLDER = "sailplan.invalid/proxy-image-placeholder:0"
# The name of the control plane istio-plane meshes share when given none (per Kubernetes provider).
SHARED_CONTROL_PLANE_NAME = "sailplan-istio"
# The cert-manager builtin-plane meshes with mTLS share when given none (per Kubernetes provider).
SHARED_CERT_MANAGER_NAME = "sailplan-cert-manager"
# Namespace labels a data plane needs on a namespace sailplan does not create.
_NAMESPACE_LABELS_TO_PATCH = (c.ISTIO_NAMESPACE_INJECTION_LABEL,)


_ISTIO_ONLY = ("control_plane", "istio", "install_control_plane")
_BUILTIN_ONLY = ("proxy_image", "build_proxy_image", "cert_manager", "certificate_issuer")
# The MeshArgs a data plane has no use for, and the sentence that says so.
_NOT_FOR_PLANE: dict[str, tuple[tuple[str, ...], str]] = {
    "gateway-api": (
        _ISTIO_ONLY + _BUILTIN_ONLY,
        "the gateway-api data plane deploys Gateway API objects only: the mesh implementation "
        "(Linkerd, Istio, ...) brings its own control plane, proxy and certificates; drop it",
    ),
    "builtin": (
        _ISTIO_ONLY,
        "only the istio data plane has a control plane, and this mesh uses the builtin data "
        "plane: drop it, or set data_plane='istio'",
    ),
    "istio": (
        _BUILTIN_ONLY,
        "only the builtin data plane runs sailplan's proxy, and this mesh uses the istio data "
        "plane, whose sidecar Istio injects: drop it, or set data_plane='builtin'",
    ),
}


@dataclass(frozen=True)
class MeshArgs:
    """What `Mesh` deploys.

    spec: a validated `sailplan.Mesh` or the path of a mesh file.
    data_plane: "builtin", "istio" or "gateway-api", overriding the spec's `dataPlane`.
    create_namespace: False targets a namespace that already exists (sailplan only adds the
        labels the data plane needs, e.g. istio-injection, with a server-side patch).
    name_prefix: the prefix of every child resource's Pulumi name (default: the Mesh's name), so
        URNs stay put when the component is renamed and two meshes never collide.
    registration: how each service's objects are registered. "per-object" (default): one Pulumi
        resource per Kubernetes object, under the service's `MeshService`. "grouped": one
        `pulumi_kubernetes` `yaml.v2.ConfigGroup` per service in the MeshService's place, which
        the Kubernetes provider expands into the same objects (still one resource each, diffed
        one by one in `pulumi preview`); at 1,000 services the program registers about 1,000
        resources instead of 8,000. The objects' URNs differ between the two, without aliases: choose it when a
        stack is created (README, "Deploy with Pulumi"). The ingress and mesh-wide objects are
        registered per object either way.

    builtin data plane only:
    proxy_image: the proxy image to run (a string, or an Output such as a digest from another
        resource); else `build_proxy_image` builds one (`ProxyImageArgs`); else sailplan's
        published image.
    cert_manager: the `CertManager` that issues the mesh certificates (`mtls` permissive or
        strict). Without it, every such Mesh in the program shares one, created once as the
        top-level "sailplan-cert-manager" (per Kubernetes provider, as the control plane is);
        `CertManager(..., CertManagerArgs(install=False))` uses a cert-manager the cluster has.
    certificate_issuer: an `IssuerRef` to a cert-manager issuer of your own that signs the
        workload certificates; without it, a mesh CA is bootstrapped in the namespace.

    istio data plane only:
    control_plane: an `IstioControlPlane` to use. Without it, every istio-plane Mesh in the
        program shares one, created once as the top-level "sailplan-istio" from `istio`
        (`IstioControlPlaneArgs`; meshes that share it must agree on them). "Program" means one
        deployment (one `pulumi up`; in tests, one `set_mocks`) and one Kubernetes provider
        (the `provider=`/`providers=` in the Mesh's opts: "sailplan-istio-<provider name>").
    install_control_plane: False when Istio is installed some other way (no charts deployed).

    gateway-api data plane only (the mesh implementation, e.g. Linkerd, is installed some other
    way; nothing of it is deployed here):
    gateway_class: the GatewayClass of the ingress Gateway (default "istio").

    Every argument is checked on construction, and against the data plane when `Mesh` is
    created; a wrong one raises `ArgsError` naming it, before anything is registered.
    """

    spec: MeshSpec | str | Path
    data_plane: DataPlane | None = None
    proxy_image: pulumi.Input[str] | None = None
    build_proxy_image: ProxyImageArgs | None = None
    cert_manager: CertManager | None = None
    certificate_issuer: IssuerRef | None = None
    control_plane: IstioControlPlane | None = None
    install_control_plane: bool = True
    istio: IstioControlPlaneArgs | None = None
    create_namespace: bool = True
    name_prefix: str | None = None
    gateway_class: str | None = None
    registration: Registration = "per-object"

    def __post_init__(self) -> None:
        where = "MeshArgs"
        require_choice(
            f"{where}.registration", self.registration, REGISTRATIONS, "a way of registering"
        )
        if self.registration == "grouped" and (
            self.build_proxy_image is not None
            or (self.proxy_image is not None and not isinstance(self.proxy_image, str))
        ):
            # A ConfigGroup whose objects hold a value unknown in preview registers no child
            # there: the preview would show each service as one opaque group, not its objects.
            raise ArgsError(
                f"{where}.registration",
                "'grouped' needs every object known at preview, but the proxy image is built or "
                "given as an Output, known only during `pulumi up`, so the preview would show "
                "no object of any service: give proxy_image= as a string, or use 'per-object'",
            )
        if not isinstance(self.spec, MeshSpec | str | Path):
            raise ArgsError(
                f"{where}.spec",
                f"give a sailplan.Mesh or the path of a mesh file, not {type(self.spec).__name__}",
            )
        if self.data_plane is not None:
            require_choice(
                f"{where}.data_plane",
                self.data_plane,
                ("builtin", "istio", "gateway-api"),
                "a data plane",
            )
        if self.gateway_class is not None:
            require_gateway_class(f"{where}.gateway_class", self.gateway_class)
        if self.proxy_image is not None:
            require_input_str(f"{where}.proxy_image", self.proxy_image, "an image reference")
        require_instance(
            f"{where}.build_proxy_image", self.build_proxy_image, ProxyImageArgs, "ProxyImageArgs"
        )
        if self.proxy_image is not None and self.build_proxy_image is not None:
            raise ArgsError(
                f"{where}.build_proxy_image",
                "give proxy_image= (an existing image) or build_proxy_image= (build one), not both",
            )
        require_instance(
            f"{where}.cert_manager", self.cert_manager, CertManager, "a CertManager resource"
        )
        require_instance(
            f"{where}.certificate_issuer", self.certificate_issuer, IssuerRef, "an IssuerRef"
        )
        if self.certificate_issuer is not None:
            _check_issuer(f"{where}.certificate_issuer", self.certificate_issuer)
        require_instance(
            f"{where}.control_plane",
            self.control_plane,
            IstioControlPlane,
            "an IstioControlPlane resource",
        )
        require_instance(
            f"{where}.istio", self.istio, IstioControlPlaneArgs, "IstioControlPlaneArgs"
        )
        require_bool(f"{where}.install_control_plane", self.install_control_plane)
        if self.control_plane is not None and self.istio is not None:
            raise ArgsError(
                f"{where}.istio",
                "istio= configures a control plane for this Mesh to create, but control_plane= "
                "gives one already created: set its arguments on that IstioControlPlane",
            )
        if not self.install_control_plane and (
            self.control_plane is not None or self.istio is not None
        ):
            raise ArgsError(
                f"{where}.install_control_plane",
                "False says Istio is installed some other way, "
                "so control_plane= and istio= would not be used: drop them",
            )
        require_bool(f"{where}.create_namespace", self.create_namespace)
        if self.name_prefix is not None:
            require_name_prefix(f"{where}.name_prefix", self.name_prefix)

    def check_data_plane(self, data_plane: DataPlane) -> None:
        """The arguments that only one data plane uses, against the mesh's data plane."""
        if data_plane != "gateway-api" and self.gateway_class is not None:
            raise ArgsError(
                "MeshArgs.gateway_class",
                f"only the gateway-api data plane renders a Gateway of a class, and this mesh "
                f"uses the {data_plane} data plane: drop it, or set data_plane='gateway-api'",
            )
        given = {
            "control_plane": self.control_plane is not None,
            "istio": self.istio is not None,
            "install_control_plane": not self.install_control_plane,
            "proxy_image": self.proxy_image is not None,
            "build_proxy_image": self.build_proxy_image is not None,
            "cert_manager": self.cert_manager is not None,
            "certificate_issuer": self.certificate_issuer is not None,
        }
        fields, why = _NOT_FOR_PLANE[data_plane]
        for field in fields:
            if given[field]:
                raise ArgsError(f"MeshArgs.{field}", why)

    def check_certificates(self, spec: MeshSpec) -> None:
        """cert-manager arguments on a builtin mesh that needs no certificates."""
        if spec.data_plane != "builtin" or needs_certificates(spec):
            return
        for field, given in (
            ("cert_manager", self.cert_manager is not None),
            ("certificate_issuer", self.certificate_issuer is not None),
        ):
            if given:
                raise ArgsError(
                    f"MeshArgs.{field}",
                    "the mesh has mtls: disable, so no certificates are issued and it would "
                    "not be used: drop it, or set mtls to permissive or strict",
                )


_ISSUER_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _check_issuer(path: str, issuer: IssuerRef) -> None:
    """An issuer cert-manager could find: a wrong one would leave every Certificate pending."""
    if not isinstance(issuer.name, str) or not _ISSUER_NAME.fullmatch(issuer.name):
        raise ArgsError(
            f"{path}.name",
            f"{issuer.name!r} is not an issuer name: use lowercase letters, digits, '-' and '.'",
        )
    require_choice(f"{path}.kind", issuer.kind, ("Issuer", "ClusterIssuer"), "an issuer kind")
    require_str(f"{path}.group", issuer.group, "an API group such as 'cert-manager.io'")


@dataclass
class _Shared:
    # The monitor and provider are held so that their ids, the registry's key, are never reused.
    monitor: object
    provider: pulumi.ProviderResource | None
    control_plane: IstioControlPlane
    args: IstioControlPlaneArgs


# One implicit control plane per Pulumi deployment (its resource monitor) and Kubernetes provider:
# two control planes on one cluster would both install Istio's CRDs and claim istio-system.
_SHARED: dict[tuple[int, int], _Shared] = {}


def _kubernetes_provider(opts: pulumi.ResourceOptions | None) -> pulumi.ProviderResource | None:
    if opts is None:
        return None
    candidates: list[pulumi.ProviderResource] = []
    if opts.provider is not None:
        candidates.append(opts.provider)
    if isinstance(opts.providers, Mapping):
        candidates += opts.providers.values()
    elif opts.providers:
        candidates += opts.providers
    return next((p for p in candidates if getattr(p, "package", None) == "kubernetes"), None)


def _shared_control_plane(
    args: IstioControlPlaneArgs | None, opts: pulumi.ResourceOptions | None
) -> IstioControlPlane:
    monitor = get_monitor()
    provider = _kubernetes_provider(opts)
    key = (id(monitor), id(provider))
    shared = _SHARED.get(key)
    if shared is not None:
        if args is not None and args != shared.args:
            raise ArgsError(
                "MeshArgs.istio",
                "differs from the arguments of the control plane another Mesh in this program "
                f"already created ({SHARED_CONTROL_PLANE_NAME!r}): give them the same istio=, or "
                "create an IstioControlPlane and pass it to each Mesh as control_plane=",
            )
        return shared.control_plane
    args = args or IstioControlPlaneArgs()
    name = SHARED_CONTROL_PLANE_NAME
    if provider is not None:
        name = f"{name}-{provider.pulumi_resource_name}"
    # A top-level resource, not a child of the first Mesh: removing that Mesh later must not
    # replace the control plane the others use.
    control_plane = IstioControlPlane(
        name, args, pulumi.ResourceOptions(provider=provider) if provider else None
    )
    _SHARED[key] = _Shared(monitor, provider, control_plane, args)
    return control_plane


@dataclass
class _SharedCertManager:
    monitor: object
    provider: pulumi.ProviderResource | None
    cert_manager: CertManager


# One implicit cert-manager per deployment and Kubernetes provider, like the control plane: two
# installs would fight over the same CRDs and webhooks.
_SHARED_CERT_MANAGERS: dict[tuple[int, int], _SharedCertManager] = {}


def _shared_cert_manager(opts: pulumi.ResourceOptions | None) -> CertManager:
    monitor = get_monitor()
    provider = _kubernetes_provider(opts)
    key = (id(monitor), id(provider))
    shared = _SHARED_CERT_MANAGERS.get(key)
    if shared is None:
        name = SHARED_CERT_MANAGER_NAME
        if provider is not None:
            name = f"{name}-{provider.pulumi_resource_name}"
        # Top-level, not a child of the first Mesh: removing that Mesh must not remove it.
        cert_manager = CertManager(
            name, None, pulumi.ResourceOptions(provider=provider) if provider else None
        )
        shared = _SharedCertManager(monitor, provider, cert_manager)
        _SHARED_CERT_MANAGERS[key] = shared
    return shared.cert_manager


def _gateway_for(
    spec: MeshSpec, args: IstioControlPlaneArgs | None
) -> IstioControlPlaneArgs | None:
    """The control plane a Mesh creates exposes the spec's ingress port and node port on the
    gateway chart's Service (Istio binds a Gateway server only to a port that Service exposes:
    istioctl analyze IST0162); arguments the user set are kept, and checked afterwards."""
    if spec.ingress is None:
        return args
    base = args or IstioControlPlaneArgs()
    changes: dict[str, Any] = {}
    if base.gateway_port == IstioControlPlaneArgs.gateway_port:
        changes["gateway_port"] = spec.ingress.port
    if spec.ingress.node_port is not None and base.gateway_node_port is None:
        changes["gateway_node_port"] = spec.ingress.node_port
        if base.gateway_service_type == IstioControlPlaneArgs.gateway_service_type:
            # `nodePort` means a NodePort Service, as on the builtin plane.
            changes["gateway_service_type"] = "NodePort"
    if all(getattr(base, key) == value for key, value in changes.items()):
        return args  # nothing to add: meshes that need nothing more share one control plane
    return replace(base, **changes)


def _control_plane_for(
    spec: MeshSpec, args: IstioControlPlaneArgs | None
) -> IstioControlPlaneArgs | None:
    """`_gateway_for`, and istiod issues identities in the mesh's trust domain, which its
    AuthorizationPolicies' principals name (an explicit different one is refused afterwards)."""
    args = _gateway_for(spec, args)
    base = args or IstioControlPlaneArgs()
    if base.trust_domain == spec.trust_domain or base.trust_domain != DEFAULT_TRUST_DOMAIN:
        return args
    if base.mesh_config and "trustDomain" in base.mesh_config:
        return args  # set by the user through mesh_config: checked afterwards
    return replace(base, trust_domain=spec.trust_domain)


def _check_trust_domain(spec: MeshSpec, args: IstioControlPlaneArgs, path: str) -> None:
    if args.trust_domain != spec.trust_domain:
        raise ArgsError(
            path,
            f"its trust domain is {args.trust_domain!r}, but the mesh's trustDomain is "
            f"{spec.trust_domain!r}: the principals of its AuthorizationPolicies would name "
            f"identities istiod never issues; set trust_domain={spec.trust_domain!r} in the "
            "IstioControlPlaneArgs",
        )


def _check_gateway_service(spec: MeshSpec, args: IstioControlPlaneArgs) -> None:
    if spec.ingress is None:
        return
    if not args.install_gateway:
        return  # the user runs their own gateway; its Service is theirs to match
    if args.gateway_port != spec.ingress.port:
        raise ArgsError(
            "MeshArgs.control_plane",
            f"its gateway Service exposes port {args.gateway_port}, but the mesh's ingress "
            f"listens on port {spec.ingress.port}: Istio would bind nothing (IST0162); set "
            f"gateway_port={spec.ingress.port} in the IstioControlPlaneArgs",
        )
    node_port = spec.ingress.node_port
    if node_port is not None and args.gateway_node_port != node_port:
        raise ArgsError(
            "MeshArgs.control_plane",
            f"the mesh's ingress asks for node port {node_port}, but the gateway Service "
            f"{'has ' + str(args.gateway_node_port) if args.gateway_node_port else 'pins none'}; "
            f"set gateway_node_port={node_port} and gateway_service_type='NodePort' in the "
            "IstioControlPlaneArgs",
        )


def _given_dependencies(opts: pulumi.ResourceOptions | None) -> list[pulumi.Resource]:
    depends_on = opts.depends_on if opts is not None else None
    if isinstance(depends_on, pulumi.Resource):
        return [depends_on]
    if isinstance(depends_on, list | tuple):
        return [d for d in depends_on if isinstance(d, pulumi.Resource)]
    return []


def _substitute(value: Any, placeholder: str, replacement: Any) -> Any:
    if value == placeholder:
        return replacement
    if isinstance(value, dict):
        return {k: _substitute(v, placeholder, replacement) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, placeholder, replacement) for v in value]
    return value


class Mesh(pulumi.ComponentResource):
    """Everything one sailplan spec describes, deployed as one Pulumi component.

    The spec is validated and rendered before anything is registered, so an invalid spec or a
    wrong argument (see `MeshArgs`) deploys nothing. Children, named "<name_prefix>-...":
    a `MeshService` per service (`services`, by service name; with `registration="grouped"` a
    `yaml.v2.ConfigGroup` in its place, `service_groups`), an `IngressGateway`, the mesh-wide objects and the namespace;
    on the builtin data plane a `ProxyImage` when building one; on the istio data plane the
    workloads wait for the control plane (shared by every istio-plane Mesh of the program unless
    `MeshArgs.control_plane` names one).

    Outputs: `namespace`, `ingress_address` (where the ingress listens, see
    `IstioControlPlane.gateway_address`; None without an ingress, and on the gateway-api plane,
    where the Gateway's implementation writes it to the Gateway's `status.addresses`),
    `control_plane_revision` (istio) and `proxy_image` (builtin).
    """

    namespace: pulumi.Output[str]
    ingress_address: pulumi.Output[str | None]
    control_plane_revision: pulumi.Output[str | None]
    proxy_image: pulumi.Output[str | None]
    control_plane: IstioControlPlane | None
    cert_manager: CertManager | None
    services: dict[str, MeshService]
    service_groups: dict[str, ConfigGroup]

    def __init__(
        self, name: str, args: MeshArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if not isinstance(args, MeshArgs):
            raise ArgsError("Mesh.args", f"must be MeshArgs, not {type(args).__name__}")
        # Validate and render before registering anything: an invalid spec deploys nothing.
        if isinstance(args.spec, MeshSpec):
            spec = args.spec
            if args.data_plane is not None and args.data_plane != spec.data_plane:
                spec = spec.with_data_plane(args.data_plane)
        else:
            # Validated for the asked plane from the start: the file's own may refuse what it takes.
            spec = load_mesh(Path(args.spec), data_plane=args.data_plane)
        args.check_data_plane(spec.data_plane)
        args.check_certificates(spec)
        builtin = spec.data_plane == "builtin"
        building = builtin and args.build_proxy_image is not None
        deferred_image = building or (
            args.proxy_image is not None and not isinstance(args.proxy_image, str)
        )
        image = c.PROXY_IMAGE_DEFAULT
        if deferred_image:
            image = _IMAGE_PLACEHOLDER
        elif isinstance(args.proxy_image, str):
            image = args.proxy_image
        manifests = render_manifests(
            spec,
            proxy_image=image,
            certificate_issuer=args.certificate_issuer,
            gateway_class=args.gateway_class or c.GATEWAY_CLASS_DEFAULT,
        )
        prefix = args.name_prefix or name
        self.control_plane = None
        if spec.data_plane == "istio":
            self.control_plane = args.control_plane
            if self.control_plane is None and args.install_control_plane:
                # May refuse the arguments, so before this Mesh registers.
                self.control_plane = _shared_control_plane(
                    _control_plane_for(spec, args.istio), opts
                )
            if self.control_plane is not None:
                _check_gateway_service(spec, self.control_plane.args)
                _check_trust_domain(
                    spec,
                    self.control_plane.args,
                    "MeshArgs.control_plane" if args.control_plane else "MeshArgs.istio",
                )
        self.cert_manager = None
        if needs_certificates(spec):
            self.cert_manager = args.cert_manager or _shared_cert_manager(opts)
        super().__init__("sailplan:index:Mesh", name, None, opts)

        self.proxy_image = pulumi.Output.from_input(image if builtin else None)
        if building:
            assert args.build_proxy_image is not None
            built = ProxyImage(
                f"{prefix}-proxy-image", args.build_proxy_image, pulumi.ResourceOptions(parent=self)
            )
            self.proxy_image = built.ref
        elif deferred_image:
            assert args.proxy_image is not None
            self.proxy_image = pulumi.Output.from_input(args.proxy_image)
        if deferred_image:
            manifests = [_substitute(m, _IMAGE_PLACEHOLDER, self.proxy_image) for m in manifests]

        prerequisites: list[pulumi.Resource] = []
        self.control_plane_revision = pulumi.Output.from_input(None)
        if self.control_plane is not None:
            # A pod created before the injector is ready runs without a sidecar; CRs need the CRDs.
            prerequisites += self.control_plane.ready
            self.control_plane_revision = self.control_plane.revision

        groups = group_manifests(manifests)
        namespace_resources = [
            self._namespace(prefix, m, args.create_namespace, prerequisites[:1])
            for m in groups.mesh_wide
            if m["kind"] == "Namespace"
        ]
        # Issuers and Certificates need cert-manager's CRDs and its webhook serving.
        issuing = self.cert_manager.ready if self.cert_manager is not None else []
        after = pulumi.ResourceOptions(
            parent=self,
            depends_on=[
                *(r for r in namespace_resources if r is not None),
                *prerequisites,
                *issuing,
                # Children do not inherit the component's depends_on: what the Mesh was told to
                # wait for (say, a namespace created elsewhere), its objects wait for.
                *_given_dependencies(opts),
            ],
        )
        wide = [m for m in groups.mesh_wide if m["kind"] != "Namespace"]
        self.mesh_wide = [create_resource(prefix, m, after) for m in wide]
        # The workloads' certificates come after the mesh CA that signs them.
        mesh_ca = [
            resource
            for manifest, resource in zip(wide, self.mesh_wide, strict=True)
            if manifest["apiVersion"].startswith("cert-manager.io/")
        ]
        after = pulumi.ResourceOptions.merge(after, pulumi.ResourceOptions(depends_on=mesh_ca))
        services = sorted(groups.services.items())
        grouped = args.registration == "grouped"
        self.services = {
            service: MeshService(f"{prefix}-{service}", objects, after)
            for service, objects in ([] if grouped else services)
        }
        # Grouped: the ConfigGroup takes the MeshService's place (and name) rather than going
        # under it, as a component of its own costs as much to register as the group does.
        self.service_groups = {
            service: service_config_group(f"{prefix}-{service}", objects, after)
            for service, objects in (services if grouped else [])
        }
        self.ingress_address = pulumi.Output.from_input(None)
        if groups.ingress:
            gateway = IngressGateway(f"{prefix}-ingress", groups.ingress, after)
            self.ingress_address = gateway.address
            if self.control_plane is not None:
                # Istio's Gateway object has no address: the gateway chart's Service has.
                self.ingress_address = self.control_plane.gateway_address
        self.namespace = pulumi.Output.from_input(spec.target_namespace)
        self.register_outputs(
            {
                "namespace": self.namespace,
                "ingress_address": self.ingress_address,
                "control_plane_revision": self.control_plane_revision,
                "proxy_image": self.proxy_image,
            }
        )

    def _namespace(
        self,
        prefix: str,
        manifest: dict[str, Any],
        create: bool,
        depends_on: list[pulumi.Resource],
    ) -> pulumi.Resource | None:
        opts = pulumi.ResourceOptions(parent=self, depends_on=depends_on)
        if create:
            return create_resource(prefix, manifest, opts)
        labels = {
            key: value
            for key, value in manifest["metadata"].get("labels", {}).items()
            if key in _NAMESPACE_LABELS_TO_PATCH
        }
        if not labels:
            return None
        # Server-side apply of just these labels; it fails when the namespace does not exist, and
        # `pulumi destroy` removes only these labels, never the namespace.
        return k8s.core.v1.NamespacePatch(
            f"{prefix}-namespacepatch-{manifest['metadata']['name']}",
            metadata={"name": manifest["metadata"]["name"], "labels": labels},
            opts=opts,
        )
