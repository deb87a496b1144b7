"""The sandbox's plan: ports, instances, endpoints and configs, without starting anything."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_MESH

import sailplan
from sailplan.model.service import Readiness
from sailplan.sandbox import runner
from sailplan.sandbox.plan import (
    check_runnable,
    compile_configs,
    local_env,
    make_plan,
    sandbox_notes,
)


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


def test_strict_mtls_and_allow_run_in_the_sandbox() -> None:
    # The sandbox's sidecars carry the cluster's mTLS and authorization: nothing to refuse.
    allow = [{"from": ["service2"]}]
    check_runnable(_demo(dataPlane="istio", mtls="strict"))
    data = _demo(mtls="strict").to_dict()
    data["services"]["service1"]["allow"] = allow
    check_runnable(sailplan.Mesh.parse(data))


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
        "note: mtls is permissive; sidecars call each other over mTLS with this run's "
        "certificates, and their inbound ports also accept plaintext",
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


def test_a_sandbox_never_plans_one_port_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel may offer a port it just called free to the next probe; forced here.
    offered = iter([40001, 40001, 40002, 40001, 40003])
    monkeypatch.setattr(runner, "free_port", lambda: next(offered))
    next_port = runner.distinct_free_ports()
    assert [next_port(), next_port(), next_port()] == [40001, 40002, 40003]


def test_a_sandbox_never_plans_the_ingress_port_for_another_listener(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `--ingress-port` is checked free, then left unbound until the gateway starts: the kernel
    # may offer it to the next probe.
    offered = iter([8080, 40001])
    monkeypatch.setattr(runner, "free_port", lambda: next(offered))
    assert runner.distinct_free_ports([8080])() == 40001
