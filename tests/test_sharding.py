"""The builtin plane's shared outbound config: rendered once per mesh, sharded into ConfigMaps
below 1 MiB, projected next to each workload's own small ConfigMap, read by HAProxy as one
directory; and the sidecar's reload when any projected file changes."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from proxy_support import (
    backends,
    check_config,
    loopback_ports,
    request,
    running_entrypoint,
    running_haproxy,
)

import sailplan
import sailplan.render.haproxy as compiler_module
from sailplan.render import builtin
from sailplan.render.haproxy import SidecarCompiler, StaticEndpoints
from sailplan.render.manifests import render_manifests

REPO = Path(__file__).resolve().parents[1]


def _spec(
    count: int, extra: dict[str, Any] | None = None, mtls: str = "permissive"
) -> dict[str, Any]:
    services: dict[str, Any] = {
        f"svc{index:03d}": {
            "port": 8000 + index,
            "versions": {"v1": {"image": "a"}, "v2": {"image": "b"}},
            "routes": [
                {"name": "testers", "match": [{"headers": {"x-v": {"exact": "two"}}}], "to": "v2"},
                {"to": "v1"},
            ],
        }
        for index in range(count)
    }
    return {
        "apiVersion": "sailplan/v1",
        "kind": "Mesh",
        "name": "big",
        "dataPlane": "builtin",
        "mtls": mtls,
        "services": {**services, **(extra or {})},
    }


def _mesh(
    count: int, extra: dict[str, Any] | None = None, mtls: str = "permissive"
) -> sailplan.Mesh:
    return sailplan.load_mesh_text(yaml.safe_dump(_spec(count, extra, mtls)))


def _maps(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "ConfigMap"}


@pytest.fixture
def small_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    # About four services a shard, so a mesh of 40 has several.
    monkeypatch.setattr(compiler_module, "SHARD_TARGET_BYTES", 4 * 3 * 1024)


def test_outbound_is_rendered_once_in_shards_and_every_service_is_in_one(
    small_shards: None,
) -> None:
    objects = render_manifests(_mesh(40))
    maps = _maps(objects)
    shards = sorted(name for name in maps if name.startswith("big-outbound-"))
    assert len(shards) in (8, 16, 32) and shards[0] == "big-outbound-000"
    for name in shards:
        assert list(maps[name]) == [f"20-outbound-{name.removeprefix('big-outbound-')}.cfg"]
    homes = {
        f"svc{index:03d}": [
            n for n in shards if f"backend svc{index:03d}__hop\n" in "".join(maps[n].values())
        ]
        for index in range(40)
    }
    assert all(len(home) == 1 for home in homes.values()), homes
    # The workloads' own ConfigMaps carry no service's routes.
    own = maps["svc000-v1-proxy"]
    assert sorted(own) == ["00-global.cfg", "10-inbound.cfg", "503.http", "504.http"]
    assert "__hop" not in "".join(own.values())
    pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    volume = {v["name"]: v for v in pod["volumes"]}["sailplan-config"]
    projected = [s["configMap"]["name"] for s in volume["projected"]["sources"]]
    assert projected == [f"{pod['serviceAccountName']}-v1-proxy", "big-outbound", *shards]


def test_adding_a_service_changes_its_shard_and_the_host_map_only(small_shards: None) -> None:
    before = _maps(render_manifests(_mesh(40)))
    after = _maps(render_manifests(_mesh(41)))
    changed = sorted(name for name in before if before[name] != after.get(name))
    assert len([name for name in after if name.startswith("big-outbound-")]) == len(
        [name for name in before if name.startswith("big-outbound-")]
    )
    [shard] = [name for name in changed if name.startswith("big-outbound-")]
    assert "backend svc040__hop\n" in after[shard][next(iter(after[shard]))]
    # The Host map names every service; the rest of the mesh's config is as it was.
    assert changed == ["big-outbound", shard]
    assert before["big-outbound"]["20-outbound.cfg"] == after["big-outbound"]["20-outbound.cfg"]


def test_every_config_map_stays_below_one_mebibyte_at_a_thousand_services() -> None:
    objects = render_manifests(_mesh(1000))
    sizes = {
        name: sum(len(key) + len(text.encode()) for key, text in data.items())
        for name, data in _maps(objects).items()
    }
    assert max(sizes.values()) <= builtin.CONFIG_MAP_LIMIT_BYTES
    assert len([name for name in sizes if name.startswith("big-outbound-")]) >= 2
    # Linear: the workloads' ConfigMaps are small, whatever the mesh's size.
    assert sizes["svc000-v1-proxy"] < 8 * 1024


def _config_dir(objects: list[dict[str, Any]], workload: str) -> dict[str, str]:
    pod = next(
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == workload
    )["spec"]["template"]["spec"]
    volume = {v["name"]: v for v in pod["volumes"]}["sailplan-config"]
    maps = _maps(objects)
    files: dict[str, str] = {}
    for source in volume["projected"]["sources"]:
        files.update(maps[source["configMap"]["name"]])
    return files


@pytest.mark.haproxy
def test_a_sharded_config_directory_passes_haproxy_check(small_shards: None) -> None:
    objects = render_manifests(_mesh(40))
    files = _config_dir(objects, "svc007-v2")
    assert len([name for name in files if name.startswith("20-outbound-")]) > 2
    check_config(files, "svc007-v2")


@pytest.mark.haproxy
@pytest.mark.timeout(60)
def test_a_sharded_sidecar_routes_as_the_single_file_one(
    small_shards: None, tmp_path: Path
) -> None:
    """The same requests through one sidecar compiled as one haproxy.cfg and as the sharded
    directory get the same answers from the same versions."""
    # Plaintext: this compares routing, and the test's backends hold no mesh certificates.
    mesh = _mesh(24, mtls="disable")
    callee = ["svc003", "svc011", "svc020"]
    with backends(*(f"{s}-{v}" for s in callee for v in ("v1", "v2"))) as started:
        endpoints = StaticEndpoints(
            {
                s: {v: [("127.0.0.1", started[f"{s}-{v}"].port)] for v in ("v1", "v2")}
                for s in callee
            }
        )
        answers = {}
        for layout in ("single", "sharded"):
            ports = loopback_ports()
            directory = tmp_path / layout
            compiler = SidecarCompiler(
                mesh,
                endpoints=endpoints,
                ports=ports,
                config_dir=str(directory),
                runtime_dir=str(directory),
            )
            config = (
                compiler.sidecar("svc000", "v1")
                if layout == "single"
                else compiler.files("svc000", "v1")
            )
            if layout == "sharded":
                assert "haproxy.cfg" not in config.files
                assert len([n for n in config.files if n.startswith("20-outbound-")]) > 2
            with running_haproxy(config.files, directory, [ports.outbound]):
                answers[layout] = [
                    (reply.status, reply.body)
                    for service in callee
                    for headers in ({}, {"x-v": "two"})
                    for reply in [request(ports.outbound, host=service, headers=headers)]
                ]
    assert answers["sharded"] == answers["single"]
    assert answers["sharded"] == [(200, f"{s}-{v}") for s in callee for v in ("v1", "v2")]


def _write(directory: Path, files: dict[str, str]) -> None:
    """As kubelet updates a projected volume: the files are links into a `..data` directory,
    swapped at once."""
    stamp = f"..{time.monotonic_ns()}"
    (directory / stamp).mkdir()
    for name, text in files.items():
        (directory / stamp / name).write_text(text)
    (directory / "..data_tmp").symlink_to(stamp)
    os.replace(directory / "..data_tmp", directory / "..data")
    for name in files:
        link = directory / name
        if not link.is_symlink():
            link.symlink_to(Path("..data") / name)


@pytest.mark.haproxy
@pytest.mark.timeout(60)
def test_the_sidecar_reloads_when_a_shard_changes(small_shards: None, tmp_path: Path) -> None:
    config_dir, runtime_dir = tmp_path / "config", tmp_path / "run"
    config_dir.mkdir()
    ports = loopback_ports()
    with backends("v1", "v2") as started:

        def files(to: str) -> dict[str, str]:
            spec = _spec(20, mtls="disable")  # plaintext: the backends hold no certificates
            spec["services"]["svc005"]["routes"] = [{"to": to}]
            addresses = {v: [("127.0.0.1", started[v].port)] for v in ("v1", "v2")}
            compiler = SidecarCompiler(
                sailplan.load_mesh_text(yaml.safe_dump(spec)),
                endpoints=StaticEndpoints({"svc005": addresses}),
                ports=ports,
                config_dir=str(config_dir),
                runtime_dir=str(runtime_dir),
            )
            return dict(compiler.files("svc000", "v1").files)

        first, second = files("v1"), files("v2")
        changed = sorted(name for name in first if first[name] != second[name])
        assert len(changed) == 1 and changed[0].startswith("20-outbound-")
        _write(config_dir, first)
        with running_entrypoint("proxy", config_dir, runtime_dir, tmp_path / "entrypoint.log"):
            deadline = time.monotonic() + 20
            body = ""
            while body != "v1":
                assert time.monotonic() < deadline, "the sidecar never answered from v1"
                try:
                    body = request(ports.outbound, host="svc005", timeout=2).body
                except OSError:
                    time.sleep(0.1)
            _write(config_dir, second)
            while body != "v2":
                assert time.monotonic() < deadline, "the shard's change never took effect"
                body = request(ports.outbound, host="svc005", timeout=2).body
                time.sleep(0.05)
    assert (
        "configuration or certificate changed: reloaded"
        in (tmp_path / "entrypoint.log").read_text()
    )
