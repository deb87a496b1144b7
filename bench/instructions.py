"""User-space instructions per request of the two sidecars, plaintext against mTLS (not part of
`make bench`; bench/FINDINGS.md points 8 and 11).

    python -m bench.instructions [requests] [rounds] [--keep DIR]

CPU time per request on a shared 2-core VM moves by more than a rule's cost between runs, and
most of it is the kernel's. Instruction counts do not: the caller and the callee sidecars of
bench/bench.mesh.yaml run under `valgrind --tool=callgrind`, once as the mesh says (`mtls:
disable`) and once with `mtls: strict`, each with one thread (`_one_thread`); after a warm-up
their counters are zeroed, `requests` requests go over one keep-alive connection, and each
proxy's count is read, divided by the requests. Prints one line per path and proxy (each round's
figure, in thousands). `--keep DIR` copies the dumps there (`<path>-<proxy>.<round>`) for
`callgrind_annotate`.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench import dataplane
from sailplan.loader import load_mesh

WARM_UP = 200
# Under valgrind a proxy starts in seconds, not milliseconds.
START_TIMEOUT = 120.0
_SUMMARY = re.compile(rb"^summary:\s+(\d+)", re.MULTILINE)


def _valgrind(out_file: Path) -> list[str]:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    return [valgrind, "--tool=callgrind", f"--callgrind-out-file={out_file}"]


def _one_thread(text: str) -> str:
    """The config with one thread. valgrind runs one thread at a time, so a thread waiting for a
    spin lock the other holds spins until valgrind switches them: with the sidecar's two threads
    the callee's count moved by up to 25k a request between runs, spent in `h1_io_cb`'s wait for
    the idle-connection lock, and with one it repeats to 0.1k. The work of a request is the same."""
    if "\n    nbthread 2\n" not in text:
        raise RuntimeError("the sidecar's config no longer says `nbthread 2`: update _one_thread")
    return text.replace("\n    nbthread 2\n", "\n    nbthread 1\n")


def _send(port: int, host: str, count: int) -> None:
    """`count` GETs over one keep-alive connection; every answer must be a 200."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for _ in range(count):
            connection.request("GET", "/", headers={"host": host})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"the path answered {response.status}, not 200")
    finally:
        connection.close()


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True, timeout=60)


def _instructions(out_file: Path, pid: int, keep: Path | None) -> int:
    """Dump the proxy's counters since they were zeroed and read its total."""
    before = set(out_file.parent.glob(f"{out_file.name}*"))
    _control("-d", str(pid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for path in set(out_file.parent.glob(f"{out_file.name}*")) - before:
            found = _SUMMARY.search(path.read_bytes())
            if found:
                if keep is not None:
                    shutil.copyfile(path, keep)
                return int(found.group(1))
        time.sleep(0.2)
    raise RuntimeError(f"callgrind wrote no dump for PID {pid}")


def measure(
    mesh_path: Path, requests: int, keep: Path | None = None, tag: str = ""
) -> dict[str, dict[str, float]]:
    """path -> proxy -> instructions per request; the dumps copied into `keep` when given."""
    plain = load_mesh(mesh_path)
    results: dict[str, dict[str, float]] = {}
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sailplan-ir-")))
        app = dataplane.free_port()
        stack.enter_context(dataplane.run_app("app", root / "app", app))
        haproxy = dataplane.haproxy_binary()
        for label, mesh, suffix in (
            ("plaintext", plain, ""),
            ("mtls", dataplane.strict_mesh(plain), "-mtls"),
        ):
            if suffix:
                dataplane.write_certificates(mesh, root, suffix)
            ports, configs = dataplane.sidecar_configs(mesh, app, root, suffix)
            pids = {}
            outs = {}
            for name, port in (
                ("callee", ports["callee"].inbound),
                ("caller", ports["caller"].outbound),
            ):
                directory = root / f"{name}{suffix}"
                outs[name] = directory / "callgrind.out"
                config = directory / "haproxy.cfg"
                directory.mkdir(parents=True, exist_ok=True)
                for file_name, text in configs[name].files.items():
                    if file_name == "haproxy.cfg":
                        text = _one_thread(text)
                    (directory / file_name).write_text(text)
                argv = [*_valgrind(outs[name]), haproxy, "-db", "-f", str(config)]
                proxy = stack.enter_context(
                    dataplane.run_process(f"{name}{suffix}", directory, {}, argv, None)
                )
                dataplane.wait_for_port(port, timeout=START_TIMEOUT)
                pids[name] = proxy.pid
            target = ports["caller"].outbound
            host = dataplane.SERVICE1_HOST
            _send(target, host, WARM_UP)
            for pid in pids.values():
                _control("-z", str(pid))
            _send(target, host, requests)
            results[label] = {
                name: _instructions(
                    outs[name], pid, None if keep is None else keep / f"{label}-{name}{tag}"
                )
                / requests
                for name, pid in pids.items()
            }
    return results


def main(argv: list[str]) -> int:
    keep = None
    if "--keep" in argv:
        at = argv.index("--keep")
        keep = Path(argv[at + 1])
        keep.mkdir(parents=True, exist_ok=True)
        argv = argv[:at] + argv[at + 2 :]
    requests = int(argv[0]) if argv else 2000
    rounds = int(argv[1]) if len(argv) > 1 else 1
    runs = [measure(dataplane.MESH_FILE, requests, keep, f".{n + 1}") for n in range(rounds)]
    print(f"user-space instructions per request ({requests} keep-alive requests, thousands)")
    for label in ("plaintext", "mtls"):
        for name in ("caller", "callee"):
            figures = " ".join(f"{run[label][name] / 1000:.1f}k" for run in runs)
            print(f"  {label:9} {name:6} {figures}")
    for name in ("caller", "callee"):
        added = " ".join(
            f"{(run['mtls'][name] - run['plaintext'][name]) / 1000:+.1f}k" for run in runs
        )
        print(f"  mTLS adds {name:6} {added}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
