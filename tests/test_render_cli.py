"""`sailplan render`: YAML on stdout or one file per object, never half-written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import DEMO_MESH

from sailplan.cli import main


def test_render_prints_multi_document_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(DEMO_MESH), "--data-plane", "istio"]) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    kinds = [d["kind"] for d in documents]
    assert kinds[0] == "Namespace"
    assert "VirtualService" in kinds and "DestinationRule" in kinds and "Gateway" in kinds


def test_render_to_a_directory_writes_stable_names_and_removes_stale_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rendered"
    out.mkdir()
    (out / "099-deployment-gone.yaml").write_text("stale")
    (out / "notes.txt").write_text("kept: not ours")
    assert main(["render", str(DEMO_MESH), "--data-plane", "istio", "-o", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert "000-namespace-demo.yaml" in names
    assert "099-deployment-gone.yaml" not in names
    assert "notes.txt" in names
    first = {p.name: p.read_text() for p in out.iterdir()}
    assert main(["render", str(DEMO_MESH), "--data-plane", "istio", "-o", str(out)]) == 0
    assert {p.name: p.read_text() for p in out.iterdir()} == first
    assert capsys.readouterr().out.startswith("wrote ")


def test_invalid_mesh_renders_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEMO_MESH.read_text().replace("{v1: 80, v2: 20}", "{v1: 80, v2: 10}"))
    out = tmp_path / "out"
    assert main(["render", str(bad), "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        "services.service1.routes[0].split: weights add up to 90, they must add up to 100"
        in captured.err
    )
    assert not out.exists()


def test_unknown_data_plane_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["render", str(DEMO_MESH), "--data-plane", "linkerd"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'linkerd'" in capsys.readouterr().err


def test_an_output_directory_under_a_file_is_refused_before_rendering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["render", str(DEMO_MESH), "-o", str(blocker / "out")]) == 2
    assert capsys.readouterr().err == (
        f"error: -o {blocker / 'out'}: {blocker} is a file, so the directory cannot be created\n"
    )


def test_output_to_a_file_says_o_takes_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out.yaml"
    target.write_text("keep me")
    assert main(["render", str(DEMO_MESH), "-o", str(target)]) == 2
    assert capsys.readouterr().err == (
        f"error: -o {target}: is a file, not a directory; -o takes a directory to write one "
        "file per object\n"
    )
    assert target.read_text() == "keep me"
