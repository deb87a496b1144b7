"""`CertManager` and the builtin `Mesh`'s certificates under Pulumi's mock engine."""

from __future__ import annotations

import pytest
import yaml
from conftest import DEMO_MESH
from pulumi_support import register

import sailplan
from sailplan.components import ArgsError, CertManager, CertManagerArgs, IssuerRef, Mesh, MeshArgs

CHART = "kubernetes:helm.sh/v4:Chart"


def test_the_chart_comes_pinned_from_jetstack_with_its_crds() -> None:
    engine, namespace = register(lambda: CertManager("cm").namespace)
    assert namespace == "cert-manager"
    [chart] = engine.of_type(CHART)
    assert chart.name == "cm-chart"
    assert chart.inputs["chart"] == "cert-manager"
    assert chart.inputs["version"] == "v1.21.1"
    assert chart.inputs["repositoryOpts"] == {"repo": "https://charts.jetstack.io"}
    assert chart.inputs["namespace"] == "cert-manager"
    assert chart.inputs["values"] == {
        "crds": {"enabled": True},
        "enableCertificateOwnerRef": True,
    }
    [ns] = engine.of_type("kubernetes:core/v1:Namespace")
    assert ns.inputs["metadata"]["name"] == "cert-manager"
    assert ns.urn in chart.dependencies


def test_extra_values_and_another_version_reach_the_chart() -> None:
    args = CertManagerArgs(version="v1.20.3", namespace="pki", extra_values={"replicaCount": 2})
    engine, _ = register(lambda: CertManager("cm", args).namespace)
    [chart] = engine.of_type(CHART)
    assert chart.inputs["version"] == "v1.20.3"
    assert chart.inputs["namespace"] == "pki"
    assert chart.inputs["values"]["replicaCount"] == 2
    assert chart.inputs["values"]["crds"] == {"enabled": True}


def test_an_existing_cert_manager_deploys_nothing() -> None:
    def build() -> object:
        manager = CertManager("cm", CertManagerArgs(install=False))
        assert manager.ready == []
        return manager.namespace

    engine, namespace = register(build)
    assert namespace == "cert-manager"
    assert [r.type for r in engine.registrations] == ["sailplan:index:CertManager"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"version": "1.21.1"},
            "CertManagerArgs.version: '1.21.1' is not a cert-manager chart version: give 'v' "
            "and major.minor.patch such as 'v1.21.1'",
        ),
        (
            {"namespace": "Cert_Manager"},
            "CertManagerArgs.namespace: 'Cert_Manager' is not a namespace name",
        ),
        ({"install": "no"}, "CertManagerArgs.install: must be True or False, not str 'no'"),
        (
            {"install": False, "extra_values": {"replicaCount": 2}},
            "CertManagerArgs.install: False says cert-manager is installed some other way, so "
            "version=, repository= and extra_values= would not be used: drop them",
        ),
    ],
    ids=["version-without-v", "namespace", "install-not-bool", "install-false-with-values"],
)
def test_wrong_arguments_are_refused_with_their_path(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ArgsError) as error:
        CertManagerArgs(**kwargs)  # type: ignore[arg-type]
    assert str(error.value).startswith(message)


# -- the builtin Mesh's certificates -----------------------------------------------------------

CERTIFICATE = "kubernetes:cert-manager.io/v1:Certificate"
ISSUER = "kubernetes:cert-manager.io/v1:Issuer"


def _spec(**fields: object) -> sailplan.Mesh:
    data = yaml.safe_load(DEMO_MESH.read_text(encoding="utf-8"))
    return sailplan.load_mesh_text(yaml.safe_dump({**data, **fields}))


def test_a_builtin_mesh_registers_its_ca_and_certificates_after_cert_manager() -> None:
    engine, _ = register(
        lambda: Mesh("demo", MeshArgs(spec=DEMO_MESH, proxy_image="p:1")).namespace
    )
    [chart] = engine.of_type(CHART)
    assert chart.name == "sailplan-cert-manager-chart"
    assert sorted(r.name for r in engine.of_type(ISSUER)) == [
        "demo-issuer-demo-mesh-ca",
        "demo-issuer-demo-selfsigned",
    ]
    assert sorted(r.name for r in engine.of_type(CERTIFICATE)) == [
        "demo-certificate-demo-mesh-ca",
        "demo-ingress-certificate-demo-gateway",
        "demo-service1-certificate-service1",
        "demo-service2-certificate-service2",
    ]
    certificate = engine.by_name("demo-service1-certificate-service1")
    assert certificate.inputs["spec"]["uris"] == ["spiffe://cluster.local/ns/demo/sa/service1"]
    assert certificate.inputs["metadata"]["annotations"] == {
        "pulumi.com/waitFor": "condition=Ready"
    }
    # Issuers need cert-manager's webhook; the workloads' certificates need the mesh CA.
    for issuer in engine.of_type(ISSUER):
        assert chart.urn in issuer.dependencies
    service = engine.by_name("demo-service1")
    assert chart.urn in service.dependencies
    assert engine.by_name("demo-issuer-demo-mesh-ca").urn in service.dependencies
    assert engine.by_name("demo-certificate-demo-mesh-ca").urn in service.dependencies


def test_sidecar_deployments_depend_on_their_certificates() -> None:
    engine, _ = register(
        lambda: Mesh("demo", MeshArgs(spec=DEMO_MESH, proxy_image="p:1")).namespace
    )
    certificate = engine.by_name("demo-service1-certificate-service1").urn
    for version in ("v1", "v2"):
        deployment = engine.by_name(f"demo-service1-deployment-service1-{version}")
        assert deployment.dependencies == [certificate]
    # Nothing else in the service waits: a ConfigMap is no reason to hold the certificate.
    assert engine.by_name("demo-service1-configmap-service1-v1-proxy").dependencies == []
    gateway = engine.by_name("demo-ingress-deployment-demo-gateway")
    assert gateway.dependencies == [engine.by_name("demo-ingress-certificate-demo-gateway").urn]


def test_meshes_share_one_cert_manager_unless_given_one() -> None:
    def build() -> object:
        Mesh("a", MeshArgs(spec=_spec(name="a", namespace="a"), proxy_image="p:1"))
        Mesh("b", MeshArgs(spec=_spec(name="b", namespace="b"), proxy_image="p:1"))
        return 1

    engine, _ = register(build)
    [manager] = engine.of_type("sailplan:index:CertManager")
    assert manager.name == "sailplan-cert-manager"
    # Top-level, like the meshes: removing the first Mesh must not remove what the other uses.
    assert manager.parent == engine.by_name("a").parent == engine.by_name("b").parent
    assert manager.parent.endswith("pulumi:pulumi:Stack::sailplan-test")
    assert len(engine.of_type(CHART)) == 1


def test_an_existing_cert_manager_is_used_without_a_chart() -> None:
    def build() -> object:
        existing = CertManager("cm", CertManagerArgs(install=False))
        return Mesh(
            "demo", MeshArgs(spec=DEMO_MESH, proxy_image="p:1", cert_manager=existing)
        ).namespace

    engine, _ = register(build)
    assert engine.of_type(CHART) == []
    assert [r.name for r in engine.of_type("sailplan:index:CertManager")] == ["cm"]
    assert len(engine.of_type(CERTIFICATE)) == 4


def test_a_named_issuer_signs_the_certificates_and_no_ca_is_bootstrapped() -> None:
    issuer = IssuerRef("corp-ca")
    engine, _ = register(
        lambda: (
            Mesh(
                "demo", MeshArgs(spec=DEMO_MESH, proxy_image="p:1", certificate_issuer=issuer)
            ).namespace
        )
    )
    assert engine.of_type(ISSUER) == []
    certificates = engine.of_type(CERTIFICATE)
    assert len(certificates) == 3
    assert {r.inputs["spec"]["issuerRef"]["name"] for r in certificates} == {"corp-ca"}


def test_without_mtls_no_cert_manager_is_installed() -> None:
    engine, _ = register(
        lambda: Mesh("demo", MeshArgs(spec=_spec(mtls="disable"), proxy_image="p:1")).namespace
    )
    assert engine.of_type("sailplan:index:CertManager") == []
    assert engine.of_type(CERTIFICATE) == []


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (
            {"mtls": "disable"},
            "cert_manager",
            "MeshArgs.cert_manager: the mesh has mtls: disable, so no certificates are issued "
            "and it would not be used: drop it, or set mtls to permissive or strict",
        ),
        (
            {"dataPlane": "istio"},
            "certificate_issuer",
            "MeshArgs.certificate_issuer: only the builtin data plane runs sailplan's proxy",
        ),
    ],
    ids=["mtls-disable", "istio"],
)
def test_cert_manager_arguments_a_mesh_would_not_use_are_refused(
    spec: dict[str, object], field: str, message: str
) -> None:
    def build() -> object:
        given: dict[str, object] = {
            "cert_manager": CertManager("cm", CertManagerArgs(install=False)),
            "certificate_issuer": IssuerRef("corp-ca"),
        }
        with pytest.raises(ArgsError) as error:
            Mesh("demo", MeshArgs(spec=_spec(**spec), **{field: given[field]}))  # type: ignore[arg-type]
        assert str(error.value).startswith(message)
        return 1

    engine, _ = register(build)
    assert engine.of_type("sailplan:index:Mesh") == []


@pytest.mark.parametrize(
    ("issuer", "message"),
    [
        (
            IssuerRef("Corp CA"),
            "MeshArgs.certificate_issuer.name: 'Corp CA' is not an issuer name: use lowercase "
            "letters, digits, '-' and '.'",
        ),
        (
            IssuerRef("corp-ca", "clusterissuer"),  # type: ignore[arg-type]
            "MeshArgs.certificate_issuer.kind: 'clusterissuer' is not an issuer kind: use one of "
            "'Issuer', 'ClusterIssuer' (did you mean 'ClusterIssuer'?)",
        ),
    ],
    ids=["name", "kind"],
)
def test_a_wrong_issuer_is_refused_before_anything_registers(
    issuer: IssuerRef, message: str
) -> None:
    with pytest.raises(ArgsError) as error:
        MeshArgs(spec=DEMO_MESH, certificate_issuer=issuer)
    assert str(error.value) == message
