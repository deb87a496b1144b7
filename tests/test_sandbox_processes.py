"""The sandbox's supervisor: stopping what ignores SIGTERM, and saying so."""

from __future__ import annotations

import io
import sys
import time

from sandbox_support import alive

from sailplan.sandbox.processes import Supervisor

STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('up', flush=True); time.sleep(60)"
)


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_and_named() -> None:
    out = io.StringIO()
    supervisor = Supervisor(quiet=True, out=out)
    stubborn = supervisor.start("stubborn", [sys.executable, "-c", STUBBORN])
    polite = supervisor.start("polite", [sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        deadline = time.monotonic() + 20
        while "up" not in stubborn.log_tail:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        started = time.monotonic()
        supervisor.stop_all(grace=0.5)
        took = time.monotonic() - started
    finally:
        for process in (stubborn, polite):
            if process.popen.poll() is None:
                process.popen.kill()
                process.popen.wait(timeout=5)
    assert out.getvalue() == "stop: stubborn did not end within 0.5 s of SIGTERM; killing\n"
    assert not alive(stubborn.pid) and not alive(polite.pid)
    assert 0.5 <= took < 5
