"""Build mesh specs for tests: the demo mesh as data, edited at YAML paths."""

from __future__ import annotations

import copy
import re
from typing import Any

import yaml
from conftest import DEMO_MESH

DELETE = object()
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def demo_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEMO_MESH.read_text())
    return data


def _parts(path: str) -> list[str | int]:
    return [int(index) if index else key for key, index in _PART.findall(path)]


def edited(edits: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of `base` (the demo mesh) with each path set to its value (or removed: DELETE)."""
    data = copy.deepcopy(base if base is not None else demo_data())
    for path, value in edits.items():
        *parents, last = _parts(path)
        node: Any = data
        for part in parents:
            node = node[part]
        if value is DELETE:
            del node[last]
        elif isinstance(node, list) and isinstance(last, int) and last == len(node):
            node.append(value)
        else:
            node[last] = value
    return data
