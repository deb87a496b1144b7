"""Stopping on SIGINT/SIGTERM/SIGHUP without a lock in a signal handler.

A Python signal handler runs in the main thread between two bytecodes, possibly while that thread
holds a lock (an `Event.wait()` holds its condition's lock): a handler that takes a lock, as
`Event.set()` does, can wait forever on its own thread. So the handler only stores the signal number,
and `signal.set_wakeup_fd` makes the C-level handler write a byte to a pipe the main loop sleeps on:
a signal that arrives just before the sleep still ends it at once.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from types import FrameType, TracebackType
from typing import Any

# SIGHUP too: a closed terminal must not leave the apps and proxies (each in its own session, so
# the terminal's hangup does not reach them) running without the sandbox.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopRequested(Exception):
    """Raised by `StopSignal.check()` so that start-up unwinds to its clean-up."""


class StopSignal:
    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._previous: dict[int, Any] = {}
        self._previous_fd = -1

    def __enter__(self) -> StopSignal:
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._read)
        os.close(self._write)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # Only assignments: no lock, no I/O, nothing that can wait.
        self.signum = signum
        self.count += 1

    @property
    def insisted(self) -> bool:
        """A second signal: the user wants it over now, not after the grace period."""
        return self.count >= 2

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def check(self) -> None:
        if self.signum is not None:
            raise StopRequested

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, less if a stop signal arrives; True if a stop was requested."""
        if self.signum is None:
            with contextlib.suppress(InterruptedError):
                select.select([self._read], [], [], max(0.0, seconds))
        self._drain()
        return self.signum is not None

    def _drain(self) -> None:
        # The wakeup bytes are signal numbers: they tell of a stop even if the Python-level handler
        # has not run yet when select returns.
        while True:
            try:
                data = os.read(self._read, 512)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                return
            for number in data:
                if number in STOP_SIGNALS and self.signum is None:
                    self.signum = number
