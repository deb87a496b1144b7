"""`sailplan check`: a summary and exit 0, or every problem and exit 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEMO_MESH, REPO

from sailplan.cli import main


def test_a_valid_mesh_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(DEMO_MESH)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:3] == [
        f"{DEMO_MESH}: mesh 'demo' is valid",
        "  namespace demo, data plane builtin, mTLS permissive",
        "  2 services, 3 versions, 1 route, an ingress",
    ]
    assert "    canary: any request: split v1 80% / v2 20%" in out
    assert "  ingress :80, nodePort 32000  hosts *" in out


def test_an_invalid_mesh_lists_every_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        DEMO_MESH.read_text()
        .replace("{v1: 80, v2: 20}", "{v1: 80, v3: 10}")
        .replace("port: 8880", "port: 0")
    )
    assert main(["check", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"error: 2 problems in {bad}:",
        "  services.service1.routes[0].split: weights add up to 90, they must add up to 100",
        "  services.service2.port: 0 is not a valid port: use a number from 1 to 65535",
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.yaml", None, "no such file"),
        ("empty.yaml", "", "the file is empty; a mesh file starts with `apiVersion: sailplan/v1`"),
        ("list.yaml", "- 1\n", "a mesh file must be a mapping at the top level, not list"),
    ],
)
def test_unusable_files_get_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: str | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    assert main(["check", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: 1 problem in {path}:",
        f"  {path}: {message}",
    ]


def test_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.yaml"
    garbage.write_bytes(b"\x00\xff{{{")
    done = subprocess.run(
        [sys.executable, "-m", "sailplan", "check", str(garbage)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: 1 problem in {garbage}:")
