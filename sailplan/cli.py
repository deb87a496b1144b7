"""`sailplan check|render|sandbox|traffic|schema`.

Exit codes: 0 success, 1 a runtime failure (said in one line), 2 invalid input (every problem listed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sailplan import __version__
from sailplan.loader import load_mesh
from sailplan.model import Mesh, SpecError
from sailplan.summary import summarize

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_INVALID = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sailplan",
        description="A service mesh described as typed Python: check, render, run locally.",
    )
    parser.add_argument("--version", action="version", version=f"sailplan {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="validate a mesh file and summarise it")
    check.add_argument("file", type=Path, help="the mesh file (YAML)")

    render = commands.add_parser("render", help="render Kubernetes manifests for a mesh")
    render.add_argument("file", type=Path, help="the mesh file (YAML)")
    render.add_argument("-o", "--output-dir", type=Path, help="write one file per object here")
    render.add_argument(
        "--data-plane",
        choices=("builtin", "istio"),
        help="override the mesh file's dataPlane",
    )

    sandbox = commands.add_parser("sandbox", help="run the mesh locally on 127.0.0.1")
    sandbox.add_argument("file", type=Path, help="the mesh file (YAML)")
    sandbox.add_argument(
        "--ingress-port", type=int, default=0, help="the ingress port (default: any free one)"
    )
    sandbox.add_argument(
        "--watch", action="store_true", help="reload the sidecars when the file changes"
    )
    sandbox.add_argument("--quiet", action="store_true", help="do not stream the processes' logs")

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
    commands.add_parser(
        "schema",
        help="print the JSON Schema of mesh files, for editors",
        description="Print the JSON Schema of mesh files (draft 2020-12), for editors and CI.",
    )
    return parser


def _check(args: argparse.Namespace) -> int:
    mesh = load_mesh(args.file)
    print(summarize(mesh, str(args.file)))
    return EXIT_OK


def _render(args: argparse.Namespace) -> int:
    from sailplan.render.manifests import render_manifests
    from sailplan.render.yaml_output import dump, dump_all, object_file_name

    mesh: Mesh = load_mesh(args.file)
    manifests = render_manifests(mesh, args.data_plane)
    if args.output_dir is None:
        sys.stdout.write(dump_all(manifests))
        return EXIT_OK
    out: Path = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    wanted = {object_file_name(i, m): m for i, m in enumerate(manifests)}
    for stale in out.glob("[0-9][0-9][0-9]-*.yaml"):
        if stale.name not in wanted:
            stale.unlink()
    for name, manifest in wanted.items():
        (out / name).write_text(dump(manifest), encoding="utf-8")
    print(f"wrote {len(wanted)} objects to {out}")
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
        where = f" in {args.file}" if getattr(args, "file", None) else ""
        print(f"error: {count} problem{'s' if count != 1 else ''}{where}:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 130
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{error.strerror or error}", file=sys.stderr)
        return EXIT_RUNTIME
    return code


if __name__ == "__main__":
    sys.exit(main())
