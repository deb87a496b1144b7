"""Reading mesh files: YAML text or a path in, a validated Mesh or one SpecError out."""

from __future__ import annotations

import re
import sys
from collections.abc import Hashable
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from sailplan.gc_pause import paused_gc
from sailplan.model import DataPlane, Mesh, Problem, SpecError
from sailplan.model.errors import clip

# libyaml's parser when PyYAML was built with it: ten times faster on large meshes.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):  # type: ignore[valid-type, misc]
    """SafeLoader that rejects duplicate keys (PyYAML would keep the last one) and reads plain
    scalars as YAML 1.2 does: only true/false are booleans (YAML 1.1 turns `on:`, the retries
    key, into True), and there are no timestamps (`RELEASE: 2024-12-01` is text, not a date)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._resolved: dict[str, str] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        # libyaml's composer asks this once per scalar (a 1,000-service mesh has 118,000); a mesh
        # repeats its keys and values, so each plain text is matched against the resolvers once.
        # The tag of a plain scalar depends on its text alone (no path resolvers are set).
        if kind is yaml.ScalarNode:
            if implicit[0]:
                tag = self._resolved.get(value)
                if tag is None:
                    tag = self._resolved[value] = super().resolve(kind, value, implicit)
                return tag
            return super().resolve(kind, value, implicit)
        if kind is yaml.MappingNode:
            return self.DEFAULT_MAPPING_TAG
        return self.DEFAULT_SEQUENCE_TAG

    # The composer calls these around every node for path resolvers, which sailplan sets none of:
    # builtins that do nothing with their arguments spare two Python calls per node.
    descend_resolver = staticmethod(slice)
    ascend_resolver = staticmethod(tuple)


_YAML_11_ONLY = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _YAML_11_ONLY]
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
        if not isinstance(key, Hashable):
            # PyYAML's own check and words, which would otherwise come after this one's `in`.
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found unhashable key",
                key_node.start_mark,
            )
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", mark)
        seen[key] = True
    mapping: dict[Any, Any] = loader.construct_mapping(node)
    return mapping


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


# Limits that keep a hostile or mistaken file from stalling `check`: a mesh file is a few hundred
# lines, the benchmark's 5,000-service mesh is 5.5 MB. Each limit is far above real use.
MAX_SIZE = 10 * 1024 * 1024
# Values that aliases may add beyond those written out: a 500-byte "billion laughs" file expands
# to nearly a billion values, a mesh sharing a version block through anchors by a few thousand.
ALIAS_BUDGET = 100_000
# A mesh is at most ~10 levels deep; pydantic recurses per level and hits Python's limit near 500.
# Without anchors, libyaml's own limit (1,000 levels) holds and a RecursionError is caught instead.
MAX_DEPTH = 100
_TOO_DEEP = "values are nested too deeply; a mesh file needs about 10 levels"


def _node_problem(root: yaml.Node, source: str) -> Problem | None:
    """Refuse alias expansion beyond the budget, self-referring aliases and absurd nesting.

    Walks the composed node graph once, counting each node's expanded size (aliases share node
    objects, so a memo makes this linear in the file, not in the expansion)."""
    expanded: dict[int, int] = {}
    distinct = 0
    # Iterative post-order walk: (node, depth, children pushed yet?).
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    active: set[int] = set()
    while stack:
        node, depth, visited = stack.pop()
        key = id(node)
        if visited:
            active.discard(key)
            expanded[key] = 1 + sum(expanded[id(child)] for child in _children(node))
            continue
        if key in expanded:
            continue
        if key in active:
            mark = node.start_mark
            return Problem(
                f"{source}:{mark.line + 1}:{mark.column + 1}",
                "a YAML alias refers to the value that contains it; a mesh file cannot be recursive",
                mark.line + 1,
            )
        if depth > MAX_DEPTH:
            mark = node.start_mark
            return Problem(
                f"{source}:{mark.line + 1}:{mark.column + 1}",
                _TOO_DEEP,
                mark.line + 1,
            )
        distinct += 1
        active.add(key)
        stack.append((node, depth, True))
        stack.extend(
            (child, depth + 1, False) for child in _children(node) if id(child) not in expanded
        )
    total = expanded[id(root)]
    if total - distinct > ALIAS_BUDGET:
        return Problem(
            source,
            f"YAML aliases expand this file from {distinct:,} to {total:,} values; aliases may add "
            f"at most {ALIAS_BUDGET:,} (write repeated parts out, or repeat them less)",
        )
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _compose(text: str, source: str) -> yaml.Node | None:
    """The node graph of the single document in `text`, checked against the limits above."""
    loader = _StrictLoader(text)
    try:
        node: yaml.Node | None = loader.get_single_node()
    finally:
        loader.dispose()
    # Only anchors let nodes be shared, so only a file with `&` can expand or refer to itself;
    # skipping the walk otherwise keeps a 5,000-service mesh as fast to load as before.
    if node is not None and "&" in text:
        problem = _node_problem(node, source)
        if problem is not None:
            raise SpecError([problem])
    return node


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_NULL = "tag:yaml.org,2002:null"
_INT = "tag:yaml.org,2002:int"
# Tags whose PyYAML constructor turns a scalar into a value from its text alone.
_PLAIN_VALUES = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


class _Unusual(Exception):
    """What the lean constructor leaves to PyYAML's: a duplicate key, a merge key (`<<`), a
    collection as a key, a tag other than str, int, float, bool, null, map and seq."""


def _lean_construct(root: yaml.Node) -> Any:
    """The plain data of the node graph, as PyYAML's constructor builds it, in one iterative pass.

    PyYAML's constructor costs several Python calls per value (construct_object, a generator per
    collection, flatten_mapping, a hashability check). This builds the common case directly and
    raises `_Unusual` for anything else, which `_construct` then hands to PyYAML, so that every
    error and every rarely used feature stays exactly PyYAML's. It does not modify the nodes, so
    PyYAML starts from the same graph."""
    loader = _StrictLoader("")
    constructors = loader.yaml_constructors
    # Aliases share node objects: a shared collection becomes one shared Python object, as with
    # PyYAML (only a file with anchors has any).
    built: dict[int, Any] = {}
    # (node, its empty container, its depth). Past MAX_DEPTH PyYAML takes over: its recursion
    # limit words a too deeply nested file as before.
    pending: list[tuple[yaml.Node, Any, int]] = []
    scalar_node = yaml.ScalarNode

    def scalar(node: yaml.Node) -> Any:
        tag = node.tag
        if tag == _STR:
            return node.value
        if tag == _NULL:
            return None
        if tag == _INT:
            text = node.value
            # A plain decimal (ports, weights): what PyYAML's int constructor makes of it, whose
            # other cases (signs, `_`, 0x, 0o, a leading 0, base 60) it still handles.
            if text.isascii() and text.isdigit() and (text[0] != "0" or text == "0"):
                return int(text)
        if tag in _PLAIN_VALUES:
            return constructors[tag](loader, node)
        raise _Unusual

    def value_of(node: yaml.Node, depth: int) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return scalar(node)
        known = built.get(id(node))
        if known is not None:
            return known
        made: Any
        if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
            made = {}
        elif isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
            made = []
        else:
            raise _Unusual
        if depth > MAX_DEPTH:
            raise _Unusual
        built[id(node)] = made
        pending.append((node, made, depth))
        return made

    try:
        result = value_of(root, 1)
        # Text scalars, most of a mesh's values and all its keys, are read inline: a call each
        # was a third of the time.
        while pending:
            node, made, depth = pending.pop()
            depth += 1
            if type(made) is list:
                made.extend(
                    [
                        child.value
                        if type(child) is scalar_node and child.tag == _STR
                        else value_of(child, depth)
                        for child in node.value
                    ]
                )
                continue
            for key_node, value_node in node.value:
                if type(key_node) is scalar_node and key_node.tag == _STR:
                    key = key_node.value
                elif isinstance(key_node, yaml.ScalarNode):
                    key = scalar(key_node)
                else:
                    raise _Unusual
                if key in made:
                    raise _Unusual
                if type(value_node) is scalar_node and value_node.tag == _STR:
                    made[key] = value_node.value
                else:
                    made[key] = value_of(value_node, depth)
        return result
    finally:
        loader.dispose()


def _construct(node: yaml.Node) -> Any:
    try:
        return _lean_construct(node)
    except (_Unusual, ValueError):
        # PyYAML's constructor reads what the lean one leaves, and words every error.
        pass
    loader = _StrictLoader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _syntax_error(error: yaml.YAMLError, source: str) -> SpecError:
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = clip(error.problem or error.context or "invalid YAML")
        line = mark.line + 1 if mark else None
        return SpecError([Problem(where, f"YAML syntax error: {what}", line)])
    return SpecError([Problem(source, f"YAML syntax error: {clip(str(error))}")])


def parse_yaml(text: str, source: str = "<text>") -> Any:
    """YAML text -> plain data; syntax errors become a SpecError naming the line and column."""
    return parse_yaml_with_nodes(text, source)[0]


def parse_yaml_with_nodes(text: str, source: str = "<text>") -> tuple[Any, yaml.Node | None]:
    """Like `parse_yaml`, also returning the node graph, whose marks give each value's line."""
    try:
        with paused_gc():
            node = _compose(text, source)
            return (None if node is None else _construct(node)), node
    except yaml.YAMLError as error:
        raise _syntax_error(error, source) from None
    except RecursionError:
        raise SpecError([Problem(source, _TOO_DEEP)]) from None
    except ValueError as error:
        # Raised while building a value the grammar accepted: an integer past Python's digit
        # limit, or an explicitly tagged value such as `!!timestamp 2024-13-45`.
        reason = (
            f"a number has more than {sys.get_int_max_str_digits()} digits"
            if "integer string conversion" in str(error)
            else clip(str(error))
        )
        raise SpecError([Problem(source, f"a value cannot be read: {reason}")]) from None


def line_of(root: yaml.Node | None, path: str) -> int | None:
    """The 1-based line of the value at a problem's path (`services.a.routes[0].to`), or of the
    nearest enclosing value the file has (a missing key points at its parent mapping)."""
    node = root
    rest = path
    line = None if node is None else node.start_mark.line + 1
    while node is not None and rest:
        rest = rest.removeprefix(".")
        found: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            # Keys may hold dots themselves (header names): take the longest key that fits.
            best = -1
            for key_node, value_node in node.value:
                key = str(key_node.value)
                fits = rest == key or rest.startswith((key + ".", key + "["))
                if fits and len(key) > best:
                    best, found, line = len(key), value_node, key_node.start_mark.line + 1
            rest = rest[best:] if found is not None else rest
        elif isinstance(node, yaml.SequenceNode) and rest.startswith("["):
            index_text, _, after = rest[1:].partition("]")
            if index_text.isdigit() and int(index_text) < len(node.value):
                found = node.value[int(index_text)]
                line = found.start_mark.line + 1
                rest = after
        node = found
    return line


def load_mesh_text(
    text: str, source: str = "<text>", *, data_plane: DataPlane | None = None
) -> Mesh:
    """Validate YAML text as a mesh. Problems carry the line of their path where the file has one,
    and are listed in the order they appear in the file. `data_plane` validates the mesh as if
    the file said `dataPlane: <it>` (`render --data-plane`, `MeshArgs.data_plane`): the file's
    own plane may refuse what the asked one takes (a tcp service on builtin)."""
    # One pause for the whole load, so the node graph and the plain data are freed (by reference
    # counting, in `_load`'s return) before the collector runs again: only the Mesh survives the
    # pause, and the first collection after it scans the Mesh alone, not everything read.
    with paused_gc():
        return _load(text, source, data_plane)


def _load(text: str, source: str, data_plane: DataPlane | None) -> Mesh:
    if "\x00" in text:
        # libyaml stops at the first NUL and would report a confusing error further on.
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise SpecError(
            [Problem(f"{source}:{line}", "the file contains a NUL byte; is it binary?", line)]
        )
    data, root = parse_yaml_with_nodes(text, source)
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
    if data_plane is not None:
        data = {**data, "dataPlane": data_plane}
    try:
        return Mesh.parse(data)
    except SpecError as error:
        raise SpecError(in_document_order(error.problems, root)) from None
    except RecursionError:
        raise SpecError([Problem(source, _TOO_DEEP)]) from None


def in_document_order(problems: list[Problem], root: yaml.Node | None) -> list[Problem]:
    """Each problem with its line, sorted by line (a stable sort keeps same-line ones in order)."""
    located = [
        problem if problem.line is not None else replace(problem, line=line_of(root, problem.path))
        for problem in problems
    ]
    return sorted(located, key=lambda p: (p.line is None, p.line or 0))


def located(problems: list[Problem], text: str, source: str = "<text>") -> list[Problem]:
    """Problems found after loading (warnings), with their lines in `text`, in document order."""
    if not problems:
        return problems
    return in_document_order(problems, _compose(text, source))


def read_mesh_file(path: str | Path, max_size: int = MAX_SIZE) -> str:
    """The text of a mesh file (`-` is standard input); a missing, unreadable or oversized file is
    a SpecError with one problem."""
    name = str(path)
    try:
        if name == "-":
            # Read one byte past the limit to know it was passed, without reading all of it.
            data = sys.stdin.buffer.read(max_size + 1)
            name = "<stdin>"
        else:
            with Path(path).open("rb") as stream:
                data = stream.read(max_size + 1)
    except FileNotFoundError:
        raise SpecError([Problem(name, "no such file")]) from None
    except IsADirectoryError:
        raise SpecError([Problem(name, "is a directory, not a mesh file")]) from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise SpecError([Problem(name, f"cannot read the file: {reason}")]) from None
    if len(data) > max_size:
        raise SpecError(
            [
                Problem(
                    name,
                    f"the file is larger than {_size(max_size)}; a mesh file is rarely over "
                    "1 MiB (pass --max-size to raise the limit)",
                )
            ]
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise SpecError(
            [Problem(f"{name}:{line}", "cannot read the file: it is not UTF-8 text", line)]
        ) from None


def _size(count: int) -> str:
    if count % (1024 * 1024) == 0:
        return f"{count // (1024 * 1024)} MiB"
    if count % 1024 == 0:
        return f"{count // 1024} KiB"
    return f"{count:,} bytes"


def load_mesh(
    path_or_text: str | Path, max_size: int = MAX_SIZE, *, data_plane: DataPlane | None = None
) -> Mesh:
    """Load a mesh from a file path (`-` for standard input) or from YAML text, validated for
    `data_plane` when given (see `load_mesh_text`).

    A `Path`, or a one-line string, is a file path; a string with line breaks is YAML text.
    """
    if isinstance(path_or_text, str) and "\n" in path_or_text:
        return load_mesh_text(path_or_text, data_plane=data_plane)
    source = "<stdin>" if str(path_or_text) == "-" else str(path_or_text)
    return load_mesh_text(read_mesh_file(path_or_text, max_size), source, data_plane=data_plane)
