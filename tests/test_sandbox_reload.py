"""`sailplan sandbox --watch` keeps its promise: an edit it cannot apply is reported in one line and
ignored, and the mesh that runs is the last good one (not the one the sandbox started with), serving
every request meanwhile. Real haproxy, real apps."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sandbox_support import (
    MESHES,
    REFUSED,
    SandboxProcess,
    alive,
    runnable_copy,
    strict_haproxy,
    with_refused_route,
)

from sailplan.traffic import Outcome, parse_target, send_all

pytestmark = [pytest.mark.haproxy, pytest.mark.slow, pytest.mark.timeout(180)]

V1, V2 = "200 Hello, a v1", "200 Hello, a v2"


def _labels(url: str, count: int, headers: dict[str, str]) -> Counter[str]:
    outcomes = send_all(parse_target(url), count, 4, "GET", headers, None, 10.0)
    return Counter(o.label for o in outcomes)


def _replace(path: Path, data: bytes) -> None:
    """Swap the file in at once, as editors that save atomically do."""
    staged = path.with_name(f".{path.name}.new")
    staged.write_bytes(data)
    os.replace(staged, path)


class Running:
    def __init__(self, sandbox: SandboxProcess, watched: Path) -> None:
        self.sandbox = sandbox
        self.watched = watched
        self.url = f"{sandbox.url()}/api/users/1"
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._client = threading.Thread(target=self._traffic)

    def _traffic(self) -> None:
        # Throughout every edit, good or bad: not one request may fail.
        while not self._stop.is_set():
            self.outcomes += send_all(parse_target(self.url), 8, 2, "GET", {}, None, 10.0)

    def edit(self, data: bytes | None) -> str:
        if data is None:
            self.watched.unlink()
        else:
            _replace(self.watched, data)
        return self.sandbox.wait_for("watch:", 20)

    def serves_a(self) -> None:
        """Mesh A: jason goes to v2, everyone else to v1 (the initial mesh split 50/50)."""
        assert _labels(self.url, 12, {"end-user": "jason"}) == Counter({V2: 12})
        assert _labels(self.url, 24, {}) == Counter({V1: 24})


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    directory = tmp_path_factory.mktemp("reload")
    watched = directory / "mesh.yaml"
    watched.write_text(runnable_copy(MESHES / "even-split.yaml"))
    sandbox = SandboxProcess(
        watched, "--watch", env={"PATH": f"{strict_haproxy(directory)}:{os.environ['PATH']}"}
    )
    try:
        sandbox.wait_for("ready: ")
        state = Running(sandbox, watched)
        assert "reloaded 4 proxies" in state.edit(MESH_A.encode())
        # User 1 in each version: under A, jason's requests reach v2 and everyone else's v1.
        users = parse_target(f"{sandbox.url()}/api/users")
        for headers in ({"end-user": "jason"}, {}):
            [created] = send_all(users, 1, 1, "POST", headers, b'{"username": "a"}', 10.0)
            assert created.label.startswith("201 "), created
        state.serves_a()
        state._client.start()
        yield state
        state._stop.set()
        state._client.join(timeout=30)
        labels = Counter(o.label for o in state.outcomes)
        assert set(labels) == {V1} and labels[V1] > 50, labels
    finally:
        sandbox.stop()
        assert not [pid for pid in sandbox.children if alive(pid)]


MESH_A = runnable_copy(MESHES / "header-match.yaml")


def _mesh_a_with(mutate: object) -> bytes:
    data = yaml.safe_load(MESH_A)
    assert callable(mutate)
    mutate(data)
    return yaml.safe_dump(data, sort_keys=False).encode()


def _unknown_version(data: dict[str, object]) -> None:
    data["services"]["service1"]["routes"][0]["to"] = "v9"  # type: ignore[index]


def _stays(running: Running) -> str:
    return f"watch: {running.watched} not applied, the running mesh stays: "


def test_an_edit_haproxy_refuses_keeps_the_last_good_mesh(running: Running) -> None:
    line = running.edit(with_refused_route(MESH_A).encode())
    assert line == _stays(running) + f"haproxy refuses the config of service1-v1-0-proxy: {REFUSED}"
    running.serves_a()


def test_an_invalid_edit_keeps_the_last_good_mesh(running: Running) -> None:
    line = running.edit(_mesh_a_with(_unknown_version))
    assert line == _stays(running) + (
        "services.service1.routes[0].to: unknown version 'v9'; this service has: v1, v2"
    )
    running.serves_a()


def test_a_deleted_file_keeps_the_last_good_mesh(running: Running) -> None:
    line = running.edit(None)
    assert line == _stays(running) + f"{running.watched}: no such file"
    running.serves_a()


def test_the_running_mesh_restored_reloads_nothing(running: Running) -> None:
    if running.watched.exists():
        running.edit(None)
    assert running.edit(MESH_A.encode()) == (
        f"watch: {running.watched} is the running mesh again; nothing to reload"
    )
    running.serves_a()


def test_a_file_that_is_not_utf8_keeps_the_last_good_mesh(running: Running) -> None:
    line = running.edit(b"\xff\xfe" + MESH_A.encode("utf-16-le"))
    assert line == _stays(running) + (
        f"{running.watched}:1: cannot read the file: it is not UTF-8 text"
    )
    running.serves_a()


def test_a_fifo_in_place_of_the_file_keeps_the_last_good_mesh(running: Running) -> None:
    # Reading a FIFO would block the sandbox (and its Ctrl-C) until someone writes to it.
    fifo = running.watched.with_name("mesh.fifo")
    os.mkfifo(fifo)
    os.replace(fifo, running.watched)
    line = running.sandbox.wait_for("watch:", 20)
    assert line == _stays(running) + f"{running.watched}: is not a regular file"
    running.serves_a()


@pytest.mark.parametrize(
    "garbage",
    [b"{{{ ]]] :::\n\t- -", b"\x00\x01\x02binary\x7f", b"just a string\n", b""],
    ids=["broken-yaml", "control-bytes", "scalar", "empty"],
)
def test_garbage_keeps_the_last_good_mesh(running: Running, garbage: bytes) -> None:
    line = running.edit(garbage)
    # The loader words YAML errors; what the sandbox promises is one line, then nothing changed.
    assert line.startswith(_stays(running) + f"{running.watched}"), line
    assert len(line) > len(_stays(running) + f"{running.watched}") + 10
    running.serves_a()


def test_a_good_edit_after_bad_ones_applies(running: Running) -> None:
    line = running.edit(MESH_A.replace("jason", "bob").encode())
    assert line == f"watch: {running.watched} changed; reloaded 4 proxies"
    assert _labels(running.url, 12, {"end-user": "bob"}) == Counter({V2: 12})
    assert _labels(running.url, 12, {"end-user": "jason"}) == Counter({V1: 12})


def test_an_app_change_is_said_to_need_a_restart(running: Running) -> None:
    data = yaml.safe_load(MESH_A.replace("jason", "bob"))
    data["services"]["service1"]["versions"]["v2"]["env"]["GREETING"] = "Hi"
    line = running.edit(yaml.safe_dump(data, sort_keys=False).encode())
    assert line == (
        f"watch: {running.watched} changed; reloaded 4 proxies; restart the sandbox to apply "
        "the command, env or readiness of service1.v2"
    )
    assert _labels(running.url, 12, {"end-user": "bob"}) == Counter({V2: 12})


def test_a_version_with_no_replicas_may_come_in_a_reload(running: Running) -> None:
    data = yaml.safe_load(MESH_A)
    v3 = dict(data["services"]["service1"]["versions"]["v2"], replicas=0)
    data["services"]["service1"]["versions"]["v3"] = v3
    line = running.edit(yaml.safe_dump(data, sort_keys=False).encode())
    assert line == f"watch: {running.watched} changed; reloaded 4 proxies"
    running.serves_a()
