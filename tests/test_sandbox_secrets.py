"""The sandbox stands in for the cluster's Secrets and ConfigMaps: referenced values come from the
developer's environment or `local.envFile`, and a missing one stops it before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sandbox_support import SandboxProcess, alive

from sailplan.traffic import parse_target, send_all

pytestmark = [pytest.mark.haproxy, pytest.mark.slow, pytest.mark.timeout(120)]

# An app that answers every GET with the variables it was started with.
ECHO_APP = """\
import http.server, os

class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        names = ("DB_PASSWORD", "MODE", "EXTRA")
        body = " ".join(f"{n}={os.environ.get(n, '-')}" for n in names).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Echo).serve_forever()
"""


def _mesh(tmp_path: Path, env_file: str | None) -> Path:
    (tmp_path / "echo.py").write_text(ECHO_APP)
    local: dict[str, object] = {"command": ["python", "echo.py"]}
    if env_file is not None:
        local["envFile"] = env_file
    mesh = {
        "apiVersion": "sailplan/v1",
        "kind": "Mesh",
        "name": "secrets",
        "services": {
            "echo": {
                "port": 8080,
                "versions": {
                    "v1": {
                        "image": "echo:1",
                        "env": {
                            "DB_PASSWORD": {"secretKeyRef": {"name": "db", "key": "password"}},
                            "MODE": {"configMapKeyRef": {"name": "settings", "key": "mode"}},
                        },
                        "envFrom": [{"secretRef": {"name": "extra"}}],
                        "local": local,
                    }
                },
            }
        },
        "ingress": {"routes": [{"service": "echo"}]},
    }
    path = tmp_path / "mesh.yaml"
    path.write_text(yaml.safe_dump(mesh, sort_keys=False))
    return path


def test_missing_values_stop_the_sandbox_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DB_PASSWORD", raising=False)
    monkeypatch.setenv("MODE", "from-environment")
    path = _mesh(tmp_path, None)
    sandbox = SandboxProcess(path)
    try:
        assert sandbox.process.wait(timeout=60) == 2
    finally:
        sandbox.stop()
    assert sandbox.lines == [
        f"error: 1 problem in {path}:",
        "  services.echo.versions.v1.env.DB_PASSWORD: the sandbox has no value for "
        "DB_PASSWORD (in a cluster: Secret 'db', key 'password'); set it in your environment or "
        "name a file that has it in local: {envFile: .env}",
    ]


def test_values_come_from_the_environment_then_the_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dev.env").write_text("DB_PASSWORD='from file'\nMODE=file-mode\nEXTRA=42\n")
    monkeypatch.setenv("MODE", "from-environment")
    monkeypatch.delenv("DB_PASSWORD", raising=False)
    monkeypatch.delenv("EXTRA", raising=False)
    sandbox = SandboxProcess(_mesh(tmp_path, "dev.env"))
    try:
        sandbox.wait_for("ready: ")
        [outcome] = send_all(parse_target(sandbox.url()), 1, 1, "GET", {}, None, 10.0)
    finally:
        sandbox.stop()
    assert not [pid for pid in sandbox.children if alive(pid)]
    assert outcome.label == "200 DB_PASSWORD=from file MODE=from-environment EXTRA=42"
