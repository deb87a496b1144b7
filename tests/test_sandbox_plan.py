"""The sandbox's plan: ports, instances, endpoints and configs, without starting anything."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from conftest import DEMO_MESH

import sailplan
from sailplan.sandbox.plan import check_runnable, compile_configs, make_plan


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
