"""Where `sailplan diff` reads a mesh from: a file, `-` for stdin, or `git:REV:PATH`."""

from __future__ import annotations

import errno
import subprocess

from sailplan.loader import MAX_SIZE, load_mesh_text, read_mesh_file
from sailplan.model import Mesh, Problem, SpecError

GIT_PREFIX = "git:"


def read_source(source: str, max_size: int = MAX_SIZE) -> str:
    """The text of a mesh source. A git revision or path that does not exist is bad input (a
    SpecError); git itself missing is a runtime failure (the OSError propagates)."""
    if not source.startswith(GIT_PREFIX):
        return read_mesh_file(source, max_size)  # `-` is standard input
    revision, colon, path = source[len(GIT_PREFIX) :].partition(":")
    if not colon or not revision or not path:
        raise SpecError(
            [Problem(source, "write a git source as git:REV:PATH, e.g. git:main:mesh.yaml")]
        )
    # `git show REV:PATH` reads PATH from the repository root; `./PATH` is relative to the cwd.
    try:
        done = subprocess.run(
            ["git", "show", f"{revision}:{path}"], capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError:
        # A runtime failure (exit 1), said in one line by the CLI: the input may well be fine.
        raise OSError(
            errno.ENOENT, "not installed; a git:REV:PATH source needs it", "git"
        ) from None
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
        raise SpecError([Problem(source, f"git show {revision}:{path}: {reason}")])
    if len(done.stdout.encode()) > max_size:
        raise SpecError([Problem(source, f"larger than {max_size} bytes (see --max-size)")])
    return done.stdout


def load_source(source: str, max_size: int = MAX_SIZE) -> Mesh:
    label = "<stdin>" if source == "-" else source
    return load_mesh_text(read_source(source, max_size), label)
