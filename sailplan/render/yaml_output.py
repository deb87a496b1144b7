"""Serialising manifests the same way every time: sorted keys, block style, no aliases."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable
from typing import Any, TextIO

import yaml


def _printable(ch: str) -> bool:
    return (
        "\x20" <= ch <= "\x7e"
        or "\xa0" <= ch <= "\ud7ff"
        or ("\ue000" <= ch <= "\ufffd" and ch != "\ufeff")
    )


class _PythonDumper(yaml.SafeDumper):
    """PyYAML's own emitter, for interpreters without libyaml: writes what libyaml writes."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def analyze_scalar(self, scalar: str) -> Any:
        analysis = super().analyze_scalar(scalar)
        # libyaml counts NEL and characters past U+FFFF as unprintable, so it double-quotes
        # (and escapes) them where PyYAML would write them as they are.
        if any(ch == "\x85" or ch > "\uffff" for ch in scalar):
            analysis.allow_flow_plain = analysis.allow_block_plain = False
            analysis.allow_single_quoted = analysis.allow_block = False
        return analysis

    def write_double_quoted(self, text: str, split: bool = True) -> None:
        # libyaml's rule (emitter.c, yaml_emitter_write_double_quoted_scalar), not PyYAML's: a
        # long line folds only at a single space, which the break stands for, where PyYAML ends
        # the line with an escaped break. Both read back the same; the bytes differ, and
        # `render -o` output must not depend on whether libyaml is installed.
        self.write_indicator('"', True)
        column = self.column
        out: list[str] = []
        spaces = False
        last = len(text) - 1
        for index, ch in enumerate(text):
            if ch in '"\\\x85\u2028\u2029' or not _printable(ch):
                if ch in self.ESCAPE_REPLACEMENTS:
                    data = "\\" + self.ESCAPE_REPLACEMENTS[ch]
                elif ch <= "\xff":
                    data = f"\\x{ord(ch):02X}"
                elif ch <= "\uffff":
                    data = f"\\u{ord(ch):04X}"
                else:
                    data = f"\\U{ord(ch):08X}"
                out.append(data)
                column += len(data)
                spaces = False
            elif ch == " ":
                if split and not spaces and column > self.best_width and 0 < index < last:
                    self.stream.write("".join(out))
                    out = []
                    self.column = column
                    self.write_indent()
                    column = self.column
                    if text[index + 1] == " ":
                        out.append("\\")
                        column += 1
                else:
                    out.append(ch)
                    column += 1
                spaces = True
            else:
                out.append(ch)
                column += 1
                spaces = False
        self.stream.write("".join(out))
        self.column = column
        self.write_indicator('"', False)


# libyaml's C emitter writes the same text about ten times faster than PyYAML's.
_Base: Any = getattr(yaml, "CSafeDumper", None) if yaml.__with_libyaml__ else None


if _Base is not None:

    class _CDumper(_Base):  # type: ignore[misc]
        def ignore_aliases(self, data: Any) -> bool:
            return True

    _Dumper: Any = _CDumper
else:
    _Dumper = _PythonDumper


def _multiline_as_block(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # Proxy configs inside ConfigMaps stay readable in diffs when written as literal blocks. Not
    # a text that ends in an empty line: its block (`|+`) leaves the document open, and libyaml
    # then ends the document with `...` where PyYAML does not.
    breaks = "\n\x85\u2028\u2029"
    open_ended = text[-1:] != "" and text[-1] in breaks and (len(text) == 1 or text[-2] in breaks)
    style = "|" if "\n" in text and not open_ended else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


for _dumper in {_Dumper, _PythonDumper}:
    _dumper.add_representer(str, _multiline_as_block)

_OPTIONS: dict[str, Any] = {
    "sort_keys": True,
    "default_flow_style": False,
    "allow_unicode": True,
    "width": 100,
}

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"

# What the serializer asks per scalar: the tag its text would resolve to if written plain (to know
# whether it must be quoted). Manifests repeat their keys and values, so each text is matched
# against the resolvers once; cleared when large, as rendered values (configs) can be big.
_plain_tags: dict[str, str] = {}
_PLAIN_TAGS_MAX = 100_000
_resolver_resolve: Any = yaml.resolver.Resolver.resolve


def _resolve(dumper: Any, kind: Any, value: Any, implicit: Any) -> Any:
    if kind is yaml.ScalarNode:
        if not implicit[0]:
            # Quoted: the default tag (no path resolvers are set).
            return _STR
        tag = _plain_tags.get(value)
        if tag is None:
            if len(_plain_tags) >= _PLAIN_TAGS_MAX:
                _plain_tags.clear()
            tag = _plain_tags[value] = _resolver_resolve(dumper, kind, value, implicit)
        return tag
    return _resolver_resolve(dumper, kind, value, implicit)


for _dumper in {_Dumper, _PythonDumper}:
    _dumper.resolve = _resolve


def _node(data: Any, dumper: Any) -> yaml.Node:
    """The node PyYAML's SafeRepresenter makes of `data` with the options above, built directly
    for the types manifests hold (PyYAML's costs several Python calls per value, and dominated
    `render -o`); any other type goes to the dumper's own representer."""
    kind = type(data)
    if kind is str:
        node: yaml.Node = _multiline_as_block(dumper, data)
        return node
    if kind is dict:
        items = list(data.items())
        # PyYAML keeps the order of keys that cannot be compared.
        with contextlib.suppress(TypeError):
            items = sorted(items)
        return yaml.MappingNode(
            _MAP, [(_node(k, dumper), _node(v, dumper)) for k, v in items], flow_style=False
        )
    if kind is list:
        return yaml.SequenceNode(_SEQ, [_node(v, dumper) for v in data], flow_style=False)
    if kind is bool:
        return yaml.ScalarNode(_BOOL, "true" if data else "false")
    if kind is int:
        return yaml.ScalarNode(_INT, str(data))
    if data is None:
        return yaml.ScalarNode(_NULL, "null")
    node = dumper.represent_data(data)
    return node


def _write(document: Any, stream: Any, dumper_class: Any) -> None:
    # What yaml.dump does, with the nodes from `_node`.
    dumper = dumper_class(stream, **_OPTIONS)
    try:
        dumper.open()
        dumper.serialize(_node(document, dumper))
        dumper.close()
    finally:
        dumper.dispose()


def dump(document: Any, *, dumper: Any = None) -> str:
    """One document as YAML; `dumper` chooses the emitter (tests compare libyaml's and PyYAML's)."""
    stream = io.StringIO()
    _write(document, stream, dumper or _Dumper)
    return stream.getvalue()


def dump_all(documents: Iterable[Any]) -> str:
    return "".join(f"---\n{dump(document)}" for document in documents)


def write_one(document: Any, stream: TextIO) -> None:
    """`dump` straight into a stream: libyaml writes it in chunks as it emits."""
    _write(document, stream, _Dumper)


def write_all(documents: Iterable[Any], stream: TextIO) -> None:
    """`dump_all` into a stream, one document at a time, so a big mesh is never one string."""
    for document in documents:
        stream.write("---\n")
        write_one(document, stream)


def object_file_name(manifest: dict[str, Any]) -> str:
    """A file name that depends on the object alone: kind rank, kind, namespace and name.

    No running index, so adding an object adds a file and renames none (`git diff` and `diff -r` on
    rendered output stay minimal). The two-digit kind rank keeps `kubectl apply -f DIR`, which reads
    a directory in name order, applying a Namespace before what lives in it. A namespace is a DNS
    label (no dots), so `<namespace>.<name>` cannot be read two ways.
    """
    from sailplan.render.manifests import KIND_ORDER

    kind = str(manifest.get("kind", "object"))
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    metadata = manifest.get("metadata", {})
    name = str(metadata.get("name", "unnamed"))
    namespace = metadata.get("namespace")
    qualified = f"{namespace}.{name}" if namespace else name
    return f"{rank:02d}-{kind.lower()}-{qualified}.yaml"


# What `render -o` wrote, and may remove when it is stale: these names, and the indexed names of
# earlier versions (`000-kind-name.yaml`), so that upgrading leaves no duplicate objects behind.
RENDERED_FILE_PATTERNS = ("[0-9][0-9]-*.yaml", "[0-9][0-9][0-9]-*.yaml")
