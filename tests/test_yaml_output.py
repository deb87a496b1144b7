"""The YAML writer: libyaml's C emitter when installed, PyYAML's otherwise, the same bytes."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
import yaml

from sailplan.render import yaml_output
from sailplan.render.yaml_output import dump

GOLDEN = Path(__file__).parent / "golden"

needs_libyaml = pytest.mark.skipif(
    not yaml.__with_libyaml__, reason="PyYAML was built without libyaml: one emitter to compare"
)


def test_the_c_emitter_is_used_when_libyaml_is_installed() -> None:
    if yaml.__with_libyaml__:
        assert issubclass(yaml_output._Dumper, yaml.CSafeDumper)
    else:
        assert yaml_output._Dumper is yaml_output._PythonDumper


@needs_libyaml
def test_both_emitters_write_every_golden_byte_for_byte() -> None:
    documents = [
        document
        for path in sorted(GOLDEN.rglob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if document is not None
    ]
    assert len(documents) > 100
    for document in documents:
        assert dump(document, dumper=yaml_output._PythonDumper) == dump(document)


# Characters where the two emitters used to differ: escapes, breaks, quotes, non-BMP, the BOM.
_PIECES = [
    " ", "  ", "a", "\r", "\n", "\r\n", "\t", '"', "\\", "é", "\x85", "\xa0", "\u2028",
    "\u2029", "\ufeff", "😀", "\x00", "\x1b", "'", ":", "#", "- ", "|", ">", "%", "@", "`",
    "!", "&", "*", "{", "[", ",", "?", "~", "0", "true", "null", "x" * 30,
]  # fmt: skip


@needs_libyaml
def test_both_emitters_write_odd_strings_alike_and_read_back_the_same() -> None:
    draw = random.Random(13)
    for _ in range(400):
        text = "".join(draw.choice(_PIECES) for _ in range(draw.randint(0, 40)))
        long_line = "x" * draw.randint(0, 90) + " " + text
        document = {"k" * draw.randint(1, 30): {"data": {"a": text, "b": [text, long_line]}}}
        written = dump(document)
        assert dump(document, dumper=yaml_output._PythonDumper) == written, repr(text)
        assert yaml.safe_load(written) == document


def test_a_long_quoted_line_folds_at_a_space() -> None:
    # The error pages of the builtin proxy: \r forces double quotes, the width folds them.
    page = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 19\r\nconnection: close\r\n"
    written = dump({"data": {"503.http": page}}, dumper=yaml_output._PythonDumper)
    assert written == (
        'data:\n  503.http: "HTTP/1.1 503 Service Unavailable\\r\\ncontent-type: text/plain\\r\\n'
        'content-length: 19\\r\\nconnection:\n    close\\r\\n"\n'
    )


def test_the_lean_representer_writes_what_pyyamls_writes() -> None:
    # `dump` builds the nodes itself; PyYAML's representer, through yaml.dump, is the reference.
    documents: list[object] = [
        document
        for path in sorted(GOLDEN.rglob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if document is not None
    ]
    documents += [
        {"b": [1, -2, 1.5, float("inf"), True, False, None, "", "on", "1", "a\nb\n", "x\n\n"]},
        {1: "int key", "1": "text key", None: "null key"},  # keys that cannot be compared
        {"nested": [[{"z": 1, "a": {}}], []], "big": 10**30},
        ["top", "level", {"list": "yes"}],
        "a text alone",
    ]
    for dumper in {yaml_output._Dumper, yaml_output._PythonDumper}:
        for document in documents:
            reference = yaml.dump(document, Dumper=dumper, **yaml_output._OPTIONS)
            assert dump(document, dumper=dumper) == reference, document
    with pytest.raises(yaml.representer.RepresenterError):
        dump({"a": object()})


def _libyaml(document: object) -> str:
    # The emitter path alone: nodes into libyaml (or PyYAML's emitter without it).
    stream = io.StringIO()
    yaml_output._write(document, stream, yaml_output._PythonDumper)
    if yaml.__with_libyaml__:
        libyaml = io.StringIO()
        dumper = yaml_output._Dumper(libyaml, **yaml_output._OPTIONS)
        dumper.open()
        dumper.serialize(yaml_output._node(document, dumper))
        dumper.close()
        dumper.dispose()
        assert libyaml.getvalue() == stream.getvalue()
    return stream.getvalue()


def test_manifests_written_as_text_are_what_the_emitter_writes() -> None:
    from bench.meshgen import generated_mesh_yaml
    from sailplan.loader import load_mesh_text
    from sailplan.render.manifests import render_manifests

    documents = [
        document
        for path in sorted(GOLDEN.rglob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if document is not None
    ]
    for plane in ("istio", "builtin"):
        documents += render_manifests(load_mesh_text(generated_mesh_yaml(40, plane)))
    as_text = 0
    for document in documents:
        try:
            text = yaml_output._text(document)
        except yaml_output._Unusual:
            continue
        as_text += 1
        assert text == _libyaml(document)
    # Regular expressions with indicators (`*`, `[`) are left to the emitter; nearly all else is text.
    assert as_text > 0.95 * len(documents)


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("plain/text-1.2", "k: plain/text-1.2\n"),
        ("8080", "k: '8080'\n"),
        ("on", "k: 'on'\n"),
        ("", "k: ''\n"),
        (1.5, "k: 1.5\n"),
        (1e20, "k: 1.0e+20\n"),
        ("a\nb\n", "k: |\n  a\n  b\n"),
        (" a\n\nb", "k: |2-\n   a\n\n  b\n"),
        ("x\r\n", 'k: "x\\r\\n"\n'),
        ("a  b", "k: a  b\n"),
    ],
)
def test_values_written_as_text(value: object, written: str) -> None:
    assert yaml_output._text({"k": value}) == written == _libyaml({"k": value})


@pytest.mark.parametrize(
    "value",
    ["a*b", "a: b", "a #b", "-x", "é", "a\n\n", "x" * 60 + " " + "y" * 60, float("nan"), (1, 2)],
)
def test_values_left_to_the_emitter(value: object) -> None:
    with pytest.raises(yaml_output._Unusual):
        yaml_output._text({"k": value})
    assert dump({"k": value}) == _libyaml({"k": value})


def test_a_repeated_quoted_value_folds_by_its_own_column() -> None:
    # Written once per column: the cache of quoted lines must not hand one column's folding to
    # another (the same error page sits at two depths here).
    page = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n" * 2
    document = {"a": page, "b": {"deeper": page}, "c": page}
    text = yaml_output._text(document)
    assert text == _libyaml(document)
    quoted = (
        '"HTTP/1.1 503 Service Unavailable\\r\\ncontent-type: text/plain\\r\\n'
        'HTTP/1.1 503 Service Unavailable\\r\\ncontent-type:\n{pad}text/plain\\r\\n"'
    )
    assert text == (
        f"a: {quoted.format(pad='  ')}\nb:\n  deeper: {quoted.format(pad='    ')}\n"
        f"c: {quoted.format(pad='  ')}\n"
    )
