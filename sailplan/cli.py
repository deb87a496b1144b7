"""`sailplan check|render|diff|graph|sandbox|traffic|schema`.

Exit codes: 0 success, 1 a runtime failure (said in one line), 2 invalid input (every problem listed).
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import os
import queue
import re
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sailplan import __version__
from sailplan import constants as c
from sailplan.loader import (
    MAX_SIZE,
    load_mesh_text,
    located,
    read_mesh_file,
)
from sailplan.model import Mesh, Problem, SpecError
from sailplan.model.gateway_api import gateway_class_problem
from sailplan.summary import secret_warnings, summarize

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_INVALID = 2
# What a shell reports for a process that a closed pipe stopped: 128 + SIGPIPE.
EXIT_PIPE_CLOSED = 141

_SIZE = re.compile(r"^(\d+)\s*(|k|ki|kib|m|mi|mib|g|gi|gib)b?$", re.IGNORECASE)
_UNIT = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _byte_size(text: str) -> int:
    """`--max-size 20MiB` (or 20M, 20m, 20971520): units are binary, as Kubernetes' Mi."""
    found = _SIZE.match(text.strip())
    if not found:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size: write bytes or a number with KiB, MiB or GiB, e.g. 20MiB"
        )
    return int(found.group(1)) * _UNIT[found.group(2)[:1].lower()]


def _gateway_class(text: str) -> str:
    problem = gateway_class_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def _mesh_file_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("file", help="the mesh file (YAML); - reads standard input")
    command.add_argument(
        "--max-size",
        type=_byte_size,
        default=MAX_SIZE,
        metavar="SIZE",
        help="refuse mesh files larger than this (default 10MiB)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sailplan",
        description="A service mesh described as typed Python: check, render, run locally.",
    )
    parser.add_argument("--version", action="version", version=f"sailplan {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="validate a mesh file and summarise it")
    _mesh_file_arguments(check)
    check.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="json: print {file, valid, problems: [{path, message, line}], warnings} on stdout",
    )

    render = commands.add_parser("render", help="render Kubernetes manifests for a mesh")
    _mesh_file_arguments(render)
    render.add_argument("-o", "--output-dir", type=Path, help="write one file per object here")
    render.add_argument(
        "--data-plane",
        choices=("builtin", "istio", "gateway-api"),
        help="override the mesh file's dataPlane",
    )
    render.add_argument(
        "--gateway-class",
        type=_gateway_class,
        default=c.GATEWAY_CLASS_DEFAULT,
        metavar="NAME",
        help="the GatewayClass of the ingress Gateway on the gateway-api data plane "
        f"(default: {c.GATEWAY_CLASS_DEFAULT})",
    )

    diff = commands.add_parser("diff", help="what a mesh change does, for a review")
    diff.add_argument("old", help="the mesh before: a file, - for stdin, or git:REV:PATH")
    diff.add_argument("new", help="the mesh after: a file, - for stdin, or git:REV:PATH")
    diff.add_argument(
        "--format",
        choices=("text", "markdown", "json"),
        default="text",
        help="markdown: for a pull-request comment (default: text)",
    )
    diff.add_argument("--graph", action="store_true", help="add a mermaid graph, changes marked")
    diff.add_argument(
        "--max-size", type=_byte_size, default=MAX_SIZE, metavar="SIZE", help="as for check"
    )

    graph = commands.add_parser("graph", help="draw the mesh: ingress, services, versions")
    graph.add_argument("file", help="the mesh file (YAML), - for stdin, or git:REV:PATH")
    graph.add_argument(
        "--format",
        choices=("mermaid", "dot", "svg", "png"),
        default="mermaid",
        help="svg and png are drawn by Graphviz's dot (default: mermaid)",
    )
    graph.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    graph.add_argument("--changes-from", metavar="OLD", help="mark what changed since OLD")
    graph.add_argument(
        "--max-size", type=_byte_size, default=MAX_SIZE, metavar="SIZE", help="as for check"
    )

    sandbox = commands.add_parser("sandbox", help="run the mesh locally on 127.0.0.1")
    sandbox.add_argument(
        "file", type=Path, help="the mesh file (YAML); - reads standard input (not with --watch)"
    )
    sandbox.add_argument(
        "--ingress-port", type=int, default=0, help="the ingress port (default: any free one)"
    )
    sandbox.add_argument(
        "--watch", action="store_true", help="reload the sidecars when the file changes"
    )
    sandbox.add_argument("--quiet", action="store_true", help="do not stream the processes' logs")
    sandbox.add_argument(
        "--access-log",
        action="store_true",
        help="turn the proxies' access log on for this run, whatever the mesh's accessLog, and "
        "print it: one JSON line per request (even with --quiet)",
    )
    sandbox.add_argument(
        "--isolation",
        choices=("netns", "explicit-proxy"),
        help="netns: each replica in its own network namespace behind iptables, as in a cluster "
        "(default where namespaces can be created: root); explicit-proxy: apps share 127.0.0.1 "
        "and call through HTTP_PROXY",
    )

    traffic = commands.add_parser("traffic", help="send requests and tabulate the outcomes")
    traffic.add_argument("url", help="where to send the requests")
    traffic.add_argument(
        "-n", "--requests", type=int, default=100, help="how many requests (default 100)"
    )
    traffic.add_argument(
        "-c", "--concurrency", type=int, default=4, help="how many at once (default 4)"
    )
    traffic.add_argument("-X", "--method", default="GET", help="HTTP method (default GET)")
    traffic.add_argument(
        "-H", "--header", action="append", default=[], help="'Name: value', repeatable"
    )
    traffic.add_argument("-d", "--data", help="request body")
    traffic.add_argument(
        "--timeout", type=float, default=10.0, help="per-request timeout in seconds"
    )
    traffic.add_argument(
        "--cacert",
        metavar="FILE",
        help="https:// only: trust the CA certificates in FILE (the sandbox prints its own) "
        "instead of the system's",
    )
    traffic.add_argument(
        "--insecure",
        action="store_true",
        help="https:// only: do not check the server's certificate",
    )
    traffic.add_argument(
        "--expect-status",
        action="append",
        default=[],
        metavar="CODES",
        help="statuses that count as success, e.g. 200 or 200,204 (repeatable); any other "
        "answer is a failure",
    )
    traffic.add_argument(
        "--max-failures",
        type=int,
        metavar="N",
        help="exit 1 when more than N requests fail (default: 0 with --expect-status, "
        "otherwise exit 1 only when every request failed)",
    )
    commands.add_parser(
        "schema",
        help="print the JSON Schema of mesh files, for editors",
        description="Print the JSON Schema of mesh files (draft 2020-12), for editors and CI.",
    )
    return parser


def _source(args: argparse.Namespace) -> str:
    return "<stdin>" if args.file == "-" else str(args.file)


def _check(args: argparse.Namespace) -> int:
    source = _source(args)
    try:
        text = read_mesh_file(args.file, args.max_size)
        mesh = load_mesh_text(text, source)
    except SpecError as error:
        if args.format != "json":
            raise
        _print_json(args, error.problems, [])
        return EXIT_INVALID
    # Warnings do not fail the check: a demo's password may well be meant to be inline.
    warnings = located(secret_warnings(mesh), text, source)
    if args.format == "json":
        _print_json(args, [], warnings)
        return EXIT_OK
    print(summarize(mesh, source))
    for warning in warnings:
        print(f"warning: {_with_line(warning)}", file=sys.stderr)
    hint = calls_hint(mesh)
    if hint is not None:
        print(f"hint: {hint}", file=sys.stderr)
    return EXIT_OK


# Past this many services a sidecar that knows every service carries much it never uses.
CALLS_HINT_SERVICES = 50


def calls_hint(mesh: Mesh) -> str | None:
    """A suggestion to scope sidecars with `calls` when a mesh is large."""
    unscoped = sorted(name for name, service in mesh.services.items() if service.calls is None)
    total = len(mesh.services)
    if total <= CALLS_HINT_SERVICES or not unscoped:
        return None
    return (
        f"{len(unscoped)} of the mesh's {total} services have no `calls` list, so each of their "
        f"sidecars carries the routes of all {total} services; listing the services each one "
        f"calls (services.{unscoped[0]}.calls) keeps its sidecar small"
    )


def _with_line(problem: Problem) -> str:
    # A problem about the file itself (a syntax error) names `file:line:column` already.
    if problem.line is None or ":" in problem.path:
        return str(problem)
    return f"line {problem.line}: {problem}"


def _print_json(args: argparse.Namespace, problems: list[Problem], warnings: list[Problem]) -> None:
    report = {
        "file": _source(args),
        "valid": not problems,
        "problems": [problem.to_json() for problem in problems],
        "warnings": [warning.to_json() for warning in warnings],
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))


def _render(args: argparse.Namespace) -> int:
    from sailplan.render.manifests import render_manifests
    from sailplan.render.yaml_output import (
        RENDERED_FILE_PATTERNS,
        dump,
        object_file_name,
        write_all,
    )

    out: Path | None = args.output_dir
    # Before the work: a mistyped -o must not cost a render, nor leave half the files behind.
    not_directory = _not_a_directory(out) if out is not None else None
    if not_directory is not None:
        print(f"error: -o {out}: {not_directory}", file=sys.stderr)
        return EXIT_INVALID
    # Validated for the asked plane, as if the file named it: the file's own plane may refuse
    # what that one takes, and what it refuses keeps its line in the file.
    mesh = load_mesh_text(
        read_mesh_file(args.file, args.max_size), _source(args), data_plane=args.data_plane
    )
    manifests = render_manifests(mesh, args.data_plane, gateway_class=args.gateway_class)
    if out is None:
        write_all(manifests, sys.stdout)
        return EXIT_OK
    out.mkdir(parents=True, exist_ok=True)
    wanted = {object_file_name(m): m for m in manifests}
    present = os.listdir(out)
    for pattern in RENDERED_FILE_PATTERNS:
        for name in fnmatch.filter(present, pattern):
            if name not in wanted:
                (out / name).unlink()
    files = ((name, dump(manifest).encode()) for name, manifest in wanted.items())
    _write_files(out, files, set(present))
    print(f"wrote {len(wanted)} objects to {out}")
    return EXIT_OK


# How many files the writer thread takes at a time: a queue hand-off per file costs more than the
# batching delays the first write.
_WRITE_BATCH = 64


def _write_files(out: Path, files: Iterable[tuple[str, bytes]], present: set[str]) -> None:
    """Write each (name, bytes) into `out`, leaving alone a file that already holds those bytes.

    The text is made in this thread while another does the file system calls, which release the
    GIL, so the kernel's work per file (ext4: about 0.05 ms to create one, more for its journal)
    overlaps the next files' YAML. Names relative to one open directory spare a path lookup per
    file. A name in `present` (the directory's listing) is read first and rewritten only if its
    bytes differ: reading is cheaper than truncating and writing, and an unchanged file keeps its
    inode and mtime, so `make`, rsync and git see only what the render changed."""
    batches: queue.SimpleQueue[list[tuple[str, bytes]] | None] = queue.SimpleQueue()
    failed: list[BaseException] = []

    def writer() -> None:
        directory = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
        try:
            while (batch := batches.get()) is not None:
                if not failed:
                    for name, data in batch:
                        _write_file(directory, out, name, data, name in present)
        except BaseException as error:  # handed to the main thread, which raises it
            failed.append(error)
        finally:
            os.close(directory)

    thread = threading.Thread(target=writer, name="sailplan-render-writer")
    thread.start()
    try:
        batch: list[tuple[str, bytes]] = []
        for item in files:
            if failed:
                break
            batch.append(item)
            if len(batch) == _WRITE_BATCH:
                batches.put(batch)
                batch = []
        batches.put(batch)
    finally:
        batches.put(None)
        thread.join()
    if failed:
        raise failed[0]


def _write_file(directory: int, out: Path, name: str, data: bytes, exists: bool) -> None:
    try:
        if exists:
            with contextlib.suppress(FileNotFoundError):
                # Read-only: a file that already holds its bytes needs no permission to write.
                fd = os.open(name, os.O_RDONLY, dir_fd=directory)
                try:
                    # One byte more than ours tells a longer file from an equal one.
                    same = os.read(fd, len(data) + 1) == data
                finally:
                    os.close(fd)
                if same:
                    return
                # Overwritten in place, then cut to length: truncating first frees the blocks and
                # allocates them again (0.3-0.8 ms a file on ext4, against 0.03 ms).
                fd = os.open(name, os.O_WRONLY, dir_fd=directory)
                try:
                    _write_all(fd, data)
                    os.ftruncate(fd, len(data))
                finally:
                    os.close(fd)
                return
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666, dir_fd=directory)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
    except OSError as error:
        # Relative to the directory, the name alone would not say where.
        raise OSError(error.errno, error.strerror, str(out / name)) from None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _not_a_directory(out: Path) -> str | None:
    """Why `out` cannot be the output directory, or None when it is one or can be made."""
    for path in [out, *out.parents]:
        if path.exists():
            if path.is_dir():
                return None
            if path == out:
                return (
                    "is a file, not a directory; -o takes a directory to write one file per object"
                )
            return f"{path} is a file, so the directory cannot be created"
    return None


def _diff(args: argparse.Namespace) -> int:
    from sailplan.review.graph import graph_diff, to_mermaid
    from sailplan.review.report import render_review, review
    from sailplan.review.sources import load_source

    meshes = []
    for source in (args.old, args.new):
        args.file = source  # names the source in the problems main() prints
        meshes.append(load_source(source, args.max_size))
    drawn = to_mermaid(graph_diff(meshes[0], meshes[1])) if args.graph else ""
    result = review(meshes[0], meshes[1], args.old, args.new, drawn)
    sys.stdout.write(render_review(result, args.format))
    return EXIT_RUNTIME if result.changed else EXIT_OK  # like diff(1): 1 means "they differ"


def _graph(args: argparse.Namespace) -> int:
    from sailplan.review.graph import as_text, graph_diff, mesh_graph
    from sailplan.review.picture import GraphvizError, draw
    from sailplan.review.sources import load_source

    mesh = load_source(args.file, args.max_size)
    if args.changes_from is not None:
        file, args.file = args.file, args.changes_from  # names OLD in the problems main() prints
        drawn = graph_diff(load_source(args.changes_from, args.max_size), mesh)
        args.file = file
    else:
        drawn = mesh_graph(mesh)
    text = as_text(drawn, args.format)
    try:
        data = draw(text, args.format) if args.format in ("svg", "png") else text.encode()
    except GraphvizError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_RUNTIME
    if args.output is None:
        sys.stdout.buffer.write(data)
    else:
        args.output.write_bytes(data)
    return EXIT_OK


def _sandbox(args: argparse.Namespace) -> int:
    from sailplan.sandbox.runner import run_sandbox

    return run_sandbox(args)


def _traffic(args: argparse.Namespace) -> int:
    from sailplan.traffic import run_traffic

    return run_traffic(args)


def _schema(args: argparse.Namespace) -> int:
    from sailplan.reference import schema_text

    sys.stdout.write(schema_text())
    return EXIT_OK


_COMMANDS: dict[str, Any] = {
    "check": _check,
    "render": _render,
    "diff": _diff,
    "graph": _graph,
    "sandbox": _sandbox,
    "traffic": _traffic,
    "schema": _schema,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = _COMMANDS[args.command](args)
    except SpecError as error:
        count = len(error.problems)
        where = f" in {_source(args)}" if getattr(args, "file", None) else ""
        print(f"error: {count} problem{'s' if count != 1 else ''}{where}:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {_with_line(problem)}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`sailplan render x | head`): not an error worth a message. Point
        # stdout at /dev/null so the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PIPE_CLOSED
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{error.strerror or error}", file=sys.stderr)
        return EXIT_RUNTIME
    return code


if __name__ == "__main__":
    sys.exit(main())
