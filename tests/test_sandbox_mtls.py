"""The sandbox runs the cluster's security: the walkthrough mesh with `mtls: strict` and `allow` on
service1, its certificates made for the run and removed on stop."""

from __future__ import annotations

import itertools
import re
import signal
import socket
import stat
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sandbox_support import MESHES, SandboxProcess, runnable_copy

from sailplan.render.haproxy.security import RBAC_BODY
from sailplan.traffic import parse_target, send_all

pytestmark = [pytest.mark.haproxy, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    data = yaml.safe_load(runnable_copy(MESHES / "even-split.yaml"))
    data["mtls"] = "strict"
    # service2 (the greeter behind the ingress) may call service1; nobody else may.
    data["services"]["service1"]["allow"] = [{"from": ["service2"]}]
    # A second ingress route straight to service1: the gateway is a caller service1 refuses.
    data["ingress"]["routes"].insert(
        0, {"match": {"path": {"prefix": "/direct"}}, "service": "service1"}
    )
    path = tmp_path_factory.mktemp("strict") / "mesh.yaml"
    path.write_text(yaml.safe_dump(data))
    # explicit-proxy: every inbound port is on 127.0.0.1, where this test can dial it.
    sandbox = SandboxProcess(path, "--isolation", "explicit-proxy")
    try:
        sandbox.wait_for("ready: ")
        yield sandbox
    finally:
        assert sandbox.stop(signal.SIGTERM) == 0


def _port(sandbox: SandboxProcess, proxy: str, listener: str) -> int:
    line = next(line for line in sandbox.lines if line.startswith(f"{proxy} "))
    match = re.search(rf"{listener} :(\d+)", line)
    assert match, line
    return int(match.group(1))


def _outcomes(url: str, count: int = 20) -> Counter[str]:
    return Counter(o.label for o in send_all(parse_target(url), count, 4, "GET", {}, None, 10))


def test_the_mesh_works_through_the_ingress_over_strict_mtls(strict: SandboxProcess) -> None:
    # Each version keeps its own users: 20 POSTs reach both (all but 2 in a million times), so
    # user 1 is "a" on both, and any "error" below would be a refused call from service2.
    created = send_all(
        parse_target(f"{strict.url()}/api/users"), 20, 1, "POST", {}, b'{"username": "a"}', 10
    )
    assert all(o.label.startswith("201 ") for o in created), created
    outcomes = _outcomes(f"{strict.url()}/api/users/1")
    assert set(outcomes) <= {"200 Hello, a v1", "200 Hello, a v2"}, outcomes


@pytest.mark.parametrize("listener", ["inbound", "mtls"])
def test_a_plaintext_request_to_a_sidecar_is_refused(strict: SandboxProcess, listener: str) -> None:
    # The inbound port (strict) and the mTLS port other sidecars dial both take TLS only.
    port = _port(strict, "service1-v1-0-proxy", listener)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /api/users/1 HTTP/1.1\r\nhost: service1\r\n\r\n")
        try:
            answer = sock.recv(64)
        except ConnectionResetError:
            answer = b""
    assert not answer.startswith(b"HTTP/"), answer


def test_a_caller_that_is_not_allowed_gets_403(strict: SandboxProcess) -> None:
    outcomes = _outcomes(f"{strict.url()}/direct/users/1")
    assert outcomes == Counter({f"403 {RBAC_BODY}": 20}), outcomes


def test_certificates_are_private_to_the_run_and_removed_on_stop(tmp_path: Path) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(runnable_copy(MESHES / "even-split.yaml", mtls="strict"))
    sandbox = SandboxProcess(path, "--isolation", "explicit-proxy")
    try:
        sandbox.wait_for("ready: ")
        runtime = _runtime_root(sandbox)
        keys = sorted(runtime.glob("*-certs/tls.key"))
        # Three workloads and the gateway, each with its own key.
        assert [k.parent.name for k in keys] == [
            "gateway-certs",
            "service1-v1-0-certs",
            "service1-v2-0-certs",
            "service2-v1-0-certs",
        ]
        for directory in (k.parent for k in keys):
            for name in ("tls.crt", "tls.key", "ca.crt"):
                assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600
    finally:
        assert sandbox.stop(signal.SIGTERM) == 0
    assert not runtime.exists()


def _runtime_root(sandbox: SandboxProcess) -> Path:
    """The run's directory, from the command line of one of its haproxy processes."""
    for pid in sandbox.children:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # haproxy -f <run>/<workload>/: the workload's config directory.
        for option, argument in itertools.pairwise(argv):
            if option == b"-f":
                return Path(argument.decode()).parent
    raise AssertionError("no haproxy process of the sandbox found")
