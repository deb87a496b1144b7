"""Drawing a dot graph as SVG or PNG with Graphviz's `dot` (Debian's graphviz; `make os-deps`)."""

from __future__ import annotations

import shutil
import subprocess


class GraphvizError(RuntimeError):
    """Graphviz is missing or failed: a runtime failure, not bad input."""


def draw(dot_text: str, output_format: str) -> bytes:
    """SVG or PNG bytes of a dot graph. PNGs are drawn at 144 dpi: sharp in docs and on HiDPI."""
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizError(
            "Graphviz's `dot` is not installed; install graphviz (Debian: apt-get install "
            "graphviz, or `make os-deps`), or use --format mermaid or dot"
        )
    options = ["-Gdpi=144"] if output_format == "png" else []
    done = subprocess.run(
        [dot, f"-T{output_format}", *options],
        input=dot_text.encode(),
        capture_output=True,
        timeout=60,
    )
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"
        raise GraphvizError(f"dot -T{output_format} failed: {reason}")
    return done.stdout
