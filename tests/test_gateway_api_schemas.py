"""The Gateway API schema validator: a validator that accepts anything would make every
gateway-api render test void."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from schema_support import GATEWAY_API_SCHEMAS, gateway_api_schemas, validate_manifest

# The upstream files' sha256, as the README records them.
SOURCES = {
    "gateway.networking.k8s.io_httproutes.yaml": (
        "98c6777c22309d319292e9c288ee632006c9ffdd4272383d6f9dffa3fbccaf14"
    ),
    "gateway.networking.k8s.io_gateways.yaml": (
        "a02ea425fc901f197b668c9ddd56375e1f6896994914c6e6b9b4fdb85cf3ba6e"
    ),
}


def _route(*rules: dict[str, Any], parents: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "reviews", "namespace": "demo"},
        "spec": {
            "parentRefs": parents or [{"group": "", "kind": "Service", "name": "reviews"}],
            "rules": list(rules) or [{"backendRefs": [{"name": "reviews", "port": 9080}]}],
        },
    }


def _rule(**fields: Any) -> dict[str, Any]:
    return {"backendRefs": [{"name": "reviews-v1", "port": 9080}], **fields}


def test_the_vendored_schemas_name_their_pinned_source() -> None:
    readme = (GATEWAY_API_SCHEMAS / "README.md").read_text(encoding="utf-8")
    assert "v1.4.1" in readme
    assert "standard channel" in readme
    for name, digest in SOURCES.items():
        assert f"| `{name}` | `{digest}` |" in readme
    license_text = (GATEWAY_API_SCHEMAS / "LICENSE").read_text(encoding="utf-8")
    assert license_text.lstrip().startswith("Apache License")


def test_the_vendored_schemas_cover_every_kind_the_plane_renders() -> None:
    served = set(gateway_api_schemas())
    for kind in ("HTTPRoute", "Gateway", "GatewayClass", "GRPCRoute"):
        assert ("gateway.networking.k8s.io/v1", kind) in served
    assert ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant") in served
    # Standard channel only: the experimental kinds are not there to validate against.
    assert ("gateway.networking.k8s.io/v1alpha2", "TCPRoute") not in served


def test_the_vendored_schemas_carry_facts_not_prose() -> None:
    for path in sorted(GATEWAY_API_SCHEMAS.glob("*.json")):
        text = path.read_text(encoding="utf-8")
        assert '"description":"' not in text, path.name
        assert hashlib.sha256(text.encode()).hexdigest()  # readable UTF-8 JSON


def test_a_valid_route_passes() -> None:
    validate_manifest(
        _route(
            _rule(
                matches=[{"path": {"type": "Exact", "value": "/reviews"}}],
                timeouts={"request": "1500ms"},
            )
        )
    )


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        (_route(_rule(bogus=1)), "Additional properties are not allowed ('bogus' was unexpected)"),
        (
            _route(_rule(matches=[{"path": {"type": "Exact", "value": "/a//b"}}])),
            "spec.rules.0.matches.0.path: must not contain '//'",
        ),
        (
            _route(_rule(matches=[{"path": {"type": "Exact", "value": "/a b"}}])),
            "spec.rules.0.matches.0.path: must only contain valid characters",
        ),
        (
            _route({"backendRefs": [{"name": "reviews"}]}),
            "spec.rules.0.backendRefs.0: Must have port for Service reference",
        ),
        (_route(_rule(timeouts={"request": "1.5s"})), "does not match"),
        (
            _route(*[_rule() for _ in range(17)]),
            "spec.rules: [",  # maxItems 16
        ),
        (
            _route(
                _rule(
                    filters=[
                        {
                            "type": "RequestMirror",
                            "requestMirror": {
                                "backendRef": {"name": "reviews-v2", "port": 9080},
                                "percent": 5,
                                "fraction": {"numerator": 1},
                            },
                        }
                    ]
                )
            ),
            "Only one of percent or fraction may be specified",
        ),
        (
            _route(_rule(filters=[{"type": "RequestMirror"}])),
            "filter.requestMirror must be specified for RequestMirror filter.type",
        ),
        (
            _route(
                parents=[
                    {"group": "", "kind": "Service", "name": "reviews"},
                    {"group": "", "kind": "Service", "name": "reviews"},
                ]
            ),
            "sectionName must be unique",
        ),
        (
            {**_route(), "apiVersion": "gateway.networking.k8s.io/v9"},
            "no served gateway.networking.k8s.io/v9 HTTPRoute",
        ),
    ],
    ids=[
        "unknown-field",
        "double-slash",
        "bad-path-character",
        "service-without-port",
        "fractional-duration",
        "too-many-rules",
        "mirror-percent-and-fraction",
        "filter-without-its-field",
        "duplicate-parent",
        "unknown-version",
    ],
)
def test_invalid_objects_are_rejected_with_a_reason(manifest: dict[str, Any], reason: str) -> None:
    with pytest.raises(AssertionError) as error:
        validate_manifest(manifest)
    assert reason in str(error.value)


def test_a_rule_the_tests_do_not_model_fails_instead_of_passing() -> None:
    # A Gateway's addresses carry CEL rules this support does not evaluate (sailplan gives none).
    manifest = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "shop", "namespace": "demo"},
        "spec": {
            "gatewayClassName": "istio",
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
            "addresses": [{"type": "IPAddress", "value": "10.0.0.1"}],
        },
    }
    with pytest.raises(AssertionError, match="CEL rule not modelled by the tests"):
        validate_manifest(manifest)


def test_a_terminating_listener_needs_a_certificate() -> None:
    manifest = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "shop", "namespace": "demo"},
        "spec": {
            "gatewayClassName": "istio",
            "listeners": [
                {"name": "https", "port": 443, "protocol": "HTTPS", "tls": {"mode": "Terminate"}}
            ],
        },
    }
    with pytest.raises(
        AssertionError, match="certificateRefs or options must be specified when mode is Terminate"
    ):
        validate_manifest(manifest)
    manifest["spec"]["listeners"][0]["tls"]["certificateRefs"] = [{"name": "shop-tls"}]
    validate_manifest(manifest)


def test_a_prefix_rewrite_needs_one_prefix_match() -> None:
    rewrite = {
        "type": "URLRewrite",
        "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}},
    }
    validate_manifest(
        _route(
            _rule(matches=[{"path": {"type": "PathPrefix", "value": "/old"}}], filters=[rewrite])
        )
    )
    with pytest.raises(AssertionError, match="exactly one PathPrefix match must be specified"):
        validate_manifest(
            _route(_rule(matches=[{"path": {"type": "Exact", "value": "/old"}}], filters=[rewrite]))
        )
