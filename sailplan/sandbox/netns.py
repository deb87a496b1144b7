"""The transparent sandbox's network: one network namespace per replica, as a pod has.

Each namespace gets a veth on a bridge the sandbox creates in the host's namespace, the very
`init-iptables.sh` the cluster's init container runs, and a hosts file (`ip netns exec` mounts
/etc/netns/<namespace>/hosts over /etc/hosts) that resolves every service name to a virtual
address on the bridge's subnet. An app dials `http://service1:8088` as in a cluster; iptables
hands the connection to its sidecar, which routes by Host to the callee's pod address.

Everything is named after a random tag and guarded by a lock file that the sandbox holds while it
runs: the kernel drops the lock when the sandbox dies, however it dies, so the next sandbox finds
what a dead one left (`stale_tags`) and removes it, processes first (`remove_tag`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sailplan import constants as c
from sailplan.sandbox.processes import SandboxError

INIT_IPTABLES = Path(__file__).resolve().parent.parent / "proxy_image" / "init-iptables.sh"
NETNS_ETC = Path("/etc/netns")
LOCK_DIR = Path("/run/sailplan-sandbox")
# Namespaces are sailplan-<tag>-<index>; links spb<tag> (bridge) and sp<tag>h<index> (veth):
# a link name has at most 15 characters.
NAMESPACE = re.compile(r"sailplan-([0-9a-f]{8})-[0-9]+")
LINK = re.compile(r"sp(?:b([0-9a-f]{8})|([0-9a-f]{8})h[0-9]+)")
# Sandbox subnets are /24s of 10.213.0.0/16; one not routed on this host is chosen at start.
SUBNETS = ipaddress.IPv4Network("10.213.0.0/16")
MAX_ADDRESSES = 252  # .2 to .253 of a /24: pods from the bottom, services' addresses from the top
TIMEOUT = 30
CLONE_NEWNET = 0x40000000


def _run(command: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), input=stdin, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def _must(command: Sequence[str], what: str, stdin: str | None = None) -> str:
    done = _run(command, stdin)
    if done.returncode != 0:
        reason = " ".join((done.stderr or done.stdout).split()) or f"exit {done.returncode}"
        raise SandboxError(f"cannot {what}: {reason}")
    return done.stdout


def unavailable() -> str | None:
    """Why this user cannot create network namespaces here, or None when it can."""
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    missing = [tool for tool in ("ip", "iptables") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed (make os-deps installs them)"
    probe = f"sailplan-probe-{os.getpid()}"
    done = _run(["ip", "netns", "add", probe])
    if done.returncode != 0:
        return f"`ip netns add` fails here: {' '.join(done.stderr.split())}"
    _run(["ip", "netns", "delete", probe])
    return None


# -- what a dead sandbox left ----------------------------------------------------------------------


def _namespaces() -> list[str]:
    listed = _run(["ip", "netns", "list"]).stdout.splitlines()
    return [line.split()[0] for line in listed if line.strip()]


def _links() -> list[str]:
    listed = _run(["ip", "-o", "link", "show"]).stdout.splitlines()
    # "12: spb1a2b3c4d: <...>" or "13: sp1a2b3c4dh0@if2: <...>"
    return [line.split(": ", 2)[1].split("@", 1)[0] for line in listed if ": " in line]


def _tags() -> set[str]:
    tags = {m.group(1) for name in _namespaces() if (m := NAMESPACE.fullmatch(name))}
    tags |= {m.group(1) or m.group(2) for name in _links() if (m := LINK.fullmatch(name))}
    if NETNS_ETC.is_dir():
        tags |= {m.group(1) for p in NETNS_ETC.iterdir() if (m := NAMESPACE.fullmatch(p.name))}
    for rule in _forward_rules():
        tags |= set(re.findall("--comment sailplan-([0-9a-f]{8})", rule))
    if LOCK_DIR.is_dir():
        tags |= {p.stem for p in LOCK_DIR.glob("*.lock") if re.fullmatch("[0-9a-f]{8}", p.stem)}
    return tags


def _lock(tag: str, wait: bool = False) -> int | None:
    """The lock of `tag`'s sandbox, taken (a file descriptor), or None while that sandbox runs
    (unless `wait`: then once it is free)."""
    LOCK_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(LOCK_DIR / f"{tag}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return fd


def remove_tag(tag: str) -> list[str]:
    """Remove everything named after `tag`: first the processes in its namespaces (a sandbox
    killed outright leaves its apps and proxies running there), then namespaces, links, hosts
    files. What was removed, for the message."""
    removed = _end_host_side(tag)
    for namespace in _namespaces():
        match = NAMESPACE.fullmatch(namespace)
        if not match or match.group(1) != tag:
            continue
        pids = _run(["ip", "netns", "pids", namespace]).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _run(["ip", "netns", "delete", namespace])
        removed.append(namespace)
    for link in _links():
        match = LINK.fullmatch(link)
        # A veth goes with its namespace (once its processes are gone); the bridge stays.
        in_tag = match and tag in (match.group(1), match.group(2))
        if in_tag and _run(["ip", "link", "delete", link]).returncode == 0:
            removed.append(link)
    if NETNS_ETC.is_dir():
        for directory in NETNS_ETC.glob(f"sailplan-{tag}-*"):
            shutil.rmtree(directory, ignore_errors=True)
    for rule in _forward_rules(tag):
        if _run(["iptables", "-w", "-D", *rule.split()[1:]]).returncode == 0:
            removed.append(f"iptables rule {rule!r}")
    return removed


def _forward_rules(tag: str | None = None) -> list[str]:
    """The host's FORWARD rules a sandbox added (`tag`'s only, if given), as `iptables -S` says."""
    listed = _run(["iptables", "-w", "-S", "FORWARD"]).stdout.splitlines()
    comment = f"--comment sailplan-{tag or ''}"
    return [rule for rule in listed if rule.startswith("-A FORWARD ") and comment in rule]


def _end_host_side(tag: str) -> list[str]:
    """What `Network.record` noted in the lock file: the processes that run outside the
    namespaces (the gateway), ended if they still run that command, and the runtime directory."""
    try:
        noted = json.loads((LOCK_DIR / f"{tag}.lock").read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return []
    removed = []
    for pid, marker in noted.get("processes", []):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        # A pid the kernel gave to another program since is left alone.
        if marker in command.split("\0"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            removed.append(f"process {pid}")
    runtime = Path(noted.get("runtime", ""))
    if runtime.name.startswith("sailplan-") and runtime.is_dir():
        shutil.rmtree(runtime, ignore_errors=True)
        removed.append(str(runtime))
    return removed


def clean_stale() -> list[str]:
    """Remove what sandboxes that are no longer running left behind; what was removed."""
    removed = []
    for namespace in _namespaces():
        # `unavailable` killed between its `ip netns add` and `ip netns delete`.
        probe = re.fullmatch(r"sailplan-probe-([0-9]+)", namespace)
        if probe and not Path(f"/proc/{probe.group(1)}").exists():
            _run(["ip", "netns", "delete", namespace])
            removed.append(namespace)
    for tag in sorted(_tags()):
        fd = _lock(tag)
        if fd is None:
            continue  # a running sandbox's
        try:
            removed += remove_tag(tag)
            (LOCK_DIR / f"{tag}.lock").unlink(missing_ok=True)
        finally:
            os.close(fd)
    return removed


# -- the network of one sandbox ----------------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    namespace: str
    address: str
    host_link: str


@dataclass
class Network:
    """The bridge, one namespace per pod and a virtual address per service."""

    tag: str = field(default_factory=lambda: secrets.token_hex(4))
    pods: dict[str, Pod] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)
    bridge_address: str = ""
    _lock_fd: int | None = None
    _watchdog: subprocess.Popen[bytes] | None = None
    _watchdog_pipe: int = -1

    @property
    def bridge(self) -> str:
        return f"spb{self.tag}"

    def create(self, pods: Sequence[str], services: Mapping[str, Sequence[str]]) -> None:
        """`pods`: names, one namespace each; `services`: name -> the host names it answers to,
        one virtual address each."""
        if len(pods) + len(services) > MAX_ADDRESSES:
            raise SandboxError(
                f"the sandbox's network has room for {MAX_ADDRESSES} replicas and services; "
                f"this mesh has {len(pods)} replicas and {len(services)} services"
            )
        self._lock_fd = _lock(self.tag)
        self._start_watchdog()
        # One sandbox at a time picks a subnet and claims it with its bridge's address.
        guard = _lock("subnets", wait=True)
        assert guard is not None
        try:
            subnet = _free_subnet()
            self.bridge_address = str(subnet[1])
            _must(
                ["ip", "-batch", "-"],
                "create the sandbox's bridge",
                f"link add {self.bridge} type bridge\n"
                f"addr add {self.bridge_address}/24 dev {self.bridge}\n"
                f"link set {self.bridge} up\n",
            )
        finally:
            os.close(guard)
        if _bridges_filtered():
            # br_netfilter hands bridged packets to the host's FORWARD chain, which Docker sets to
            # DROP: pods talking to each other on the sandbox's bridge are let through.
            rule = f"-i {self.bridge} -o {self.bridge} -m comment --comment sailplan-{self.tag}"
            _must(
                ["iptables", "-w", "-I", "FORWARD", *rule.split(), "-j", "ACCEPT"],
                "let the pods talk through the host's firewall",
            )
        for index, name in enumerate(pods):
            self.pods[name] = Pod(
                f"sailplan-{self.tag}-{index}", str(subnet[2 + index]), f"sp{self.tag}h{index}"
            )
        for index, service in enumerate(services):
            self.services[service] = str(subnet[253 - index])
        hosts_file = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n" + "".join(
            f"{self.services[service]} {' '.join(names)}\n" for service, names in services.items()
        )
        for pod in self.pods.values():
            _must(["ip", "netns", "add", pod.namespace], f"create namespace {pod.namespace}")
            directory = NETNS_ETC / pod.namespace
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "hosts").write_text(hosts_file, encoding="utf-8")
        _must(
            ["ip", "-batch", "-"],
            "connect the namespaces to the bridge",
            "".join(
                f"link add {pod.host_link} type veth peer name eth0 netns {pod.namespace}\n"
                f"link set {pod.host_link} master {self.bridge} up\n"
                for pod in self.pods.values()
            ),
        )
        for pod in self.pods.values():
            _must(
                ["ip", "-n", pod.namespace, "-batch", "-"],
                f"address {pod.namespace}",
                f"addr add {pod.address}/24 dev eth0\nlink set eth0 up\nlink set lo up\n",
            )
        for pod in self.pods.values():
            _must(
                ["ip", "netns", "exec", pod.namespace, "sh", str(INIT_IPTABLES)],
                f"apply init-iptables.sh in {pod.namespace}",
            )

    def record(self, runtime: Path, processes: Sequence[tuple[int, str]]) -> None:
        """Note in the lock file what lives outside the namespaces, for a clean-up after a crash:
        the runtime directory and (pid, an argument of its command line) of each process."""
        if self._lock_fd is None:
            return
        text = json.dumps({"runtime": str(runtime), "processes": list(processes)}).encode()
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, text, 0)

    def _start_watchdog(self) -> None:
        """A process that removes this network if the sandbox dies without doing it (SIGKILL, a
        crash): it waits on a pipe that only the sandbox holds open. `remove` tells it, with a
        byte, that there is nothing to do. In a session of its own: Ctrl-C does not reach it."""
        read, self._watchdog_pipe = os.pipe()
        try:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-m", "sailplan.sandbox.netns", self.tag],
                stdin=read,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            os.close(read)

    def remove(self) -> None:
        """Everything `create` made, and the lock; safe to call twice or after a failed create."""
        remove_tag(self.tag)
        if self._watchdog is not None:
            with contextlib.suppress(OSError):
                os.write(self._watchdog_pipe, b"stopped")
            os.close(self._watchdog_pipe)
            try:
                self._watchdog.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait(timeout=5)
            self._watchdog = None
        if self._lock_fd is not None:
            (LOCK_DIR / f"{self.tag}.lock").unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None

    def app_command(self, pod: str, command: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.pods[pod].namespace, *command]

    def proxy_command(self, pod: str, command: Sequence[str], runtime: Path) -> list[str]:
        """The sidecar in its pod, its workers as uid/gid 1337 as in the cluster: their
        connections leave the pod uncaptured (a call to the pod's own address comes back in
        through its inbound). The master stays root, so it reads its files wherever TMPDIR puts
        them, even in a directory only root may enter; the user is set by a second config file,
        so the compiled config is the cluster's, unchanged."""
        identity = runtime / "proxy-user.cfg"
        if not identity.exists():
            identity.write_text(
                f"global\n    uid {c.PROXY_UID}\n    gid {c.PROXY_UID}\n", encoding="utf-8"
            )
        return self.app_command(pod, [*command, "-f", str(identity)])


def _bridges_filtered() -> bool:
    try:
        return Path("/proc/sys/net/bridge/bridge-nf-call-iptables").read_text().strip() == "1"
    except OSError:
        return False  # br_netfilter not loaded: bridged packets never meet iptables


def _free_subnet() -> ipaddress.IPv4Network:
    """The first /24 of SUBNETS that no route or address of this host overlaps."""
    taken: list[ipaddress.IPv4Network] = []
    for line in _run(["ip", "-4", "route", "show", "table", "all"]).stdout.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("broadcast", "local", "unicast", "multicast"):
            word = line.split()[1]
        with contextlib.suppress(ValueError):
            if word != "default":
                taken.append(ipaddress.IPv4Network(word, strict=False))
    for subnet in SUBNETS.subnets(new_prefix=24):
        if not any(subnet.overlaps(other) for other in taken):
            return subnet
    raise SandboxError(f"no free /24 left in {SUBNETS} for the sandbox's network")


# -- probing inside a namespace -----------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def entered(namespace: str) -> Iterator[None]:
    """This thread in `namespace`'s network while the block runs: sockets it creates belong to
    that namespace (and stay there after). Only the calling thread moves."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(f"/run/netns/{namespace}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace}")
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                # A thread left in a pod's network would probe the wrong place from now on.
                raise SandboxError("cannot return to the host's network namespace")
    finally:
        os.close(target)
        os.close(own)


def _watch(tag: str) -> int:
    """The watchdog (`python -m sailplan.sandbox.netns TAG`): end of input without a word means
    the sandbox died with its network in place; remove it once the sandbox's lock is free."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.stdin.buffer.read(1):
        return 0  # the sandbox removed everything itself
    fd = _lock(tag, wait=True)
    assert fd is not None
    try:
        removed = remove_tag(tag)
        (LOCK_DIR / f"{tag}.lock").unlink(missing_ok=True)
    finally:
        os.close(fd)
    if removed:
        print(f"sailplan sandbox died; removed what it left: {', '.join(removed)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2 or not re.fullmatch("[0-9a-f]{8}", sys.argv[1]):
        sys.exit("usage: python -m sailplan.sandbox.netns TAG (started by the sandbox itself)")
    sys.exit(_watch(sys.argv[1]))
