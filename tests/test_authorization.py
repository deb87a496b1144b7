"""`allow` and `authorization.default` on the builtin plane, on real HAProxy: the verified caller
identity, method and path decide; a refused request gets Envoy's 403 `RBAC: access denied`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from proxy_support import backends, request
from security_support import Mesh, TlsReply, client_context, mesh, sidecars, tls_request

from sailplan.model.security import ingress_identity
from sailplan.render.haproxy.security import RBAC_BODY

pytestmark = [pytest.mark.haproxy, pytest.mark.timeout(60)]

RULES = [
    {"from": ["service2"], "methods": ["GET", "HEAD"], "paths": [{"prefix": "/api/"}]},
    {"from": ["ingress"], "paths": [{"exact": "/public"}]},
]


def _as(running: Mesh, caller: str, port: int, path: str, method: str = "GET") -> TlsReply:
    identity = ingress_identity(running.spec) if caller == "ingress" else running.identity(caller)
    certs = running.cert_dir(caller, identity)
    return tls_request(port, client_context(certs, certs / "ca.crt"), path, method=method)


def _denied(reply: Any) -> bool:
    return (reply.status, reply.body) == (403, RBAC_BODY)


def test_allow_rules_on_identity_method_and_path() -> None:
    with backends("app") as apps, sidecars(mesh("permissive", RULES)) as running:
        port = running.sidecar("service1", apps["app"]).ports.inbound
        allowed = _as(running, "service2", port, "/api/users")
        assert (allowed.status, allowed.body) == (200, "app")
        assert _as(running, "ingress", port, "/public").status == 200
        refused = _as(running, "service3", port, "/api/users")
        assert _denied(refused)
        assert refused.headers is not None
        assert refused.headers["content-type"] == "text/plain"
        assert _denied(_as(running, "service2", port, "/api/users", method="POST"))
        assert _denied(_as(running, "service2", port, "/public"))
        assert _denied(_as(running, "ingress", port, "/public/more"))
        # A plaintext caller has no identity: no rule with `from` lets it in.
        assert _denied(request(port, "/api/users"))
        # A plaintext caller cannot claim an identity with a header either.
        forged = request(
            port,
            "/api/users",
            headers={"x-forwarded-client-cert": f"URI={running.identity('service2')}"},
        )
        assert _denied(forged)
        assert [path for _, path, _ in apps["app"].requests] == ["/api/users", "/public"]


def test_an_empty_allow_list_refuses_everyone() -> None:
    with backends("app") as apps, sidecars(mesh("strict", [])) as running:
        port = running.sidecar("service1", apps["app"]).ports.inbound
        assert _denied(_as(running, "service2", port, "/"))
        assert apps["app"].requests == []


def test_a_rule_without_conditions_lets_everyone_in() -> None:
    with backends("app") as apps, sidecars(mesh("permissive", [{}])) as running:
        port = running.sidecar("service1", apps["app"]).ports.inbound
        assert _as(running, "service3", port, "/x").status == 200
        assert request(port, "/y").status == 200


def test_default_deny_refuses_services_without_allow() -> None:
    spec = mesh("strict", [{"from": ["service2"]}], authorization={"default": "deny"})
    with backends("one", "three") as apps, sidecars(spec) as running:
        one = running.sidecar("service1", apps["one"]).ports.inbound
        three = running.sidecar("service3", apps["three"]).ports.inbound
        assert _as(running, "service2", one, "/").status == 200
        assert _denied(_as(running, "service2", three, "/"))


def test_a_caller_sidecar_that_is_not_allowed_gets_403_through_its_outbound(tmp_path: Path) -> None:
    with backends("app", "caller-app") as apps, sidecars(mesh("strict", RULES)) as running:
        callee = running.sidecar("service1", apps["app"])
        endpoints = {"service1": {"v1": [("127.0.0.1", callee.ports.inbound)]}}
        allowed = running.sidecar("service2", apps["caller-app"], endpoints)
        refused = running.sidecar("service3", apps["caller-app"], endpoints)
        assert request(allowed.ports.outbound, "/api/x", host="service1").status == 200
        reply = request(refused.ports.outbound, "/api/x", host="service1")
        assert (reply.status, reply.body) == (403, RBAC_BODY)


def test_identities_longer_than_127_bytes_are_read_from_the_certificate() -> None:
    # DER writes a length of 128 or more in two bytes (0x81 n): mesh.lua must read that form too.
    domain = f"{'x' * 63}.{'y' * 63}"
    spec = mesh("strict", [{"from": ["service2"]}], trustDomain=domain)
    with backends("app") as apps, sidecars(spec) as running:
        assert len(running.identity("service2")) > 127
        port = running.sidecar("service1", apps["app"]).ports.inbound
        assert _as(running, "service2", port, "/").status == 200
        assert _denied(_as(running, "service3", port, "/"))
