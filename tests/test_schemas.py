"""The schema validator itself: a validator that accepts anything would make every render test void."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from schema_support import ISTIO_CRDS, ISTIO_CRDS_SHA256, validate_manifest


def _virtual_service(**rule: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "demo"},
        "spec": {
            "hosts": ["reviews"],
            "http": [{"route": [{"destination": {"host": "reviews"}}], **rule}],
        },
    }


def test_the_istio_schemas_are_the_pinned_release() -> None:
    assert hashlib.sha256(ISTIO_CRDS.read_bytes()).hexdigest() == ISTIO_CRDS_SHA256


def test_a_valid_virtual_service_passes() -> None:
    validate_manifest(_virtual_service(timeout="0.5s"))


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        (
            _virtual_service(bogus=1),
            "spec.http.0: Additional properties are not allowed ('bogus' was unexpected)",
        ),
        (
            _virtual_service(timeout="0.0005s"),
            "spec.http.0.timeout: '0.0005s': must be a valid duration greater than 1ms",
        ),
        (_virtual_service(timeout="soon"), "spec.http.0.timeout: 'soon' is not a valid duration"),
        (_virtual_service(fault={"abort": {"httpStatus": "400"}}), "is not of type 'integer'"),
        (
            {**_virtual_service(), "apiVersion": "networking.istio.io/v9"},
            "Istio serves no networking.istio.io/v9 VirtualService",
        ),
        (
            {**_virtual_service(), "metadata": {"name": "Reviews"}},
            "VirtualService/Reviews: invalid metadata.name",
        ),
        (
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "d"},
                "spec": {"replicas": 1, "bogus": True},
            },
            "Deployment/d: ",
        ),
        (
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "s"},
                "spec": {"ports": [{"port": "80"}]},
            },
            "Service/s: spec.ports.0.port",
        ),
    ],
    ids=[
        "unknown-field",
        "duration-below-1ms",
        "not-a-duration",
        "wrong-type",
        "unknown-version",
        "bad-name",
        "core-unknown-field",
        "core-wrong-type",
    ],
)
def test_invalid_objects_are_rejected_with_a_reason(manifest: dict[str, Any], reason: str) -> None:
    with pytest.raises(AssertionError) as error:
        validate_manifest(manifest)
    assert reason in str(error.value)
