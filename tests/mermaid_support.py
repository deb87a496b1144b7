"""A checker for the mermaid flowcharts sailplan writes: every line must be one of the few
statements of mermaid's flowchart grammar that sailplan uses, and refer only to defined things."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest

_ID = r"[A-Za-z_][A-Za-z0-9_]*"
_TEXT = r'"([^"]*)"'


@dataclass
class Flowchart:
    title: str = ""
    nodes: dict[str, str] = field(default_factory=dict)
    edges: list[tuple[str, str, str, str]] = field(
        default_factory=list
    )  # source, arrow, label, target
    link_styles: dict[int, str] = field(default_factory=dict)
    class_defs: dict[str, str] = field(default_factory=dict)
    classes: dict[str, set[str]] = field(default_factory=dict)


def parse_mermaid(text: str) -> Flowchart:
    """The subset of mermaid's flowchart grammar sailplan writes; any other line fails the test."""
    lines = text.splitlines()
    assert lines[0] == "---" and lines[2] == "---" and lines[3] == "flowchart LR", lines[:4]
    title = re.fullmatch(rf"title: {_TEXT}", lines[1])
    assert title, lines[1]
    chart = Flowchart(title=title.group(1))
    for line in lines[4:]:
        if found := re.fullmatch(rf"  ({_ID})\[{_TEXT}\]", line):
            assert found.group(1) not in chart.nodes, f"node defined twice: {line}"
            chart.nodes[found.group(1)] = found.group(2)
        elif found := re.fullmatch(rf"  ({_ID}) (-->|-\.->)\|{_TEXT}\| ({_ID})", line):
            source, arrow, label, target = found.groups()
            assert source in chart.nodes and target in chart.nodes, f"undefined node: {line}"
            chart.edges.append((source, arrow, label, target))
        elif found := re.fullmatch(r"  linkStyle (\d+) ([a-z-]+:[^,\s]+(,[a-z-]+:[^,\s]+)*)", line):
            assert int(found.group(1)) < len(chart.edges), f"no such link: {line}"
            chart.link_styles[int(found.group(1))] = found.group(2)
        elif found := re.fullmatch(rf"  classDef ({_ID}) ([a-z-]+:[^,]+(,[a-z-]+:[^,]+)*)", line):
            chart.class_defs[found.group(1)] = found.group(2)
        elif found := re.fullmatch(rf"  class ({_ID}(?:,{_ID})*) ({_ID})", line):
            assert found.group(2) in chart.class_defs, f"undefined class: {line}"
            for node in found.group(1).split(","):
                assert node in chart.nodes, f"undefined node: {line}"
                chart.classes.setdefault(node, set()).add(found.group(2))
        else:
            pytest.fail(f"not a flowchart line: {line!r}")
    for label in [*chart.nodes.values(), *(edge[2] for edge in chart.edges)]:
        # Entity codes only: a raw `<` other than <br/>, or a `"`, would break the label.
        assert "<" not in label.replace("<br/>", ""), label
    return chart
