"""The wheel is the product: built, installed into a fresh venv outside the checkout, and used from
there by a Pulumi program the way another IaC repo would (under Pulumi's mock engine).

Offline and fast: the wheel builds without build isolation (the dev venv has setuptools), and the
fresh venv gets sailplan with --no-deps plus a .pth line to the dev venv's site-packages for the
third-party packages. A path line in a .pth does not run that directory's own .pth files, so the
dev venv's editable sailplan stays inactive; the program asserts it imported the installed copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_MESH, REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PROGRAM = r"""
import json
import os
import pydoc
import sys

import pulumi
from pulumi.runtime import Mocks, set_mocks


class Engine(Mocks):
    def __init__(self):
        self.created = []
        self.inputs = {}
        self.reads = []

    def new_resource(self, args):
        if args.resource_id:  # Service.get of the Istio gateway chart's Service
            self.reads.append(args.resource_id)
            return args.resource_id, {
                "spec": {"type": "LoadBalancer", "ports": [{"name": "http2", "port": 80}]},
                "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.4"}]}},
            }
        self.created.append([args.typ, args.name])
        self.inputs[args.name] = args.inputs
        state = dict(args.inputs)
        if args.typ == "docker-build:index:Image":
            state["ref"] = args.inputs["tags"][0] + "@sha256:" + "1" * 64
        return args.name + "-id", state

    def call(self, args):
        return {}


engine = Engine()
set_mocks(engine, project="other-repo", stack="dev", preview=False)

import sailplan
from sailplan.components import (
    ArgsError,
    IstioControlPlaneArgs,
    Mesh,
    MeshArgs,
    ProxyImage,
    ProxyImageArgs,
)

report = {"sailplan": sailplan.__file__, "path": sys.path}


@pulumi.runtime.test
def program():
    shop = Mesh("shop", MeshArgs(spec="shop.mesh.yaml", data_plane="istio"))
    blog = Mesh(
        "blog", MeshArgs(spec="blog.mesh.yaml", data_plane="istio", istio=IstioControlPlaneArgs())
    )
    image = ProxyImage("proxy", ProxyImageArgs(repository="registry.example/proxy", tag="2"))
    edge = Mesh("edge", MeshArgs(spec="edge.mesh.yaml", proxy_image=image.ref))
    return pulumi.Output.all(
        shop.ingress_address, blog.ingress_address, edge.ingress_address, edge.proxy_image
    ).apply(lambda values: report.update(outputs=values))


program()
report["created"] = engine.created
report["reads"] = engine.reads
build = engine.inputs["proxy-build"]
report["context"] = build["context"]["location"]
report["dockerfile"] = build["dockerfile"]["location"]
edge_pod = engine.inputs["edge-service1-deployment-service1-v1"]["spec"]["template"]["spec"]
report["edge_images"] = sorted({c["image"] for c in edge_pod["initContainers"]})
report["help"] = {
    cls.__name__: pydoc.render_doc(cls, renderer=pydoc.plaintext).count(
        (cls.__doc__ or "").strip().splitlines()[0]
    )
    for cls in (Mesh, MeshArgs, ProxyImage, ProxyImageArgs)
}

misuses = {
    "Nodeport": lambda: IstioControlPlaneArgs(gateway_service_type="Nodeport"),
    "float version": lambda: IstioControlPlaneArgs(version=1.30),
    "istio args on builtin": lambda: Mesh(
        "bad1", MeshArgs(spec="edge.mesh.yaml", istio=IstioControlPlaneArgs())
    ),
    "proxy_image on istio": lambda: Mesh(
        "bad2", MeshArgs(spec="shop.mesh.yaml", data_plane="istio", proxy_image="p:1")
    ),
    "image and repository": lambda: ProxyImageArgs(image="p:1", repository="r"),
}
report["misuses"] = {}
for what, misuse in misuses.items():
    try:
        misuse()
    except ArgsError as error:
        report["misuses"][what] = str(error)
    else:
        report["misuses"][what] = "accepted"
print(json.dumps(report))
"""


def _run(*command: str | Path, cwd: Path, timeout: float = 120) -> str:
    # The child must not see the checkout through the environment either.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy: an in-tree build/ directory keeps files deleted since and ships them.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(
        REPO / "sailplan", source / "sailplan", ignore=shutil.ignore_patterns("__pycache__")
    )
    dist = tmp_path_factory.mktemp("dist")
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--wheel-dir",
        dist,
        source,
        cwd=dist,
    )
    (built,) = dist.glob("sailplan-*.whl")
    return built


def test_the_wheel_carries_the_proxy_image_context_and_the_license(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("Dockerfile", "entrypoint.sh", "init-iptables.sh"):
        assert f"sailplan/proxy_image/{shipped}" in names
    assert "sailplan/py.typed" in names
    license_file = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
    text = zipfile.ZipFile(wheel).read(license_file).decode()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert "License-Expression: Apache-2.0" in zipfile.ZipFile(wheel).read(metadata).decode()
    # The entrypoint keeps its executable bit for a `docker build` from the installed copy.
    info = zipfile.ZipFile(wheel).getinfo("sailplan/proxy_image/entrypoint.sh")
    assert (info.external_attr >> 16) & 0o111


def test_a_pulumi_program_outside_the_checkout_uses_the_installed_wheel(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--quiet",
        "--no-deps",
        "--no-index",
        wheel,
        cwd=tmp_path,
    )
    site_packages = Path(
        _run(
            python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path
        ).strip()
    )
    (site_packages / "dev-venv-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    repo = tmp_path / "other-repo"
    repo.mkdir()
    demo = DEMO_MESH.read_text()
    for name in ("shop", "blog", "edge"):
        (repo / f"{name}.mesh.yaml").write_text(
            demo.replace("name: demo\nnamespace: demo\n", f"name: {name}\nnamespace: {name}\n")
        )
    (repo / "program.py").write_text(PROGRAM)
    report: dict[str, Any] = json.loads(_run(python, "program.py", cwd=repo).splitlines()[-1])

    installed = site_packages / "sailplan"
    assert Path(report["sailplan"]) == installed / "__init__.py"
    assert str(REPO) not in report["path"]
    # ProxyImage builds from the context the wheel installed.
    assert report["context"] == str(installed / "proxy_image")
    assert report["dockerfile"] == str(installed / "proxy_image" / "Dockerfile")
    assert sorted(p.name for p in (installed / "proxy_image").iterdir()) == [
        "Dockerfile",
        "entrypoint.sh",
        "init-iptables.sh",
    ]
    # Two istio meshes, one control plane: each chart registered once; the builtin mesh (mTLS
    # permissive by default) brings cert-manager for its certificates.
    charts = sorted(name for typ, name in report["created"] if typ.endswith("helm.sh/v4:Chart"))
    assert charts == [
        "sailplan-cert-manager-chart",
        "sailplan-istio-base",
        "sailplan-istio-gateway",
        "sailplan-istio-istiod",
    ]
    # The meshes' ingress pins nodePort 32000: the gateway Service is a NodePort Service.
    assert report["reads"] == []
    digest = f"registry.example/proxy:2@sha256:{'1' * 64}"
    assert report["outputs"] == [
        "<any node address>:32000",
        "<any node address>:32000",
        "<any node address>:32000",
        digest,
    ]
    assert report["edge_images"] == [digest]
    assert report["help"] == {"Mesh": 1, "MeshArgs": 1, "ProxyImage": 1, "ProxyImageArgs": 1}
    assert report["misuses"] == {
        "Nodeport": "IstioControlPlaneArgs.gateway_service_type: 'Nodeport' is not a Service "
        "type: use one of 'ClusterIP', 'NodePort', 'LoadBalancer' (did you mean 'NodePort'?)",
        "float version": "IstioControlPlaneArgs.version: give the version as a string such as "
        "'1.30.3', not the float 1.3",
        "istio args on builtin": "MeshArgs.istio: only the istio data plane has a control "
        "plane, and this mesh uses the builtin data plane: drop it, or set data_plane='istio'",
        "proxy_image on istio": "MeshArgs.proxy_image: only the builtin data plane runs "
        "sailplan's proxy, and this mesh uses the istio data plane, whose sidecar Istio "
        "injects: drop it, or set data_plane='builtin'",
        "image and repository": "ProxyImageArgs: give either image= (an existing image "
        "reference) or repository= (to build one), exactly one of them",
    }
