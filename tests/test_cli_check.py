"""`sailplan check`: a summary and exit 0, or every problem and exit 2, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEMO_MESH, REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
        f"error: 3 problems in {bad}:",
        "  line 24: services.service1.routes[0].split: weights add up to 90, they must add up to 100",
        "  line 24: services.service1.routes[0].split.v3: unknown version 'v3'; this service has: "
        "v1, v2",
        "  line 26: services.service2.port: 0 is not a valid port: use a number from 1 to 65535",
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


def _run(*args: str, stdin: str | bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sailplan", *args],
        input=stdin.decode() if isinstance(stdin, bytes) else stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def test_a_dash_reads_the_mesh_from_standard_input() -> None:
    done = _run("check", "-", stdin=DEMO_MESH.read_text())
    assert done.returncode == 0
    assert done.stdout.splitlines()[0] == "<stdin>: mesh 'demo' is valid"


def test_render_reads_standard_input_too() -> None:
    done = _run("render", "-", stdin=DEMO_MESH.read_text())
    assert done.returncode == 0
    assert done.stdout == _run("render", str(DEMO_MESH)).stdout


def test_problems_from_standard_input_name_stdin() -> None:
    done = _run("check", "-", stdin="name: demo\nservices: {}\nbogus: 1\n")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: 1 problem in <stdin>:",
        "  line 3: bogus: unknown key; allowed keys here: apiVersion, kind, name, namespace, "
        "allowSystemNamespace, dataPlane, interception, networkPolicies, mtls, trustDomain, authorization, services, ingress, accessLog",
    ]


def test_check_json_lists_problems_with_paths_and_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        DEMO_MESH.read_text().replace("port: 8880", "port: 0").replace("name: demo", "name: Demo")
    )
    assert main(["check", "--format", "json", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.err == ""
    assert json.loads(captured.out) == {
        "file": str(bad),
        "valid": False,
        "problems": [
            {
                "path": "name",
                "message": "'Demo' is not a valid name: use lowercase letters, digits and '-', "
                "start and end with a letter or digit, at most 63 characters",
                "line": 5,
            },
            {
                "path": "services.service2.port",
                "message": "0 is not a valid port: use a number from 1 to 65535",
                "line": 26,
            },
        ],
        "warnings": [],
    }


def test_check_json_of_a_valid_mesh(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--format", "json", str(DEMO_MESH)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "file": str(DEMO_MESH),
        "valid": True,
        "problems": [],
        "warnings": [],
    }


def test_check_json_of_a_syntax_error_gives_its_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--format", "json", str(REPO / "nope.yaml")]) == 2
    assert json.loads(capsys.readouterr().out)["problems"] == [
        {"path": str(REPO / "nope.yaml"), "message": "no such file", "line": None}
    ]


def test_max_size_raises_or_lowers_the_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--max-size", "1KiB", str(DEMO_MESH)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: 1 problem in {DEMO_MESH}:",
        f"  {DEMO_MESH}: the file is larger than 1 KiB; a mesh file is rarely over 1 MiB "
        "(pass --max-size to raise the limit)",
    ]
    assert main(["check", "--max-size", "20MiB", str(DEMO_MESH)]) == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "--max-size", "lots", str(DEMO_MESH)])
    assert exit_info.value.code == 2
    assert "'lots' is not a size: write bytes or a number with KiB, MiB or GiB, e.g. 20MiB" in (
        capsys.readouterr().err
    )


def test_dev_zero_is_a_clear_error_not_a_traceback() -> None:
    done = _run("check", "/dev/zero")
    assert (done.returncode, done.stderr) == (
        2,
        "error: 1 problem in /dev/zero:\n"
        "  /dev/zero: the file is larger than 10 MiB; a mesh file is rarely over 1 MiB "
        "(pass --max-size to raise the limit)\n",
    )


@pytest.mark.parametrize("command", ["check", "render"])
def test_a_closed_pipe_ends_the_command_quietly(command: str) -> None:
    # The reader is gone before the command writes: every write meets a closed pipe.
    process = subprocess.Popen(
        [sys.executable, "-m", "sailplan", command, str(DEMO_MESH)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        error = process.stderr.read().decode()
        code = process.wait(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert error == ""
    assert code == 141


_FUZZ_SEEDS = [DEMO_MESH.read_bytes(), b"name: x\nservices: {a: {port: 80}}\n", b"{"]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.sampled_from(_FUZZ_SEEDS).flatmap(
            lambda seed: st.tuples(st.integers(0, len(seed)), st.binary(max_size=20)).map(
                lambda cut: seed[: cut[0]] + cut[1] + seed[cut[0] :]
            )
        ),
    ),
    command=st.sampled_from(["check", "render"]),
)
def test_no_bytes_make_check_or_render_fail_unexpectedly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes, command: str
) -> None:
    mesh = tmp_path / "fuzz.yaml"
    mesh.write_bytes(data)
    # In process: an exception the CLI does not turn into a message fails the test with it.
    assert main([command, str(mesh)]) in (0, 2)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err


def test_inline_values_that_look_like_secrets_are_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text(
        DEMO_MESH.read_text().replace(
            "env: {SERVICE_VERSION: v1}",
            "env: {SERVICE_VERSION: v1, DB_PASSWORD: hunter2, api_token: abc, "
            "SIGNING_KEY: {secretKeyRef: {name: keys, key: signing}}}",
            1,
        )
    )
    assert main(["check", str(mesh)]) == 0
    at = "services.service1.versions.v1.env"
    assert capsys.readouterr().err.splitlines() == [
        f"warning: line 14: {at}.DB_PASSWORD: looks like a secret but is written inline; keep it "
        "in a Secret and refer to it: DB_PASSWORD: {secretKeyRef: {name: <secret>, key: <key>}}",
        f"warning: line 14: {at}.api_token: looks like a secret but is written inline; keep it "
        "in a Secret and refer to it: api_token: {secretKeyRef: {name: <secret>, key: <key>}}",
    ]
    assert main(["check", "--format", "json", str(mesh)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["valid"], [(w["path"], w["line"]) for w in report["warnings"]]) == (
        True,
        [(f"{at}.DB_PASSWORD", 14), (f"{at}.api_token", 14)],
    )
