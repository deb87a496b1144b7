"""`Mesh`, `MeshService` and `IngressGateway` under Pulumi's mock engine."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from conftest import DEMO_MESH, REPO
from pulumi_support import fresh_engine, register

import sailplan
from sailplan.components import Mesh, MeshArgs, ProxyImageArgs
from sailplan.render.manifests import render_manifests


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
    custom = [r for r in engine.registrations if r.custom]
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
    istiod = engine.by_name("demo-istio-istiod").urn
    base = engine.by_name("demo-istio-base").urn
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
