"""The Kubernetes objects both data planes share."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import DEMO_MESH
from schema_support import validate_manifest

import sailplan
from sailplan.render.kubernetes import render_kubernetes
from sailplan.render.manifests import render_manifests


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render_kubernetes(sailplan.load_mesh(DEMO_MESH), "istio")


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def test_objects_come_in_a_stable_order(objects: list[dict[str, Any]]) -> None:
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("Namespace", "demo"),
        ("ServiceAccount", "service1"),
        ("Service", "service1"),
        ("Deployment", "service1-v1"),
        ("Deployment", "service1-v2"),
        ("ServiceAccount", "service2"),
        ("Service", "service2"),
        ("Deployment", "service2-v1"),
    ]


def test_every_object_validates_strictly(objects: list[dict[str, Any]]) -> None:
    for manifest in objects:
        validate_manifest(manifest)


def test_istio_namespace_enables_injection(objects: list[dict[str, Any]]) -> None:
    assert _find(objects, "Namespace", "demo")["metadata"]["labels"]["istio-injection"] == "enabled"


def test_service_port_is_named_for_its_protocol(objects: list[dict[str, Any]]) -> None:
    port = _find(objects, "Service", "service1")["spec"]["ports"][0]
    assert port == {
        "name": "http-8088",
        "port": 8088,
        "targetPort": "http-8088",
        "protocol": "TCP",
        "appProtocol": "http",
    }
    assert _find(objects, "Service", "service1")["spec"]["selector"] == {"app": "service1"}


def test_deployment_selector_is_app_and_version(objects: list[dict[str, Any]]) -> None:
    spec = _find(objects, "Deployment", "service1-v2")["spec"]
    assert spec["selector"] == {"matchLabels": {"app": "service1", "version": "v2"}}
    labels = spec["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "service1"
    assert labels["app.kubernetes.io/version"] == "v2"
    assert labels["app.kubernetes.io/part-of"] == "demo"
    assert labels["app.kubernetes.io/managed-by"] == "sailplan"
    assert labels["sidecar.istio.io/inject"] == "true"


def test_app_container_has_secure_defaults(objects: list[dict[str, Any]]) -> None:
    pod = _find(objects, "Deployment", "service1-v1")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
    }
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert container["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }


def test_app_gets_its_port_and_env_sorted(objects: list[dict[str, Any]]) -> None:
    container = _find(objects, "Deployment", "service1-v2")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["env"] == [
        {"name": "PORT", "value": "8088"},
        {"name": "SERVICE_VERSION", "value": "v2"},
    ]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-8088"}


def test_builtin_pods_carry_no_istio_label() -> None:
    objects = render_kubernetes(sailplan.load_mesh(DEMO_MESH), "builtin")
    pod_labels = _find(objects, "Deployment", "service1-v1")["spec"]["template"]["metadata"][
        "labels"
    ]
    assert "sidecar.istio.io/inject" not in pod_labels
    assert "istio-injection" not in _find(objects, "Namespace", "demo")["metadata"]["labels"]


SECRET_ENV = """        env:
          SERVICE_VERSION: v1
          DB_PASSWORD: {secretKeyRef: {name: db, key: password}}
          MODE: {configMapKeyRef: {name: settings, key: mode}}
        envFrom:
          - secretRef: {name: db}
          - {configMapRef: {name: settings}, prefix: APP_}"""


@pytest.mark.parametrize("data_plane", ["builtin", "istio"])
def test_secret_and_config_map_references_render_value_from_and_env_from(
    data_plane: str,
) -> None:
    text = DEMO_MESH.read_text().replace("        env: {SERVICE_VERSION: v1}", SECRET_ENV, 1)
    manifests = render_manifests(sailplan.load_mesh_text(text), data_plane)  # type: ignore[arg-type]
    deployment = _find(manifests, "Deployment", "service1-v1")
    app = next(
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "service1"
    )
    assert app["env"] == [
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "PORT", "value": "8088"},
        {"name": "SERVICE_VERSION", "value": "v1"},
    ]
    assert app["envFrom"] == [
        {"secretRef": {"name": "db"}},
        {"configMapRef": {"name": "settings"}, "prefix": "APP_"},
    ]
    validate_manifest(deployment)


def test_names_at_the_limits_render_objects_kubernetes_accepts() -> None:
    # The longest names check accepts: a 63-character workload (its headless Service is a DNS
    # label) and a 55-character mesh (its gateway Service `<mesh>-gateway` is 63). The sidecar's
    # ConfigMap `<workload>-proxy` is longer, which Kubernetes allows: ConfigMap names are DNS
    # subdomains of up to 253 characters.
    version = "v" * (63 - len("service1-"))
    text = (
        DEMO_MESH.read_text()
        .replace("name: demo", f"name: {'m' * 55}")
        .replace("      v2:", f"      {version}:")
        .replace("{v1: 80, v2: 20}", f"{{v1: 80, {version}: 20}}")
    )
    manifests = render_manifests(sailplan.load_mesh_text(text), "builtin")
    names = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    assert ("Service", f"service1-{version}") in names
    assert ("ConfigMap", f"service1-{version}-proxy") in names
    assert ("Service", f"{'m' * 55}-gateway") in names
    for manifest in manifests:
        validate_manifest(manifest)
        # What the schemas above do not check: Services and Namespaces are named by DNS labels.
        if manifest["kind"] in ("Service", "Namespace"):
            assert len(manifest["metadata"]["name"]) <= 63, manifest["metadata"]["name"]
