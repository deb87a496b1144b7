"""Loading mesh files: YAML errors, empty files, non-mappings, paths and text."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import DEMO_MESH, EXAMPLE_MESHES

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
    assert str(error.value).startswith(f"{garbage}: cannot read the file:")
