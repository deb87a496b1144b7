"""`sailplan sandbox FILE`: run a mesh on 127.0.0.1 until interrupted."""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from types import FrameType

from sailplan.loader import load_mesh_text, read_mesh_file
from sailplan.model import Mesh, SpecError
from sailplan.render.haproxy import ProxyConfig
from sailplan.sandbox.plan import Plan, check_runnable, compile_configs, local_env, make_plan
from sailplan.sandbox.processes import SandboxError, Supervisor

STARTUP_TIMEOUT = 30.0
POLL_SECONDS = 0.2
WATCH_SECONDS = 0.5
RELOAD_TIMEOUT = 10.0


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise SandboxError(
            "haproxy is not installed: run `make os-deps` (or apt-get install haproxy)"
        )
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ensure_free(port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise SandboxError(
                f"127.0.0.1:{port} is already in use; choose another --ingress-port"
            ) from None


def write_config(directory: Path, config: ProxyConfig) -> None:
    """Swap the files in atomically, so a reload never reads half a config."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in config.files.items():
        staged = directory / f".{name}.new"
        staged.write_text(text, encoding="utf-8")
        os.replace(staged, directory / name)


def check_config(haproxy: str, directory: Path) -> None:
    done = subprocess.run(
        [haproxy, "-c", "-q", "-f", str(directory / "haproxy.cfg")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if done.returncode != 0:
        raise SandboxError(
            f"haproxy rejected the config in {directory}: {done.stderr.strip() or done.stdout.strip()}"
        )


def _http_ok(port: int, path: str) -> bool:
    try:
        # Straight to the port: a proxy from the environment must not get in the way of a health check.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}{path}", timeout=1) as response:
            return 200 <= int(response.status) < 300
    except OSError:
        return False


class Sandbox:
    def __init__(self, mesh_file: Path, ingress_port: int, quiet: bool) -> None:
        self.mesh_file = mesh_file
        self.text = read_mesh_file(mesh_file)
        self.mesh: Mesh = load_mesh_text(self.text, str(mesh_file))
        check_runnable(self.mesh, mesh_file.resolve().parent, os.environ)
        self.haproxy = haproxy_binary()
        if ingress_port:
            ensure_free(ingress_port)
        self.plan: Plan = make_plan(self.mesh, free_port, ingress_port)
        self.supervisor = Supervisor(quiet=quiet)
        self.runtime_root = Path(tempfile.mkdtemp(prefix="sailplan-"))
        self.proxy_dirs: dict[str, Path] = {}

    # -- starting ------------------------------------------------------------------------------

    def app_env(self, service: str, version: str, app_port: int, outbound: int) -> dict[str, str]:
        base = self.mesh_file.resolve().parent
        proxy = f"http://127.0.0.1:{outbound}"
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        return {
            **os.environ,
            **local_env(self.mesh, service, version, base, os.environ),
            "PORT": str(app_port),
            "HTTP_PROXY": proxy,
            "http_proxy": proxy,
            # Every call goes through the sidecar, as iptables would make it in a cluster.
            "NO_PROXY": "",
            "no_proxy": "",
            "PATH": path,
            "PYTHONUNBUFFERED": "1",
        }

    def start(self) -> None:
        for name, directory, config in compile_configs(self.mesh, self.plan, self.runtime_root):
            write_config(directory, config)
            check_config(self.haproxy, directory)
            self.proxy_dirs[name] = directory
        base = self.mesh_file.resolve().parent
        for instance in self.plan.instances:
            local = self.mesh.services[instance.service].versions[instance.version].local
            assert local is not None
            self.supervisor.start(
                instance.name,
                local.command,
                cwd=base / local.cwd if local.cwd else base,
                env=self.app_env(
                    instance.service, instance.version, instance.app_port, instance.sidecar.outbound
                ),
            )
        for name, directory in self.proxy_dirs.items():
            self.supervisor.start(
                name,
                [
                    self.haproxy,
                    "-W",
                    "-db",
                    "-S",
                    str(directory / "master.sock"),
                    "-f",
                    str(directory / "haproxy.cfg"),
                ],
            )

    def health_checks(self) -> list[tuple[str, int, str | None]]:
        checks: list[tuple[str, int, str | None]] = []
        for instance in self.plan.instances:
            readiness = self.mesh.services[instance.service].versions[instance.version].readiness
            checks.append((instance.name, instance.app_port, readiness.path if readiness else None))
            checks.append((f"{instance.name}-proxy", instance.sidecar.health, "/healthz/ready"))
        if self.plan.gateway is not None:
            checks.append(("gateway", self.plan.gateway.health, "/healthz/ready"))
        return checks

    def wait_until_healthy(self) -> None:
        pending = self.health_checks()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while pending:
            dead = self.supervisor.dead()
            if dead:
                raise SandboxError(self.supervisor.describe_death(dead[0]))
            pending = [check for check in pending if not self._healthy(*check)]
            if not pending:
                return
            if time.monotonic() > deadline:
                names = ", ".join(name for name, _, _ in pending)
                raise SandboxError(f"not healthy after {STARTUP_TIMEOUT:.0f}s: {names}")
            time.sleep(POLL_SECONDS)

    @staticmethod
    def _healthy(name: str, port: int, path: str | None) -> bool:
        if path is not None:
            return _http_ok(port, path)
        with socket.socket() as probe:
            probe.settimeout(0.5)
            return probe.connect_ex(("127.0.0.1", port)) == 0

    def table(self) -> str:
        rows = [("process", "pid", "listens on")]
        pids = {p.name: p.pid for p in self.supervisor.processes}
        for instance in self.plan.instances:
            rows.append((instance.name, str(pids[instance.name]), f"app :{instance.app_port}"))
            s = instance.sidecar
            rows.append(
                (
                    f"{instance.name}-proxy",
                    str(pids[f"{instance.name}-proxy"]),
                    f"outbound :{s.outbound}  inbound :{s.inbound}  admin :{s.admin}  health :{s.health}",
                )
            )
        if self.plan.gateway is not None:
            rows.append(
                (
                    "gateway",
                    str(pids["gateway"]),
                    f"ingress :{self.plan.gateway_port}  admin :{self.plan.gateway.admin}",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        return "\n".join(
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
        )

    # -- hot reload ------------------------------------------------------------------------------

    def reload(self, text: str) -> None:
        try:
            mesh = load_mesh_text(text, str(self.mesh_file))
            check_runnable(mesh, self.mesh_file.resolve().parent, os.environ)
        except SpecError as error:
            lines = "\n".join(f"  {problem}" for problem in error.problems)
            self.supervisor.say(
                f"watch: {self.mesh_file} is invalid; keeping the running mesh:\n{lines}"
            )
            return
        if make_plan(mesh, lambda: 0).topology() != self.plan.topology() or (
            (mesh.ingress is None) != (self.mesh.ingress is None)
        ):
            self.supervisor.say(
                "watch: services, versions, replicas or the ingress changed; restart the sandbox to apply "
                "them (routes and policies reload live). Keeping the running mesh."
            )
            return
        staged = list(compile_configs(mesh, self.plan, self.runtime_root))
        for _name, directory, config in staged:
            write_config(directory, config)
            check_config(self.haproxy, directory)
        proxies = [p for p in self.supervisor.processes if p.name in self.proxy_dirs]
        before = {p.name: p.loads for p in proxies}
        # SIGUSR2: each master re-reads its config and hands its listening sockets to new workers.
        self.supervisor.signal_all(signal.SIGUSR2, lambda name: name in self.proxy_dirs)
        self.mesh = mesh
        # Say "reloaded" only once every new worker serves: a request sent after it sees the change.
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while any(p.loads <= before[p.name] for p in proxies) and time.monotonic() < deadline:
            time.sleep(0.05)
        late = [p.name for p in proxies if p.loads <= before[p.name]]
        if late:
            self.supervisor.say(
                f"watch: {self.mesh_file} changed; still reloading: {', '.join(late)}"
            )
        else:
            self.supervisor.say(f"watch: {self.mesh_file} changed; reloaded {len(staged)} proxies")

    def _settled_text(self) -> str:
        """The mesh file once it stops changing: an editor that truncates, then writes, must not
        have its half-written file reported as invalid."""
        previous = None
        for _ in range(10):
            try:
                text = read_mesh_file(self.mesh_file)
            except SpecError:
                return self.text
            if text == previous:
                return text
            previous = text
            time.sleep(0.1)
        return previous or self.text

    # -- the whole run -----------------------------------------------------------------------------

    def run(self, watch: bool, stop: threading.Event) -> int:
        try:
            self.start()
            self.wait_until_healthy()
            url = (
                f"http://127.0.0.1:{self.plan.gateway_port}"
                if self.plan.gateway_port
                else "(no ingress)"
            )
            self.supervisor.say(self.table())
            self.supervisor.say(f"ready: {url}")
            fingerprint = hashlib.sha256(self.text.encode()).hexdigest()
            next_watch = time.monotonic()
            while not stop.is_set():
                dead = self.supervisor.dead()
                if dead:
                    raise SandboxError(self.supervisor.describe_death(dead[0]))
                if watch and time.monotonic() >= next_watch:
                    next_watch = time.monotonic() + WATCH_SECONDS
                    text = self._settled_text()
                    current = hashlib.sha256(text.encode()).hexdigest()
                    if current != fingerprint:
                        fingerprint = current
                        self.reload(text)
                stop.wait(POLL_SECONDS)
            self.supervisor.say("stopping")
            return 0
        finally:
            self.supervisor.stop_all()
            shutil.rmtree(self.runtime_root, ignore_errors=True)


def run_sandbox(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        sandbox = Sandbox(Path(args.file), args.ingress_port, args.quiet)
        try:
            return sandbox.run(args.watch, stop)
        except SandboxError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    except SandboxError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
