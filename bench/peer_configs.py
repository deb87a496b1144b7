"""The configs of the reference proxies the bench runs next to sailplan's sidecars: bare HAProxy
hops (sailplan's globals, no rules) and the nginx and Traefik peers (bench/peers/, hand-written).

Pure: text in, text out, so tests/test_bench_support.py checks them without running anything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PEERS_DIR = Path(__file__).resolve().parent / "peers"
PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")
PEERS = ("nginx", "traefik")


def fill(template: str, values: Mapping[str, str | int]) -> str:
    """The template with every @NAME@ replaced; a missing or an unused value is an error, so a
    template and its caller cannot drift apart silently."""
    wanted = set(PLACEHOLDER.findall(template))
    missing = sorted(wanted - values.keys())
    if missing:
        raise ValueError(f"no value for {', '.join('@' + m + '@' for m in missing)}")
    unused = sorted(values.keys() - wanted)
    if unused:
        raise ValueError(f"the template has no {', '.join('@' + u + '@' for u in unused)}")
    return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), template)


def _sections(config: str) -> dict[str, list[str]]:
    """HAProxy config sections by header line (`global`, `defaults`, `frontend x`), in order."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in config.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            current = sections.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.lstrip().startswith("#"):
            current.append(line.strip())
    return sections


def bare_hop_config(
    sidecar_config: str,
    sidecar_dir: str,
    directory: str,
    port: int,
    server_port: int,
    *,
    logged: bool,
) -> str:
    """One pass-through HAProxy hop: the sidecar's own `global` and `defaults` sections (threads,
    timeouts, keep-alive and reuse options, logging) with its directory swapped for ours, then
    bind -> default_backend -> one server, and no rules. What sailplan's paths cost beyond this
    is the cost of their rules. `logged`: whether the sidecars log each request (the mesh's
    `accessLog`); when they do not, neither does the hop (`defaults` has `log global`, which
    would log each request in HAProxy's own format)."""
    sections = _sections(sidecar_config)
    for needed in ("global", "defaults"):
        if needed not in sections:
            raise ValueError(f"the sidecar config has no {needed} section")
    out = ["# a bare HAProxy hop: the sidecar's global and defaults, no rules"]
    for name in ("global", "defaults"):
        out.append(name)
        out += ["    " + line.replace(sidecar_dir, directory) for line in sections[name]]
        out.append("")
    out += [
        "frontend hop",
        f"    bind 127.0.0.1:{port}",
        *([] if logged else ["    no log"]),
        "    default_backend next",
        "",
        "backend next",
        f"    server next 127.0.0.1:{server_port}",
        "",
    ]
    return "\n".join(out)


@dataclass(frozen=True)
class PeerProxy:
    """One peer process: the files to write into its directory, how to start it, its port."""

    role: str  # "caller" or "callee"
    files: dict[str, str]
    argv: tuple[str, ...]
    port: int


def nginx_proxies(
    binary: str, root: Path, user: str, caller_port: int, callee_port: int, app_port: int
) -> list[PeerProxy]:
    """The callee (-> app) then the caller (the mesh's routes for service1 -> callee)."""
    proxies = []
    for role, port, extra in (
        ("callee", callee_port, {"APP_PORT": app_port}),
        ("caller", caller_port, {"CALLEE_PORT": callee_port}),
    ):
        directory = root / f"nginx-{role}"
        template = (PEERS_DIR / f"nginx-{role}.conf").read_text()
        config = fill(template, {"DIR": str(directory), "USER": user, "PORT": port, **extra})
        argv = (binary, "-p", str(directory), "-c", str(directory / "nginx.conf"))
        proxies.append(PeerProxy(role, {"nginx.conf": config}, argv, port))
    return proxies


def traefik_proxies(
    binary: str, root: Path, caller_port: int, callee_port: int, app_port: int
) -> list[PeerProxy]:
    """The callee (-> app) then the caller (the mesh's routes for service1 -> callee)."""
    static = (PEERS_DIR / "traefik-static.yaml").read_text()
    proxies = []
    for role, port, extra in (
        ("callee", callee_port, {"APP_PORT": app_port}),
        ("caller", caller_port, {"CALLEE_PORT": callee_port}),
    ):
        directory = root / f"traefik-{role}"
        files = {
            "traefik.yaml": fill(static, {"DIR": str(directory), "PORT": port}),
            "dynamic.yaml": fill((PEERS_DIR / f"traefik-{role}.yaml").read_text(), extra),
        }
        argv = (binary, f"--configFile={directory / 'traefik.yaml'}")
        proxies.append(PeerProxy(role, files, argv, port))
    return proxies
