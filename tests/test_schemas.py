"""The schema validator itself: a validator that accepts anything would make every render test void."""

from __future__ import annotations

import json
from typing import Any

import pytest
from schema_support import ISTIO_SCHEMAS, istio_schemas, validate_manifest

ISTIO_SOURCE_SHA256 = "dcb43ff6b9af2f629b80b6a82597f5a91db259c757e66cc5353ac007da28351a"


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


def test_the_vendored_istio_schemas_name_their_pinned_source() -> None:
    readme = (ISTIO_SCHEMAS / "README.md").read_text(encoding="utf-8")
    assert "Istio 1.30.3" in readme
    assert ISTIO_SOURCE_SHA256 in readme
    assert (
        (ISTIO_SCHEMAS / "LICENSE")
        .read_text(encoding="utf-8")
        .lstrip()
        .startswith("Apache License")
    )


def test_the_vendored_istio_schemas_cover_every_kind_sailplan_renders() -> None:
    served = set(istio_schemas())
    for kind in (
        ("networking.istio.io/v1", "VirtualService"),
        ("networking.istio.io/v1", "DestinationRule"),
        ("networking.istio.io/v1", "Gateway"),
        ("networking.istio.io/v1", "Sidecar"),
        ("security.istio.io/v1", "PeerAuthentication"),
        ("security.istio.io/v1", "AuthorizationPolicy"),
        ("telemetry.istio.io/v1", "Telemetry"),
    ):
        assert kind in served


def test_the_vendored_istio_schemas_carry_facts_not_prose() -> None:
    text = (ISTIO_SCHEMAS / "virtualservices.networking.istio.io.json").read_text(encoding="utf-8")
    crd = json.loads(text)
    assert '"description":"' not in text
    http = crd["versions"][0]["openAPIV3Schema"]["properties"]["spec"]["properties"]["http"]
    timeout = http["items"]["properties"]["timeout"]
    assert timeout["type"] == "string"
    assert {"rule": "duration(self) >= duration('1ms')"}.items() <= timeout[
        "x-kubernetes-validations"
    ][0].items()


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
