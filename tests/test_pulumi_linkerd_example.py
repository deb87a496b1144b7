"""examples/pulumi-linkerd: a mesh deployed on Linkerd through the gateway-api data plane, run
under Pulumi's mock engine; and the `Mesh` component's arguments for that plane."""

from __future__ import annotations

import runpy
from typing import Any

import pulumi
import pytest
from conftest import DEMO_MESH, REPO
from pulumi_support import Engine, register

from sailplan.components import ArgsError, Mesh, MeshArgs

EXAMPLE = REPO / "examples" / "pulumi-linkerd"
SHOP = EXAMPLE / "shop.mesh.yaml"


def _run_example(config: dict[str, str] | None = None) -> Engine:
    def program() -> Any:
        for key, value in (config or {}).items():
            pulumi.runtime.set_config(key, value)
        runpy.run_path(str(EXAMPLE / "__main__.py"))
        return 1

    engine, _ = register(program)
    return engine


def test_the_example_deploys_the_mesh_into_a_linkerd_injected_namespace() -> None:
    engine = _run_example()
    namespace = engine.by_name("shop-namespace")
    assert namespace.inputs["metadata"]["annotations"] == {"linkerd.io/inject": "enabled"}
    # The namespace is the example's own: the Mesh creates none, and waits for it.
    assert [r.name for r in engine.of_type("kubernetes:core/v1:Namespace")] == ["shop-namespace"]
    for component in ("shop", "shop-reviews", "shop-web", "shop-ingress"):
        assert namespace.urn in engine.by_name(component).dependencies, component


def test_the_example_renders_gateway_api_objects_and_installs_no_control_plane() -> None:
    engine = _run_example()
    types = {r.type for r in engine.registrations}
    assert "kubernetes:helm.sh/v4:Chart" not in types  # no Istio, no cert-manager
    assert not [t for t in types if "istio.io" in t or "cert-manager" in t]
    route = engine.by_name("shop-reviews-httproute-reviews")
    assert route.type == "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
    assert route.inputs["spec"]["parentRefs"] == [
        {"group": "", "kind": "Service", "name": "reviews"}
    ]
    assert [b["name"] for b in route.inputs["spec"]["rules"][1]["backendRefs"]] == [
        "reviews-v1",
        "reviews-v2",
    ]
    assert engine.by_name("shop-reviews-service-reviews-v2").inputs["spec"]["selector"] == {
        "app": "reviews",
        "version": "v2",
    }
    gateway = engine.by_name("shop-ingress-gateway-shop-gateway")
    assert gateway.type == "kubernetes:gateway.networking.k8s.io/v1:Gateway"
    assert gateway.inputs["spec"]["gatewayClassName"] == "eg"
    # Linkerd injects its proxy: sailplan adds no sidecar and no init container.
    pod = engine.by_name("shop-web-deployment-web-v1").inputs["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["web"]
    assert "initContainers" not in pod


def test_the_gateway_class_comes_from_the_stack_config() -> None:
    engine = _run_example({"sailplan:gatewayClass": "istio"})
    gateway = engine.by_name("shop-ingress-gateway-shop-gateway")
    assert gateway.inputs["spec"]["gatewayClassName"] == "istio"


@pytest.mark.parametrize(
    ("args", "path", "message"),
    [
        (
            {"spec": DEMO_MESH, "data_plane": "istio", "gateway_class": "eg"},
            "MeshArgs.gateway_class",
            "only the gateway-api data plane renders a Gateway of a class, and this mesh uses the "
            "istio data plane: drop it, or set data_plane='gateway-api'",
        ),
        (
            {"spec": SHOP, "proxy_image": "p:1"},
            "MeshArgs.proxy_image",
            "the gateway-api data plane deploys Gateway API objects only: the mesh implementation "
            "(Linkerd, Istio, ...) brings its own control plane, proxy and certificates; drop it",
        ),
        (
            {"spec": SHOP, "install_control_plane": False},
            "MeshArgs.install_control_plane",
            "the gateway-api data plane deploys Gateway API objects only: the mesh implementation "
            "(Linkerd, Istio, ...) brings its own control plane, proxy and certificates; drop it",
        ),
    ],
    ids=["class-on-istio", "proxy-image", "control-plane"],
)
def test_arguments_of_another_plane_are_refused(
    args: dict[str, Any], path: str, message: str
) -> None:
    def build() -> Any:
        with pytest.raises(ArgsError) as error:
            Mesh("demo", MeshArgs(**args))
        assert (error.value.path, error.value.sentence) == (path, message)
        return 1

    engine, _ = register(build)
    assert engine.registrations == []


def test_a_gateway_class_must_be_a_kubernetes_name() -> None:
    with pytest.raises(ArgsError) as error:
        MeshArgs(spec=SHOP, gateway_class="Envoy Gateway")
    assert str(error.value) == (
        "MeshArgs.gateway_class: 'Envoy Gateway' is not a GatewayClass name: use lowercase "
        "letters, digits, '-' and '.', such as istio or eg"
    )


def test_the_stack_program_deploys_a_gateway_api_mesh_with_its_gateway_class() -> None:
    def program() -> Any:
        pulumi.runtime.set_config("sailplan:meshFile", "examples/pulumi-linkerd/shop.mesh.yaml")
        pulumi.runtime.set_config("sailplan:gatewayClass", "eg")
        runpy.run_path(str(REPO / "__main__.py"))
        return 1

    engine, _ = register(program)
    gateway = engine.by_name("mesh-ingress-gateway-shop-gateway")
    assert gateway.inputs["spec"]["gatewayClassName"] == "eg"
    assert engine.by_name("mesh-web-httproute-web").type.endswith(
        "gateway.networking.k8s.io/v1:HTTPRoute"
    )


def test_the_ingress_address_is_left_to_the_gateway_s_status() -> None:
    engine, address = register(
        lambda: Mesh("shop", MeshArgs(spec=SHOP, gateway_class="eg")).ingress_address
    )
    assert address is None
    assert (
        engine.by_name("shop-ingress-gateway-shop-gateway").inputs["spec"]["gatewayClassName"]
        == "eg"
    )
