"""The sandbox's supervisor and its `haproxy -c`: failures said in one sentence."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import pytest
from sandbox_support import alive

from sailplan.sandbox import runner
from sailplan.sandbox.processes import SandboxError, Supervisor

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


def test_a_haproxy_that_cannot_run_or_hangs_is_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SandboxError) as error:
        runner.check_config(str(tmp_path / "no-haproxy"), "gateway", tmp_path)
    assert str(error.value) == f"cannot run {tmp_path}/no-haproxy: No such file or directory"
    slow = tmp_path / "slow-haproxy"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    monkeypatch.setattr(runner, "CHECK_TIMEOUT", 0.3)
    with pytest.raises(SandboxError) as error:
        runner.check_config(str(slow), "gateway", tmp_path)
    assert str(error.value) == "haproxy -c did not finish checking the config of gateway in 0.3 s"
