"""Loading mesh files: YAML errors, empty files, non-mappings, paths and text."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DEMO_MESH, EXAMPLE_MESHES, REPO

import sailplan


def _problems(text: str) -> list[str]:
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh_text(text, "mesh.yaml")
    return [str(p) for p in error.value.problems]


def test_the_demo_and_every_example_load() -> None:
    for path in [DEMO_MESH, *EXAMPLE_MESHES]:
        assert sailplan.load_mesh(path).services


def test_a_path_or_yaml_text() -> None:
    assert sailplan.load_mesh(str(DEMO_MESH)) == sailplan.load_mesh(DEMO_MESH.read_text())


def test_yaml_syntax_errors_name_line_and_column() -> None:
    # libyaml and the pure-Python parser word it differently; both name the place and the fix.
    [problem] = _problems("name: demo\nservices:\n  a: [1, 2\n")
    assert problem.startswith("mesh.yaml:4:1: YAML syntax error: ")
    assert "expected ',' or ']'" in problem


def test_tabs_are_a_syntax_error() -> None:
    assert _problems("name: demo\n\tservices: {}\n")[0].startswith(
        "mesh.yaml:2:1: YAML syntax error:"
    )


def test_duplicate_keys_are_an_error_not_a_silent_override() -> None:
    assert _problems("name: demo\nname: other\nservices: {}\n") == [
        "mesh.yaml:2:1: YAML syntax error: duplicate key 'name'"
    ]


def test_an_empty_file() -> None:
    assert _problems("# nothing yet\n") == [
        "mesh.yaml: the file is empty; a mesh file starts with `apiVersion: sailplan/v1`"
    ]


def test_a_file_that_is_not_a_mapping() -> None:
    assert _problems("- a\n- b\n") == [
        "mesh.yaml: a mesh file must be a mapping at the top level, not list"
    ]


def test_yes_no_and_on_stay_text() -> None:
    data = sailplan.loader.parse_yaml("a: yes\nb: on\nc: true\non: [5xx]\n")
    assert data == {"a": "yes", "b": "on", "c": True, "on": ["5xx"]}


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh(tmp_path / "nope.yaml")
    assert str(error.value) == f"{tmp_path}/nope.yaml: no such file"


def test_a_directory(tmp_path: Path) -> None:
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh(tmp_path)
    assert str(error.value) == f"{tmp_path}: is a directory, not a mesh file"


def test_binary_garbage(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.yaml"
    garbage.write_bytes(b"\xff\xfe\x00\x01binary")
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh(garbage)
    assert str(error.value) == f"{garbage}:1: cannot read the file: it is not UTF-8 text"


def test_text_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"name: demo\nservices:\n  caf\xe9: {}\n")
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh(latin1)
    [problem] = error.value.problems
    assert (str(problem), problem.line) == (
        f"{latin1}:3: cannot read the file: it is not UTF-8 text",
        3,
    )


def test_dates_are_text_as_in_yaml_1_2() -> None:
    data = sailplan.loader.parse_yaml("RELEASE: 2024-12-01\nAT: 2001-12-14t21:59:43.10-05:00\n")
    assert data == {"RELEASE": "2024-12-01", "AT": "2001-12-14t21:59:43.10-05:00"}


def test_values_yaml_cannot_build_are_problems_not_tracebacks() -> None:
    assert _problems(f"name: demo\nservices: {{s: {{port: 1{'0' * 5000}}}}}\n") == [
        "mesh.yaml: a value cannot be read: a number has more than 4300 digits"
    ]
    assert _problems("name: demo\nx: !!timestamp 2024-13-45\nservices: {}\n") == [
        "mesh.yaml: a value cannot be read: month must be in 1..12"
    ]


def test_a_nul_byte_is_refused_with_its_line() -> None:
    assert _problems("name: demo\nservices: {}\n\x00\n") == [
        "mesh.yaml:3: the file contains a NUL byte; is it binary?"
    ]


# -- bounded input: a hostile or mistaken file is refused fast and small, never expanded.

# "Billion laughs": 9 levels of 9 aliases in under 520 bytes, that would expand to 926 million values.
ALIAS_BOMB = "\n".join(
    [
        "apiVersion: sailplan/v1",
        "name: bomb",
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{level}: &{level} [{', '.join(['*' + previous] * 9)}]"
            for previous, level in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "services: {s: {port: 80, versions: {v: {image: *i}}}}",
        "",
    ]
)


def test_an_alias_bomb_is_refused_at_once_without_expanding_it() -> None:
    assert len(ALIAS_BOMB) < 520
    started = time.monotonic()
    problems = _problems(ALIAS_BOMB)
    elapsed = time.monotonic() - started
    assert problems == [
        "mesh.yaml: YAML aliases expand this file from 43 to 926,177,129 values; aliases may add "
        "at most 100,000 (write repeated parts out, or repeat them less)"
    ]
    assert elapsed < 0.5


def test_the_alias_bomb_from_the_command_line_stays_small(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    # A fresh interpreter, so its peak memory is the command's own: VmHWM belongs to the address
    # space exec made (ru_maxrss would carry over the RSS of the pytest process that forked it).
    script = (
        "import re, time; from pathlib import Path; from sailplan.cli import main; "
        f"t = time.monotonic(); code = main(['check', {str(bomb)!r}]); "
        "peak = re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text())[1]; "
        "print(code, time.monotonic() - t, peak)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    code, seconds, peak_kib = done.stdout.split()
    assert code == "2"
    # The unbounded loader took 4.7 s and 1.2 GB; the bound is loose so that a busy machine
    # (CI on 2 cores) cannot fail it, while a regression to expanding the aliases still does.
    assert float(seconds) < 2.0
    assert int(peak_kib) < 100 * 1024
    assert len(done.stderr) < 200 + 2 * len(str(bomb))


def test_anchors_that_share_a_block_stay_allowed() -> None:
    text = "\n".join(
        [
            "name: shared",
            "base: &base {image: app:1, replicas: 2, env: {MODE: prod}}",
            "services:",
            *(f"  s{i}: {{port: 80, versions: {{v1: *base}}}}" for i in range(50)),
            "",
        ]
    )
    # `base` is not a mesh key: the aliases expanded fine and validation found the one typo.
    assert _problems(text) == [
        "base: unknown key; allowed keys here: apiVersion, kind, name, namespace, allowSystemNamespace, dataPlane, "
        "interception, networkPolicies, mtls, trustDomain, authorization, services, ingress, accessLog"
    ]


def test_a_recursive_alias_is_refused() -> None:
    assert _problems("name: demo\nservices:\n  a: &loop [*loop]\n") == [
        "mesh.yaml:3:6: a YAML alias refers to the value that contains it; "
        "a mesh file cannot be recursive"
    ]


def test_nesting_beyond_any_mesh_is_refused() -> None:
    message = "values are nested too deeply; a mesh file needs about 10 levels"
    # With anchors the node walk stops at 100 levels, with the place.
    deep = "name: demo\nx: &a 1\nservices: " + "[" * 150 + "]" * 150 + "\n"
    assert _problems(deep) == [f"mesh.yaml:3:110: {message}"]
    # Without, libyaml allows 1,000 levels and validation's recursion limit is caught.
    deeper = "name: demo\nservices: " + "{a: " * 990 + "1" + "}" * 990 + "\n"
    assert _problems(deeper) == [f"mesh.yaml: {message}"]
    assert _problems("name: demo\nservices: " + "[" * 1001 + "]" * 1001 + "\n") == [
        "mesh.yaml:2:1010: YAML syntax error: exceeded maximum nesting depth"
    ]


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 200 + DEMO_MESH.read_text())
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh(big, max_size=1024)
    assert str(error.value) == (
        f"{big}: the file is larger than 1 KiB; a mesh file is rarely over 1 MiB "
        "(pass --max-size to raise the limit)"
    )
    assert sailplan.load_mesh(big, max_size=64 * 1024).name == "demo"


def test_dev_zero_is_refused_by_size() -> None:
    started = time.monotonic()
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh("/dev/zero")
    assert str(error.value) == (
        "/dev/zero: the file is larger than 10 MiB; a mesh file is rarely over 1 MiB "
        "(pass --max-size to raise the limit)"
    )
    assert time.monotonic() - started < 1


def test_a_long_rejected_value_is_quoted_in_80_characters() -> None:
    long_name = "A" * 5_000_000
    [problem] = _problems(f"name: {long_name}\nservices: {{}}\n")
    assert problem == (
        f"name: '{'A' * 79}…' is not a valid name: use lowercase letters, digits and '-', "
        "start and end with a letter or digit, at most 63 characters"
    )


def test_long_keys_and_structures_are_clipped_too() -> None:
    key = "k" * 1000
    problems = _problems(
        f"name: demo\n{key}: 1\nservices: {{s: {{port: [{', '.join(['1'] * 999)}]}}}}\n"
    )
    assert problems == [
        f"{'k' * 79}…: unknown key; allowed keys here: apiVersion, kind, name, namespace, "
        "allowSystemNamespace, dataPlane, interception, networkPolicies, mtls, trustDomain, authorization, services, ingress, accessLog",
        "services.s.port: must be a whole number, got "
        "[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, …",
        "services.s.versions: is required",
    ]


def test_problems_carry_their_line_and_come_in_document_order() -> None:
    text = (
        DEMO_MESH.read_text()
        .replace("port: 8880", "port: 0")
        .replace(
            "image: sailplan/demo-users:0.1.0\n        env: {SERVICE_VERSION: v1}",
            "image: ''\n        env: {SERVICE_VERSION: v1}",
        )
    )
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh_text(text, "mesh.yaml")
    assert [(p.line, str(p)) for p in error.value.problems] == [
        (13, "services.service1.versions.v1.image: must not be empty"),
        (26, "services.service2.port: 0 is not a valid port: use a number from 1 to 65535"),
    ]


def test_a_missing_key_points_at_its_parent() -> None:
    text = DEMO_MESH.read_text().replace("    port: 8880\n", "")
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh_text(text, "mesh.yaml")
    [problem] = error.value.problems
    assert (problem.line, str(problem)) == (25, "services.service2.port: is required")


def _pyyaml_construct(text: str) -> object:
    node = sailplan.loader._compose(text, "mesh.yaml")
    pyyaml = sailplan.loader._StrictLoader("")
    try:
        return pyyaml.construct_document(node)
    finally:
        pyyaml.dispose()


def test_the_lean_constructor_builds_what_pyyamls_builds() -> None:
    from bench.meshgen import generated_mesh_yaml

    texts = [path.read_text() for path in [DEMO_MESH, *EXAMPLE_MESHES]]
    texts.append(generated_mesh_yaml(20, "builtin"))
    texts.append(
        "a: [1, -2, 0x1f, 0o17, 1_000, 0, 10, 007, +3, 1.5, .inf, -.nan, 1e3, true, False, on, yes, ~, null, '']\n"
        "b: {'1': x, 1: y, 2.5: z, null: n, false: f}\n"
        "c: !!str 12\nd: !!int '7'\ne: &x {k: [v, {w: 1}]}\nf: *x\ng: *x\n"
        "h: 2024-12-01\ni: |\n  multi\n  line\n"
    )
    for text in texts:
        node = sailplan.loader._compose(text, "mesh.yaml")
        lean = sailplan.loader._lean_construct(node)
        assert repr(lean) == repr(_pyyaml_construct(text))
    # An alias is one shared object, as PyYAML makes it.
    shared = sailplan.loader._lean_construct(sailplan.loader._compose(texts[-1], "mesh.yaml"))
    assert shared["e"] is shared["f"] is shared["g"]


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("a: 1\na: 2\n", "mesh.yaml:2:1: YAML syntax error: duplicate key 'a'"),
        ("a: 1\ntrue: 2\n1: 3\n", "mesh.yaml:3:1: YAML syntax error: duplicate key 1"),
        (
            "base: &b {x: 1}\nmore:\n  <<: *b\n  y: 2\n",
            "mesh.yaml:3:3: YAML syntax error: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:merge'",
        ),
        ("? [a, b]\n: 1\n", "mesh.yaml:1:3: YAML syntax error: found unhashable key"),
        ("a: !!set {x}\n", "{'a': {'x'}}"),  # one member: a set's order varies
        ("a: !!binary aGVsbG8=\n", "{'a': b'hello'}"),
        (
            "a: !!timestamp 2024-13-45\n",
            "mesh.yaml: a value cannot be read: month must be in 1..12",
        ),
        (
            "a: !custom 1\n",
            "mesh.yaml:1:4: YAML syntax error: could not determine a constructor for the tag "
            "'!custom'",
        ),
        # Past MAX_DEPTH, where PyYAML's constructor words a too deep file.
        (
            "a: 1\nb: " + "[" * 120 + "]" * 120 + "\n",
            "{'a': 1, 'b': " + "[" * 120 + "]" * 120 + "}",
        ),
    ],
)
def test_what_the_lean_constructor_leaves_to_pyyaml(text: str, read: str) -> None:
    node = sailplan.loader._compose(text, "mesh.yaml")
    with pytest.raises(sailplan.loader._Unusual):
        sailplan.loader._lean_construct(node)
    try:
        got = repr(sailplan.loader.parse_yaml(text, "mesh.yaml"))
    except sailplan.SpecError as error:
        [problem] = error.problems
        got = str(problem)
    assert got == read
