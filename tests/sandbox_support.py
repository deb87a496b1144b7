"""Run `sailplan sandbox` as a real process for end-to-end tests, and always stop it by PID."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from conftest import REPO

import sailplan

MESHES = REPO / "examples" / "meshes"


def runnable_copy(path: Path, **overrides: Any) -> str:
    """A mesh file whose local commands still find the demo apps from any directory."""
    data = sailplan.load_mesh(path).to_dict()
    data.update(overrides)
    for service in data["services"].values():
        for version in service["versions"].values():
            if "local" in version:
                version["local"]["cwd"] = str(MESHES)
    return yaml.safe_dump(data, sort_keys=False)


def descendants(pid: int) -> set[int]:
    """Every process whose parent chain leads to `pid` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        children = {child for child, parent in parents.items() if parent in frontier}
        frontier = children - found
        found |= children
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def processes_with_env(marker: str) -> list[int]:
    """Live processes whose environment holds `marker` (e.g. "TMPDIR=/a/unique/dir"): every process
    a sandbox starts inherits its environment, so this finds them even once they were orphaned."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker.encode() in environ.split(b"\0") and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def sigcgt(pid: int) -> int:
    """The mask of signals `pid` has a handler for (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return int(line.split()[1], 16)
    return 0


class SandboxProcess:
    def __init__(
        self,
        mesh_file: Path,
        *extra: str,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
    ) -> None:
        """`stdin`: written to the sandbox's standard input, then closed (`mesh_file` `-`)."""
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sailplan", "sandbox", str(mesh_file), "--quiet", *extra],
            stdin=None if stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            cwd=REPO,
            env={**os.environ, **(env or {})},
        )
        if stdin is not None:
            assert self.process.stdin is not None
            self.process.stdin.write(stdin)
            self.process.stdin.close()
        threading.Thread(target=self._pump, daemon=True).start()
        self.children: set[int] = set()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            self._queue.put(line.rstrip())

    def wait_for(self, prefix: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None and self._queue.empty():
                    raise AssertionError(
                        f"sandbox exited {self.process.returncode}: {self.lines}"
                    ) from None
                continue
            if line.startswith(prefix):
                self.children = descendants(self.process.pid) or self.children
                return line
        raise AssertionError(f"no line starting {prefix!r} within {timeout}s: {self.lines}")

    def url(self) -> str:
        ready = next(line for line in self.lines if line.startswith("ready: "))
        return ready.split("ready: ", 1)[1]

    def stop(self, signum: int = signal.SIGINT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        for pid in self.children:
            if alive(pid):  # a leak: end it, and let the test fail on it
                os.kill(pid, signal.SIGKILL)
        return self.process.returncode


# A route name the haproxy below refuses. check refuses every spec it knows haproxy would refuse,
# so a refusal can only come from the proxy itself (another HAProxy build, a resource limit): the
# sandbox must survive that too.
REFUSED = "refused-by-haproxy"


def strict_haproxy(directory: Path) -> Path:
    """A directory to put first on PATH, holding a `haproxy`: the real one, except that `-c`
    refuses configs naming REFUSED."""
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    real = shutil.which("haproxy") or "/usr/sbin/haproxy"
    wrapper = bin_dir / "haproxy"
    wrapper.write_text(
        "#!/bin/sh\n"
        'for arg in "$@"; do\n'
        '  if [ "$arg" = "-c" ]; then\n'
        '    for file in "$@"; do\n'
        # A config file or, as the proxies read them, a directory of them.
        f'      if [ -e "$file" ] && grep -qrs -- {REFUSED} "$file"; then\n'
        f'        echo "[ALERT] parsing [haproxy.cfg:1] : {REFUSED}" >&2; exit 1\n'
        "      fi\n"
        "    done\n"
        "  fi\n"
        "done\n"
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    return bin_dir


def with_refused_route(text: str) -> str:
    """A mesh (with service1 routes) that validates, but that the strict haproxy refuses."""
    data = yaml.safe_load(text)
    data["services"]["service1"]["routes"].insert(
        0, {"name": REFUSED, "match": [{"path": "/refused"}], "to": "v2"}
    )
    return yaml.safe_dump(data, sort_keys=False)
