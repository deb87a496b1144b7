"""The image's entrypoint, run for real: config changes reload HAProxy without failing a request."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from proxy_support import (
    ENTRYPOINT,
    backends,
    loopback_ports,
    request,
    running_entrypoint,
    wait_for_port,
)

import sailplan
from sailplan.render.haproxy import ProxyConfig, StaticEndpoints, compile_sidecar
from sailplan.sandbox.runner import write_config

pytestmark = [pytest.mark.haproxy, pytest.mark.timeout(90)]


def _mesh(route: dict[str, object]) -> sailplan.Mesh:
    spec = {
        "apiVersion": "sailplan/v1",
        "kind": "Mesh",
        # The endpoints here are the apps themselves, not sidecars: plaintext.
        "mtls": "disable",
        "name": "reload",
        "services": {
            "service1": {
                "port": 8088,
                "versions": {"v1": {"image": "a"}, "v2": {"image": "b"}},
                "routes": [route],
            },
            "caller": {"port": 9000, "versions": {"v1": {"image": "c"}}},
        },
    }
    return sailplan.load_mesh_text(yaml.safe_dump(spec))


def _publish(config_dir: Path, files: dict[str, str]) -> None:
    """Swap the files in atomically, as kubelet updates a ConfigMap volume."""
    write_config(config_dir, ProxyConfig(files))


def test_config_changes_reload_without_failing_a_request(tmp_path: Path) -> None:
    config_dir, runtime_dir = tmp_path / "config", tmp_path / "run"
    config_dir.mkdir()
    ports = loopback_ports()
    with backends("v1", "v2") as started:
        endpoints = StaticEndpoints(
            {"service1": {v: [("127.0.0.1", b.port)] for v, b in started.items()}}
        )

        def compiled(route: dict[str, object]) -> dict[str, str]:
            config = compile_sidecar(
                _mesh(route),
                "caller",
                "v1",
                endpoints=endpoints,
                ports=ports,
                config_dir=str(config_dir),
                runtime_dir=str(runtime_dir),
                passthrough="host-header",
            )
            return dict(config.files)

        _publish(config_dir, compiled({"to": "v1"}))
        outcomes: Counter[str] = Counter()
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                try:
                    reply = request(ports.outbound, "/", timeout=5)
                    outcomes[reply.body if reply.status == 200 else f"status {reply.status}"] += 1
                except OSError as error:
                    outcomes[f"error {error}"] += 1

        def wait_for(body: str, timeout: float = 10) -> None:
            deadline = time.monotonic() + timeout
            before = outcomes[body]
            while outcomes[body] < before + 20:
                assert time.monotonic() < deadline, f"no {body!r} answers: {outcomes}"
                time.sleep(0.05)

        workers = [threading.Thread(target=client) for _ in range(4)]
        with running_entrypoint("proxy", config_dir, runtime_dir, tmp_path / "entrypoint.log"):
            try:
                wait_for_port(ports.outbound)
                for worker in workers:
                    worker.start()
                wait_for("v1")
                _publish(config_dir, compiled({"to": "v2"}))
                wait_for("v2")
                broken = dict(compiled({"to": "v1"}))
                broken["haproxy.cfg"] += "\nthis is not haproxy syntax\n"
                _publish(config_dir, broken)
                time.sleep(1.0)
                wait_for("v2")  # the invalid config was refused; traffic still flows as before
                _publish(config_dir, compiled({"split": {"v1": 50, "v2": 50}}))
                wait_for("v1")
                wait_for("v2")
            finally:
                stop.set()
                for worker in workers:
                    if worker.is_alive():
                        worker.join(timeout=10)
    failures = {k: v for k, v in outcomes.items() if k not in ("v1", "v2")}
    assert failures == {}, f"requests failed during reloads: {failures}"
    text = (tmp_path / "entrypoint.log").read_text()
    assert text.count("configuration or certificate changed: reloaded") == 2
    assert "configuration or certificate changed but is invalid; keeping the running one" in text


def test_an_invalid_config_at_start_exits_1(tmp_path: Path) -> None:
    (tmp_path / "haproxy.cfg").write_text("nonsense\n")
    env = {
        **os.environ,
        "SAILPLAN_CONFIG_DIR": str(tmp_path),
        "SAILPLAN_RUNTIME_DIR": str(tmp_path),
    }
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), "proxy"], env=env, capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 1
    assert f"the configuration in {tmp_path} is invalid; not starting" in done.stderr


def test_an_unknown_mode_exits_2() -> None:
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), "bogus"], capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 2
    assert "unknown mode 'bogus': use proxy, gateway or init" in done.stderr
