"""`sailplan sandbox FILE`: run a mesh on 127.0.0.1 until interrupted."""

from __future__ import annotations

import argparse
import errno
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sailplan.loader import load_mesh_text, read_mesh_file
from sailplan.model import Mesh, SpecError
from sailplan.model.service import Version
from sailplan.render.haproxy import ProxyConfig
from sailplan.render.haproxy.ingress import ingress_cert_dir
from sailplan.render.haproxy.security import cert_dir_of
from sailplan.sandbox import netns
from sailplan.sandbox.certs import new_authority, write_identity
from sailplan.sandbox.plan import (
    Plan,
    Proxy,
    check_runnable,
    compile_configs,
    local_env,
    make_plan,
    sandbox_notes,
    topology,
)
from sailplan.sandbox.processes import Process, SandboxError, Supervisor, _executable
from sailplan.sandbox.stop import StopRequested, StopSignal

STARTUP_TIMEOUT = 30.0
POLL_SECONDS = 0.2
WATCH_SECONDS = 0.5
RELOAD_TIMEOUT = 10.0
RESIGNAL_SECONDS = 2.0
CHECK_TIMEOUT = 30.0


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


def distinct_free_ports(taken: Iterable[int] = ()) -> Callable[[], int]:
    """`free_port`, never the same port twice nor one of `taken` (chosen already, not yet bound):
    the kernel may hand a port it just called free to the next probe, and a plan of many proxies
    (five ports each) asks dozens of times. Two listeners given one port: the second proxy
    could not start (the configs say `noreuseport`)."""
    given: set[int] = set(taken)

    def next_port() -> int:
        for _ in range(1000):
            port = free_port()
            if port not in given:
                given.add(port)
                return port
        raise SandboxError("no free port on 127.0.0.1 that this sandbox has not taken already")

    return next_port


def ensure_free(port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise SandboxError(
                    f"127.0.0.1:{port} is already in use; choose another --ingress-port"
                ) from None
            raise SandboxError(
                f"cannot listen on 127.0.0.1:{port}: {error.strerror or error}; "
                "choose another --ingress-port"
            ) from None


def runtime_base() -> str:
    """Where the runtime directory goes: the temporary directory, unless its path is so long that
    HAProxy's socket paths (at most 97 characters) would not fit under it; then /tmp."""
    base = tempfile.gettempdir()
    # <base>/sailplan-XXXXXXXX/.staging/run/NNN/master.sock must stay within 97 characters.
    return base if len(base) <= 40 or not os.access("/tmp", os.W_OK) else "/tmp"


def write_config(directory: Path, config: ProxyConfig) -> None:
    """Swap the files in atomically, so a reload never reads half a config."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in config.files.items():
        staged = directory / f".{name}.new"
        staged.write_text(text, encoding="utf-8")
        os.replace(staged, directory / name)
    # HAProxy reads every *.cfg of the directory: a shard the new config no longer has must go.
    for stale in directory.glob("*.cfg"):
        if stale.name not in config.files:
            stale.unlink()


def check_config(haproxy: str, name: str, directory: Path) -> None:
    """`haproxy -c`; its first alert, in one line, if it refuses the config."""
    # Not -q: with it, HAProxy 2.6 prints nothing at all when it refuses a config.
    try:
        done = subprocess.run(
            [haproxy, "-c", "-f", str(directory)],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=CHECK_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise SandboxError(
            f"haproxy -c did not finish checking the config of {name} in {CHECK_TIMEOUT:g} s"
        ) from None
    except OSError as error:
        raise SandboxError(f"cannot run {haproxy}: {error.strerror or error}") from None
    if done.returncode != 0:
        # The config's own directory is the runtime's (or a staging one): name just the file.
        reason = _first_alert(done.stderr.replace(f"{directory}{os.sep}", ""))
        raise SandboxError(f"haproxy refuses the config of {name}: {reason}")


def _first_alert(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    alert = next((line for line in lines if line.startswith("[ALERT]")), None)
    if alert is None:
        return lines[0] if lines else "no reason given"
    # "[ALERT]    (1234) : config : parsing [...]" -> "parsing [...]"
    reason = alert.split(" : ", 2)[-1].strip()
    # Alerts echo the offending line, which can be a whole regex: keep the report readable.
    return reason if len(reason) <= 400 else reason[:397] + "..."


def one_line(text: str) -> str:
    """A report that must stay one line, whatever a problem echoes."""
    return " ".join(text.split())


def _app_fields(version: Version) -> object:
    return (version.env, version.local, version.readiness)


@dataclass(frozen=True)
class Unreadable:
    """The watched file as it could not be read (missing, not UTF-8, ...): a state, like a text."""

    reason: str


def _http_ok(port: int, path: str) -> bool:
    try:
        # Straight to the port: a proxy from the environment must not get in the way of a health check.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}{path}", timeout=1) as response:
            return 200 <= int(response.status) < 300
    except (OSError, ValueError, http.client.HTTPException):
        # ValueError and HTTPException too: a path urllib cannot send is "not healthy", not a crash.
        return False


def _https_shape(mesh: Mesh) -> tuple[bool, bool]:
    """Whether the ingress serves HTTPS, and redirects plain HTTP: a change needs new ports."""
    tls = mesh.ingress.tls if mesh.ingress is not None else None
    return tls is not None, tls is not None and tls.https_redirect


class Sandbox:
    # Given by run(): the stop handlers are installed only once the mesh was read and checked.
    stop: StopSignal

    def __init__(
        self,
        mesh_file: Path,
        ingress_port: int,
        quiet: bool,
        access_log: bool = False,
        isolation: str = "explicit-proxy",
    ) -> None:
        self.mesh_file = mesh_file
        self.base = mesh_file.resolve().parent
        # The text of the mesh that runs: the last good one once edits are reloaded.
        self.text = read_mesh_file(mesh_file)
        self.mesh: Mesh = load_mesh_text(self.text, str(mesh_file))
        # The mesh the apps were started with: a reload changes proxies, never a running app.
        self.started = self.mesh
        check_runnable(self.mesh, self.base, os.environ)
        self.haproxy = haproxy_binary()
        if ingress_port:
            ensure_free(ingress_port)
        # netns: a namespace per replica, made by run() inside its clean-up like the runtime root.
        self.network = netns.Network() if isolation == "netns" else None
        self.plan: Plan = make_plan(
            self.mesh,
            distinct_free_ports([ingress_port]),
            ingress_port,
            transparent=self.network is not None,
        )
        self.supervisor = Supervisor(quiet=quiet, access_log=access_log)
        # --access-log asks the proxies for their lines, whatever the mesh's `accessLog` says.
        self.access_log = access_log
        # Made by run(), inside its clean-up: nothing is left behind, whenever a stop comes.
        self.runtime_root = Path()
        self.proxies: dict[str, Proxy] = {}
        # This run's mesh CA: every proxy gets a certificate of its identity from it, in the
        # runtime directory, removed with it.
        self.authority = new_authority()
        # The ingress's HTTPS certificate (`ingress.tls`) comes from a CA of its own, made per
        # run: clients trust it with `sailplan traffic --cacert`, and nothing of the mesh.
        self.ingress_authority = new_authority("sailplan sandbox ingress CA")

    # -- starting ------------------------------------------------------------------------------

    def app_env(self, service: str, version: str, app_port: int, outbound: int) -> dict[str, str]:
        base = self.mesh_file.resolve().parent
        proxy = f"http://127.0.0.1:{outbound}"
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        env = {
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
        if self.network is not None:
            # iptables capture every call, as in a cluster; a proxy from the host's environment
            # is unreachable from the pod's namespace and would only be in the way.
            for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
                env.pop(name, None)
                env.pop(name.lower(), None)
        return env

    def pods(self) -> dict[str, str] | None:
        """Instance name -> its namespace's address (netns isolation), else None."""
        if self.network is None:
            return None
        return {name: pod.address for name, pod in self.network.pods.items()}

    def create_network(self) -> None:
        assert self.network is not None
        removed = netns.clean_stale()
        if removed:
            self.supervisor.say(
                f"netns: removed what a sandbox that did not stop left: {', '.join(removed)}"
            )
        namespace = self.mesh.target_namespace
        suffixes = ("", f".{namespace}", f".{namespace}.svc", f".{namespace}.svc.cluster.local")
        self.network.create(
            [instance.name for instance in self.plan.instances],
            {name: [name + suffix for suffix in suffixes] for name in sorted(self.mesh.services)},
        )

    def start(self) -> None:
        if self.network is not None:
            self.create_network()
            self.stop.check()
        for proxy in compile_configs(
            self._logged(self.mesh), self.plan, self.runtime_root, self.pods()
        ):
            write_config(proxy.config_dir, proxy.config)
            self._certify(proxy)
            proxy.runtime_dir.mkdir(parents=True, exist_ok=True)
            check_config(self.haproxy, proxy.name, proxy.config_dir)
            self.proxies[proxy.name] = proxy
            self.stop.check()
        for instance in self.plan.instances:
            local = self.mesh.services[instance.service].versions[instance.version].local
            assert local is not None
            cwd = self.base / local.cwd if local.cwd else self.base
            env = self.app_env(
                instance.service, instance.version, instance.app_port, instance.sidecar.outbound
            )
            self.supervisor.start(
                instance.name,
                self._in_pod(instance.name, local.command, cwd, env),
                cwd=cwd,
                env=env,
            )
            self.stop.check()
        for name, proxy in self.proxies.items():
            self.stop.check()
            command = [
                self.haproxy,
                "-W",
                "-db",
                "-S",
                str(proxy.runtime_dir / "master.sock"),
                "-f",
                str(proxy.config_dir),
            ]
            pod = name.removesuffix("-proxy")
            if self.network is not None and pod in self.network.pods:
                command = self.network.proxy_command(pod, command, self.runtime_root)
            started = self.supervisor.start(name, command, proxy=True)
            if self.network is not None and pod not in self.network.pods:
                # The gateway runs in the host's namespace: a crash would leave it running.
                self.network.record(self.runtime_root, [(started.pid, command[-1])])

    def _same_identities(self, mesh: Mesh) -> Mesh:
        """`mesh` with the identities the sandbox started with. Proxies reload one by one: were a
        caller to expect a new identity while its callee still shows the old one (or the other
        way round), requests would fail in between. A cluster changes them by redeploying."""
        fields = ("name", "namespace", "trust_domain")
        started = {field: getattr(self.started, field) for field in fields}
        if all(getattr(mesh, field) == value for field, value in started.items()):
            return mesh
        return mesh.model_copy(update=started)

    def _certify(self, proxy: Proxy) -> None:
        """The proxy's certificate directory, as the cluster mounts its Secret (mode 0600)."""
        write_identity(Path(cert_dir_of(str(proxy.config_dir))), self.authority, proxy.identity)
        if proxy.ingress_names is not None:
            write_identity(
                Path(ingress_cert_dir(str(proxy.config_dir))),
                self.ingress_authority,
                "",
                list(proxy.ingress_names),
            )

    def ingress_ca_file(self) -> Path:
        """The CA of the ingress's HTTPS certificate this run (`ingress.tls`)."""
        return Path(ingress_cert_dir(str(self.runtime_root / "gateway"))) / "ca.crt"

    def _in_pod(
        self, instance: str, command: list[str], cwd: Path, env: dict[str, str]
    ) -> list[str]:
        if self.network is None:
            return command
        # Found first, as the supervisor does: a missing program is "cannot start", not an exit
        # of `ip netns exec`.
        try:
            program = _executable(command[0], cwd, env)
        except OSError as error:
            raise SandboxError(
                f"{instance}: cannot start {command[0]!r}: {error.strerror or error}"
            ) from None
        return self.network.app_command(instance, [program, *command[1:]])

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
            still = []
            for check in pending:
                self.stop.check()
                if not self._probe(*check):
                    still.append(check)
            pending = still
            if not pending:
                return
            if time.monotonic() > deadline:
                names = ", ".join(name for name, _, _ in pending)
                raise SandboxError(f"not healthy after {STARTUP_TIMEOUT:.0f}s: {names}")
            if self.stop.wait(POLL_SECONDS):
                raise StopRequested

    def _probe(self, name: str, port: int, path: str | None) -> bool:
        """The check on 127.0.0.1 where the process runs: in its pod's namespace, if it has one."""
        pod = name.removesuffix("-proxy")
        if self.network is None or pod not in self.network.pods:
            return self._healthy(name, port, path)
        with netns.entered(self.network.pods[pod].namespace):
            return self._healthy(name, port, path)

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
        pods = self.pods() or {}
        for instance in self.plan.instances:
            # The pod's address, where the gateway and other pods reach it (netns isolation).
            at = pods.get(instance.name, "")
            rows.append((instance.name, str(pids[instance.name]), f"app {at}:{instance.app_port}"))
            s = instance.sidecar
            # The port other sidecars and the gateway dial, with mTLS.
            mtls = f"  mtls :{s.mtls}" if self.mesh.mtls != "disable" else ""
            rows.append(
                (
                    f"{instance.name}-proxy",
                    str(pids[f"{instance.name}-proxy"]),
                    f"outbound :{s.outbound}  inbound :{s.inbound}{mtls}  admin :{s.admin}  "
                    f"health :{s.health}",
                )
            )
        if self.plan.gateway is not None:
            rows.append(
                (
                    "gateway",
                    str(pids["gateway"]),
                    f"ingress :{self.plan.gateway_port}"
                    + (f"  redirect :{self.plan.redirect_port}" if self.plan.redirect_port else "")
                    + f"  admin :{self.plan.gateway.admin}",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        return "\n".join(
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
        )

    # -- hot reload ------------------------------------------------------------------------------

    def reload(self, state: str | Unreadable) -> None:
        """Apply an edit, or say in one line why not: the running mesh then stays exactly as it
        was, the last good one, and serves on undisturbed."""
        if state == self.text:  # e.g. a deleted file restored, a bad edit undone
            self.supervisor.say(
                f"watch: {self.mesh_file} is the running mesh again; nothing to reload"
            )
            return
        if isinstance(state, Unreadable):
            verdict: str | Mesh = state.reason
        else:
            verdict = self._verdict(state)
        if isinstance(verdict, str) or isinstance(state, Unreadable):
            self.supervisor.say(
                one_line(f"watch: {self.mesh_file} not applied, the running mesh stays: {verdict}")
            )
            return
        try:
            self._apply(verdict, state)
        # Past the checks, the proxies may already have the new config: say so, and run on.
        except Exception as error:
            self.supervisor.say(
                one_line(
                    f"watch: {self.mesh_file}: reloading failed midway ({type(error).__name__}: "
                    f"{error}); this is a bug in sailplan, please report it, and restart the sandbox"
                )
            )

    def _verdict(self, text: str) -> str | Mesh:
        """The mesh `text` describes, compiled and checked aside; or why it cannot run."""
        try:
            return self._check(text)
        # Any failure, a bug included: an edit must never stop a running sandbox.
        except Exception as error:
            return (
                f"sailplan failed on it ({type(error).__name__}: {error}); "
                "this is a bug in sailplan, please report it"
            )

    def _check(self, text: str) -> str | Mesh:
        try:
            mesh = load_mesh_text(text, str(self.mesh_file))
            check_runnable(mesh, self.mesh_file.resolve().parent, os.environ)
        except SpecError as error:
            shown = "; ".join(str(problem) for problem in error.problems[:3])
            more = len(error.problems) - 3
            if more > 0:
                shown += f" (and {more} more: sailplan check {self.mesh_file} lists them)"
            return shown
        if (
            topology(mesh) != self.plan.topology()
            or ((mesh.ingress is None) != (self.mesh.ingress is None))
            or _https_shape(mesh) != _https_shape(self.mesh)
        ):
            return (
                "services, versions, replicas or the ingress changed; restart the sandbox to apply "
                "them (routes and policies reload live)"
            )
        # Compiled and checked aside first: the live config files change only once every proxy's
        # new config passed `haproxy -c`, so a refused edit leaves nothing half-applied.
        staging = self.runtime_root / ".staging"
        try:
            for proxy in compile_configs(
                self._logged(self._same_identities(mesh)), self.plan, staging, self.pods()
            ):
                write_config(proxy.config_dir, proxy.config)
                self._certify(proxy)
                check_config(self.haproxy, proxy.name, proxy.config_dir)
        except (SpecError, SandboxError) as error:
            return str(error)
        except OSError as error:
            return f"cannot write its configs: {error.strerror or error}"
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return mesh

    def _logged(self, mesh: Mesh) -> Mesh:
        """The mesh the proxies are compiled from: with `accessLog` on under --access-log."""
        if self.access_log and not mesh.access_log:
            return mesh.model_copy(update={"access_log": True})
        return mesh

    def _apply(self, mesh: Mesh, text: str) -> None:
        if self._same_identities(mesh) is not mesh:
            self.supervisor.say(
                "note: name, namespace and trustDomain make the workloads' identities; the "
                "sandbox keeps the ones it started with until it restarts"
            )
        staged = list(
            compile_configs(
                self._logged(self._same_identities(mesh)),
                self.plan,
                self.runtime_root,
                self.pods(),
            )
        )
        try:
            for proxy in staged:
                write_config(proxy.config_dir, proxy.config)
                # An edit may change identities (trustDomain): each proxy's certificate follows.
                self._certify(proxy)
        except OSError as error:
            # Nothing signalled: the proxies run on; the next edit that applies rewrites every file.
            self.supervisor.say(
                f"watch: {self.mesh_file} not applied, the running mesh stays: "
                f"cannot write its configs: {error.strerror or error}"
            )
            return
        proxies = [p for p in self.supervisor.processes if p.name in self.proxies]
        before = {p.name: (p.loads, p.failures) for p in proxies}
        # SIGUSR2: each master re-reads its config and hands its listening sockets to new workers.
        self.supervisor.signal_all(signal.SIGUSR2, lambda name: name in self.proxies)
        for note in sandbox_notes(mesh):
            if note not in sandbox_notes(self.mesh):
                self.supervisor.say(note)
        self.mesh = mesh
        self.text = text
        # Say "reloaded" only once every new worker serves: a request sent after it sees the change.
        deadline = time.monotonic() + RELOAD_TIMEOUT

        def settled(p: Process) -> bool:
            return p.loads > before[p.name][0] or p.failures > before[p.name][1]

        resend = time.monotonic() + RESIGNAL_SECONDS
        while not all(settled(p) for p in proxies) and time.monotonic() < deadline:
            if self.stop.wait(0.05):
                return
            if time.monotonic() >= resend:
                # A master re-executing itself loses a SIGUSR2 that arrives meanwhile; another
                # reload of the same files costs nothing.
                self.supervisor.signal_all(
                    signal.SIGUSR2, {p.name for p in proxies if not settled(p)}.__contains__
                )
                resend = time.monotonic() + RESIGNAL_SECONDS
        failed = [p.name for p in proxies if p.failures > before[p.name][1]]
        late = [p.name for p in proxies if not settled(p)]
        if failed:
            self.supervisor.say(
                f"watch: {self.mesh_file} changed; {', '.join(failed)} could not load it and "
                "keep serving the previous config"
            )
        elif late:
            self.supervisor.say(
                f"watch: {self.mesh_file} changed; still reloading: {', '.join(late)}"
            )
        else:
            self.supervisor.say(
                f"watch: {self.mesh_file} changed; reloaded {len(staged)} proxies"
                + self._apps_behind(mesh)
            )

    def _apps_behind(self, mesh: Mesh) -> str:
        """The apps keep running as started: say which ones the file now describes otherwise."""
        changed = []
        for service_name, service in mesh.services.items():
            started = self.started.services.get(service_name)
            for version_name, version in service.versions.items():
                # A version with no replicas runs nothing, so it may come and go in a reload.
                before = started.versions.get(version_name) if started else None
                if (
                    before is not None
                    and before.replicas > 0
                    and _app_fields(version) != _app_fields(before)
                ):
                    changed.append(f"{service_name}.{version_name}")
        if not changed:
            return ""
        return (
            f"; restart the sandbox to apply the command, env or readiness of {', '.join(changed)}"
        )

    def _settled_state(self) -> str | Unreadable:
        """The mesh file once it stops changing: an editor that truncates, then writes, must not
        have its half-written file reported as invalid."""
        previous: str | Unreadable | None = None
        for _ in range(10):
            state = self._read_state()
            if state == previous:
                return state
            previous = state
            if self.stop.wait(0.1):
                break
        return self._read_state() if previous is None else previous

    def _read_state(self) -> str | Unreadable:
        try:
            # A FIFO or a device would block the loop (and Ctrl-C with it) or never end.
            if self.mesh_file.exists() and not self.mesh_file.is_file():
                return Unreadable(f"{self.mesh_file}: is not a regular file")
            return read_mesh_file(self.mesh_file)
        except SpecError as error:
            return Unreadable(str(error))

    # -- the whole run -----------------------------------------------------------------------------

    def run(self, watch: bool, stop: StopSignal) -> int:
        self.stop = stop
        try:
            self.runtime_root = Path(tempfile.mkdtemp(prefix="sailplan-", dir=runtime_base()))
            try:
                self.start()
                self.wait_until_healthy()
            except StopRequested:
                self.supervisor.say("stopping")
                return 0
            https = _https_shape(self.mesh)[0]
            url = (
                f"{'https' if https else 'http'}://127.0.0.1:{self.plan.gateway_port}"
                if self.plan.gateway_port
                else "(no ingress)"
            )
            self.supervisor.say(self.table())
            for note in sandbox_notes(self.mesh):
                self.supervisor.say(note)
            if https:
                ca = self.ingress_ca_file()
                self.supervisor.say(
                    f"ingress certificate: signed by this run's CA {ca} (sailplan traffic "
                    f"--cacert {ca}, or --insecure)"
                )
            self.supervisor.say(f"ready: {url}")
            seen: str | Unreadable = self.text
            next_watch = time.monotonic()
            while not self.stop.requested:
                dead = self.supervisor.dead()
                if dead:
                    raise SandboxError(self.supervisor.describe_death(dead[0]))
                if watch and time.monotonic() >= next_watch:
                    next_watch = time.monotonic() + WATCH_SECONDS
                    state = self._settled_state()
                    # Each change is handled once: a refused edit is reported once, not every poll.
                    if state != seen and not self.stop.requested:
                        seen = state
                        self.reload(state)
                self.stop.wait(POLL_SECONDS)
            self.supervisor.say("stopping")
            return 0
        finally:
            self.supervisor.stop_all(hurry=lambda: self.stop.insisted)
            if self.network is not None:
                self.network.remove()
            if self.runtime_root != Path():
                shutil.rmtree(self.runtime_root, ignore_errors=True)


def isolation(asked: str | None) -> str:
    """netns where namespaces can be made (unless asked otherwise), explicit-proxy elsewhere."""
    if asked is not None:
        if asked == "netns" and (reason := netns.unavailable()) is not None:
            raise SandboxError(f"--isolation netns is not possible here: {reason}")
        return asked
    return "netns" if netns.unavailable() is None else "explicit-proxy"


def run_sandbox(args: argparse.Namespace) -> int:
    if not 0 <= args.ingress_port <= 65535:
        print(
            f"error: --ingress-port {args.ingress_port} is not a port; use 1 to 65535, or leave it "
            "out for any free port",
            file=sys.stderr,
        )
        return 2
    if args.watch and str(args.file) == "-":
        print("error: --watch needs a mesh file to watch, not standard input (-)", file=sys.stderr)
        return 2
    try:
        # Read and checked before the stop handlers are in place: nothing runs yet, and Ctrl-C
        # must still end a read that blocks (a FIFO, a terminal on `-`) the default way.
        sandbox = Sandbox(
            Path(args.file),
            args.ingress_port,
            args.quiet,
            args.access_log,
            isolation(args.isolation),
        )
        with StopSignal() as stop:
            return sandbox.run(args.watch, stop)
    except SandboxError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (SpecError, OSError):
        raise  # the CLI reports these: bad input exits 2, an I/O failure 1
    # A bug must still end in one line, not a traceback.
    except Exception as error:
        print(
            one_line(
                f"error: the sandbox failed unexpectedly ({type(error).__name__}: {error}); "
                "this is a bug in sailplan, please report it"
            ),
            file=sys.stderr,
        )
        return 1
