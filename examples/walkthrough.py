"""The original Istio walkthrough, replayed against `sailplan sandbox` in about a minute.

`make demo` runs this. It starts the demo mesh locally with --watch, creates user `a` (twice, as the
original did), then applies each experiment of examples/meshes/ by rewriting the watched file, so
the sidecars hot-reload, and prints the policy and what the traffic saw. It leaves nothing running.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

import sailplan
from sailplan.traffic import parse_target, send_all, table

HERE = Path(__file__).resolve().parent
MESHES = HERE / "meshes"


def runnable_copy(path: Path, **overrides: Any) -> str:
    """The mesh as YAML, with local commands anchored to examples/meshes wherever the copy lives."""
    data = sailplan.load_mesh(path).to_dict()
    data.update(overrides)
    for service in data["services"].values():
        for version in service["versions"].values():
            version["local"]["cwd"] = str(MESHES)
    return yaml.safe_dump(data, sort_keys=False)


class Sandbox:
    def __init__(self, mesh_file: Path) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sailplan", "sandbox", str(mesh_file), "--watch", "--quiet"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip())

    def wait_for(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"the sandbox exited with status {self.process.returncode}"
                    ) from None
                continue
            if line.startswith(prefix):
                return line
            if line.startswith(("error:", "watch:")) and "reloaded" not in line:
                print(f"  sandbox: {line}")
        raise RuntimeError(f"the sandbox did not say {prefix!r} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def publish(path: Path, text: str) -> None:
    """Replace the watched file in one step, as an editor's atomic save does."""
    staged = path.with_name(f".{path.name}.new")
    staged.write_text(text)
    os.replace(staged, path)


def shares(outcomes: list[Any]) -> Counter[str]:
    counts = Counter(o.label for o in outcomes)
    return Counter({label: 100 * n / len(outcomes) for label, n in counts.items()})


def experiment(
    sandbox: Sandbox,
    watched: Path,
    url: str,
    title: str,
    mesh_file: Path,
    count: int,
    concurrency: int,
) -> Counter[str]:
    print(f"\n== {title}  ({mesh_file.relative_to(HERE.parent)})")
    publish(watched, runnable_copy(mesh_file, name="walkthrough", namespace="walkthrough"))
    line = sandbox.wait_for("watch:", 15)
    if "reloaded" not in line:
        raise RuntimeError(line)
    mesh = sailplan.load_mesh(mesh_file)
    policy = {
        name: [r.to_dict() for r in s.routes] for name, s in mesh.services.items() if s.routes
    }
    print(yaml.safe_dump({"routes": policy}, sort_keys=False).rstrip())
    outcomes = send_all(parse_target(url), count, concurrency, "GET", {}, None, 10.0)
    print(table(outcomes))
    return shares(outcomes)


def main() -> int:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="sailplan-walkthrough-"))
    watched = workdir / "mesh.yaml"
    baseline = sailplan.load_mesh(MESHES / "even-split.yaml").to_dict()
    baseline["services"]["service1"]["routes"] = []
    (workdir / "baseline.yaml").write_text(yaml.safe_dump(baseline))
    watched.write_text(
        runnable_copy(workdir / "baseline.yaml", name="walkthrough", namespace="walkthrough")
    )
    print("starting the demo mesh: service1 (users, v1 + v2), service2 (greeter), ingress")
    sandbox = Sandbox(watched)
    problems = []
    try:
        ready = sandbox.wait_for("ready: ", 60)
        base = ready.split("ready: ", 1)[1]
        url = f"{base}/api/users/1"
        print(f"{ready}\n\n== create user a, twice (no routes yet: one copy lands on each version)")
        for outcome in send_all(
            parse_target(f"{base}/api/users"),
            2,
            1,
            "POST",
            {"content-type": "application/json"},
            b'{"username": "a"}',
            10.0,
        ):
            print(f"  {outcome.label}")

        seen = experiment(
            sandbox, watched, url, "1. even split", MESHES / "even-split.yaml", 200, 8
        )
        if not 35 <= seen["200 Hello, a v2"] <= 65:
            problems.append(f"even split: v2 got {seen['200 Hello, a v2']:.0f}%")
        seen = experiment(
            sandbox, watched, url, "2. canary 80/20", MESHES / "split-80-20.yaml", 1000, 8
        )
        if not 15 <= seen["200 Hello, a v2"] <= 25:
            problems.append(f"80/20 split: v2 got {seen['200 Hello, a v2']:.0f}%")
        seen = experiment(
            sandbox,
            watched,
            url,
            "3. delay 2s + abort 400 at 50%",
            MESHES / "fault-delay-abort.yaml",
            40,
            20,
        )
        if not 25 <= seen["200 error"] <= 75:
            problems.append(f"abort: {seen['200 error']:.0f}% errors")
        seen = experiment(
            sandbox,
            watched,
            url,
            "4. service1 delayed 2s, 1s timeout on service2",
            MESHES / "timeout.yaml",
            20,
            10,
        )
        if seen["504 upstream request timeout"] != 100:
            problems.append(f"timeout: {seen['504 upstream request timeout']:.0f}% timed out")
    except RuntimeError as error:
        problems.append(str(error))
    finally:
        sandbox.stop()
    print(f"\nwalkthrough finished in {time.monotonic() - started:.0f}s; nothing is left running")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
