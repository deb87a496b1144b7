"""Services and versions."""

from __future__ import annotations

from sailplan.model import Service, Version


def test_versions_get_small_resources_by_default() -> None:
    version = Version(image="users:1")
    assert version.replicas == 1
    assert version.resources.to_dict() == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }


def test_numbers_in_env_are_text() -> None:
    version = Version.model_validate({"image": "x", "env": {"RETRIES": 3, "RATIO": 0.5}})
    assert version.env == {"RETRIES": "3", "RATIO": "0.5"}


def test_a_service_defaults_to_http_without_routes() -> None:
    service = Service.model_validate({"port": 8080, "versions": {"v1": {"image": "x"}}})
    assert service.protocol == "http"
    assert service.routes == []
