"""The mesh as a picture: ingress → services → versions, one edge per route and destination.

`mesh_graph` builds a neutral graph from a Mesh; `graph_diff` merges two of them and marks what
was added, changed or removed; `to_mermaid` and `to_dot` write it out. Pure: no Graphviz here.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

from sailplan.model import Mesh, Route, Service
from sailplan.review import words

State = Literal["", "added", "changed", "removed"]
NodeKind = Literal["ingress", "service", "version"]
# An "answer" edge loops on its service: a `redirect` or `respond` route reaches no version.
EdgeKind = Literal["ingress", "route", "mirror", "default", "answer"]


@dataclass(frozen=True)
class Node:
    id: str
    kind: NodeKind
    lines: tuple[str, ...]  # the first line is the title
    group: str  # the service it belongs to; "" for the ingress
    signature: str  # what is compared between two meshes (more than the label shows, e.g. env)
    state: State = ""


@dataclass(frozen=True)
class Edge:
    id: str
    source: str
    target: str
    kind: EdgeKind
    lines: tuple[str, ...]
    fault: bool
    signature: str
    state: State = ""


@dataclass(frozen=True)
class Graph:
    title: str
    title_state: State
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    compared: bool = False  # a diff: draw the added / changed / removed legend


# One palette for every format, so a mermaid comment and a PNG in a design doc read alike.
COLOURS = {
    "ingress": ("#fbefff", "#8250df"),
    "service": ("#ddf4ff", "#0969da"),
    "version": ("#f6f8fa", "#57606a"),
}
EDGE_COLOUR = "#57606a"
FAULT_COLOUR = "#cf222e"
STATE_COLOURS = {"added": "#1a7f37", "changed": "#bc4c00", "removed": "#8c959f"}
TEXT_COLOUR = "#1f2328"


def _node_id(*parts: str) -> str:
    # Mermaid and dot ids: letters, digits and `_`; names are DNS labels, so `-` is the only other.
    return "_".join(part.replace("-", "_") for part in parts)


def _signature(*values: object) -> str:
    return json.dumps(values, sort_keys=True, default=str)


def _service_node(name: str, service: Service) -> Node:
    lines = [name, f":{service.port}/{service.protocol}"]
    policy = service.policy
    if policy and policy.load_balancer:
        lines.append(f"load balancer {words.load_balancer(policy.load_balancer.to_dict())}")
    if policy and policy.connection_pool:
        pool = policy.connection_pool
        limits = pool.limits()
        if pool.max_connections is not None:
            limits.insert(
                0, f"{pool.max_connections} connections, {pool.max_pending_requests} pending"
            )
        lines.append(f"circuit breaker: {', '.join(limits)}")
    if policy and policy.outlier_detection:
        lines.append(policy.outlier_detection.phrase())
    if service.calls is not None:
        lines.append(words.calls_scope(service.calls))
    everything_but_routes = {k: v for k, v in service.to_dict().items() if k != "routes"}
    everything_but_routes.pop("versions")
    return Node(
        _node_id("svc", name), "service", tuple(lines), name, _signature(everything_but_routes)
    )


def _route_edges(name: str, service: Service) -> list[Edge]:
    source = _node_id("svc", name)
    edges = []
    if not service.routes:
        for version in service.versions:
            edges.append(
                Edge(
                    f"{source}>{version}#default",
                    source,
                    _node_id("ver", name, version),
                    "default",
                    ("every request" if len(service.versions) == 1 else "no routes: spread",),
                    False,
                    "",
                )
            )
    for key, route in zip(words.route_keys(service.routes), service.routes, strict=True):
        # An unnamed route is called by its conditions, not its index: an index shifts whenever a
        # route is inserted before it, which would mark every later route as changed.
        conditions = words.conditions(route.match)
        label = route.name or (f"when {conditions}" if route.match else "any request")
        when = (f"when {conditions}",) if route.name and route.match else ()
        extras = tuple(e for e in words.route_extras(route) if not e.startswith("mirror "))
        extras += tuple(_request_changes(route))
        answer = (
            words.redirect_target(route.redirect.to_dict())
            if route.redirect is not None
            else words.answers(route.respond.to_dict())
            if route.respond is not None
            else None
        )
        if answer is not None:
            edges.append(
                Edge(
                    f"{source}>answer#{key}",
                    source,
                    source,
                    "answer",
                    (label, *when, answer, *extras),
                    route.fault is not None,
                    _signature(route.to_dict()),
                )
            )
        for version, weight in route.weights.items():
            share = "" if route.to is not None else f" {weight}%"
            # destinationHeaders act on this version's requests only: said on its edge alone.
            changes = (route.destination_headers or {}).get(version)
            only_here = words.header_changes(None, changes.to_dict()) if changes else []
            edges.append(
                Edge(
                    f"{source}>{version}#{key}",
                    source,
                    _node_id("ver", name, version),
                    "route",
                    (f"{label}{share}", *when, *extras, *only_here),
                    route.fault is not None,
                    _signature(route.to_dict()),
                )
            )
        for mirror in route.copies:
            edges.append(
                Edge(
                    f"{source}>{mirror.to}#{key}#mirror",
                    source,
                    _node_id("ver", name, mirror.to),
                    "mirror",
                    (f"{label}: mirrors {mirror.percent:g}%",),
                    False,
                    _signature(route.to_dict()),
                )
            )
    return edges


def _request_changes(route: Route) -> list[str]:
    """Header changes, rewrites and CORS of a route, in the words `diff` uses for them."""
    texts = words.header_changes(None, route.headers.to_dict() if route.headers else None)
    if route.rewrite is not None:
        matched = [m.path.describe() for m in route.match or [] if m.path is not None]
        texts += words.rewrite_steps(route.rewrite.to_dict(), list(dict.fromkeys(matched)))
    if route.cors is not None:
        texts.append(words.cors_origins(route.cors.to_dict()))
    return texts


def mesh_graph(mesh: Mesh) -> Graph:
    """ingress → services → versions, in the mesh file's order."""
    nodes: list[Node] = []
    edges: list[Edge] = []
    if mesh.ingress is not None:
        ingress = mesh.ingress
        lines = [f"ingress :{ingress.port}"]
        if ingress.node_port:
            lines.append(f"nodePort {ingress.node_port}")
        lines.append(f"hosts {', '.join(ingress.hosts)}")
        if ingress.tls is not None:
            tls = ingress.tls
            lines.append(f"HTTPS: {words.tls_certificate(tls.to_dict())}, {tls.min_version}+")
            if tls.https_redirect:
                to_https = words.redirect_target({"code": 301, "scheme": "https"})
                lines.append(f"port 80: {to_https} (same host and path)")
        signature = _signature({k: v for k, v in ingress.to_dict().items() if k != "routes"})
        nodes.append(Node("ingress", "ingress", tuple(lines), "", signature))
        keys = words.route_keys(ingress.routes)
        for key, route in zip(keys, ingress.routes, strict=True):
            target = _node_id("svc", route.service)
            label = (route.name + ": ") if route.name else ""
            edges.append(
                Edge(
                    f"ingress>{route.service}#{key}",
                    "ingress",
                    target,
                    "ingress",
                    (f"{label}{words.conditions(route.match)}",),
                    False,
                    _signature(route.to_dict()),
                )
            )
    for name, service in mesh.services.items():
        nodes.append(_service_node(name, service))
        routed = {v for r in service.routes for v, w in r.weights.items() if w > 0}
        routed |= {m.to for r in service.routes for m in r.copies}
        for version_name, version in service.versions.items():
            replicas = f"{version.replicas} replica{'' if version.replicas == 1 else 's'}"
            # A version the routes never send to is worth a reviewer's second look.
            idle = () if not service.routes or version_name in routed else ("no requests",)
            nodes.append(
                Node(
                    _node_id("ver", name, version_name),
                    "version",
                    (version_name, version.image, replicas, *idle),
                    name,
                    _signature(version.to_dict()),
                )
            )
        edges += _route_edges(name, service)
    title = (
        f"mesh {mesh.name} · namespace {mesh.target_namespace} · "
        f"{mesh.data_plane} data plane · mTLS {mesh.mtls}"
    )
    return Graph(title, "", tuple(nodes), tuple(edges))


T = TypeVar("T", Node, Edge)


def _merge(old: tuple[T, ...], new: tuple[T, ...]) -> tuple[T, ...]:
    """NEW's elements marked added or changed, then OLD's removed ones in their old place."""
    before = {item.id: item for item in old}
    after_ids = {item.id for item in new}
    merged: list[T] = []
    for item in new:
        was = before.get(item.id)
        if was is None:
            merged.append(replace(item, state="added"))
        elif was.signature != item.signature or was.lines != item.lines:
            merged.append(replace(item, state="changed"))
        else:
            merged.append(item)
    merged += [replace(item, state="removed") for item in old if item.id not in after_ids]
    return tuple(merged)


def graph_diff(old: Mesh, new: Mesh) -> Graph:
    """NEW's graph with every added, changed and removed element marked."""
    before, after = mesh_graph(old), mesh_graph(new)
    nodes = _merge(before.nodes, after.nodes)
    # A removed node must still be drawn inside its service, so group the nodes again.
    order = {node.group: i for i, node in enumerate(nodes) if node.kind == "service"}
    nodes = tuple(sorted(nodes, key=lambda n: -1 if n.kind == "ingress" else order[n.group]))
    title_state: State = "changed" if before.title != after.title else ""
    title = " · ".join(
        _part_change(was, now)
        for was, now in zip(before.title.split(" · "), after.title.split(" · "), strict=True)
    )
    return Graph(title, title_state, nodes, _merge(before.edges, after.edges), compared=True)


def _part_change(was: str, now: str) -> str:
    """`mTLS permissive → disable`: one part of the title, its change said in place."""
    if was == now:
        return now
    (was_first, _, was_rest), (now_first, _, now_rest) = was.partition(" "), now.partition(" ")
    if was_first == now_first and was_rest and now_rest:
        return f"{now_first} {was_rest} → {now_rest}"
    return f"{was} → {now}"


# --- mermaid ---------------------------------------------------------------------------------


def _mermaid_text(lines: tuple[str, ...] | list[str]) -> str:
    # Inside quotes mermaid reads entity codes; `"` `<` `>` would end or open something.
    escaped = [
        line.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
        for line in lines
    ]
    return "<br/>".join(escaped)


def _state_suffix(state: State) -> tuple[str, ...]:
    return (f"({state})",) if state else ()


def to_mermaid(graph: Graph) -> str:
    # The title goes in the front matter (mermaid 10+, as GitHub and GitLab render); no subgraphs:
    # their titles would repeat the service nodes' and make GitHub's layout cramped.
    title = " ".join([graph.title, *_state_suffix(graph.title_state)]).replace('"', "'")
    out = ["---", f'title: "{title}"', "---", "flowchart LR"]
    for node in graph.nodes:
        out.append(f'  {node.id}["{_mermaid_text(node.lines + _state_suffix(node.state))}"]')
    link_styles = []
    for index, edge in enumerate(graph.edges):
        arrow = "-.->" if edge.kind == "mirror" or edge.state == "removed" else "-->"
        label = _mermaid_text(edge.lines + _state_suffix(edge.state))
        out.append(f'  {edge.source} {arrow}|"{label}"| {edge.target}')
        colour = STATE_COLOURS.get(edge.state) or (FAULT_COLOUR if edge.fault else "")
        if colour:
            link_styles.append(f"  linkStyle {index} stroke:{colour},stroke-width:2px")
    out += link_styles
    for kind, (fill, stroke) in COLOURS.items():
        out.append(f"  classDef {kind} fill:{fill},stroke:{stroke},color:{TEXT_COLOUR}")
    for state, colour in STATE_COLOURS.items():
        dash = ",stroke-dasharray:4 3" if state == "removed" else ""
        out.append(f"  classDef {state} stroke:{colour},stroke-width:3px{dash}")
    for kind in COLOURS:
        ids = [node.id for node in graph.nodes if node.kind == kind]
        if ids:
            out.append(f"  class {','.join(ids)} {kind}")
    for state in STATE_COLOURS:
        ids = [node.id for node in graph.nodes if node.state == state]
        if ids:
            out.append(f"  class {','.join(ids)} {state}")
    return "\n".join(out) + "\n"


# --- Graphviz dot ----------------------------------------------------------------------------

_FONT = "DejaVu Sans"


def _html(lines: tuple[str, ...], colour: str = "") -> str:
    """A Graphviz HTML-like label: the first line bold, then the details smaller."""
    first, *rest = (html.escape(line, quote=False) for line in lines)
    body = f"<b>{first}</b>" + "".join(f'<br/><font point-size="10">{r}</font>' for r in rest)
    return f'<font color="{colour}">{body}</font>' if colour else body


def _edge_label(lines: tuple[str, ...]) -> str:
    first, *rest = (html.escape(line, quote=False) for line in lines)
    return first + "".join(f'<br/><font point-size="9">{r}</font>' for r in rest)


def _legend(compared: bool) -> str:
    cells = [
        f'<td bgcolor="{COLOURS["ingress"][0]}">ingress</td>',
        f'<td bgcolor="{COLOURS["service"][0]}">service</td>',
        f'<td bgcolor="{COLOURS["version"][0]}">version</td>',
        "<td>─── route</td>",
        f'<td><font color="{FAULT_COLOUR}">─── route with a fault</font></td>',
        "<td>- - - mirror</td>",
        "<td>· · · no routes</td>",
    ]
    if compared:
        cells += [
            f'<td><font color="{colour}"><b>{state}</b></font></td>'
            for state, colour in STATE_COLOURS.items()
        ]
    return (
        '<table border="0" cellborder="1" cellspacing="0" cellpadding="3" color="#d0d7de">'
        f"<tr>{''.join(cells)}</tr></table>"
    )


def _title_and_legend(graph: Graph) -> str:
    """The graph's label: the mesh in one line, the legend under it (a picture in a design doc
    must explain itself)."""
    title = _html((graph.title,), STATE_COLOURS.get(graph.title_state, ""))
    return (
        '<table border="0" cellspacing="0" cellpadding="2">'
        f'<tr><td align="left">{title}</td></tr>'
        f'<tr><td align="left"><font point-size="10">{_legend(graph.compared)}</font></td></tr>'
        "</table>"
    )


def to_dot(graph: Graph) -> str:
    out = [
        "digraph mesh {",
        f'  graph [rankdir=LR, fontname="{_FONT}", fontsize=13, labelloc=t, labeljust=l, '
        f'label=<{_title_and_legend(graph)}>, nodesep=0.5, ranksep=1.1, pad=0.3, bgcolor="white", '
        "newrank=true]",
        f'  node [shape=box, style="rounded,filled", fontname="{_FONT}", fontsize=12, '
        f'fontcolor="{TEXT_COLOUR}", margin="0.18,0.08", penwidth=1.2]',
        f'  edge [fontname="{_FONT}", fontsize=10, color="{EDGE_COLOUR}", '
        f'fontcolor="{TEXT_COLOUR}", arrowsize=0.7]',
    ]
    groups: dict[str, list[Node]] = {}
    for node in graph.nodes:
        groups.setdefault(node.group, []).append(node)
    for group, nodes in groups.items():
        indent = "  "
        if group:
            out.append(f"  subgraph cluster_{_node_id(group)} {{")
            # No label: the service node inside already names it.
            out.append(f'    label=""; style="rounded,dashed"; color="{COLOURS["service"][1]}"')
            indent = "    "
        for node in nodes:
            fill, stroke = COLOURS[node.kind]
            attributes = [f"label=<{_html(node.lines + _state_suffix(node.state))}>"]
            attributes.append(f'fillcolor="{fill}"')
            if node.state:
                style = "rounded,filled,dashed" if node.state == "removed" else "rounded,filled"
                attributes += [
                    f'color="{STATE_COLOURS[node.state]}"',
                    "penwidth=3",
                    f'style="{style}"',
                ]
            else:
                attributes.append(f'color="{stroke}"')
            out.append(f"{indent}{node.id} [{', '.join(attributes)}]")
        if group:
            out.append("  }")
    targets = {edge.target for edge in graph.edges}
    for node in graph.nodes:
        if node.kind == "version" and node.id not in targets:
            # Keeps an unrouted version in the versions' column instead of beside its service.
            out.append(f"  {_node_id('svc', node.group)} -> {node.id} [style=invis]")
    for edge in graph.edges:
        attributes = [f"label=<{_edge_label(edge.lines + _state_suffix(edge.state))}>"]
        colour = STATE_COLOURS.get(edge.state) or (FAULT_COLOUR if edge.fault else "")
        if colour:
            attributes += [f'color="{colour}"', f'fontcolor="{colour}"', "penwidth=2"]
        if edge.kind == "mirror" or edge.state == "removed":
            attributes.append("style=dashed")
        if edge.kind == "default":
            attributes.append("style=dotted")
        out.append(f"  {edge.source} -> {edge.target} [{', '.join(attributes)}]")
    out.append("}")
    return "\n".join(out) + "\n"


FORMATS = ("mermaid", "dot", "svg", "png")


def as_text(graph: Graph, output_format: str) -> str:
    """mermaid or dot text; svg and png are drawn from the dot text by Graphviz."""
    return to_mermaid(graph) if output_format == "mermaid" else to_dot(graph)
