"""`sailplan render`: YAML on stdout or one file per object, never half-written."""

from __future__ import annotations

import os
import shutil
import subprocess
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
    (out / "099-deployment-gone.yaml").write_text("stale: an indexed name of earlier versions")
    (out / "04-deployment-demo.gone.yaml").write_text("stale")
    (out / "notes.txt").write_text("kept: not ours")
    assert main(["render", str(DEMO_MESH), "--data-plane", "istio", "-o", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert "00-namespace-demo.yaml" in names
    assert "04-deployment-demo.service1-v1.yaml" in names
    assert "06-virtualservice-demo.demo-ingress.yaml" in names
    assert "099-deployment-gone.yaml" not in names
    assert "04-deployment-demo.gone.yaml" not in names
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


def _render_dir(mesh_text: str, tmp_path: Path, plane: str, label: str) -> dict[str, str]:
    mesh = tmp_path / f"{label}.yaml"
    mesh.write_text(mesh_text)
    out = tmp_path / f"{label}-{plane}"
    assert main(["render", str(mesh), "--data-plane", plane, "-o", str(out)]) == 0
    return {p.name: p.read_text() for p in out.iterdir()}


# A third service that nothing routes to from the ingress: on istio it touches no existing object.
_THIRD_SERVICE = """
  service3:
    port: 9000
    versions:
      v1: {image: sailplan/demo-users:0.1.0}
ingress:"""
# What it adds on istio.
_THIRD_SERVICE_ISTIO_FILES = [
    "01-serviceaccount-demo.service3.yaml",
    "03-service-demo.service3.yaml",
    "04-deployment-demo.service3-v1.yaml",
    "05-destinationrule-demo.service3.yaml",
    "06-virtualservice-demo.service3.yaml",
    "11-networkpolicy-demo.service3.yaml",
]


@pytest.mark.parametrize("plane", ["istio", "builtin"])
def test_adding_a_service_adds_files_and_renames_none(tmp_path: Path, plane: str) -> None:
    text = DEMO_MESH.read_text()
    before = _render_dir(text, tmp_path, plane, "before")
    after = _render_dir(text.replace("\ningress:", _THIRD_SERVICE, 1), tmp_path, plane, "after")
    added = sorted(set(after) - set(before))
    assert set(before) <= set(after)
    changed = sorted(name for name in before if before[name] != after[name])
    if plane == "istio":
        assert added == _THIRD_SERVICE_ISTIO_FILES
        assert changed == []
    else:
        assert added == [
            "01-serviceaccount-demo.service3.yaml",
            "02-configmap-demo.service3-v1-proxy.yaml",
            "03-service-demo.service3-v1.yaml",
            "03-service-demo.service3.yaml",
            "04-deployment-demo.service3-v1.yaml",
            "11-networkpolicy-demo.service3.yaml",
            "13-certificate-demo.service3.yaml",
        ]
        # Every sidecar learns the new service's outbound address, in its ConfigMap only.
        assert changed and all(name.startswith("02-configmap-") for name in changed)


def test_file_names_sort_in_apply_order(tmp_path: Path) -> None:
    names = sorted(_render_dir(DEMO_MESH.read_text(), tmp_path, "istio", "demo"))
    kinds = [name.split("-")[1] for name in names]
    assert kinds[0] == "namespace"
    assert kinds.index("serviceaccount") < kinds.index("deployment")
    assert kinds.index("service") < kinds.index("deployment")
    assert kinds[-1] == "networkpolicy"
    assert kinds.index("peerauthentication") == kinds.index("networkpolicy") - 1


# A time no render can produce, so that "kept its mtime" does not depend on timestamp granularity.
_OLD_NS = 1_000_000_000 * 1_000_000_000


def _stamps(out: Path) -> dict[str, tuple[int, int]]:
    """Each file's name -> (inode, mtime)."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()}


def _stamp_all(out: Path) -> dict[str, tuple[int, int]]:
    """Set every file's mtime to _OLD_NS; each name's (inode, mtime) after."""
    for path in out.iterdir():
        os.utime(path, ns=(_OLD_NS, _OLD_NS))
    return _stamps(out)


def test_rerendering_writes_only_the_files_whose_bytes_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["render", str(DEMO_MESH), "--data-plane", "istio", "-o", str(out)]) == 0
    rendered = {p.name: p.read_bytes() for p in out.iterdir()}
    edited = "04-deployment-demo.service1-v1.yaml"
    longer = "03-service-demo.service1.yaml"
    removed = "00-namespace-demo.yaml"
    (out / edited).write_text("edited by hand\n")
    (out / longer).write_bytes(rendered[longer] + b"# a longer file with our bytes first\n")
    (out / removed).unlink()
    (out / "05-destinationrule-demo.gone.yaml").write_text("stale")
    before = _stamp_all(out)
    capsys.readouterr()

    assert main(["render", str(DEMO_MESH), "--data-plane", "istio", "-o", str(out)]) == 0

    assert capsys.readouterr().out == f"wrote {len(rendered)} objects to {out}\n"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == rendered
    after = _stamps(out)
    touched = sorted(name for name in after if after[name] != before.get(name))
    assert touched == [removed, longer, edited]
    # A changed file is rewritten in place: same inode, new mtime.
    assert after[edited][0] == before[edited][0] and after[edited][1] != _OLD_NS


def test_adding_a_service_touches_only_the_new_files(tmp_path: Path) -> None:
    text = DEMO_MESH.read_text()
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text(text)
    out = tmp_path / "out"
    assert main(["render", str(mesh), "--data-plane", "istio", "-o", str(out)]) == 0
    before = _stamp_all(out)
    mesh.write_text(text.replace("\ningress:", _THIRD_SERVICE, 1))
    assert main(["render", str(mesh), "--data-plane", "istio", "-o", str(out)]) == 0
    after = _stamps(out)
    assert {name: after[name] for name in before} == before
    assert sorted(set(after) - set(before)) == _THIRD_SERVICE_ISTIO_FILES


def test_a_file_that_cannot_be_written_is_a_runtime_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    blocked = out / "04-deployment-demo.service1-v1.yaml"
    blocked.mkdir(parents=True)
    assert main(["render", str(DEMO_MESH), "--data-plane", "istio", "-o", str(out)]) == 1
    assert capsys.readouterr().err == f"error: {blocked}: Is a directory\n"


def _immutable(path: Path, on: bool) -> bool:
    """`chattr +i`: not even root may open the file for writing. False where the file system
    does not support it."""
    flag = "+i" if on else "-i"
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True, timeout=10, check=False)
    return done.returncode == 0


def test_an_unchanged_file_is_only_read_and_a_changed_one_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["render", str(DEMO_MESH), "--data-plane", "istio", "-o", str(out)]) == 0
    locked = out / "04-deployment-demo.service1-v1.yaml"
    if shutil.which("chattr") is None or not _immutable(locked, True):
        pytest.skip("chattr +i is not available here")
    try:
        # Holding its bytes, the file is read and left alone: no open for writing to refuse.
        assert main(["render", str(DEMO_MESH), "--data-plane", "istio", "-o", str(out)]) == 0
        capsys.readouterr()
        _immutable(locked, False)
        locked.write_text("edited by hand\n")
        assert _immutable(locked, True)
        assert main(["render", str(DEMO_MESH), "--data-plane", "istio", "-o", str(out)]) == 1
        assert capsys.readouterr().err == f"error: {locked}: Operation not permitted\n"
    finally:
        _immutable(locked, False)


_TCP_MESH = """\
apiVersion: sailplan/v1
kind: Mesh
name: db
services:
  db:
    port: 5432
    protocol: tcp
    versions: {v1: {image: postgres:16}}
"""


def test_data_plane_renders_what_that_plane_takes_though_the_files_plane_would_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The file says no dataPlane (builtin, which proxies http only); --data-plane istio overrides
    # it, so the tcp service is istio's to render, not builtin's to refuse.
    mesh = tmp_path / "db.yaml"
    mesh.write_text(_TCP_MESH)
    assert main(["render", str(mesh)]) == 2
    capsys.readouterr()
    assert main(["render", str(mesh), "--data-plane", "istio"]) == 0
    kinds = [d["kind"] for d in yaml.safe_load_all(capsys.readouterr().out)]
    assert "DestinationRule" in kinds


def test_what_the_data_plane_refuses_is_said_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mesh = tmp_path / "mesh.yaml"
    shutil.copy(DEMO_MESH, mesh)
    line = DEMO_MESH.read_text().splitlines().index("  nodePort: 32000") + 1
    assert main(["render", str(mesh), "--data-plane", "gateway-api"]) == 2
    assert capsys.readouterr().err == (
        f"error: 1 problem in {mesh}:\n"
        f"  line {line}: ingress.nodePort: the Gateway API has no node port: the Gateway's "
        "implementation creates the gateway's Service itself; drop nodePort, or use the istio or "
        "builtin data plane\n"
    )
