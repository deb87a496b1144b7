"""The mesh as a whole, built in Python exactly as from YAML."""

from __future__ import annotations

import pytest
from conftest import DEMO_MESH

import sailplan
from sailplan.model import Ingress, IngressRoute, Mesh, Route, Service, Version


def _python_demo() -> Mesh:
    return Mesh(
        name="demo",
        services={
            "users": Service(
                port=8088,
                versions={"v1": Version(image="u:1"), "v2": Version(image="u:2")},
                routes=[Route(split={"v1": 80, "v2": 20})],
            )
        },
        ingress=Ingress(routes=[IngressRoute(service="users")]),
    )


def test_a_mesh_built_in_python_equals_the_same_mesh_from_yaml() -> None:
    mesh = _python_demo()
    assert sailplan.load_mesh_text(sailplan.loader.yaml.safe_dump(mesh.to_dict())) == mesh
    assert mesh.target_namespace == "demo"
    assert mesh.data_plane == "builtin"


def test_python_construction_checks_references_too() -> None:
    with pytest.raises(sailplan.SpecError) as error:
        Mesh(
            name="demo",
            services={
                "users": Service(
                    port=80, versions={"v1": Version(image="u")}, routes=[Route(to="v9")]
                )
            },
        )
    assert (
        str(error.value)
        == "services.users.routes[0].to: unknown version 'v9'; this service has: v1"
    )


def test_models_are_frozen() -> None:
    mesh = _python_demo()
    with pytest.raises(Exception, match="frozen"):
        mesh.name = "other"  # type: ignore[misc]


def test_switching_the_data_plane_revalidates() -> None:
    mesh = sailplan.load_mesh(DEMO_MESH)
    assert mesh.with_data_plane("istio").data_plane == "istio"
    service = mesh.services["service2"].model_copy(update={"protocol": "grpc"})
    grpc = mesh.with_data_plane("istio").model_copy(
        update={"services": {**mesh.services, "service2": service}}
    )
    with pytest.raises(sailplan.SpecError, match="protocol grpc needs the istio data plane"):
        grpc.with_data_plane("builtin")


def test_parse_rejects_a_non_mapping() -> None:
    with pytest.raises(sailplan.SpecError, match="a mesh file must be a mapping at the top level"):
        Mesh.parse(["not", "a", "mesh"])
