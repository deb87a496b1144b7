"""cert-manager from its official chart: the issuer of the builtin plane's mesh certificates."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from sailplan.components.args import (
    ArgsError,
    require_bool,
    require_dict,
    require_dns_label,
    require_str,
)

CERT_MANAGER_CHART_REPOSITORY = "https://charts.jetstack.io"
# The release whose CRD schemas are vendored in third_party/schemas/cert-manager-1.21.1/, so what
# the tests validate against is what this chart installs.
DEFAULT_CERT_MANAGER_VERSION = "v1.21.1"
DEFAULT_CERT_MANAGER_NAMESPACE = "cert-manager"
# jetstack publishes the chart's versions with a leading "v".
_CHART_VERSION = re.compile(r"v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?")


@dataclass(frozen=True)
class CertManagerArgs:
    """How `CertManager` installs cert-manager from its official Helm chart.

    version: the chart's version, as jetstack publishes it: "v1.21.1".
    repository: the Helm repository the chart comes from.
    namespace: where cert-manager runs (created).
    install: False when the cluster already runs cert-manager (installed some other way):
        nothing is deployed, and meshes use the cert-manager that is there.
    extra_values: merged over sailplan's values for the chart.

    Every argument is checked on construction; a wrong one raises `ArgsError` naming it.
    """

    version: str = DEFAULT_CERT_MANAGER_VERSION
    repository: str = CERT_MANAGER_CHART_REPOSITORY
    namespace: str = DEFAULT_CERT_MANAGER_NAMESPACE
    install: bool = True
    extra_values: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = "CertManagerArgs"
        if not isinstance(self.version, str) or not _CHART_VERSION.fullmatch(self.version):
            raise ArgsError(
                f"{where}.version",
                f"{self.version!r} is not a cert-manager chart version: give 'v' and "
                "major.minor.patch such as 'v1.21.1'",
            )
        require_str(f"{where}.repository", self.repository, "a Helm repository URL")
        require_dns_label(f"{where}.namespace", self.namespace, "a namespace name")
        require_bool(f"{where}.install", self.install)
        require_dict(f"{where}.extra_values", self.extra_values, optional=False)
        if not self.install and (
            self.extra_values
            or self.version != DEFAULT_CERT_MANAGER_VERSION
            or self.repository != CERT_MANAGER_CHART_REPOSITORY
        ):
            raise ArgsError(
                f"{where}.install",
                "False says cert-manager is installed some other way, so version=, "
                "repository= and extra_values= would not be used: drop them",
            )


def chart_values(args: CertManagerArgs) -> dict[str, Any]:
    values: dict[str, Any] = {
        # The chart installs the CRDs (the Certificates and Issuers sailplan renders need them).
        "crds": {"enabled": True},
        # A Certificate's Secret is deleted with it: `pulumi destroy` leaves no keys behind.
        "enableCertificateOwnerRef": True,
    }
    return {**values, **args.extra_values}


class CertManager(pulumi.ComponentResource):
    """cert-manager, from the pinned release chart (`CertManagerArgs`), with its CRDs.

    Create one and pass it to builtin-plane `Mesh`es as `MeshArgs(cert_manager=...)`; a `Mesh`
    that needs certificates and is given none shares one created for the whole program. With
    `install=False` nothing is deployed (the cluster already runs cert-manager).

    `ready` lists what Issuers and Certificates must wait for (cert-manager's webhook validates
    them, so they cannot be created before it serves). Output: `namespace`.
    """

    namespace: pulumi.Output[str]
    ready: list[pulumi.Resource]

    def __init__(
        self,
        name: str,
        args: CertManagerArgs | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        args = args or CertManagerArgs()
        if not isinstance(args, CertManagerArgs):
            raise ArgsError(
                "CertManager.args", f"must be CertManagerArgs, not {type(args).__name__}"
            )
        super().__init__("sailplan:index:CertManager", name, None, opts)
        self.args = args
        self.ready = []
        if args.install:
            namespace = k8s.core.v1.Namespace(
                f"{name}-namespace",
                metadata={"name": args.namespace},
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.chart = k8s.helm.v4.Chart(
                f"{name}-chart",
                name="cert-manager",
                chart="cert-manager",
                version=args.version,
                namespace=args.namespace,
                repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=args.repository),
                values=chart_values(args),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace]),
            )
            self.ready.append(self.chart)
        self.namespace = pulumi.Output.from_input(args.namespace)
        self.register_outputs({"namespace": self.namespace})
