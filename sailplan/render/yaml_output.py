"""Serialising manifests the same way every time: sorted keys, block style, no aliases."""

from __future__ import annotations

import contextlib
import functools
import io
import re
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
_FLOAT = "tag:yaml.org,2002:float"
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


class _Unusual(Exception):
    """A value `_text` leaves to the emitter: see `_text`."""


# Plain scalars that libyaml writes as they are in block context: no indicator first, no `: `,
# no ` #`, printable ASCII (the tag the text resolves to is checked apart).
_SAFE_PLAIN = re.compile(r"[A-Za-z0-9_/][A-Za-z0-9_./=+@%:,() -]*")
_ASCII_LINE = re.compile(r"[\x20-\x7e]*")
_ASCII_LINES = re.compile(r"[\x20-\x7e\n]*")
# libyaml writes a key longer than this (128) as a complex key; a line past the width (100) may be
# folded at a space: `_text` leaves both to the emitter.
_KEY_MAX = 100
_WIDTH = _OPTIONS["width"]


def _plain_tag(text: str) -> str:
    tag = _plain_tags.get(text)
    if tag is None:
        tag = str(_resolve(_Dumper, yaml.ScalarNode, text, (True, False)))
    return tag


def _scalar(value: Any) -> str:
    """One value on one line, as libyaml writes it with the options above."""
    kind = type(value)
    if kind is str:
        known = _written.get(value)
        if known is None:
            known = _written_text(value)
            if len(_written) >= _PLAIN_TAGS_MAX:
                _written.clear()
            _written[value] = known
        return known
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if value is None:
        return "null"
    if kind is float and value - value == 0:
        # SafeRepresenter's spelling of a finite float; NaN and infinities go to the emitter.
        number = repr(value).lower()
        if "." not in number and "e" in number:
            number = number.replace("e", ".0e", 1)
        if _plain_tag(number) == _FLOAT:
            return number
    raise _Unusual


# A text as `_scalar` writes it: manifests repeat their keys and values.
_written: dict[str, str] = {}


def _written_text(text: str) -> str:
    if _SAFE_PLAIN.fullmatch(text) and not text.endswith((" ", ":")) and ": " not in text:
        if _plain_tag(text) == _STR:
            return text
        # A text that reads as a number, a boolean, a date or null: libyaml single-quotes it.
        return f"'{text}'"
    if text == "" or (_ASCII_LINE.fullmatch(text) and "'" not in text and _plain_tag(text) != _STR):
        return f"'{text}'"
    raise _Unusual


def _literal(text: str, indent: int) -> list[str]:
    """A multi-line text as libyaml's literal block (`|`) at `indent`, or `_Unusual` where libyaml
    would double-quote it (a space before a break or at the end, a control character)."""
    if not _ASCII_LINES.fullmatch(text) or " \n" in text or text.endswith(" "):
        raise _Unusual
    if text.endswith("\n\n") or text == "\n":
        raise _Unusual
    hints = ("2" if text[0] in " \n" else "") + ("" if text.endswith("\n") else "-")
    lines = text.removesuffix("\n").split("\n")
    pad = " " * indent
    return ["|" + hints, *[pad + line if line else "" for line in lines]]


_ESCAPES = {
    "\x00": "\\0", "\x07": "\\a", "\x08": "\\b", "\t": "\\t", "\n": "\\n", "\x0b": "\\v",
    "\x0c": "\\f", "\r": "\\r", "\x1b": "\\e", '"': '\\"', "\\": "\\\\",
}  # fmt: skip


def _double_quoted(text: str, column: int, indent: int) -> list[str]:
    """`text` double-quoted from `column` as libyaml writes it (the rule `_PythonDumper` follows):
    folded at a single space past the width, continued at `indent`. ASCII only."""
    out = ['"']
    column += 1
    lines: list[str] = []
    spaces = False
    last = len(text) - 1
    for index, ch in enumerate(text):
        if ch == " ":
            if not spaces and column > _WIDTH and 0 < index < last:
                lines.append("".join(out))
                out = [" " * indent]
                column = indent
                if text[index + 1] == " ":
                    out.append("\\")
                    column += 1
            else:
                out.append(ch)
                column += 1
            spaces = True
            continue
        spaces = False
        if ch in _ESCAPES:
            ch = _ESCAPES[ch]
        elif not " " < ch <= "~":
            raise _Unusual
        out.append(ch)
        column += len(ch)
    out.append('"')
    lines.append("".join(out))
    return lines


# `_double_quoted` by its arguments: a builtin sidecar's ConfigMap holds the same two error pages
# as every other's (4,000 of them at 1,000 services).
_quoted_lines: dict[tuple[str, int, int], tuple[str, ...]] = {}


def _double_quoted_lines(text: str, column: int, indent: int) -> tuple[str, ...]:
    key = (text, column, indent)
    lines = _quoted_lines.get(key)
    if lines is None:
        if len(_quoted_lines) >= _QUOTED_MAX:
            _quoted_lines.clear()
        lines = _quoted_lines[key] = tuple(_double_quoted(text, column, indent))
    return lines


_QUOTED_MAX = 1_000


def _needs_double_quotes(text: str) -> bool:
    """Whether libyaml writes this mapping value double-quoted: a control character, or a
    multi-line text that a literal block cannot hold (a space before a break or at the end)."""
    if _ASCII_LINE.fullmatch(text):
        return False
    if _ASCII_LINES.fullmatch(text):
        return " \n" in text or text.endswith(" ")
    return True


# A mapping key as `_mapping` writes it, colon included: manifests repeat their keys.
_key_lines: dict[str, str] = {}


def _key_line(key: Any) -> str:
    if type(key) is not str or len(key) > _KEY_MAX or "\n" in key:
        raise _Unusual
    if len(_key_lines) >= _PLAIN_TAGS_MAX:
        _key_lines.clear()
    text = _key_lines[key] = _scalar(key) + ":"
    return text


def _mapping(data: dict[Any, Any], column: int, head: str, out: list[str]) -> None:
    # The loop runs once per key of every object (350,000 times for 1,000 services on istio):
    # the common case, a known key and a known text, costs two dict lookups.
    pad = " " * column
    append = out.append
    # Sorting the keys alone takes the interpreter's fast path for str comparisons; sorting the
    # items compared tuples (the keys are distinct, so the order is the same).
    for key in sorted(data):
        value = data[key]
        # Only str keys are ever stored, so an int or bool key misses and `_key_line` refuses it.
        line = head + (_key_lines.get(key) or _key_line(key))
        head = pad
        kind = type(value)
        if kind is str:
            text = _written.get(value)
            if text is None:
                if _needs_double_quotes(value):
                    first, *rest = _double_quoted_lines(value, len(line) + 1, column + 2)
                    append(f"{line} {first}")
                    out.extend(rest)
                    continue
                if "\n" in value:
                    first, *rest = _literal(value, column + 2)
                    append(f"{line} {first}")
                    out.extend(rest)
                    continue
                text = _scalar(value)
        elif kind is dict:
            if value:
                append(line)
                _mapping(value, column + 2, " " * (column + 2), out)
            else:
                append(line + " {}")
            continue
        elif kind is list:
            if value:
                append(line)
                _sequence(value, column, out)
            else:
                append(line + " []")
            continue
        else:
            text = _scalar(value)
        if len(line) + len(text) >= _WIDTH and " " in text:
            raise _Unusual
        append(f"{line} {text}")


def _sequence(items: list[Any], column: int, out: list[str]) -> None:
    # Block sequences in a mapping are not indented (`key:` then `- item` in the same column).
    dash = " " * column + "- "
    for item in items:
        kind = type(item)
        if kind is dict:
            if item:
                _mapping(item, column + 2, dash, out)
            else:
                out.append(dash + "{}")
        elif kind is list or (kind is str and "\n" in item):
            raise _Unusual
        else:
            text = _scalar(item)
            if " " in text and len(dash) + len(text) > _WIDTH:
                raise _Unusual
            out.append(dash + text)


def _text(document: Any) -> str:
    """The YAML libyaml writes for a manifest, built as text: block mappings and sequences, plain
    and single-quoted scalars, literal blocks. Anything else raises `_Unusual` and goes through the
    emitter (double quotes, folding, other types, non-ASCII text). Nodes plus libyaml's emitter
    cost about 0.5 ms per object, the whole of `render -o` of a large mesh; tests compare this with
    libyaml on every golden manifest."""
    if type(document) is not dict or not document:
        raise _Unusual
    out: list[str] = []
    try:
        _mapping(document, 0, "", out)
    except TypeError:
        # Keys that do not sort: PyYAML keeps their order.
        raise _Unusual from None
    out.append("")
    return "\n".join(out)


def _write(document: Any, stream: Any, dumper_class: Any) -> None:
    if dumper_class is _Dumper:
        try:
            stream.write(_text(document))
            return
        except _Unusual:
            pass
    _emit(document, stream, dumper_class)


def _emit(document: Any, stream: Any, dumper_class: Any) -> None:
    """What yaml.dump does, with the nodes from `_node`."""
    dumper = dumper_class(stream, **_OPTIONS)
    try:
        dumper.open()
        dumper.serialize(_node(document, dumper))
        dumper.close()
    finally:
        dumper.dispose()


def dump(document: Any, *, dumper: Any = None) -> str:
    """One document as YAML; `dumper` chooses the emitter (tests compare libyaml's and PyYAML's)."""
    dumper = dumper or _Dumper
    if dumper is _Dumper:
        # The text path needs no stream (the emitter's does).
        with contextlib.suppress(_Unusual):
            return _text(document)
    stream = io.StringIO()
    _emit(document, stream, dumper)
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


@functools.cache
def _kind_ranks() -> dict[str, int]:
    # Imported on first use: the renderers need not be loaded to write YAML.
    from sailplan.render.manifests import KIND_ORDER

    return {kind: rank for rank, kind in enumerate(KIND_ORDER)}


def object_file_name(manifest: dict[str, Any]) -> str:
    """A file name that depends on the object alone: kind rank, kind, namespace and name.

    No running index, so adding an object adds a file and renames none (`git diff` and `diff -r` on
    rendered output stay minimal). The two-digit kind rank keeps `kubectl apply -f DIR`, which reads
    a directory in name order, applying a Namespace before what lives in it. A namespace is a DNS
    label (no dots), so `<namespace>.<name>` cannot be read two ways.
    """
    kind = str(manifest.get("kind", "object"))
    rank = _kind_ranks().get(kind)
    if rank is None:
        rank = len(_kind_ranks())
    metadata = manifest.get("metadata", {})
    name = str(metadata.get("name", "unnamed"))
    namespace = metadata.get("namespace")
    qualified = f"{namespace}.{name}" if namespace else name
    return f"{rank:02d}-{kind.lower()}-{qualified}.yaml"


# What `render -o` wrote, and may remove when it is stale: these names, and the indexed names of
# earlier versions (`000-kind-name.yaml`), so that upgrading leaves no duplicate objects behind.
RENDERED_FILE_PATTERNS = ("[0-9][0-9]-*.yaml", "[0-9][0-9][0-9]-*.yaml")
