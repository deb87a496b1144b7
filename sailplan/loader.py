"""Reading mesh files: YAML text or a path in, a validated Mesh or one SpecError out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from sailplan.gc_pause import paused_gc
from sailplan.model import Mesh, Problem, SpecError

# libyaml's parser when PyYAML was built with it: ten times faster on large meshes.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):  # type: ignore[valid-type, misc]
    """SafeLoader that rejects duplicate keys (PyYAML would keep the last one) and reads booleans
    as YAML 1.2 does: only true/false. YAML 1.1 turns `on:` (the retries key) into True."""


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", mark)
        seen[key] = True
    mapping: dict[Any, Any] = loader.construct_mapping(node)
    return mapping


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def parse_yaml(text: str, source: str = "<text>") -> Any:
    """YAML text -> plain data; syntax errors become a SpecError naming the line and column."""
    try:
        with paused_gc():
            return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = error.problem or error.context or "invalid YAML"
        raise SpecError([Problem(where, f"YAML syntax error: {what}")]) from None
    except yaml.YAMLError as error:
        raise SpecError([Problem(source, f"YAML syntax error: {error}")]) from None


def load_mesh_text(text: str, source: str = "<text>") -> Mesh:
    data = parse_yaml(text, source)
    if data is None:
        raise SpecError(
            [
                Problem(
                    source, "the file is empty; a mesh file starts with `apiVersion: sailplan/v1`"
                )
            ]
        )
    if not isinstance(data, dict):
        raise SpecError(
            [
                Problem(
                    source,
                    f"a mesh file must be a mapping at the top level, not {type(data).__name__}",
                )
            ]
        )
    with paused_gc():
        return Mesh.parse(data)


def read_mesh_file(path: str | Path) -> str:
    """The text of a mesh file; a missing or unreadable file is a SpecError with one problem."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem(str(path), "no such file")]) from None
    except IsADirectoryError:
        raise SpecError([Problem(str(path), "is a directory, not a mesh file")]) from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise SpecError([Problem(str(path), f"cannot read the file: {reason}")]) from None


def load_mesh(path_or_text: str | Path) -> Mesh:
    """Load a mesh from a file path or from YAML text.

    A `Path`, or a one-line string, is a file path; a string with line breaks is YAML text.
    """
    if isinstance(path_or_text, str) and "\n" in path_or_text:
        return load_mesh_text(path_or_text)
    return load_mesh_text(read_mesh_file(path_or_text), str(path_or_text))
