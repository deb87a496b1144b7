"""The security part of the spec: trust domain, identities, `allow` and default deny."""

from __future__ import annotations

from typing import Any

import pytest
from model_support import edited

import sailplan
from sailplan.model import Mesh
from sailplan.model.security import (
    caller_identity,
    certificate_secret_name,
    identity_dns_name,
    ingress_identity,
    service_identity,
)
from sailplan.summary import summarize


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(sailplan.SpecError) as error:
        Mesh.parse(data)
    return [str(problem) for problem in error.value.problems]


def _istio(edits: dict[str, Any]) -> dict[str, Any]:
    return edited({"dataPlane": "istio", **edits})


def test_identities_follow_istio_and_default_to_cluster_local() -> None:
    mesh = Mesh.parse(edited({}))
    assert mesh.trust_domain == "cluster.local"
    assert service_identity(mesh, "service1") == "spiffe://cluster.local/ns/demo/sa/service1"
    # The builtin gateway runs as its own ServiceAccount, <mesh>-gateway.
    assert ingress_identity(mesh) == "spiffe://cluster.local/ns/demo/sa/demo-gateway"
    assert caller_identity(mesh, "ingress") == ingress_identity(mesh)
    # Istio's gateway chart runs as its release's ServiceAccount in its own namespace.
    istio = Mesh.parse(_istio({"trustDomain": "prod.example.com"}))
    assert ingress_identity(istio) == (
        "spiffe://prod.example.com/ns/istio-ingress/sa/istio-ingressgateway"
    )
    assert caller_identity(istio, "service2") == "spiffe://prod.example.com/ns/demo/sa/service2"
    assert certificate_secret_name("service1") == "sailplan-cert-service1"
    assert certificate_secret_name("demo-gateway") == "sailplan-cert-demo-gateway"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "Cluster.Local",
            "trustDomain: 'Cluster.Local' is not a valid trust domain: use a DNS name such as "
            "'cluster.local' or 'prod.example.com' (lowercase letters, digits, '-' and '.')",
        ),
        (
            "a..b",
            "trustDomain: 'a..b' is not a valid trust domain: use a DNS name such as "
            "'cluster.local' or 'prod.example.com' (lowercase letters, digits, '-' and '.')",
        ),
    ],
)
def test_a_trust_domain_is_a_dns_name(value: str, message: str) -> None:
    assert _problems(edited({"trustDomain": value})) == [message]


def test_allow_rules_parse_with_from_methods_and_paths() -> None:
    rule = {"from": ["service2", "ingress"], "methods": ["GET"], "paths": [{"prefix": "/api"}]}
    mesh = Mesh.parse(_istio({"services.service1.allow": [rule]}))
    parsed = mesh.services["service1"].allow
    assert parsed is not None
    assert parsed[0].sources == ["service2", "ingress"]
    assert parsed[0].paths is not None and parsed[0].paths[0].kind == "prefix"
    # Round trip: `from` is written back under its YAML name.
    assert mesh.to_dict()["services"]["service1"]["allow"] == [rule]
    assert Mesh.parse(mesh.to_dict()) == mesh
    # An empty list is valid: it denies every request.
    assert Mesh.parse(_istio({"services.service1.allow": []})).services["service1"].allow == []


def test_unknown_callers_are_refused() -> None:
    allow = [{"from": ["service2", "servce3", "ingress"]}]
    assert _problems(_istio({"services.service1.allow": allow})) == [
        "services.service1.allow[0].from[1]: unknown caller 'servce3'; callers are: "
        "service1, service2, ingress"
    ]


def test_ingress_as_a_caller_needs_an_ingress() -> None:
    data = _istio({"services.service1.allow": [{"from": ["ingress"]}]})
    del data["ingress"]
    assert _problems(data) == [
        "services.service1.allow[0].from[0]: 'ingress' names the ingress gateway, but this mesh "
        "has none"
    ]


def test_allow_and_default_deny_need_mtls() -> None:
    data = _istio(
        {
            "mtls": "disable",
            "authorization": {"default": "deny"},
            "services.service1.allow": [{"from": ["service2"]}],
        }
    )
    assert _problems(data) == [
        "services.service1.allow: allow needs mTLS: with mtls: disable callers connect in "
        "plaintext and carry no identity, so no proxy can tell who is calling; set mtls to "
        "permissive or strict",
        "authorization.default: default deny needs mTLS: with mtls: disable callers connect in "
        "plaintext and carry no identity, so allow rules could never let a caller in; set mtls "
        "to permissive or strict",
    ]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            {"paths": [{"exact": "/a", "prefix": "/b"}]},
            "services.service1.allow[0].paths[0]: give exactly one of exact or prefix",
        ),
        (
            {"paths": [{"prefix": "api"}]},
            "services.service1.allow[0].paths[0].prefix: 'api' must start with '/'",
        ),
        (
            {"methods": ["get"]},
            "services.service1.allow[0].methods[0]: 'get' is not allowed: use one of 'CONNECT', "
            "'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT' or 'TRACE'",
        ),
        ({"from": []}, "services.service1.allow[0].from: must not be empty"),
        (
            {"to": ["x"]},
            "services.service1.allow[0].to: unknown key; allowed keys here: from, methods, paths",
        ),
    ],
)
def test_malformed_rules_are_refused_at_their_path(rule: dict[str, Any], message: str) -> None:
    assert _problems(_istio({"services.service1.allow": [rule]})) == [message]


def test_authorization_default_is_allow_or_deny() -> None:
    assert Mesh.parse(edited({})).authorization.default == "allow"
    assert _problems(edited({"authorization": {"default": "maybe"}})) == [
        "authorization.default: 'maybe' is not allowed: use one of 'allow' or 'deny'"
    ]


def test_check_says_what_mtls_and_allow_mean() -> None:
    mesh = Mesh.parse(
        edited(
            {
                "mtls": "strict",
                "authorization": {"default": "deny"},
                "services.service1.allow": [
                    {
                        "from": ["service2", "ingress"],
                        "methods": ["GET"],
                        "paths": [{"prefix": "/api"}, {"exact": "/x"}],
                    }
                ],
                "services.service2.allow": [],
            }
        )
    )
    lines = summarize(mesh, "mesh.yaml").splitlines()
    assert lines[3:5] == [
        "  mTLS strict: sidecars accept only mTLS from the mesh's workloads",
        "  authorization: services without allow refuse every request",
    ]
    assert "    allow: from service2, ingress GET /api* /x" in lines
    assert "    allow: nobody" in lines
    permissive = summarize(Mesh.parse(edited({})), "mesh.yaml").splitlines()
    assert permissive[3] == (
        "  mTLS permissive: sidecars call each other over mTLS and also accept plaintext"
    )


def _label(length: int, letter: str = "a") -> str:
    return letter * length


@pytest.mark.parametrize(
    ("identity", "name"),
    [
        ("spiffe://cluster.local/ns/demo/sa/service1", "service1.demo.sa.cluster.local"),
        (
            "spiffe://prod.example.com/ns/istio-ingress/sa/gw",
            "gw.istio-ingress.sa.prod.example.com",
        ),
        # Every label at most 63 characters, the name at most 253.
        (f"spiffe://{_label(63)}/ns/n/sa/s", f"s.n.sa.{_label(63)}"),
        (f"spiffe://{_label(64)}/ns/n/sa/s", None),
        (
            f"spiffe://{_label(63)}.{_label(63)}.{_label(63)}.{_label(54)}/ns/n/sa/s",
            "s.n.sa." + ".".join([_label(63), _label(63), _label(63), _label(54)]),
        ),
        (f"spiffe://{_label(63)}.{_label(63)}.{_label(63)}.{_label(55)}/ns/n/sa/s", None),
        # Not a workload identity of Istio's form: no DNS name.
        ("spiffe://cluster.local/ns/demo", None),
        ("spiffe://cluster.local/ns/demo/sa/a/b", None),
        ("https://cluster.local/ns/demo/sa/a", None),
        ("spiffe://Cluster.local/ns/demo/sa/a", None),
    ],
)
def test_an_identity_has_one_dns_name_when_dns_can_hold_it(identity: str, name: str | None) -> None:
    assert identity_dns_name(identity) == name
    if name is not None:
        assert len(name) <= 253


def test_builtin_mtls_refuses_a_trust_domain_no_dns_name_can_hold() -> None:
    long_label = _label(64, "x")
    assert _problems(edited({"trustDomain": f"{long_label}.local"})) == [
        f"trustDomain: the label '{long_label}' is 64 characters long; with mTLS on the builtin "
        "plane every workload certificate also names its identity as the DNS name "
        "<serviceaccount>.<namespace>.sa.<trustDomain>, and a DNS label holds at most 63 "
        "characters; shorten that label"
    ]
    # A trust domain of 253 characters: the longest workload of the demo mesh with its
    # namespace (`demo-gateway.demo.sa.`, 21) takes the name past the 253 DNS allows.
    domain = ".".join([_label(63), _label(63), _label(63), _label(61)])
    assert _problems(edited({"trustDomain": domain})) == [
        "trustDomain: with mTLS on the builtin plane every workload certificate also names its "
        "identity as the DNS name <serviceaccount>.<namespace>.sa.<trustDomain>, which for "
        "the ingress gateway would be 274 characters, more than the 253 DNS allows; shorten "
        "the trust domain, the namespace or the longest service names"
    ]
    # Without mTLS no certificate is made; Istio's certificates carry the SPIFFE ID only.
    for edits in ({"mtls": "disable"}, {"dataPlane": "istio"}):
        assert Mesh.parse(edited({"trustDomain": domain, **edits})).trust_domain == domain
