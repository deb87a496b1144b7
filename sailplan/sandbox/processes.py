"""Starting, watching and stopping the sandbox's processes. Every process gets its own process
group, so stopping it also stops whatever it started; nothing outlives the sandbox."""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


class SandboxError(Exception):
    """A runtime failure of the sandbox (exit 1), said in one sentence."""


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=20))
    # HAProxy's master says "Loading success." each time a config took effect.
    loads: int = 0
    # ... and "Loading failure!" when a reload did not (it then keeps its previous workers).
    failures: int = 0
    # A proxy: its lines starting with `{` are access-log lines, shown only with --access-log.
    proxy: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid


class Supervisor:
    def __init__(
        self, *, quiet: bool = False, access_log: bool = False, out: IO[str] | None = None
    ) -> None:
        self.processes: list[Process] = []
        self.quiet = quiet
        self.access_log = access_log
        self.out = out or sys.stdout
        self._print_lock = threading.Lock()
        self._out_gone = False
        self._width = 12

    def say(self, text: str) -> None:
        with self._print_lock:
            if self._out_gone:
                return
            try:
                print(text, file=self.out, flush=True)
            except (OSError, ValueError):
                # The reader went away (`sailplan sandbox … | head`): run on, silently, rather than
                # fail in a log pump thread with a traceback.
                self._out_gone = True
                if self.out is sys.stdout:
                    # Python's own flush at exit must not fail on the closed pipe either.
                    with contextlib.suppress(OSError, ValueError):
                        devnull = os.open(os.devnull, os.O_WRONLY)
                        os.dup2(devnull, sys.stdout.fileno())

    def start(
        self,
        name: str,
        command: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        proxy: bool = False,
    ) -> Process:
        try:
            popen = subprocess.Popen(
                [*_parent_death_prefix(), _executable(command[0], cwd, env), *command[1:]],
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            raise SandboxError(
                f"{name}: cannot start {command[0]!r}: {error.strerror or error}"
            ) from None
        process = Process(name, popen, proxy=proxy)
        self.processes.append(process)
        self._width = max(self._width, len(name))
        threading.Thread(target=self._pump, args=(process,), daemon=True).start()
        return process

    def _pump(self, process: Process) -> None:
        assert process.popen.stdout is not None
        for raw in process.popen.stdout:
            line = raw.decode(errors="replace").rstrip()
            process.log_tail.append(line)
            if "Loading success." in line:
                process.loads += 1
            elif "Loading failure!" in line:
                process.failures += 1
            shown = self.access_log if process.proxy and line.startswith("{") else not self.quiet
            if shown:
                self.say(f"{process.name:<{self._width}} | {line}")

    def dead(self) -> list[Process]:
        return [p for p in self.processes if p.popen.poll() is not None]

    def describe_death(self, process: Process) -> str:
        code = process.popen.returncode
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        tail = "\n".join(f"    {line}" for line in list(process.log_tail)[-10:])
        return f"{process.name} {how}" + (f"; its last output:\n{tail}" if tail else "")

    def signal_all(self, signum: int, names: Callable[[str], bool] = lambda _: True) -> None:
        for process in self.processes:
            if names(process.name) and process.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)

    def stop_all(self, grace: float = 5.0, hurry: Callable[[], bool] = lambda: False) -> None:
        """SIGTERM to every process group, then SIGKILL to what is left after `grace` seconds,
        or as soon as `hurry()` (a second Ctrl-C)."""
        deadline = time.monotonic() + grace
        hurried = False
        while True:
            # Again each round: an HAProxy master re-executing itself for a reload loses a signal
            # that arrives before its handlers are back.
            running = [p for p in reversed(self.processes) if p.popen.poll() is None]
            for process in running:
                _signal_group(process, signal.SIGTERM)
            hurried = hurry()
            if not running or hurried or time.monotonic() >= deadline:
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                running[0].popen.wait(timeout=min(0.1, max(0.0, deadline - time.monotonic())))
        if running:
            names = ", ".join(p.name for p in reversed(running))
            if hurried:
                self.say(f"stop: asked again; killing {names}")
            else:
                self.say(f"stop: {names} did not end within {grace:g} s of SIGTERM; killing")
        for process in self.processes:
            # The group too: a child the app started must not survive it.
            _signal_group(process, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=5)


def _signal_group(process: Process, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _executable(program: str, cwd: Path | None, env: Mapping[str, str] | None) -> str:
    """`program` as exec would find it (the PATH of `env`; relative to `cwd` with a slash), so a
    missing one is said as such even behind the launcher below."""
    if os.sep in program:
        path = Path(cwd or ".") / program
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if not path.is_file() or not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
        return str(path)
    search = (env if env is not None else os.environ).get("PATH", os.defpath)
    found = shutil.which(program, path=search)
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    return found


@functools.cache
def _parent_death_prefix() -> tuple[str, ...]:
    """`setpriv --pdeathsig TERM --` where util-linux has it: the kernel then sends each process
    SIGTERM if the sandbox itself dies without stopping it (SIGKILL, a crash), since processes in
    sessions of their own would otherwise run on. Without setpriv, nothing: the sandbox's own stop
    still ends them."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return ()
    try:
        usage = subprocess.run(
            [setpriv, "--help"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return (setpriv, "--pdeathsig", "TERM", "--") if "--pdeathsig" in usage else ()
