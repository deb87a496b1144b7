"""`sailplan sandbox`, end to end with real processes: the walkthrough's experiments, a header
route through the ingress, a live edit under --watch, and every way starting can fail."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from proxy_support import request
from sandbox_support import (
    MESHES,
    REFUSED,
    SandboxProcess,
    alive,
    descendants,
    processes_with_env,
    runnable_copy,
    strict_haproxy,
    with_refused_route,
)

from sailplan.traffic import Outcome, parse_target, send_all

pytestmark = [pytest.mark.haproxy, pytest.mark.slow, pytest.mark.timeout(180)]


def _traffic(
    url: str, count: int, concurrency: int, headers: dict[str, str] | None = None
) -> list[Outcome]:
    return send_all(parse_target(url), count, concurrency, "GET", headers or {}, None, 10.0)


def _shares(outcomes: list[Outcome]) -> Counter[str]:
    counts = Counter(o.label for o in outcomes)
    return Counter({label: 100 * n / len(outcomes) for label, n in counts.items()})


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SandboxProcess, Path]]:
    directory = tmp_path_factory.mktemp("walkthrough")
    watched = directory / "mesh.yaml"
    baseline = yaml.safe_load(runnable_copy(MESHES / "even-split.yaml"))
    baseline["services"]["service1"]["routes"] = []
    watched.write_text(yaml.safe_dump(baseline))
    sandbox = SandboxProcess(watched, "--watch")
    try:
        sandbox.wait_for("ready: ")
        for outcome in send_all(
            parse_target(f"{sandbox.url()}/api/users"), 2, 1, "POST", {}, b'{"username": "a"}', 10.0
        ):
            assert outcome.label.startswith("201 "), outcome
        yield sandbox, watched
    finally:
        sandbox.stop()
        leaked = [pid for pid in sandbox.children if alive(pid)]
        assert not leaked, f"processes left running: {leaked}"


def _apply(walkthrough: tuple[SandboxProcess, Path], mesh: Path) -> str:
    sandbox, watched = walkthrough
    text = runnable_copy(mesh)
    if watched.exists() and watched.read_text() == text:
        return "watch: unchanged, already reloaded"
    staged = watched.with_name(".mesh.yaml.new")
    staged.write_text(text)
    os.replace(staged, watched)
    return sandbox.wait_for("watch:", 20)


def test_even_split(walkthrough: tuple[SandboxProcess, Path]) -> None:
    assert "reloaded" in _apply(walkthrough, MESHES / "even-split.yaml")
    shares = _shares(_traffic(f"{walkthrough[0].url()}/api/users/1", 400, 8))
    assert set(shares) == {"200 Hello, a v1", "200 Hello, a v2"}
    assert 40 <= shares["200 Hello, a v2"] <= 60


def test_80_20_split_over_1000_requests(walkthrough: tuple[SandboxProcess, Path]) -> None:
    assert "reloaded" in _apply(walkthrough, MESHES / "split-80-20.yaml")
    shares = _shares(_traffic(f"{walkthrough[0].url()}/api/users/1", 1000, 8))
    assert 75 <= shares["200 Hello, a v1"] <= 85
    assert 15 <= shares["200 Hello, a v2"] <= 25


def test_delay_and_abort(walkthrough: tuple[SandboxProcess, Path]) -> None:
    assert "reloaded" in _apply(walkthrough, MESHES / "fault-delay-abort.yaml")
    outcomes = _traffic(f"{walkthrough[0].url()}/api/users/1", 60, 30)
    shares = _shares(outcomes)
    assert set(shares) == {"200 Hello, a v1", "200 error"}
    assert 30 <= shares["200 error"] <= 70
    assert all(1.9 <= o.seconds < 3.5 for o in outcomes)


def test_timeout_answers_504_after_one_second(walkthrough: tuple[SandboxProcess, Path]) -> None:
    assert "reloaded" in _apply(walkthrough, MESHES / "timeout.yaml")
    outcomes = _traffic(f"{walkthrough[0].url()}/api/users/1", 20, 10)
    assert {o.label for o in outcomes} == {"504 upstream request timeout"}
    assert all(0.9 <= o.seconds < 1.6 for o in outcomes)


def test_header_match_through_the_ingress(walkthrough: tuple[SandboxProcess, Path]) -> None:
    assert "reloaded" in _apply(walkthrough, MESHES / "header-match.yaml")
    url = f"{walkthrough[0].url()}/api/users/1"
    assert {o.label for o in _traffic(url, 30, 5, {"end-user": "jason"})} == {"200 Hello, a v2"}
    assert {o.label for o in _traffic(url, 30, 5, {"end-user": "bob"})} == {"200 Hello, a v1"}
    assert {o.label for o in _traffic(url, 30, 5)} == {"200 Hello, a v1"}


def test_route_changes_apply_in_the_sandbox(walkthrough: tuple[SandboxProcess, Path]) -> None:
    """The example with header changes, rewrites, a redirect, a fixed response and negative
    and case-insensitive matches compiles, reloads and routes."""
    assert "reloaded" in _apply(walkthrough, MESHES / "route-changes.yaml")
    url = f"{walkthrough[0].url()}/api/users/1"
    assert {o.label for o in _traffic(url, 20, 5, {"end-user": "jason"})} == {"200 Hello, a v2"}
    assert {o.label for o in _traffic(url, 20, 5, {"end-user": "bob"})} == {"200 Hello, a v1"}


def test_cors_preflight_through_the_ingress(walkthrough: tuple[SandboxProcess, Path]) -> None:
    """The CORS example: the gateway answers an allowed origin's preflight itself, and the
    API's answer to that origin carries the CORS headers."""
    assert "reloaded" in _apply(walkthrough, MESHES / "cors.yaml")
    port = int(walkthrough[0].url().rsplit(":", 1)[1])
    shop = "https://shop.example.com"
    preflight = request(
        port,
        "/api/users/1",
        method="OPTIONS",
        headers={"origin": shop, "access-control-request-method": "POST"},
    )
    headers = dict(preflight.headers)
    assert (preflight.status, preflight.body) == (200, "")
    assert headers["access-control-allow-origin"] == shop
    assert headers["access-control-allow-methods"] == "GET,POST"
    assert headers["access-control-max-age"] == "3600"
    answer = request(port, "/api/users/1", headers={"origin": shop})
    assert answer.status == 200
    assert dict(answer.headers)["access-control-allow-origin"] == shop
    other = request(port, "/api/users/1", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in dict(other.headers)


def test_invalid_edit_is_reported_and_ignored(walkthrough: tuple[SandboxProcess, Path]) -> None:
    sandbox, watched = walkthrough
    _apply(walkthrough, MESHES / "header-match.yaml")
    watched.write_text(watched.read_text().replace("to: v2", "to: v9"))
    line = sandbox.wait_for("watch:", 20)
    assert line == (
        f"watch: {watched} not applied, the running mesh stays: "
        "services.service1.routes[0].to: unknown version 'v9'; this service has: v1, v2"
    )
    url = f"{sandbox.url()}/api/users/1"
    assert {o.label for o in _traffic(url, 10, 2, {"end-user": "jason"})} == {"200 Hello, a v2"}


def test_split_edited_while_traffic_flows_drops_nothing(
    walkthrough: tuple[SandboxProcess, Path],
) -> None:
    sandbox, _ = walkthrough
    _apply(walkthrough, MESHES / "split-80-20.yaml")
    url = f"{sandbox.url()}/api/users/1"
    outcomes: list[Outcome] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            outcomes.extend(_traffic(url, 20, 4))

    worker = threading.Thread(target=client)
    worker.start()
    try:
        time.sleep(1)
        _apply(walkthrough, MESHES / "even-split.yaml")
        time.sleep(0.5)
        mark = len(outcomes)
        time.sleep(2)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert {o.label for o in outcomes} <= {"200 Hello, a v1", "200 Hello, a v2"}, Counter(
        o.label for o in outcomes
    )
    after = _shares(outcomes[mark:])
    assert 35 <= after["200 Hello, a v2"] <= 65


def _mesh_file(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load(runnable_copy(MESHES / "even-split.yaml"))
    data.update(changes)
    path = tmp_path / "mesh.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_version_that_exits_at_start_stops_everything(tmp_path: Path) -> None:
    path = _mesh_file(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["services"]["service1"]["versions"]["v2"]["local"]["command"] = [
        "python",
        "-c",
        "import sys; print('boom'); sys.exit(3)",
    ]
    path.write_text(yaml.safe_dump(data))
    sandbox = SandboxProcess(path)
    code = sandbox.process.wait(timeout=60)
    time.sleep(0.5)
    output = "\n".join(sandbox.lines)
    assert code == 1
    assert "error: service1-v2-0 exited with status 3; its last output:" in output
    assert "boom" in output
    assert not [pid for pid in sandbox.children if alive(pid)]


def test_a_taken_ingress_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sandbox = SandboxProcess(_mesh_file(tmp_path), "--ingress-port", str(port))
        assert sandbox.process.wait(timeout=30) == 1
    time.sleep(0.2)
    assert sandbox.lines == [
        f"error: 127.0.0.1:{port} is already in use; choose another --ingress-port"
    ]


def test_an_invalid_mesh_starts_nothing(tmp_path: Path) -> None:
    path = _mesh_file(tmp_path)
    path.write_text(path.read_text().replace("v1: 50", "v1: 40"))
    sandbox = SandboxProcess(path)
    assert sandbox.process.wait(timeout=30) == 2
    time.sleep(0.2)
    # The problem points at the split's key, wherever the example mesh puts it.
    lines = path.read_text().splitlines()
    weight = next(n for n, text in enumerate(lines) if "v1: 40" in text)
    line = max(n for n, text in enumerate(lines[:weight], 1) if "split:" in text)
    assert sandbox.lines == [
        f"error: 1 problem in {path}:",
        f"  line {line}: services.service1.routes[0].split: weights add up to 90, they must add "
        "up to 100",
    ]


def test_a_version_without_local_command_is_bad_input(tmp_path: Path) -> None:
    path = _mesh_file(tmp_path)
    data = yaml.safe_load(path.read_text())
    del data["services"]["service2"]["versions"]["v1"]["local"]
    path.write_text(yaml.safe_dump(data))
    sandbox = SandboxProcess(path)
    assert sandbox.process.wait(timeout=30) == 2
    time.sleep(0.2)
    assert sandbox.lines[1] == (
        "  services.service2.versions.v1.local: the sandbox needs a local command to run this version, "
        "e.g. local: {command: [python, app.py]}"
    )


def test_sigterm_stops_everything(tmp_path: Path) -> None:
    sandbox = SandboxProcess(_mesh_file(tmp_path))
    sandbox.wait_for("ready: ")
    children = set(sandbox.children)
    assert len(children) >= 8  # 3 apps, 4 haproxy masters (+ workers)
    assert sandbox.stop(signal.SIGTERM) == 0
    assert not [pid for pid in children if alive(pid)]


def test_an_istio_mesh_runs_on_builtin_sidecars_and_says_so(tmp_path: Path) -> None:
    sandbox = SandboxProcess(_mesh_file(tmp_path, dataPlane="istio", mtls="permissive"))
    try:
        sandbox.wait_for("ready: ")
        notes = [line for line in sandbox.lines if line.startswith("note: ")]
        assert notes == [
            "note: dataPlane is istio; the sandbox runs the builtin HAProxy sidecars in Envoy's "
            "place, with the same routes and policies",
            "note: mtls is permissive; sidecars call each other over mTLS with this run's "
            "certificates, and their inbound ports also accept plaintext",
        ]
        assert sandbox.lines.index(notes[-1]) == len(sandbox.lines) - 2  # just before "ready:"
        # Through the gateway and service2's sidecar to service1: the mesh runs.
        created = send_all(
            parse_target(f"{sandbox.url()}/api/users"), 2, 1, "POST", {}, b'{"username": "a"}', 10
        )
        assert all(o.label.startswith("201 ") for o in created), created
    finally:
        assert sandbox.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("readiness", "path"), "/ready now"),
        (("env", "SERVICE_VERSION"), "v1\x00"),
    ],
    ids=["readiness-path-with-a-space", "env-value-with-nul"],
)
def test_values_no_process_can_take_are_bad_input_not_a_crash(
    tmp_path: Path, where: tuple[str, str], value: str
) -> None:
    path = _mesh_file(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["services"]["service1"]["versions"]["v1"][where[0]][where[1]] = value
    path.write_text(yaml.safe_dump(data))
    sandbox = SandboxProcess(path)
    assert sandbox.process.wait(timeout=30) == 2
    time.sleep(0.2)
    # The model may refuse it first, in its words; either way: one problem at the path, exit 2.
    assert sandbox.lines[0] == f"error: 1 problem in {path}:", sandbox.lines
    assert re.match(
        rf"  line \d+: services\.service1\.versions\.v1\.{re.escape('.'.join(where))}: ",
        sandbox.lines[1],
    ), sandbox.lines
    assert len(sandbox.lines) == 2


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_an_ingress_port_that_is_no_port_is_bad_input(tmp_path: Path, port: str) -> None:
    sandbox = SandboxProcess(_mesh_file(tmp_path), "--ingress-port", port)
    assert sandbox.process.wait(timeout=30) == 2
    time.sleep(0.2)
    assert sandbox.lines == [
        f"error: --ingress-port {port} is not a port; use 1 to 65535, or leave it out for any "
        "free port"
    ]


def test_a_closed_stdout_neither_stops_nor_breaks_the_sandbox(tmp_path: Path) -> None:
    """`sailplan sandbox mesh.yaml | head`: the logs that follow go nowhere, without a traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sailplan", "sandbox", str(_mesh_file(tmp_path))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        url = next(line for line in process.stdout if line.startswith("ready: "))[7:].strip()
        process.stdout.close()
        # Each request makes the apps and proxies log: lines for the closed pipe.
        outcomes = _traffic(f"{url}/api/users", 40, 4)
        assert all(o.label.startswith("200 ") for o in outcomes), outcomes
        time.sleep(0.5)
        assert process.poll() is None
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        errors = process.stderr.read()
        assert "Traceback" not in errors and "Exception" not in errors, errors
    finally:
        if process.poll() is None:  # the test failed: end it and what it started, by PID
            for pid in [process.pid, *descendants(process.pid)]:
                os.kill(pid, signal.SIGKILL)
            process.wait(timeout=5)


def test_a_mesh_haproxy_refuses_at_start_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(with_refused_route(runnable_copy(MESHES / "header-match.yaml")))
    runtime = Path(tempfile.mkdtemp(prefix="sbx-", dir="/tmp"))
    try:
        path_env = f"{strict_haproxy(tmp_path)}:{os.environ['PATH']}"
        sandbox = SandboxProcess(path, env={"TMPDIR": str(runtime), "PATH": path_env})
        assert sandbox.process.wait(timeout=30) == 1
        time.sleep(0.2)
        assert sandbox.lines == [
            f"error: haproxy refuses the config of service1-v1-0-proxy: {REFUSED}"
        ]
        assert list(runtime.iterdir()) == []
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def test_a_mesh_on_standard_input_runs() -> None:
    text = runnable_copy(MESHES / "even-split.yaml")
    sandbox = SandboxProcess(Path("-"), "--isolation", "explicit-proxy", stdin=text)
    try:
        sandbox.wait_for("ready: ")
        reply = request(int(sandbox.url().rsplit(":", 1)[1]), "/api/users")
    finally:
        assert sandbox.stop() == 0
    assert reply.status == 200, reply


def test_watching_standard_input_is_bad_input() -> None:
    sandbox = SandboxProcess(Path("-"), "--watch")
    assert sandbox.process.wait(timeout=30) == 2
    time.sleep(0.2)
    assert sandbox.lines == ["error: --watch needs a mesh file to watch, not standard input (-)"]


def test_ctrl_c_ends_a_read_that_blocks(tmp_path: Path) -> None:
    """A FIFO with no writer blocks the first read: Ctrl-C must still end it (nothing runs yet)."""
    fifo = tmp_path / "mesh.yaml"
    os.mkfifo(fifo)
    sandbox = SandboxProcess(fifo)
    try:
        # Blocked opening the FIFO: the kernel says so ("wait_for_partner").
        wchan = Path(f"/proc/{sandbox.process.pid}/wchan")
        deadline = time.monotonic() + 20
        while wchan.read_text() != "wait_for_partner":
            assert time.monotonic() < deadline and sandbox.process.poll() is None, sandbox.lines
            time.sleep(0.02)
        sandbox.process.send_signal(signal.SIGINT)
        assert sandbox.process.wait(timeout=5) == 130
    finally:
        sandbox.stop(signal.SIGKILL)
    time.sleep(0.2)
    assert not any("Traceback" in line for line in sandbox.lines), sandbox.lines


def test_a_command_that_cannot_start_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    path = _mesh_file(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["services"]["service2"]["versions"]["v1"]["local"]["command"] = ["no-such-program-here"]
    path.write_text(yaml.safe_dump(data))
    runtime = Path(tempfile.mkdtemp(prefix="sbx-", dir="/tmp"))
    try:
        sandbox = SandboxProcess(path, env={"TMPDIR": str(runtime)})
        assert sandbox.process.wait(timeout=30) == 1
        time.sleep(0.2)
        # service1's two versions started first: they are stopped again, their directory gone.
        assert sandbox.lines == [
            "error: service2-v1-0: cannot start 'no-such-program-here': No such file or directory"
        ]
        assert not processes_with_env(f"TMPDIR={runtime}")
        assert list(runtime.iterdir()) == []
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
