"""`registration="grouped"`: one `yaml.v2.ConfigGroup` per service in place of its `MeshService`,
under Pulumi's mock engine.

Under mocks a remote component reaches the engine once, with its inputs, and its children (which
the Kubernetes provider registers in a real deployment) are never registered: so these tests check
what the provider would expand, the ConfigGroup's `yaml` input (one JSON object per line), and
what it waits for.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
from conftest import DEMO_MESH, REPO
from pulumi_support import Engine, register

import sailplan
from sailplan.components import (
    ArgsError,
    Mesh,
    MeshArgs,
    ProxyImageArgs,
    group_manifests,
    service_config_group,
)
from sailplan.components.mesh_service import (
    DEPENDS_ON_ANNOTATION,
    grouped_objects,
    grouped_text,
)
from sailplan.render.manifests import render_manifests

CONFIG_GROUP = "kubernetes:yaml/v2:ConfigGroup"
LINKERD_SHOP = REPO / "examples" / "pulumi-linkerd" / "shop.mesh.yaml"


def _outputs(mesh: Mesh) -> pulumi.Output[list[Any]]:
    return pulumi.Output.all(mesh.namespace, mesh.ingress_address, mesh.proxy_image)


def _groups(engine: Engine) -> dict[str, Any]:
    return {r.name: r for r in engine.of_type(CONFIG_GROUP)}


def _objects(group: Any) -> list[dict[str, Any]]:
    text = group.inputs["yaml"]
    assert set(group.inputs) == {"yaml"}  # no objs, files, prefix or skipAwait
    return [json.loads(line) for line in text.split("\n")]


def _without_depends_on(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    stripped = copy.deepcopy(objects)
    for obj in stripped:
        annotations = obj["metadata"].get("annotations", {})
        annotations.pop(DEPENDS_ON_ANNOTATION, None)
        if "annotations" in obj["metadata"] and not annotations:
            del obj["metadata"]["annotations"]
    return stripped


def test_each_service_is_one_config_group_carrying_its_rendered_objects() -> None:
    meshes: list[Mesh] = []

    def build() -> Any:
        meshes.append(
            Mesh("demo", MeshArgs(spec=DEMO_MESH, proxy_image="p:1", registration="grouped"))
        )
        return _outputs(meshes[0])

    engine, outputs = register(build)
    assert meshes[0].services == {}
    assert sorted(meshes[0].service_groups) == ["service1", "service2"]
    # The outputs do not depend on how the services are registered.
    assert outputs == ["demo", "<any node address>:32000", "p:1"]
    groups = group_manifests(render_manifests(sailplan.load_mesh(DEMO_MESH), proxy_image="p:1"))
    config_groups = _groups(engine)
    assert sorted(config_groups) == ["demo-service1", "demo-service2"]
    for service, objects in groups.services.items():
        group = config_groups[f"demo-{service}"]
        assert not group.custom
        assert group.parent == engine.by_name("demo").urn
        assert group.urn.endswith(f"sailplan:index:Mesh${CONFIG_GROUP}::demo-{service}")
        # Exactly the rendered objects, in the renderers' order, plus the ordering annotation.
        assert _without_depends_on(_objects(group)) == objects
    assert engine.of_type("sailplan:index:MeshService") == []
    # No service object is registered by the program itself; the ingress and mesh-wide ones are.
    custom = {r.name for r in engine.registrations if r.custom and "cert-manager" not in r.name}
    assert not any(name.startswith(("demo-service1-", "demo-service2-")) for name in custom)
    expected = {f"demo-{m['kind'].lower()}-{m['metadata']['name']}" for m in groups.mesh_wide} | {
        f"demo-ingress-{m['kind'].lower()}-{m['metadata']['name']}" for m in groups.ingress
    }
    assert custom == expected


def test_per_object_stays_the_default() -> None:
    meshes: list[Mesh] = []

    def build() -> Any:
        meshes.append(Mesh("demo", MeshArgs(spec=DEMO_MESH, proxy_image="p:1")))
        return meshes[0].namespace

    engine, _ = register(build)
    assert sorted(meshes[0].services) == ["service1", "service2"]
    assert meshes[0].service_groups == {}
    assert engine.of_type(CONFIG_GROUP) == []


def test_a_sidecar_deployment_waits_for_its_certificate_inside_the_group() -> None:
    engine, _ = register(
        lambda: Mesh("demo", MeshArgs(spec=DEMO_MESH, proxy_image="p:1", registration="grouped"))
    )
    objs = _objects(_groups(engine)["demo-service1"])
    annotated = {
        (o["kind"], o["metadata"]["name"]): o["metadata"]
        .get("annotations", {})
        .get(DEPENDS_ON_ANNOTATION)
        for o in objs
    }
    assert annotated[("Deployment", "service1-v1")] == (
        "cert-manager.io/namespaces/demo/Certificate/service1"
    )
    assert annotated[("Deployment", "service1-v2")] == (
        "cert-manager.io/namespaces/demo/Certificate/service1"
    )
    # Nothing else is ordered by annotation: the Certificate keeps only its own wait condition.
    assert {key for key, value in annotated.items() if value} == {
        ("Deployment", "service1-v1"),
        ("Deployment", "service1-v2"),
    }
    [certificate] = [o for o in objs if o["kind"] == "Certificate"]
    assert certificate["metadata"]["annotations"] == {"pulumi.com/waitFor": "condition=Ready"}


def test_a_group_waits_for_the_namespace_and_the_mesh_ca() -> None:
    engine, _ = register(
        lambda: Mesh("demo", MeshArgs(spec=DEMO_MESH, proxy_image="p:1", registration="grouped"))
    )
    namespace = engine.by_name("demo-namespace-demo").urn
    mesh_ca = engine.by_name("demo-certificate-demo-mesh-ca").urn
    for name, group in _groups(engine).items():
        assert {namespace, mesh_ca} <= set(group.dependencies), name


def test_istio_groups_wait_for_the_control_plane_and_carry_no_annotation() -> None:
    engine, _ = register(
        lambda: (
            Mesh(
                "demo", MeshArgs(spec=DEMO_MESH, data_plane="istio", registration="grouped")
            ).namespace
        )
    )
    istiod = engine.by_name("sailplan-istio-istiod").urn
    base = engine.by_name("sailplan-istio-base").urn
    spec = sailplan.load_mesh(DEMO_MESH).with_data_plane("istio")
    groups = group_manifests(render_manifests(spec))
    for service, objects in groups.services.items():
        group = _groups(engine)[f"demo-{service}"]
        assert {istiod, base} <= set(group.dependencies)
        # No Certificates on the istio plane: the objects go to the provider unchanged.
        assert _objects(group) == objects


def test_gateway_api_services_are_grouped_too() -> None:
    engine, _ = register(
        lambda: Mesh("shop", MeshArgs(spec=LINKERD_SHOP, registration="grouped")).namespace
    )
    spec = sailplan.load_mesh(LINKERD_SHOP)
    assert spec.data_plane == "gateway-api"
    groups = group_manifests(render_manifests(spec))
    assert {name: _objects(group) for name, group in _groups(engine).items()} == {
        f"shop-{service}": objects for service, objects in groups.services.items()
    }
    assert any(
        o["apiVersion"].startswith("gateway.networking.k8s.io/")
        for objects in groups.services.values()
        for o in objects
    )


def test_the_group_uses_the_meshs_kubernetes_provider() -> None:
    def build() -> Any:
        provider = k8s.Provider("cluster-a")
        return Mesh(
            "demo",
            MeshArgs(spec=DEMO_MESH, data_plane="istio", registration="grouped"),
            pulumi.ResourceOptions(provider=provider),
        ).namespace

    engine, _ = register(build)
    for name, group in _groups(engine).items():
        assert group.provider.split("::")[-2:] == ["cluster-a", "cluster-a-id"], name


def test_a_service_can_be_grouped_without_mesh() -> None:
    groups = group_manifests(render_manifests(sailplan.load_mesh(DEMO_MESH), proxy_image="p:1"))
    engine, _ = register(lambda: service_config_group("shop-service2", groups.services["service2"]))
    [group] = engine.registrations
    assert (group.type, group.name) == (CONFIG_GROUP, "shop-service2")
    assert _without_depends_on(_objects(group)) == groups.services["service2"]


def test_the_yaml_input_is_a_stream_of_json_objects() -> None:
    """What Kubernetes' YAML-or-JSON decoder in the provider reads: a leading "{" selects its JSON
    mode, which decodes one value after another as Python's raw_decode does."""
    groups = group_manifests(render_manifests(sailplan.load_mesh(DEMO_MESH), proxy_image="p:1"))
    text = grouped_text(groups.services["service1"])
    assert text.startswith("{")
    decoder, position, decoded = json.JSONDecoder(), 0, []
    while position < len(text):
        value, position = decoder.raw_decode(text, position)
        decoded.append(value)
        position += len(text[position:]) - len(text[position:].lstrip())
    assert decoded == grouped_objects(groups.services["service1"])
    assert text.isascii()  # non-ASCII would be escaped, never passed raw


def test_a_group_waits_for_what_the_mesh_was_told_to_wait_for() -> None:
    def build() -> Any:
        namespace = k8s.core.v1.Namespace("made-elsewhere", metadata={"name": "demo"})
        return Mesh(
            "demo",
            MeshArgs(
                spec=DEMO_MESH,
                data_plane="istio",
                registration="grouped",
                create_namespace=False,
                install_control_plane=False,
            ),
            pulumi.ResourceOptions(depends_on=[namespace]),
        ).namespace

    engine, _ = register(build)
    elsewhere = engine.by_name("made-elsewhere").urn
    for name, group in _groups(engine).items():
        assert elsewhere in group.dependencies, name


def test_grouping_leaves_the_rendered_manifests_alone() -> None:
    groups = group_manifests(render_manifests(sailplan.load_mesh(DEMO_MESH), proxy_image="p:1"))
    objects = groups.services["service1"]
    before = copy.deepcopy(objects)
    grouped = grouped_objects(objects)
    assert objects == before
    assert grouped != objects  # the Deployments are annotated copies


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"registration": "Grouped"},
            "MeshArgs.registration: 'Grouped' is not a way of registering: use one of "
            "'per-object', 'grouped' (did you mean 'grouped'?)",
        ),
        (
            {
                "registration": "grouped",
                "build_proxy_image": ProxyImageArgs(repository="reg.example/proxy"),
            },
            "MeshArgs.registration: 'grouped' needs every object known at preview, but the proxy "
            "image is built or given as an Output, known only during `pulumi up`, so the preview "
            "would show no object of any service: give proxy_image= as a string, or use "
            "'per-object'",
        ),
    ],
)
def test_wrong_registration_arguments_are_refused(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ArgsError) as raised:
        MeshArgs(spec=DEMO_MESH, **arguments)
    assert str(raised.value) == message


def test_grouped_with_an_output_image_is_refused() -> None:
    def build() -> None:
        MeshArgs(
            spec=DEMO_MESH,
            registration="grouped",
            proxy_image=pulumi.Output.from_input("reg.example/proxy@sha256:" + "0" * 64),
        )

    with pytest.raises(ArgsError, match=r"^MeshArgs\.registration: 'grouped' needs every"):
        register(build)


def test_the_registration_bench_measures_both_ways() -> None:
    """`python -m bench.pulumi_cost` registers the generated mesh each way, in a fresh interpreter
    (its mocks and its timing of the render are process-global)."""
    counts = {}
    for registration in ("per-object", "grouped"):
        done = subprocess.run(
            [sys.executable, "-m", "bench.pulumi_cost", "--registration", registration, "5"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        header, row = done.stdout.splitlines()
        assert header.split()[:6] == ["services", "resources", "wall", "s", "cpu", "s"]
        counts[registration] = int(row.split()[1])
    # 5 services of 7 objects: a MeshService and a resource per object each, or one group each;
    # plus the Mesh, its namespace and its PeerAuthentication.
    assert counts == {"per-object": 5 * (1 + 7) + 3, "grouped": 5 + 3}
