"""The sandbox's plan: ports, instances, endpoints and configs, without starting anything."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_MESH

import sailplan
from sailplan.sandbox.plan import check_runnable, compile_configs, local_env, make_plan


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
        name: (directory, config)
        for name, directory, config in compile_configs(mesh, plan, tmp_path)
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
    assert f"stats socket {tmp_path}/service1-v1-0/admin.sock" in cfg


def test_versions_need_a_local_command() -> None:
    mesh = sailplan.load_mesh_text(
        DEMO_MESH.read_text().replace(
            "        local: {command: [python, ../examples/apps/greeter/app.py]}\n", ""
        )
    )
    with pytest.raises(sailplan.SpecError) as error:
        check_runnable(mesh)
    assert [p.path for p in error.value.problems] == ["services.service2.versions.v1.local"]


_REFS = """        env:
          SERVICE_VERSION: v1
          DB_PASSWORD: {secretKeyRef: {name: db, key: password}}
          MODE: {configMapKeyRef: {name: settings, key: mode}}
        readiness: {path: /healthz}
        local: {command: [python, app.py], envFile: dev.env}"""


def _mesh_with_refs(local: str = "local: {command: [python, app.py], envFile: dev.env}") -> Any:
    text = DEMO_MESH.read_text().replace(
        "        env: {SERVICE_VERSION: v1}\n        readiness: {path: /healthz}\n"
        "        local: {command: [python, ../examples/apps/users/app.py]}",
        _REFS.replace("local: {command: [python, app.py], envFile: dev.env}", local),
        1,
    )
    return sailplan.load_mesh_text(text)


def test_referenced_values_come_from_the_environment_then_the_env_file(tmp_path: Path) -> None:
    (tmp_path / "dev.env").write_text(
        "# local values\n"
        "DB_PASSWORD='from file'\n"
        'export MODE="fast"\n'
        "\n"
        "EXTRA=1\n"
        "HOME=/from/file\n"
    )
    env = local_env(
        _mesh_with_refs(), "service1", "v1", tmp_path, {"DB_PASSWORD": "from env", "HOME": "/h"}
    )
    # The environment wins over the file; inline values win over both; the file's other
    # variables stand in for envFrom, unless the environment has them.
    assert env == {
        "DB_PASSWORD": "from env",
        "MODE": "fast",
        "EXTRA": "1",
        "SERVICE_VERSION": "v1",
    }


def test_missing_referenced_values_are_listed_with_where_to_put_them(tmp_path: Path) -> None:
    (tmp_path / "dev.env").write_text("OTHER=1\n")
    with pytest.raises(sailplan.SpecError) as error:
        check_runnable(_mesh_with_refs(), tmp_path, {})
    v1 = "services.service1.versions.v1"
    assert [str(p) for p in error.value.problems] == [
        f"{v1}.env.DB_PASSWORD: the sandbox has no value for DB_PASSWORD (in a cluster: Secret "
        "'db', key 'password'); set it in your environment or add it to dev.env",
        f"{v1}.env.MODE: the sandbox has no value for MODE (in a cluster: ConfigMap "
        "'settings', key 'mode'); set it in your environment or add it to dev.env",
    ]


def test_without_an_env_file_the_problem_says_how_to_name_one(tmp_path: Path) -> None:
    mesh = _mesh_with_refs("local: {command: [python, app.py]}")
    with pytest.raises(sailplan.SpecError) as error:
        check_runnable(mesh, tmp_path, {"MODE": "x"})
    assert [str(p) for p in error.value.problems] == [
        "services.service1.versions.v1.env.DB_PASSWORD: the sandbox has no value for "
        "DB_PASSWORD (in a cluster: Secret 'db', key 'password'); set it in your environment "
        "or name a file that has it in local: {envFile: .env}"
    ]
    check_runnable(mesh, tmp_path, {"MODE": "x", "DB_PASSWORD": "y"})


def test_a_missing_or_malformed_env_file_is_a_problem(tmp_path: Path) -> None:
    mesh = _mesh_with_refs()
    with pytest.raises(sailplan.SpecError) as error:
        check_runnable(mesh, tmp_path, {})
    assert [str(p) for p in error.value.problems] == [
        "services.service1.versions.v1.local.envFile: the env file "
        f"'{tmp_path / 'dev.env'}' does not exist"
    ]
    (tmp_path / "dev.env").write_text("GOOD=1\nthis is not a variable\n1BAD=2\n")
    with pytest.raises(sailplan.SpecError) as error:
        check_runnable(mesh, tmp_path, {})
    message = "not a NAME=value line (names are letters, digits and '_'; # starts a comment)"
    assert [str(p) for p in error.value.problems] == [
        f"{tmp_path / 'dev.env'}:2: {message}",
        f"{tmp_path / 'dev.env'}:3: {message}",
    ]
