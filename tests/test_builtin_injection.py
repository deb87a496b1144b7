"""The builtin data plane in Kubernetes: injected pods, proxy ConfigMaps, headless Services, gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_MESH, EXAMPLE_MESHES, GOLDEN
from golden_support import check_golden
from proxy_support import check_config
from schema_support import validate_manifest

import sailplan
from sailplan.render.manifests import render_manifests

SCENARIOS = [DEMO_MESH, *EXAMPLE_MESHES]


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def _config_dir(objects: list[dict[str, Any]], workload: str) -> dict[str, str]:
    """The files of a sidecar's config directory: the ConfigMaps its pod projects there."""
    pod = _find(objects, "Deployment", workload)["spec"]["template"]["spec"]
    volume = {v["name"]: v for v in pod["volumes"]}["sailplan-config"]
    files: dict[str, str] = {}
    for source in volume["projected"]["sources"]:
        data = _find(objects, "ConfigMap", source["configMap"]["name"])["data"]
        assert not set(data) & set(files), "two ConfigMaps project the same file"
        files.update(data)
    return files


@pytest.fixture(scope="module")
def demo() -> list[dict[str, Any]]:
    return render_manifests(sailplan.load_mesh(DEMO_MESH))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_golden(scenario: Path, update_golden: bool) -> None:
    manifests = render_manifests(sailplan.load_mesh(scenario), "builtin")
    check_golden(GOLDEN / "builtin" / f"{scenario.stem}.yaml", manifests, update_golden)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_every_object_validates_strictly(scenario: Path) -> None:
    for manifest in render_manifests(sailplan.load_mesh(scenario), "builtin"):
        validate_manifest(manifest)


@pytest.mark.haproxy
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_every_proxy_config_passes_haproxy_check(scenario: Path) -> None:
    config_maps = [
        m
        for m in render_manifests(sailplan.load_mesh(scenario), "builtin")
        if m["kind"] == "ConfigMap"
    ]
    assert config_maps
    objects = render_manifests(sailplan.load_mesh(scenario), "builtin")
    for config_map in config_maps:
        name = config_map["metadata"]["name"]
        if name.endswith("-gateway-proxy"):
            check_config(config_map["data"], name)
        elif name.endswith("-proxy"):
            check_config(_config_dir(objects, name.removesuffix("-proxy")), name)


def test_pod_gets_init_container_and_native_sidecar(demo: list[dict[str, Any]]) -> None:
    pod = _find(demo, "Deployment", "service1-v1")["spec"]["template"]["spec"]
    init, sidecar = pod["initContainers"]
    assert init["name"] == "sailplan-init"
    assert init["args"] == ["init"]
    assert init["securityContext"]["capabilities"] == {
        "add": ["NET_ADMIN", "NET_RAW"],
        "drop": ["ALL"],
    }
    assert init["securityContext"]["allowPrivilegeEscalation"] is False
    assert sidecar["name"] == "sailplan-proxy"
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["securityContext"]["runAsUser"] == 1337
    assert sidecar["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert [p["containerPort"] for p in sidecar["ports"]] == [15001, 15006, 15007, 15020, 15021]
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/healthz/ready", "port": 15021}
    assert {v["name"]: v for v in pod["volumes"]}["sailplan-config"] == {
        "name": "sailplan-config",
        "projected": {
            "sources": [
                {"configMap": {"name": "service1-v1-proxy"}},
                {"configMap": {"name": "demo-outbound"}},
            ]
        },
    }
    mounts = {m["name"]: m for m in sidecar["volumeMounts"]}
    assert mounts["sailplan-config"] == {
        "name": "sailplan-config",
        "mountPath": "/etc/sailplan",
        "readOnly": True,
    }
    assert "subPath" not in mounts["sailplan-config"]
    assert pod["containers"][0]["name"] == "service1"


def test_config_map_holds_the_compiled_proxy_config(demo: list[dict[str, Any]]) -> None:
    own = _find(demo, "ConfigMap", "service2-v1-proxy")["data"]
    assert sorted(own) == ["00-global.cfg", "10-inbound.cfg", "503.http", "504.http"]
    assert "bind 0.0.0.0:15006" in own["10-inbound.cfg"]
    assert "server app 127.0.0.1:8880" in own["10-inbound.cfg"]
    shared = _find(demo, "ConfigMap", "demo-outbound")["data"]
    # mesh.lua: the inbound listener reads the caller's SPIFFE ID there (mTLS is on by default).
    assert sorted(shared) == ["20-outbound.cfg", "hosts.map", "mesh.lua"]
    assert "service1.demo.svc.cluster.local service1\n" in shared["hosts.map"]
    cfg = shared["20-outbound.cfg"]
    # Sidecars dial each other's mTLS port (15007), which takes TLS without detecting it.
    assert (
        "server-template v1- 10 service1-v1.demo.svc.cluster.local:15007 resolvers kubedns" in cfg
    )
    assert "bind 127.0.0.1:15001" in cfg
    check_config(_config_dir(demo, "service2-v1"), "service2-v1")


def test_headless_service_per_version(demo: list[dict[str, Any]]) -> None:
    spec = _find(demo, "Service", "service1-v2")["spec"]
    assert spec["clusterIP"] == "None"
    assert spec["selector"] == {"app": "service1", "version": "v2"}


def test_gateway_is_a_node_port_service_when_asked(demo: list[dict[str, Any]]) -> None:
    service = _find(demo, "Service", "demo-gateway")
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0]["nodePort"] == 32000
    assert service["spec"]["ports"][0]["port"] == 80
    assert service["metadata"]["labels"]["app.kubernetes.io/component"] == "ingress-gateway"
    gateway = _find(demo, "Deployment", "demo-gateway")["spec"]["template"]["spec"]["containers"][0]
    assert gateway["args"] == ["gateway"]
    assert gateway["securityContext"]["runAsUser"] == 1337
    cfg = _find(demo, "ConfigMap", "demo-gateway-proxy")["data"]["haproxy.cfg"]
    assert "bind 0.0.0.0:8080" in cfg


def test_gateway_without_node_port_is_a_load_balancer() -> None:
    text = DEMO_MESH.read_text().replace("  nodePort: 32000\n", "")
    objects = render_manifests(sailplan.load_mesh_text(text))
    assert _find(objects, "Service", "demo-gateway")["spec"]["type"] == "LoadBalancer"


def test_a_route_change_touches_only_config_maps(demo: list[dict[str, Any]]) -> None:
    text = DEMO_MESH.read_text().replace("{v1: 80, v2: 20}", "{v1: 50, v2: 50}")
    changed = render_manifests(sailplan.load_mesh_text(text))
    assert [(o["kind"], o["metadata"]["name"]) for o in changed] == [
        (o["kind"], o["metadata"]["name"]) for o in demo
    ]
    differing = {o["kind"] for o, p in zip(demo, changed, strict=True) if o != p}
    assert differing == {"ConfigMap"}


def test_render_is_deterministic(demo: list[dict[str, Any]]) -> None:
    assert render_manifests(sailplan.load_mesh(DEMO_MESH)) == demo


def test_a_proxy_config_over_the_config_map_limit_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sailplan.render import builtin

    monkeypatch.setattr(builtin, "CONFIG_MAP_LIMIT_BYTES", 1024)
    with pytest.raises(sailplan.SpecError) as error:
        render_manifests(sailplan.load_mesh(DEMO_MESH))
    [problem] = error.value.problems
    assert problem.path == "services"
    assert problem.message == (
        "the builtin proxy config of demo-outbound would be 0.0 MiB, over Kubernetes' 1 MiB "
        "ConfigMap limit: one service's routes alone fill it, so split the service or use the "
        "istio data plane"
    )


def test_server_slots_follow_replicas() -> None:
    """Every pod gets traffic: `replicas: 25` plus a rolling update's surge (25%, rounded up)
    needs 32 slots; a small version keeps the 10-slot floor."""
    text = DEMO_MESH.read_text()
    mesh = sailplan.load_mesh_text(text, str(DEMO_MESH))
    service1 = mesh.services["service1"]
    v1 = service1.versions["v1"].model_copy(update={"replicas": 25})
    bigger = mesh.model_copy(
        update={
            "services": {
                **mesh.services,
                "service1": service1.model_copy(
                    update={"versions": {**service1.versions, "v1": v1}}
                ),
            }
        }
    )
    manifests = render_manifests(bigger)
    cfg = _find(manifests, "ConfigMap", "demo-outbound")["data"]["20-outbound.cfg"]
    assert "server-template v1- 32 service1-v1.demo.svc.cluster.local:15007 " in cfg
    assert "server-template v2- 10 service1-v2.demo.svc.cluster.local:15007 " in cfg
    check_config(_config_dir(manifests, "service2-v1"), "25 replicas")
