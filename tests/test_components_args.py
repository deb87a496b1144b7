"""The components' arguments are checked on construction: each misuse gets its path and a sentence."""

from __future__ import annotations

import pydoc
from collections.abc import Callable
from typing import Any

import pytest
from conftest import DEMO_MESH
from pulumi_support import fresh_engine, register

from sailplan.components import (
    ArgsError,
    IstioControlPlane,
    IstioControlPlaneArgs,
    Mesh,
    MeshArgs,
    ProxyImage,
    ProxyImageArgs,
)

MISUSES: list[tuple[Callable[[], Any], str]] = [
    (
        lambda: IstioControlPlaneArgs(gateway_service_type="Nodeport"),
        "IstioControlPlaneArgs.gateway_service_type: 'Nodeport' is not a Service type: use one "
        "of 'ClusterIP', 'NodePort', 'LoadBalancer' (did you mean 'NodePort'?)",
    ),
    (
        lambda: IstioControlPlaneArgs(version=1.30),  # type: ignore[arg-type]
        "IstioControlPlaneArgs.version: give the version as a string such as '1.30.3', "
        "not the float 1.3",
    ),
    (
        lambda: IstioControlPlaneArgs(version="1.30"),
        "IstioControlPlaneArgs.version: '1.30' is not a chart version: give major.minor.patch "
        "such as '1.30.3'",
    ),
    (
        lambda: IstioControlPlaneArgs(gateway_service_type="ClusterIP", gateway_node_port=30080),
        "IstioControlPlaneArgs.gateway_node_port: a ClusterIP Service has no node port: set "
        "gateway_service_type='NodePort' or 'LoadBalancer', or drop the node port",
    ),
    (
        lambda: IstioControlPlaneArgs(gateway_port=True),
        "IstioControlPlaneArgs.gateway_port: must be a port number from 1 to 65535, not bool True",
    ),
    (
        lambda: IstioControlPlaneArgs(revision="Canary"),
        "IstioControlPlaneArgs.revision: 'Canary' is not a revision name: use lowercase "
        "letters, digits and '-', starting and ending with a letter or digit, "
        "at most 63 characters",
    ),
    (
        lambda: IstioControlPlaneArgs(mesh_config=["accessLogFile"]),  # type: ignore[arg-type]
        "IstioControlPlaneArgs.mesh_config: must be a dict of Helm values, "
        "not list ['accessLogFile']",
    ),
    (
        lambda: ProxyImageArgs(),
        "ProxyImageArgs: give either image= (an existing image reference) or repository= "
        "(to build one), exactly one of them",
    ),
    (
        lambda: ProxyImageArgs(image="a:1", repository="reg.example/proxy"),
        "ProxyImageArgs: give either image= (an existing image reference) or repository= "
        "(to build one), exactly one of them",
    ),
    (
        lambda: ProxyImageArgs(image="ghcr.io/x/proxy 1"),
        "ProxyImageArgs.image: must be an image reference (a string without spaces, or a "
        "pulumi Output of one), not str 'ghcr.io/x/proxy 1'",
    ),
    (
        lambda: ProxyImageArgs(repository="reg.example/proxy", tag="-latest"),
        "ProxyImageArgs.tag: '-latest' is not an image tag: use letters, digits, '_', '.' and "
        "'-', at most 128 characters, not starting with '.' or '-'",
    ),
    (
        lambda: ProxyImageArgs(repository="reg.example/proxy", registry="reg.example"),
        "ProxyImageArgs.registry: registry=, username= and password= log in to a registry "
        "together: give all three or none",
    ),
    (
        lambda: ProxyImageArgs(repository="reg.example/proxy", push="yes"),  # type: ignore[arg-type]
        "ProxyImageArgs.push: must be True or False, not str 'yes'",
    ),
    (
        lambda: MeshArgs(spec=3),  # type: ignore[arg-type]
        "MeshArgs.spec: give a sailplan.Mesh or the path of a mesh file, not int",
    ),
    (
        lambda: MeshArgs(spec=DEMO_MESH, data_plane="Istio"),  # type: ignore[arg-type]
        "MeshArgs.data_plane: 'Istio' is not a data plane: use one of 'builtin', 'istio', "
        "'gateway-api' (did you mean 'istio'?)",
    ),
    (
        lambda: MeshArgs(
            spec=DEMO_MESH,
            proxy_image="p:1",
            build_proxy_image=ProxyImageArgs(repository="reg.example/proxy"),
        ),
        "MeshArgs.build_proxy_image: give proxy_image= (an existing image) or "
        "build_proxy_image= (build one), not both",
    ),
    (
        lambda: MeshArgs(spec=DEMO_MESH, build_proxy_image="reg.example/proxy"),  # type: ignore[arg-type]
        "MeshArgs.build_proxy_image: must be ProxyImageArgs, not str 'reg.example/proxy'",
    ),
    (
        lambda: MeshArgs(
            spec=DEMO_MESH, istio=IstioControlPlaneArgs(), install_control_plane=False
        ),
        "MeshArgs.install_control_plane: False says Istio is installed some other way, so "
        "control_plane= and istio= would not be used: drop them",
    ),
    (
        lambda: MeshArgs(spec=DEMO_MESH, create_namespace="no"),  # type: ignore[arg-type]
        "MeshArgs.create_namespace: must be True or False, not str 'no'",
    ),
    (
        lambda: MeshArgs(spec=DEMO_MESH, name_prefix="team a"),
        "MeshArgs.name_prefix: 'team a' is not a name prefix: use letters, digits, '.', '_' "
        "and '-', starting with a letter or digit",
    ),
]


@pytest.mark.parametrize(("build", "message"), MISUSES)
def test_each_misuse_is_refused_with_its_path_and_a_sentence(
    build: Callable[[], Any], message: str
) -> None:
    with pytest.raises(ArgsError) as error:
        build()
    assert str(error.value) == message


def test_the_arguments_of_the_other_data_plane_are_refused_before_registering() -> None:
    istio_only = "only the istio data plane has a control plane, and this mesh uses the builtin data plane: drop it, or set data_plane='istio'"
    builtin_only = "only the builtin data plane runs sailplan's proxy, and this mesh uses the istio data plane, whose sidecar Istio injects: drop it, or set data_plane='builtin'"
    cases = [
        (MeshArgs(spec=DEMO_MESH, istio=IstioControlPlaneArgs()), f"MeshArgs.istio: {istio_only}"),
        (
            MeshArgs(spec=DEMO_MESH, install_control_plane=False),
            f"MeshArgs.install_control_plane: {istio_only}",
        ),
        (
            MeshArgs(spec=DEMO_MESH, data_plane="istio", proxy_image="p:1"),
            f"MeshArgs.proxy_image: {builtin_only}",
        ),
        (
            MeshArgs(
                spec=DEMO_MESH,
                data_plane="istio",
                build_proxy_image=ProxyImageArgs(repository="reg.example/proxy"),
            ),
            f"MeshArgs.build_proxy_image: {builtin_only}",
        ),
    ]
    for args, message in cases:
        engine = fresh_engine()
        with pytest.raises(ArgsError) as error:
            Mesh("demo", args)
        assert str(error.value) == message
        assert engine.registrations == []


def test_a_control_plane_and_its_arguments_together_are_refused() -> None:
    def build() -> str:
        control_plane = IstioControlPlane("istio")
        with pytest.raises(ArgsError) as error:
            MeshArgs(spec=DEMO_MESH, control_plane=control_plane, istio=IstioControlPlaneArgs())
        return str(error.value)

    _, message = register(build)
    assert message == (
        "MeshArgs.istio: istio= configures a control plane for this Mesh to create, but "
        "control_plane= gives one already created: set its arguments on that IstioControlPlane"
    )


def test_a_missing_build_context_is_refused() -> None:
    with pytest.raises(ArgsError) as error:
        ProxyImage("proxy", ProxyImageArgs(repository="reg.example/proxy", context="/nonexistent"))
    assert str(error.value) == (
        "ProxyImageArgs.context: no Dockerfile in /nonexistent: point context= at a copy of "
        "sailplan/proxy_image/"
    )


@pytest.mark.parametrize(
    ("component", "sentence"),
    [
        (Mesh, "Everything one sailplan spec describes, deployed as one Pulumi component."),
        (MeshArgs, "create_namespace: False targets a namespace that already exists"),
        (ProxyImage, "The proxy image of the builtin data plane"),
        (ProxyImageArgs, "image: an existing image reference, used as is"),
        (IstioControlPlane, "Istio's control plane: istio/base (CRDs), then istiod"),
        (IstioControlPlaneArgs, 'version: the charts\' version, a string such as "1.30.3"'),
    ],
)
def test_help_shows_what_each_component_and_its_arguments_do(
    component: type, sentence: str
) -> None:
    text = pydoc.render_doc(component, renderer=pydoc.plaintext)
    assert " ".join(sentence.split()) in " ".join(text.split())
