"""The sandbox's plan: ports, instances, endpoints and configs, without starting anything."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from conftest import DEMO_MESH

import sailplan
from sailplan.model.service import Readiness
from sailplan.sandbox.plan import check_runnable, compile_configs, make_plan, sandbox_notes


def test_every_replica_gets_an_app_and_a_sidecar() -> None:
    text = DEMO_MESH.read_text().replace(
        "        image: sailplan/demo-users:0.1.0\n        env: {SERVICE_VERSION: v2}",
        "        image: sailplan/demo-users:0.1.0\n        replicas: 2\n        env: {SERVICE_VERSION: v2}",
    )
    mesh = sailplan.load_mesh_text(text)
    ports = itertools.count(20000)
    plan = make_plan(mesh, lambda: next(ports), ingress_port=8080)
    assert [i.name for i in plan.instances] == [
        "service1-v1-0",
        "service1-v2-0",
        "service1-v2-1",
        "service2-v1-0",
    ]
    assert plan.gateway_port == 8080
    endpoints = plan.endpoints().addresses
    assert [port for _, port in endpoints["service1"]["v2"]] == [
        i.sidecar.inbound for i in plan.instances[1:3]
    ]
    used = [
        p
        for i in plan.instances
        for p in (
            i.app_port,
            i.sidecar.outbound,
            i.sidecar.inbound,
            i.sidecar.admin,
            i.sidecar.health,
        )
    ]
    assert len(used) == len(set(used))


def test_configs_point_each_sidecar_at_its_own_app(tmp_path: Path) -> None:
    mesh = sailplan.load_mesh(DEMO_MESH)
    ports = itertools.count(20000)
    plan = make_plan(mesh, lambda: next(ports))
    configs = {
        proxy.name: (proxy.config_dir, proxy.config)
        for proxy in compile_configs(mesh, plan, tmp_path)
    }
    assert sorted(configs) == [
        "gateway",
        "service1-v1-0-proxy",
        "service1-v2-0-proxy",
        "service2-v1-0-proxy",
    ]
    instance = plan.instances[0]
    cfg = configs["service1-v1-0-proxy"][1].haproxy_cfg
    assert f"server app 127.0.0.1:{instance.app_port}" in cfg
    assert f"bind 127.0.0.1:{instance.sidecar.outbound}" in cfg
    assert f"stats socket {tmp_path}/run/0/admin.sock" in cfg


def test_versions_need_a_local_command() -> None:
    mesh = sailplan.load_mesh_text(
        DEMO_MESH.read_text().replace(
            "        local: {command: [python, ../examples/apps/greeter/app.py]}\n", ""
        )
    )
    with pytest.raises(sailplan.SpecError) as error:
        check_runnable(mesh)
    assert [p.path for p in error.value.problems] == ["services.service2.versions.v1.local"]


def _demo(**changes: object) -> sailplan.Mesh:
    data = sailplan.load_mesh(DEMO_MESH).to_dict()
    data.update(changes)
    return sailplan.Mesh.parse(data)


def _problems(mesh: sailplan.Mesh, base: Path | None = None) -> list[str]:
    with pytest.raises(sailplan.SpecError) as error:
        check_runnable(mesh, base)
    return [str(problem) for problem in error.value.problems]


def _slipped_by(mesh: sailplan.Mesh, service: str, version: str, **update: object) -> sailplan.Mesh:
    """A mesh whose version holds what validation should have refused: the sandbox must still
    refuse it with a problem, not crash on it."""
    versions = mesh.services[service].versions
    changed = versions[version].model_copy(update=update)
    services = {
        **mesh.services,
        service: mesh.services[service].model_copy(
            update={"versions": {**versions, version: changed}}
        ),
    }
    return mesh.model_copy(update={"services": services})


def test_strict_mtls_is_refused_never_run_plaintext() -> None:
    assert _problems(_demo(dataPlane="istio", mtls="strict")) == [
        "mtls: the sandbox runs plaintext HAProxy sidecars and cannot enforce strict mTLS; "
        "run a copy with mtls: permissive or disable"
    ]


def test_an_istio_mesh_is_refused_where_the_builtin_plane_cannot_run_it() -> None:
    data = sailplan.load_mesh(DEMO_MESH).to_dict()
    data["dataPlane"] = "istio"
    data["services"]["service1"]["protocol"] = "tcp"
    data["services"]["service1"]["routes"] = []
    assert _problems(sailplan.Mesh.parse(data)) == [
        "services.service1.protocol: protocol tcp needs the istio data plane; the builtin data "
        "plane proxies http only (the sandbox runs builtin HAProxy sidecars)"
    ]


def test_what_the_sandbox_does_differently_is_said() -> None:
    assert sandbox_notes(_demo(dataPlane="istio")) == [
        "note: dataPlane is istio; the sandbox runs the builtin HAProxy sidecars in Envoy's place, "
        "with the same routes and policies",
        "note: mtls is permissive; traffic in the sandbox is plaintext (permissive accepts "
        "plaintext), nothing is encrypted",
    ]
    assert sandbox_notes(_demo(mtls="disable")) == []
    check_runnable(_demo(dataPlane="istio"))


def test_a_readiness_path_the_sandbox_cannot_request_is_a_problem() -> None:
    mesh = sailplan.load_mesh(DEMO_MESH)
    readiness = Readiness.model_construct(path="/ready now")
    assert _problems(_slipped_by(mesh, "service1", "v2", readiness=readiness)) == [
        "services.service1.versions.v2.readiness.path: the sandbox cannot request '/ready now': "
        "a URL path has no spaces or control characters; percent-encode them (a space is %20)"
    ]


def test_nul_bytes_in_an_environment_or_a_command_are_problems() -> None:
    mesh = sailplan.load_mesh(DEMO_MESH)
    local = mesh.services["service2"].versions["v1"].local
    assert local is not None
    mesh = _slipped_by(
        mesh,
        "service2",
        "v1",
        env={"SERVICE1_URL": "http://service1\x00:8088"},
        local=local.model_copy(update={"env": {"DEBUG": "1\x00"}, "command": ["python", "a\x00"]}),
    )
    assert _problems(mesh) == [
        "services.service2.versions.v1.env.SERVICE1_URL: contains a NUL byte, which no process "
        "environment can hold",
        "services.service2.versions.v1.local.env.DEBUG: contains a NUL byte, which no process "
        "environment can hold",
        "services.service2.versions.v1.local.command[1]: contains a NUL byte, which no command can",
    ]


def test_a_missing_working_directory_is_a_problem(tmp_path: Path) -> None:
    mesh = sailplan.load_mesh(DEMO_MESH)
    local = mesh.services["service1"].versions["v1"].local
    assert local is not None
    mesh = _slipped_by(mesh, "service1", "v1", local=local.model_copy(update={"cwd": "gone"}))
    assert _problems(mesh, tmp_path) == [
        f"services.service1.versions.v1.local.cwd: no such directory: {tmp_path}/gone"
    ]
    check_runnable(mesh)  # without a base directory, nothing is looked up


def test_an_ingress_for_named_hosts_says_which_host_to_send() -> None:
    data = sailplan.load_mesh(DEMO_MESH).to_dict()
    data["mtls"] = "disable"
    data["ingress"]["hosts"] = ["*.shop.example", "shop.example"]
    assert sandbox_notes(sailplan.Mesh.parse(data)) == [
        "note: the ingress answers only for hosts *.shop.example, shop.example; send one, "
        "e.g. curl -H 'Host: a.shop.example' <the ready URL>"
    ]
