"""`sailplan diff` output: the mesh changes, then the Kubernetes objects per plane, as text,
markdown (for a pull-request comment) or JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from sailplan.model import Mesh
from sailplan.review.diff import CATEGORIES, Change, mesh_changes
from sailplan.review.objects import PlaneChanges, object_changes

FORMATS = ("text", "markdown", "json")

_HEADINGS = {
    "security": "Security",
    "traffic": "Traffic",
    "ingress": "Ingress",
    "policy": "Policy",
    "workload": "Workloads",
    "mesh": "Mesh",
}


@dataclass(frozen=True)
class Review:
    old_source: str
    new_source: str
    mesh: str
    changes: list[Change]
    planes: list[PlaneChanges]
    graph: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.changes) or any(plane.changes for plane in self.planes)


def review(old: Mesh, new: Mesh, old_source: str, new_source: str, graph: str = "") -> Review:
    return Review(
        old_source, new_source, new.name, mesh_changes(old, new), object_changes(old, new), graph
    )


def _title(result: Review, quote: Callable[[str], str] = repr) -> str:
    count = len(result.changes)
    mesh, old, new = quote(result.mesh), result.old_source, result.new_source
    if quote is not repr:
        old, new = quote(old), quote(new)
    if not result.changed:
        return f"mesh {mesh}: no change from {old} to {new}"
    return f"mesh {mesh}: {count} change{'' if count == 1 else 's'} from {old} to {new}"


def _plane_title(plane: PlaneChanges) -> str:
    own = " (this mesh's data plane)" if plane.current and "→" not in plane.plane else ""
    if "→" in plane.plane:
        own = " (this change switches the data plane)"
    return f"{plane.plane}{own}: {plane.counts}"


def _restarts(plane: PlaneChanges) -> str:
    """The one line a reviewer looks for: do pods restart?"""
    rolled = [c.name for c in plane.changes if c.effect == "pods restart"]
    reloads = any(c.effect == "sidecars reload" for c in plane.changes)
    if rolled:
        return f"pods restart: {', '.join(rolled)}"
    if not plane.changes or plane.note:
        return ""
    return "no pod restarts" + (" (sidecars reload their config)" if reloads else "")


def _grouped(changes: list[Change]) -> list[tuple[str, list[Change]]]:
    return [
        (_HEADINGS[category], [c for c in changes if c.category == category])
        for category in CATEGORIES
        if any(c.category == category for c in changes)
    ]


def as_text(result: Review) -> str:
    lines = [_title(result)]
    for heading, changes in _grouped(result.changes):
        lines += ["", heading, *(f"  {c.line}" for c in changes)]
    if result.changed:
        lines += ["", "Kubernetes objects"]
        for plane in result.planes:
            restarts = _restarts(plane)
            lines.append(f"  {_plane_title(plane)}" + (f" — {restarts}" if restarts else ""))
            if plane.note:
                lines.append(f"    {plane.note}")
            width = max((len(c.ref) for c in plane.changes), default=0)
            for change in plane.changes:
                effect = f"  {change.effect}" if change.effect else ""
                lines.append(f"    {change.action:<8} {change.ref:<{width}}{effect}".rstrip())
    if result.graph:
        lines += ["", "Graph (mermaid)", result.graph.rstrip("\n")]
    return "\n".join(lines) + "\n"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#])")


def _md(text: str) -> str:
    """Spec values as literal text: `/api/users*` or a regex `~ja.*` must not turn into emphasis,
    nor a header value into HTML, in a pull-request comment."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def as_markdown(result: Review) -> str:
    lines = [f"### sailplan diff: {_title(result, lambda text: f'`{text}`')}"]
    for heading, changes in _grouped(result.changes):
        mark = "⚠️ " if heading == "Security" else ""
        lines += ["", f"**{mark}{heading}**", ""]
        lines += [f"- **{_md(c.subject)}**: {_md(c.text)}" for c in changes]
    if result.changed:
        lines += ["", "#### Kubernetes objects"]
        for plane in result.planes:
            restarts = _restarts(plane)
            lines += ["", f"**{_plane_title(plane)}**" + (f" — {restarts}" if restarts else "")]
            if plane.note:
                lines += ["", plane.note]
            if plane.changes:
                lines += ["", "| change | object | effect |", "|---|---|---|"]
                lines += [f"| {c.action} | `{c.ref}` | {c.effect} |" for c in plane.changes]
    if result.graph:
        lines += ["", "#### Graph", "", "```mermaid", result.graph.rstrip("\n"), "```"]
    return "\n".join(lines) + "\n"


def as_json(result: Review) -> str:
    document = {
        "mesh": result.mesh,
        "old": result.old_source,
        "new": result.new_source,
        "changed": result.changed,
        "changes": [c.to_json() for c in result.changes],
        "objects": [plane.to_json() for plane in result.planes],
    }
    if result.graph:
        document["graph"] = result.graph
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render_review(result: Review, output_format: str) -> str:
    return {"text": as_text, "markdown": as_markdown, "json": as_json}[output_format](result)
