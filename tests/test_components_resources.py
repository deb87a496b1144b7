"""The manifest -> Pulumi resource registry, and the program's handling of a bad mesh file."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pulumi
import pytest
from conftest import DEMO_MESH, REPO
from pulumi_support import fresh_engine, register

from sailplan.components.resources import create_resource, resource_name


def test_names_derive_from_kind_and_object_name() -> None:
    assert (
        resource_name("demo", {"kind": "Deployment", "metadata": {"name": "service1-v1"}})
        == "demo-deployment-service1-v1"
    )


def test_an_unknown_kind_names_the_fix() -> None:
    fresh_engine()
    manifest = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}}
    with pytest.raises(ValueError) as error:
        create_resource("demo", manifest, pulumi.ResourceOptions())
    assert str(error.value) == (
        "no Pulumi resource is registered for batch/v1 Job: add it to sailplan.components.resources._CORE_KINDS"
    )


def test_istio_kinds_become_custom_resources() -> None:
    manifest: dict[str, Any] = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "g", "namespace": "demo"},
        "spec": {"selector": {"istio": "ingressgateway"}, "servers": []},
    }
    engine, _ = register(lambda: create_resource("demo", manifest, pulumi.ResourceOptions()).urn)
    [gateway] = engine.registrations
    assert (gateway.type, gateway.name) == (
        "kubernetes:networking.istio.io/v1:Gateway",
        "demo-gateway-g",
    )
    assert gateway.inputs["spec"] == manifest["spec"]


def test_the_program_exits_2_on_an_invalid_mesh(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = REPO / "build" / "invalid.mesh.yaml"
    bad.parent.mkdir(exist_ok=True)
    bad.write_text(DEMO_MESH.read_text().replace("{v1: 80, v2: 20}", "{v1: 80}"))
    engine = fresh_engine()
    pulumi.runtime.set_config("sailplan:meshFile", "build/invalid.mesh.yaml")
    try:
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(REPO / "__main__.py"))
    finally:
        pulumi.runtime.set_config("sailplan:meshFile", "stacks/demo.mesh.yaml")
        bad.unlink()
    assert exit_info.value.code == 2
    assert (
        "services.service1.routes[0].split: weights add up to 80, they must add up to 100"
        in capsys.readouterr().err
    )
    assert engine.registrations == []


def test_core_kinds_register_the_manifest_under_the_providers_type_and_version() -> None:
    # Registered without pulumi_kubernetes' generated classes (bench/FINDINGS.md): the engine must
    # still see the provider's type token, the plugin version those classes pin, the manifest as
    # inputs, and outputs readable under the wire names.
    from pulumi.runtime.mocks import MockMonitor
    from pulumi_kubernetes import _utilities

    requests: list[Any] = []

    class Monitor(MockMonitor):
        def RegisterResource(self, request: Any) -> Any:
            requests.append(request)
            return super().RegisterResource(request)

    engine = fresh_engine()
    pulumi.runtime.set_mocks(engine, project="sailplan", stack="test", monitor=Monitor(engine))
    manifest: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web-v1", "namespace": "demo"},
        "spec": {"replicas": 2, "template": {"spec": {"automountServiceAccountToken": False}}},
    }
    replicas: list[Any] = []

    @pulumi.runtime.test
    def run() -> Any:
        resource = create_resource("demo", manifest, pulumi.ResourceOptions())
        return resource.spec.apply(lambda spec: replicas.append(spec["replicas"]))  # type: ignore[attr-defined]

    run()
    [request] = requests
    assert (request.type, request.name, request.version) == (
        "kubernetes:apps/v1:Deployment",
        "demo-deployment-web-v1",
        _utilities.get_version(),  # type: ignore[no-untyped-call]
    )
    assert list(request.aliases) == []
    [registration] = engine.registrations
    assert registration.inputs == manifest
    assert replicas == [2]
