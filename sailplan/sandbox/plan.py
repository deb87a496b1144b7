"""What the sandbox runs and where: pure, so it can be tested without starting anything."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from sailplan.model import Mesh, Problem, SpecError
from sailplan.model.errors import shown
from sailplan.model.security import ingress_identity, service_identity
from sailplan.model.service import URL_PATH, EnvRef
from sailplan.render.haproxy import (
    ProxyConfig,
    ProxyPorts,
    SidecarCompiler,
    StaticEndpoints,
    compile_gateway,
)


@dataclass(frozen=True)
class Instance:
    """One replica of one version: the app and its sidecar."""

    service: str
    version: str
    replica: int
    app_port: int
    sidecar: ProxyPorts

    @property
    def name(self) -> str:
        return f"{self.service}-{self.version}-{self.replica}"


@dataclass(frozen=True)
class Plan:
    instances: tuple[Instance, ...]
    gateway_port: int | None
    gateway: ProxyPorts | None
    # The plain listener of `ingress.tls.httpsRedirect`, which answers with a redirect to HTTPS.
    redirect_port: int | None = None

    def topology(self) -> tuple[tuple[str, str, int], ...]:
        """What a route change cannot alter without a restart."""
        return tuple((i.service, i.version, i.replica) for i in self.instances)

    def endpoints(
        self, pods: Mapping[str, str] | None = None, *, mtls: bool = False
    ) -> StaticEndpoints:
        """A version's endpoints are its sidecars' inbound listeners, as pod IPs are in a cluster.
        With `pods` (instance name -> its namespace's address) they are pod IPs: the callee's
        iptables hand the connection to its sidecar, as in a cluster. With `mtls`, also the
        sidecars' mTLS listeners, which other sidecars dial in a cluster too."""
        plain: dict[str, dict[str, list[tuple[str, int]]]] = {}
        secure: dict[str, dict[str, list[tuple[str, int]]]] = {}
        for instance in self.instances:
            host = "127.0.0.1" if pods is None else pods[instance.name]
            port = instance.sidecar.inbound if pods is None else instance.app_port
            for found, address in ((plain, (host, port)), (secure, (host, instance.sidecar.mtls))):
                found.setdefault(instance.service, {}).setdefault(instance.version, []).append(
                    address
                )
        return StaticEndpoints(plain, secure if mtls else None)


def check_runnable(
    mesh: Mesh, base: Path | None = None, environ: Mapping[str, str] | None = None
) -> None:
    """What the sandbox needs beyond a valid mesh, and what it cannot honour, as problems (exit 2).

    The model refuses most of these too; the sandbox checks again so that nothing it is handed can
    crash it. `base` is the mesh file's directory: given, each version's `local.cwd` must exist
    and each variable the cluster reads from a Secret or ConfigMap needs a value (`environ`, then
    `local.envFile`)."""
    problems: list[Problem] = []
    if mesh.data_plane != "builtin":
        problems += _builtin_problems(mesh)
    for service_name, service in mesh.services.items():
        for version_name, version in service.versions.items():
            at = f"services.{service_name}.versions.{version_name}"
            if version.local is None:
                if version.replicas > 0:
                    problems.append(
                        Problem(
                            f"{at}.local",
                            "the sandbox needs a local command to run this version, "
                            "e.g. local: {command: [python, app.py]}",
                        )
                    )
                continue
            problems += _process_problems(at, version.env, version.local.env)
            problems += [
                Problem(f"{at}.local.command[{index}]", "contains a NUL byte, which no command can")
                for index, argument in enumerate(version.local.command)
                if "\0" in argument
            ]
            if version.readiness is not None and not URL_PATH.fullmatch(version.readiness.path):
                problems.append(
                    Problem(
                        f"{at}.readiness.path",
                        f"the sandbox cannot request {shown(version.readiness.path)}: a URL path "
                        "has no spaces or control characters; percent-encode them (a space is %20)",
                    )
                )
            if base is not None and version.local.cwd is not None:
                cwd = base / version.local.cwd
                if "\0" in version.local.cwd:
                    problems.append(Problem(f"{at}.local.cwd", "contains a NUL byte"))
                elif not cwd.is_dir():
                    problems.append(Problem(f"{at}.local.cwd", f"no such directory: {cwd}"))
            if base is not None and version.replicas > 0:
                try:
                    local_env(mesh, service_name, version_name, base, environ or {})
                except SpecError as error:
                    problems += error.problems
    if problems:
        raise SpecError(problems)


def _process_problems(at: str, *envs: Mapping[str, object] | None) -> list[Problem]:
    where = (f"{at}.env", f"{at}.local.env")
    return [
        Problem(f"{prefix}.{name}", "contains a NUL byte, which no process environment can hold")
        for prefix, env in zip(where, envs, strict=True)
        for name, value in (env or {}).items()
        if isinstance(value, str) and "\0" in value
    ]


def _builtin_problems(mesh: Mesh) -> list[Problem]:
    """An istio mesh runs in the sandbox on the builtin plane: what that plane cannot compile."""
    data = {**mesh.to_dict(), "dataPlane": "builtin"}
    try:
        Mesh.parse(data)
    except SpecError as error:
        return [
            Problem(p.path, f"{p.message} (the sandbox runs builtin HAProxy sidecars)")
            for p in error.problems
        ]
    return []


def sandbox_notes(mesh: Mesh) -> list[str]:
    """One line for each thing the sandbox runs differently from the cluster: said, not hidden."""
    notes = []
    if mesh.data_plane == "istio":
        notes.append(
            "note: dataPlane is istio; the sandbox runs the builtin HAProxy sidecars in Envoy's "
            "place, with the same routes and policies"
        )
    if mesh.mtls == "permissive":
        notes.append(
            "note: mtls is permissive; sidecars call each other over mTLS with this run's "
            "certificates, and their inbound ports also accept plaintext"
        )
    if mesh.ingress is not None and "*" not in mesh.ingress.hosts:
        # As in the cluster, the gateway answers 404 to any other Host, 127.0.0.1 included.
        hosts = mesh.ingress.hosts
        example = hosts[0].replace("*", "a", 1)
        notes.append(
            f"note: the ingress answers only for host{'s' if len(hosts) > 1 else ''} "
            f"{', '.join(hosts)}; send one, e.g. curl -H 'Host: {example}' <the ready URL>"
        )
    return notes


# `NAME=value`, optionally after `export `; the value may be in single or double quotes.
_ENV_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")


def read_env_file(path: Path, at: str) -> dict[str, str]:
    """The variables of a `.env`-style file: `NAME=value` lines, blank lines and `#` comments.

    Quotes around a whole value are removed (nothing inside is expanded); `at` is the spec path
    that named the file, for the problem when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem(at, f"the env file {str(path)!r} does not exist")]) from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "it is not UTF-8 text"
        raise SpecError(
            [Problem(at, f"cannot read the env file {str(path)!r}: {reason}")]
        ) from None
    variables: dict[str, str] = {}
    problems = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        found = _ENV_LINE.fullmatch(line)
        if not found or "\x00" in line:
            problems.append(
                Problem(
                    f"{path}:{number}",
                    "not a NAME=value line (names are letters, digits and '_'; # starts a comment)",
                    number,
                )
            )
            continue
        name, value = found.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        variables[name] = value
    if problems:
        raise SpecError(problems)
    return variables


def local_env(
    mesh: Mesh, service: str, version: str, base_dir: Path, environ: Mapping[str, str]
) -> dict[str, str]:
    """The variables the sandbox sets for a version's process over the developer's environment.

    The version's inline `env`, then `local.env`, win over everything; a variable the cluster
    reads from a Secret or ConfigMap takes its value from the environment or, failing that, from
    `local.envFile` (as docker compose and dotenv do, the environment wins over the file). The
    file's other variables are set too unless the environment has them: they stand in for
    `envFrom`. A reference with no value anywhere is a problem: the app would start without it."""
    spec = mesh.services[service].versions[version]
    at = f"services.{service}.versions.{version}"
    env_file = spec.local.env_file if spec.local else None
    file_env = (
        read_env_file(base_dir / env_file, f"{at}.local.envFile") if env_file is not None else {}
    )
    env = {name: value for name, value in file_env.items() if name not in environ}
    problems = []
    for name, value in (spec.env or {}).items():
        if not isinstance(value, EnvRef):
            env[name] = value
        elif name in environ:
            env[name] = environ[name]
        elif name in file_env:
            env[name] = file_env[name]
        else:
            source = "Secret" if value.kind == "secretKeyRef" else "ConfigMap"
            where = (
                f"add it to {env_file}"
                if env_file is not None
                else "name a file that has it in local: {envFile: .env}"
            )
            problems.append(
                Problem(
                    f"{at}.env.{name}",
                    f"the sandbox has no value for {name} (in a cluster: {source} "
                    f"{value.ref.name!r}, key {value.ref.key!r}); set it in your environment or "
                    f"{where}",
                )
            )
    if problems:
        raise SpecError(problems)
    env.update((spec.local.env if spec.local else None) or {})
    return env


def loopback_ports(next_port: Callable[[], int]) -> ProxyPorts:
    """A proxy's listeners on 127.0.0.1, each on a port `next_port` gives."""
    return ProxyPorts(
        next_port(), next_port(), next_port(), next_port(), "127.0.0.1", mtls=next_port()
    )


def topology(mesh: Mesh) -> tuple[tuple[str, str, int], ...]:
    """Every replica of the mesh as (service, version, replica), in the order a plan runs them:
    what a route change cannot alter without a restart."""
    return tuple(
        (service_name, version_name, replica)
        for service_name in sorted(mesh.services)
        for version_name in sorted(mesh.services[service_name].versions)
        for replica in range(mesh.services[service_name].versions[version_name].replicas)
    )


def make_plan(
    mesh: Mesh, next_port: Callable[[], int], ingress_port: int = 0, transparent: bool = False
) -> Plan:
    """Allocate ports for every instance and the gateway (ingress_port 0: any free port).
    `transparent`: each instance has a network namespace of its own, so it uses the cluster's
    ports: the app the service's port, the sidecar Istio's."""

    def instance(service_name: str, version_name: str, replica: int) -> Instance:
        if transparent:
            port = mesh.services[service_name].port
            return Instance(service_name, version_name, replica, port, ProxyPorts())
        return Instance(service_name, version_name, replica, next_port(), loopback_ports(next_port))

    instances = tuple(instance(*replica) for replica in topology(mesh))
    if mesh.ingress is None:
        return Plan(instances, None, None)
    tls = mesh.ingress.tls
    gateway_port, gateway = ingress_port or next_port(), loopback_ports(next_port)
    redirect = next_port() if tls is not None and tls.https_redirect else None
    return Plan(instances, gateway_port, gateway, redirect)


class Proxy(NamedTuple):
    """One HAProxy the sandbox runs: a sidecar or the gateway."""

    name: str
    # Its config files, in a directory named after it, for a person to read.
    config_dir: Path
    # Its unix sockets, in a short directory: a socket path must stay under 97 characters.
    runtime_dir: Path
    config: ProxyConfig
    # The SPIFFE ID its certificate carries (written by the runner beside config_dir).
    identity: str = ""
    # The gateway with `ingress.tls`: the names its HTTPS certificate is for; None without.
    ingress_names: tuple[str, ...] | None = None


def compile_configs(
    mesh: Mesh, plan: Plan, runtime_root: Path, pods: Mapping[str, str] | None = None
) -> Iterator[Proxy]:
    """Every sidecar and the gateway, with where their files and sockets go under runtime_root.
    `pods` (instance name -> address in its own namespace): the sidecars are transparent, behind
    the cluster's iptables rules, and pass unknown destinations on to where they were dialled."""
    endpoints = plan.endpoints(pods, mtls=mesh.mtls != "disable")
    for index, instance in enumerate(plan.instances):
        directory = runtime_root / instance.name
        sockets = runtime_root / "run" / str(index)
        yield Proxy(
            f"{instance.name}-proxy",
            directory,
            sockets,
            # The cluster's layout: the workload's files and the mesh's outbound shards, in
            # one directory HAProxy reads in name order.
            SidecarCompiler(
                mesh,
                endpoints=endpoints,
                ports=instance.sidecar,
                config_dir=str(directory),
                runtime_dir=str(sockets),
                passthrough="host-header" if pods is None else "original-destination",
            ).files(instance.service, instance.version, instance.app_port),
            service_identity(mesh, instance.service),
        )
    if plan.gateway is not None and plan.gateway_port is not None:
        directory = runtime_root / "gateway"
        sockets = runtime_root / "run" / "gw"
        yield Proxy(
            "gateway",
            directory,
            sockets,
            compile_gateway(
                mesh,
                endpoints=endpoints,
                listen_port=plan.gateway_port,
                ports=plan.gateway,
                config_dir=str(directory),
                runtime_dir=str(sockets),
                redirect_port=plan.redirect_port,
                public_port=plan.gateway_port,
            ),
            ingress_identity(mesh),
            None if mesh.ingress is None or mesh.ingress.tls is None else ingress_names(mesh),
        )


def ingress_names(mesh: Mesh) -> tuple[str, ...]:
    """What the sandbox's HTTPS certificate is for: the ingress's hosts (but `*`, which no
    certificate can name) and the loopback names the sandbox is reached by."""
    assert mesh.ingress is not None
    return (*(host for host in mesh.ingress.hosts if host != "*"), "localhost", "127.0.0.1")
