"""The README's examples are executed: a newcomer copies them, so they must work as written."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import DEMO_MESH, REPO
from pulumi_support import register

import sailplan

README = (REPO / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_every_yaml_mesh_in_the_readme_is_valid() -> None:
    meshes = [block for block in _blocks("yaml") if "kind: Mesh" in block]
    assert meshes, "the README shows at least one mesh"
    for block in meshes:
        sailplan.load_mesh_text(block, "README.md")


def test_every_python_example_in_the_readme_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = _blocks("python")
    assert blocks
    for block in blocks:
        if "import pulumi" not in block:
            exec(compile(block, "README.md", "exec"), {})
            continue
        # The Pulumi example runs under the mock engine, in a repo of its own with a mesh.yaml.
        shutil.copy(DEMO_MESH, tmp_path / "mesh.yaml")
        monkeypatch.chdir(tmp_path)
        engine, _ = register(lambda code=block: exec(compile(code, "README.md", "exec"), {}))
        assert any(r.type == "sailplan:index:Mesh" for r in engine.registrations)
        assert any(r.type == "sailplan:index:IstioControlPlane" for r in engine.registrations)


def test_readme_names_the_two_setup_commands() -> None:
    assert "make demo" in README
    assert "make test" in README
