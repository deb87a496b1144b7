"""The istio plane's authorization: AuthorizationPolicies from `allow` and `authorization.default`,
and istiod's trust domain from the mesh's `trustDomain`."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from conftest import GOLDEN
from golden_support import check_golden
from model_support import edited
from pulumi_support import register
from schema_support import validate_manifest

import sailplan
from sailplan.components import (
    ArgsError,
    IstioControlPlane,
    IstioControlPlaneArgs,
    Mesh,
    MeshArgs,
)
from sailplan.components.istio_control_plane import istiod_values
from sailplan.render.manifests import render_manifests

SECURED = {
    "dataPlane": "istio",
    "mtls": "strict",
    "trustDomain": "prod.example.com",
    "authorization": {"default": "deny"},
    "services.service1.allow": [
        {
            "from": ["service2", "ingress"],
            "methods": ["GET", "HEAD"],
            "paths": [{"prefix": "/api/users"}, {"exact": "/healthz"}],
        },
        {"from": ["service2"], "methods": ["POST"]},
        {"paths": [{"exact": "/public"}]},
    ],
    "services.service2.allow": [{"from": ["ingress"]}],
}


def _mesh(edits: dict[str, Any]) -> sailplan.Mesh:
    return sailplan.load_mesh_text(yaml.safe_dump(edited(edits)))


def _policies(mesh: sailplan.Mesh) -> list[dict[str, Any]]:
    return [m for m in render_manifests(mesh) if m["kind"] == "AuthorizationPolicy"]


def test_golden_and_schema_valid(update_golden: bool) -> None:
    manifests = [
        m
        for m in render_manifests(_mesh(SECURED))
        if m["kind"] in ("AuthorizationPolicy", "PeerAuthentication")
    ]
    for manifest in manifests:
        validate_manifest(manifest)
    check_golden(GOLDEN / "istio" / "authorization.yaml", manifests, update_golden)


def test_allow_becomes_an_allow_policy_with_principals_methods_and_paths() -> None:
    service1 = _policies(_mesh(SECURED))[0]
    assert service1["metadata"]["name"] == "service1"
    assert service1["metadata"]["namespace"] == "demo"
    assert service1["spec"]["selector"] == {"matchLabels": {"app": "service1"}}
    assert service1["spec"]["action"] == "ALLOW"
    assert service1["spec"]["rules"] == [
        {
            # Istio's principals are the SPIFFE IDs without `spiffe://`.
            "from": [
                {
                    "source": {
                        "principals": [
                            "prod.example.com/ns/demo/sa/service2",
                            "prod.example.com/ns/istio-ingress/sa/istio-ingressgateway",
                        ]
                    }
                }
            ],
            "to": [
                {"operation": {"methods": ["GET", "HEAD"], "paths": ["/api/users*", "/healthz"]}}
            ],
        },
        {
            "from": [{"source": {"principals": ["prod.example.com/ns/demo/sa/service2"]}}],
            "to": [{"operation": {"methods": ["POST"]}}],
        },
        {"to": [{"operation": {"paths": ["/public"]}}]},
    ]


def test_default_deny_adds_allow_nothing_for_the_namespace() -> None:
    policies = _policies(_mesh(SECURED))
    assert [p["metadata"]["name"] for p in policies] == ["service1", "service2", "allow-nothing"]
    assert policies[-1]["spec"] == {"action": "ALLOW"}
    assert "app.kubernetes.io/name" not in policies[-1]["metadata"]["labels"]


def test_an_empty_allow_lets_nothing_in_and_an_empty_rule_everything() -> None:
    policies = _policies(
        _mesh(
            {"dataPlane": "istio", "services.service1.allow": [], "services.service2.allow": [{}]}
        )
    )
    assert [p["spec"] for p in policies] == [
        {"selector": {"matchLabels": {"app": "service1"}}, "action": "ALLOW"},
        {"selector": {"matchLabels": {"app": "service2"}}, "action": "ALLOW", "rules": [{}]},
    ]
    for policy in policies:
        validate_manifest(policy)


def test_no_policies_without_allow_or_default_deny() -> None:
    assert _policies(_mesh({"dataPlane": "istio"})) == []


def test_policies_apply_after_everything_else() -> None:
    kinds = [m["kind"] for m in render_manifests(_mesh(SECURED))]
    assert kinds[-3:] == ["AuthorizationPolicy"] * 3
    assert kinds.index("PeerAuthentication") < kinds.index("AuthorizationPolicy")


# -- istiod's trust domain ---------------------------------------------------------------------


def test_the_trust_domain_reaches_istiods_mesh_config() -> None:
    values = istiod_values(IstioControlPlaneArgs(trust_domain="prod.example.com"))
    assert values["meshConfig"] == {"trustDomain": "prod.example.com"}
    # Istio's own default is left to Istio: default installs keep their values.
    assert "meshConfig" not in istiod_values(IstioControlPlaneArgs())


def test_a_mesh_with_a_trust_domain_creates_its_control_plane_with_it() -> None:
    spec = _mesh({"dataPlane": "istio", "trustDomain": "prod.example.com"})
    engine, _ = register(lambda: Mesh("demo", MeshArgs(spec=spec)).namespace)
    istiod = engine.by_name("sailplan-istio-istiod")
    assert istiod.inputs["values"]["meshConfig"] == {"trustDomain": "prod.example.com"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"trust_domain": "Prod"},
            "IstioControlPlaneArgs.trust_domain: 'Prod' is not a trust domain: use a DNS name "
            "such as 'cluster.local' or 'prod.example.com'",
        ),
        (
            {"trust_domain": "a.example", "mesh_config": {"trustDomain": "b.example"}},
            "IstioControlPlaneArgs.mesh_config: its trustDomain 'b.example' differs from "
            "trust_domain='a.example': set the trust domain once, with trust_domain=",
        ),
    ],
    ids=["not-a-dns-name", "two-trust-domains"],
)
def test_wrong_trust_domains_are_refused(args: dict[str, Any], message: str) -> None:
    with pytest.raises(ArgsError) as error:
        IstioControlPlaneArgs(**args)
    assert str(error.value) == message


def test_a_control_plane_in_another_trust_domain_is_refused() -> None:
    spec = _mesh({"dataPlane": "istio", "trustDomain": "prod.example.com"})

    def build() -> object:
        control_plane = IstioControlPlane(
            "istio",
            IstioControlPlaneArgs(gateway_service_type="NodePort", gateway_node_port=32000),
        )
        with pytest.raises(ArgsError) as error:
            Mesh("demo", MeshArgs(spec=spec, control_plane=control_plane))
        return str(error.value)

    _, message = register(build)
    assert message == (
        "MeshArgs.control_plane: its trust domain is 'cluster.local', but the mesh's trustDomain "
        "is 'prod.example.com': the principals of its AuthorizationPolicies would name "
        "identities istiod never issues; set trust_domain='prod.example.com' in the "
        "IstioControlPlaneArgs"
    )


def test_http_conditions_on_a_tcp_service_are_refused() -> None:
    edits = {
        "dataPlane": "istio",
        "services.service1.protocol": "tcp",
        "services.service1.routes": [],
        "services.service1.allow": [{"from": ["service2"], "methods": ["GET"]}],
        "ingress.routes[0].service": "service2",
    }
    with pytest.raises(sailplan.SpecError) as error:
        _mesh(edits)
    assert (
        "services.service1.allow[0].methods: methods need an http or grpc service: service1 is "
        "tcp, whose connections carry no HTTP method or path; keep only from in its rules"
    ) in str(error.value).splitlines()
    # Callers alone are what a tcp service's policy can check.
    edits["services.service1.allow"] = [{"from": ["service2"]}]
    [policy] = _policies(_mesh(edits))
    assert policy["spec"]["rules"] == [
        {"from": [{"source": {"principals": ["cluster.local/ns/demo/sa/service2"]}}]}
    ]
