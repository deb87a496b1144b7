"""No mesh file makes `check` or `render` fail with anything but a listed problem (exit 2).

Random bytes rarely get past the YAML parser; these start from the demo mesh and replace, add or
remove values anywhere in it, so the models, the cross-object rules and both renderers see them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_support import demo_data

from sailplan.cli import main


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


DEMO = demo_data()
PATHS = _paths(DEMO)
# Values a person or a tool could write: every YAML type, odd text, numbers at the edges.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 63, 64, 100, 15001, 65536, 0.5, 1e300, float("inf")]),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["v1", "v2", "service1", "/", "/api", "*", "1s", "5xx", "a" * 70, "\x00"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["to", "split", "match", "v1", "x", "exact"]), inner, max_size=3
        )
    ),
    max_leaves=6,
)


def _mutated(edits: list[tuple[tuple[Any, ...], str, Any]]) -> dict[str, Any]:
    data: Any = yaml.safe_load(yaml.safe_dump(DEMO))
    for path, action, value in edits:
        parent = data
        for part in path[:-1]:
            if not isinstance(parent, dict | list):
                break
            try:
                parent = parent[part]
            except (KeyError, IndexError, TypeError):
                break
        else:
            last = path[-1]
            if isinstance(parent, dict):
                if action == "delete":
                    parent.pop(last, None)
                elif action == "add":
                    parent[f"{last}x" if isinstance(last, str) else last] = value
                else:
                    parent[last] = value
            elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
                if action == "delete":
                    del parent[last]
                else:
                    parent[last] = value
    assert isinstance(data, dict)
    return data


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(PATHS), st.sampled_from(["set", "delete", "add"]), VALUES),
        min_size=1,
        max_size=3,
    ),
    data_plane=st.sampled_from(["builtin", "istio"]),
)
def test_an_edited_mesh_is_checked_and_rendered_or_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edits: list[tuple[tuple[Any, ...], str, Any]],
    data_plane: str,
) -> None:
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text(yaml.safe_dump(_mutated(edits)))
    # In process: anything the CLI does not turn into a listed problem raises here.
    check = main(["check", str(mesh)])
    render = main(["render", str(mesh), "--data-plane", data_plane])
    captured = capsys.readouterr()
    assert check in (0, 2)
    assert render in (0, 2)
    if check == 2:
        assert captured.err.startswith("error: ")
