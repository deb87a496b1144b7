"""`Mesh`, `MeshService` and `IngressGateway` under Pulumi's mock engine."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml
from conftest import DEMO_MESH, REPO
from pulumi_support import Engine, fresh_engine, register

import sailplan
from sailplan.components import (
    ArgsError,
    IngressGateway,
    IstioControlPlane,
    IstioControlPlaneArgs,
    Mesh,
    MeshArgs,
    MeshService,
    ProxyImage,
    ProxyImageArgs,
    group_manifests,
)
from sailplan.render.manifests import render_manifests

CHART = "kubernetes:helm.sh/v4:Chart"
GATEWAY_ID = "istio-ingress/istio-ingressgateway"


def _outputs(mesh: Mesh) -> pulumi.Output[list[Any]]:
    return pulumi.Output.all(
        mesh.namespace, mesh.ingress_address, mesh.proxy_image, mesh.control_plane_revision
    )


def test_builtin_mesh_carries_exactly_the_rendered_manifests() -> None:
    engine, (namespace, address, image, revision) = register(
        lambda: _outputs(
            Mesh("demo", MeshArgs(spec=DEMO_MESH, proxy_image="registry.example/proxy:1"))
        )
    )
    assert (namespace, address, image, revision) == (
        "demo",
        "<any node address>:32000",
        "registry.example/proxy:1",
        None,
    )
    expected = render_manifests(
        sailplan.load_mesh(DEMO_MESH), proxy_image="registry.example/proxy:1"
    )
    # The cert-manager the mesh's certificates need is a top-level component of its own.
    custom = [r for r in engine.registrations if r.custom and "CertManager" not in r.urn]
    assert len(custom) == len(expected)
    for manifest in expected:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        matching = [
            r
            for r in custom
            if r.name.endswith(f"-{kind.lower()}-{name}") and r.type.endswith(f":{kind}")
        ]
        assert len(matching) == 1, (kind, name)
        for field in ("metadata", "spec", "data"):
            if field in manifest:
                assert matching[0].inputs[field] == manifest[field], (kind, name, field)


def test_resource_tree_types_names_and_parents() -> None:
    engine, _ = register(
        lambda: Mesh("demo", MeshArgs(spec=DEMO_MESH, proxy_image="p:1")).namespace
    )
    components = sorted((r.type, r.name) for r in engine.registrations if not r.custom)
    assert components == [
        ("kubernetes:helm.sh/v4:Chart", "sailplan-cert-manager-chart"),
        ("sailplan:index:CertManager", "sailplan-cert-manager"),
        ("sailplan:index:IngressGateway", "demo-ingress"),
        ("sailplan:index:Mesh", "demo"),
        ("sailplan:index:MeshService", "demo-service1"),
        ("sailplan:index:MeshService", "demo-service2"),
    ]
    deployment = engine.by_name("demo-service1-deployment-service1-v1")
    assert deployment.urn.endswith(
        "sailplan:index:MeshService$kubernetes:apps/v1:Deployment::demo-service1-deployment-service1-v1"
    )
    assert deployment.parent == engine.by_name("demo-service1").urn
    assert engine.by_name("demo-service1").parent == engine.by_name("demo").urn
    assert (
        engine.by_name("demo-ingress-service-demo-gateway").parent
        == engine.by_name("demo-ingress").urn
    )
    namespace = engine.by_name("demo-namespace-demo")
    assert namespace.parent == engine.by_name("demo").urn
    assert namespace.urn in engine.by_name("demo-service1").dependencies


def test_istio_workloads_and_routes_wait_for_the_control_plane() -> None:
    engine, revision = register(
        lambda: Mesh("demo", MeshArgs(spec=DEMO_MESH, data_plane="istio")).control_plane_revision
    )
    assert revision == "default"
    istiod = engine.by_name("sailplan-istio-istiod").urn
    base = engine.by_name("sailplan-istio-base").urn
    for component in ("demo-service1", "demo-service2", "demo-ingress"):
        dependencies = engine.by_name(component).dependencies
        assert istiod in dependencies and base in dependencies, component
    virtual_service = engine.by_name("demo-service1-virtualservice-service1")
    assert virtual_service.type == "kubernetes:networking.istio.io/v1:VirtualService"
    assert [r["weight"] for r in virtual_service.inputs["spec"]["http"][0]["route"]] == [80, 20]
    assert (
        engine.by_name("demo-peerauthentication-default").type
        == "kubernetes:security.istio.io/v1:PeerAuthentication"
    )
    pod_labels = engine.by_name("demo-service1-deployment-service1-v1").inputs["spec"]["template"][
        "metadata"
    ]["labels"]
    assert pod_labels["sidecar.istio.io/inject"] == "true"


def test_building_the_proxy_image_feeds_its_ref_into_every_pod() -> None:
    engine, ref = register(
        lambda: (
            Mesh(
                "demo",
                MeshArgs(
                    spec=DEMO_MESH, build_proxy_image=ProxyImageArgs(repository="reg.example/proxy")
                ),
            ).proxy_image
        )
    )
    assert ref == f"reg.example/proxy:0.1.0@sha256:{'0' * 64}"
    pod = engine.by_name("demo-service1-deployment-service1-v1").inputs["spec"]["template"]["spec"]
    assert {c["image"] for c in pod["initContainers"]} == {ref}
    gateway = engine.by_name("demo-ingress-deployment-demo-gateway").inputs["spec"]["template"][
        "spec"
    ]
    assert gateway["containers"][0]["image"] == ref
    image = engine.of_type("docker-build:index:Image")[0]
    assert image.inputs["tags"] == ["reg.example/proxy:0.1.0"]
    assert image.inputs["push"] is False


def test_an_unchanged_spec_registers_the_same_names() -> None:
    runs = [
        [
            (r.type, r.name, r.urn)
            for r in register(
                lambda: Mesh("demo", MeshArgs(spec=DEMO_MESH, proxy_image="p:1")).namespace
            )[0].registrations
        ]
        for _ in range(2)
    ]
    assert sorted(runs[0]) == sorted(runs[1])
    assert len({name for _, name, _ in runs[0]}) == len(runs[0])


def test_an_invalid_spec_registers_nothing(tmp_path: Path) -> None:
    engine = fresh_engine()
    bad = sailplan.load_mesh(DEMO_MESH).to_dict()
    bad["services"]["service1"]["routes"][0]["split"] = {"v1": 80, "v2": 10}
    path = tmp_path / "bad.mesh.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(sailplan.SpecError) as error:
        Mesh("demo", MeshArgs(spec=path))
    assert (
        str(error.value)
        == "services.service1.routes[0].split: weights add up to 90, they must add up to 100"
    )
    assert engine.registrations == []


def test_the_program_deploys_the_stack_mesh() -> None:
    def program() -> Any:
        pulumi.runtime.set_config("sailplan:meshFile", "stacks/demo.mesh.yaml")
        pulumi.runtime.set_config("sailplan:proxyImage", "p:1")
        runpy.run_path(str(REPO / "__main__.py"))
        return 1

    engine, _ = register(program)
    assert ("sailplan:index:Mesh", "mesh") in [(r.type, r.name) for r in engine.registrations]
    assert engine.by_name("mesh-service1-deployment-service1-v1").inputs["spec"]["replicas"] == 1


def _istio(name: str, opts: pulumi.ResourceOptions | None = None, **kwargs: Any) -> Mesh:
    return Mesh(
        name, MeshArgs(spec=DEMO_MESH, data_plane="istio", name_prefix=name, **kwargs), opts
    )


def _chart_names(engine: Engine) -> list[str]:
    return sorted(r.name for r in engine.of_type(CHART))


def test_istio_meshes_of_one_program_share_one_control_plane() -> None:
    def build() -> pulumi.Output[list[Any]]:
        shop, blog = _istio("shop"), _istio("blog", istio=IstioControlPlaneArgs())
        assert shop.control_plane is blog.control_plane
        return pulumi.Output.all(shop.control_plane_revision, blog.control_plane_revision)

    engine, revisions = register(build)
    assert revisions == ["default", "default"]
    assert _chart_names(engine) == [
        "sailplan-istio-base",
        "sailplan-istio-gateway",
        "sailplan-istio-istiod",
    ]
    control_plane = engine.by_name("sailplan-istio")
    # Top level, not the first Mesh's child: removing that Mesh must not replace Istio.
    assert control_plane.parent.endswith("pulumi:pulumi:Stack::sailplan-test")
    istiod = engine.by_name("sailplan-istio-istiod").urn
    for mesh in ("shop", "blog"):
        assert istiod in engine.by_name(f"{mesh}-service1").dependencies, mesh


def test_meshes_that_disagree_on_the_shared_control_plane_are_refused() -> None:
    def build() -> str:
        _istio("shop")
        with pytest.raises(ArgsError) as error:
            _istio("blog", istio=IstioControlPlaneArgs(version="1.29.2"))
        return str(error.value)

    engine, message = register(build)
    assert message == (
        "MeshArgs.istio: differs from the arguments of the control plane another Mesh in this "
        "program already created ('sailplan-istio'): give them the same istio=, or create an "
        "IstioControlPlane and pass it to each Mesh as control_plane="
    )
    assert [r.name for r in engine.of_type("sailplan:index:Mesh")] == ["shop"]


def test_an_explicit_control_plane_is_used_instead_of_the_shared_one() -> None:
    def build() -> Any:
        canary = IstioControlPlane(
            "canary",
            IstioControlPlaneArgs(
                revision="canary", gateway_service_type="NodePort", gateway_node_port=32000
            ),
        )
        shop = _istio("shop", control_plane=canary)
        plain = _istio("blog", install_control_plane=False)
        assert plain.control_plane is None
        return pulumi.Output.all(shop.control_plane_revision, plain.control_plane_revision)

    engine, revisions = register(build)
    assert revisions == ["canary", None]
    assert _chart_names(engine) == ["canary-base", "canary-gateway", "canary-istiod"]
    assert engine.by_name("canary-istiod").urn in engine.by_name("shop-service1").dependencies
    assert engine.by_name("blog-service1").dependencies == [
        engine.by_name("blog-namespace-demo").urn
    ]


def test_each_kubernetes_provider_gets_its_own_shared_control_plane() -> None:
    def build() -> int:
        for cluster in ("east", "west"):
            provider = k8s.Provider(cluster, context=cluster)
            for mesh in ("shop", "blog"):
                _istio(f"{cluster}-{mesh}", opts=pulumi.ResourceOptions(provider=provider))
        return 0

    engine, _ = register(build)
    assert sorted(r.name for r in engine.of_type("sailplan:index:IstioControlPlane")) == [
        "sailplan-istio-east",
        "sailplan-istio-west",
    ]
    for cluster in ("east", "west"):
        charts = [
            r for r in engine.of_type(CHART) if r.name.startswith(f"sailplan-istio-{cluster}-")
        ]
        assert len(charts) == 3
        assert {r.provider.split("::")[-2:] == [cluster, f"{cluster}-id"] for r in charts} == {True}


def test_an_existing_namespace_gets_only_the_labels_the_data_plane_needs() -> None:
    engine, namespace = register(lambda: _istio("shop", create_namespace=False).namespace)
    assert namespace == "demo"
    namespaces = engine.of_type("kubernetes:core/v1:Namespace")
    assert sorted(r.inputs["metadata"]["name"] for r in namespaces) == [
        "istio-ingress",
        "istio-system",
    ]
    patch = engine.by_name("shop-namespacepatch-demo")
    assert patch.type == "kubernetes:core/v1:NamespacePatch"
    assert patch.inputs["metadata"] == {"name": "demo", "labels": {"istio-injection": "enabled"}}
    assert patch.urn in engine.by_name("shop-service1").dependencies

    engine, _ = register(
        lambda: (
            Mesh(
                "demo", MeshArgs(spec=DEMO_MESH, proxy_image="p:1", create_namespace=False)
            ).namespace
        )
    )
    kinds = {r.type for r in engine.registrations}
    namespaces = engine.of_type("kubernetes:core/v1:Namespace")
    # Only cert-manager's own namespace, from the chart install the mesh certificates need.
    assert [r.inputs["metadata"]["name"] for r in namespaces] == ["cert-manager"]
    assert "kubernetes:core/v1:NamespacePatch" not in kinds


def test_a_name_prefix_names_every_child() -> None:
    engine, _ = register(
        lambda: (
            Mesh(
                "demo", MeshArgs(spec=DEMO_MESH, proxy_image="p:1", name_prefix="team-a")
            ).namespace
        )
    )
    children = [r for r in engine.registrations if "sailplan:index:Mesh$" in r.urn]
    assert children and all(r.name.startswith("team-a-") for r in children)
    assert engine.by_name("team-a-service1-deployment-service1-v1").urn.endswith(
        "::team-a-service1-deployment-service1-v1"
    )


def test_a_proxy_image_from_another_resource_reaches_every_pod() -> None:
    def build() -> pulumi.Output[Any]:
        image = ProxyImage("proxy", ProxyImageArgs(repository="reg.example/proxy", tag="9"))
        return Mesh("demo", MeshArgs(spec=DEMO_MESH, proxy_image=image.ref)).proxy_image

    engine, ref = register(build)
    assert ref == f"reg.example/proxy:9@sha256:{'0' * 64}"
    pod = engine.by_name("demo-service1-deployment-service1-v1").inputs["spec"]["template"]["spec"]
    assert {container["image"] for container in pod["initContainers"]} == {ref}
    assert "sailplan.invalid" not in str([r.inputs for r in engine.registrations])


def test_the_istio_ingress_address_is_the_gateway_services() -> None:
    live = {
        GATEWAY_ID: {
            "spec": {"type": "LoadBalancer", "ports": [{"name": "http2", "port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}},
        }
    }
    without_node_port = sailplan.load_mesh_text(
        DEMO_MESH.read_text(encoding="utf-8").replace("  nodePort: 32000\n", "")
    )
    assert without_node_port.ingress is not None and without_node_port.ingress.node_port is None

    def build() -> pulumi.Output[Any]:
        args = MeshArgs(spec=without_node_port, data_plane="istio", name_prefix="shop")
        return Mesh("shop", args).ingress_address

    _, address = register(build, live=live)
    assert address == "lb.example:80"


def test_a_spec_file_is_validated_for_the_data_plane_asked(tmp_path: Path) -> None:
    # No dataPlane in the file (builtin, which proxies http only): with data_plane="istio" the tcp
    # service is istio's to deploy, not builtin's to refuse before the override is applied.
    spec = tmp_path / "db.yaml"
    spec.write_text(
        "apiVersion: sailplan/v1\nkind: Mesh\nname: db\nservices:\n"
        "  db:\n    port: 5432\n    protocol: tcp\n    versions: {v1: {image: postgres:16}}\n"
    )
    engine, _ = register(
        lambda: Mesh("db", MeshArgs(spec=spec, data_plane="istio", install_control_plane=False))
    )
    assert engine.by_name("db-db-destinationrule-db").type == (
        "kubernetes:networking.istio.io/v1:DestinationRule"
    )


def test_the_istio_gateway_service_exposes_the_ingress_port_and_node_port() -> None:
    """D8: the gateway chart's Service did not expose `ingress.port` / `ingress.nodePort`, so the
    Gateway listened on a port nothing reached (istioctl analyze IST0162)."""
    spec = sailplan.load_mesh_text(
        DEMO_MESH.read_text(encoding="utf-8").replace("  port: 80\n", "  port: 8080\n")
    )

    def build() -> pulumi.Output[Any]:
        return Mesh("shop", MeshArgs(spec=spec, data_plane="istio")).ingress_address

    engine, address = register(build)
    assert address == "<any node address>:32000"
    (gateway,) = [r for r in engine.of_type(CHART) if r.name.endswith("-gateway")]
    service = gateway.inputs["values"]["service"]
    assert service["type"] == "NodePort"
    assert {
        "name": "http2",
        "port": 8080,
        "protocol": "TCP",
        "targetPort": 80,
        "nodePort": 32000,
    } in (service["ports"])


def test_a_control_plane_whose_gateway_does_not_fit_the_ingress_is_refused() -> None:
    def build() -> None:
        plane = IstioControlPlane("istio", IstioControlPlaneArgs(gateway_port=8443))
        _istio("shop", control_plane=plane)

    with pytest.raises(ArgsError) as error:
        register(build)
    assert str(error.value) == (
        "MeshArgs.control_plane: its gateway Service exposes port 8443, but the mesh's ingress "
        "listens on port 80: Istio would bind nothing (IST0162); set gateway_port=80 in the "
        "IstioControlPlaneArgs"
    )


def test_the_grouping_helper_composes_the_parts_without_mesh() -> None:
    def build() -> pulumi.Output[Any]:
        groups = group_manifests(render_manifests(sailplan.load_mesh(DEMO_MESH), proxy_image="p:1"))
        for service, objects in sorted(groups.services.items()):
            MeshService(f"shop-{service}", objects)
        return IngressGateway("shop-ingress", groups.ingress).address

    engine, address = register(build)
    assert address == "<any node address>:32000"
    assert sorted(r.name for r in engine.of_type("sailplan:index:MeshService")) == [
        "shop-service1",
        "shop-service2",
    ]
    groups = group_manifests(render_manifests(sailplan.load_mesh(DEMO_MESH)))
    assert [m["kind"] for m in groups.mesh_wide] == [
        "Namespace",
        "ConfigMap",  # the outbound config every sidecar shares
        "Issuer",
        "Issuer",
        "Certificate",
    ]
    assert {m["kind"] for m in groups.ingress} == {
        "Certificate",
        "ConfigMap",
        "Deployment",
        "Service",
        "ServiceAccount",
    }


def test_the_program_refuses_a_wrong_stack_config_with_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def program() -> Any:
        pulumi.runtime.set_config("sailplan:meshFile", "stacks/demo.mesh.yaml")
        pulumi.runtime.set_config("sailplan:dataPlane", "Istio")
        with pytest.raises(SystemExit) as exit_:
            runpy.run_path(str(REPO / "__main__.py"))
        return exit_.value.code

    engine, code = register(program)
    assert code == 2
    assert capsys.readouterr().err == (
        "error: stack config: MeshArgs.data_plane: 'Istio' is not a data plane: use one of "
        "'builtin', 'istio', 'gateway-api' (did you mean 'istio'?)\n"
    )
    assert engine.registrations == [] or all(
        r.type == "pulumi:pulumi:Stack" for r in engine.registrations
    )


@pytest.mark.parametrize("stack", sorted((REPO / "stacks").glob("Pulumi.*.yaml")), ids=str)
def test_every_stack_config_deploys_its_mesh(stack: Path) -> None:
    config = yaml.safe_load(stack.read_text())["config"]

    def program() -> Any:
        for key, value in config.items():
            pulumi.runtime.set_config(key, str(value))
        runpy.run_path(str(REPO / "__main__.py"))
        return 1

    engine, _ = register(program)
    assert [r.name for r in engine.of_type("sailplan:index:Mesh")] == ["mesh"]
    plane = config.get("sailplan:dataPlane", "builtin")
    charts = engine.of_type(CHART)
    # builtin: cert-manager's chart, for the mesh certificates (`mtls` is permissive by default).
    assert len(charts) == (3 if plane == "istio" else 1)
    if "sailplan:istioVersion" in config:
        assert {c.inputs["version"] for c in charts} == {config["sailplan:istioVersion"]}
    builds = engine.of_type("docker-build:index:Image")
    assert len(builds) == (1 if "sailplan:proxyRepository" in config else 0)
