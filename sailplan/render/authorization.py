"""Istio's side of `allow` and `authorization.default`: `security.istio.io/v1` AuthorizationPolicies.

Istio lets a request in when no ALLOW policy selects the workload, or when a rule of one does.
So a service with `allow` gets an ALLOW policy `<service>` selecting its pods, one rule per entry
(an empty `allow` renders a policy without rules, which lets nothing in); `default: deny` adds
`allow-nothing` for the whole namespace, so services without `allow` let nothing in either.
"""

from __future__ import annotations

from typing import Any

from sailplan import constants as c
from sailplan.model import Mesh
from sailplan.model.security import AllowRule, PathRule, caller_identity
from sailplan.render.istio import SECURITY
from sailplan.render.kubernetes import mesh_labels, metadata, service_labels

ALLOW_NOTHING = "allow-nothing"
_SPIFFE = "spiffe://"


def principal(mesh: Mesh, caller: str) -> str:
    """Istio writes a source principal as the SPIFFE ID without its scheme."""
    identity = caller_identity(mesh, caller)
    assert identity.startswith(_SPIFFE)
    return identity.removeprefix(_SPIFFE)


def _path(rule: PathRule) -> str:
    # Istio's paths take a trailing `*` as a prefix match, and no other wildcard but a leading one.
    return f"{rule.value}*" if rule.kind == "prefix" else rule.value


def _rule(mesh: Mesh, rule: AllowRule) -> dict[str, Any]:
    rendered: dict[str, Any] = {}
    if rule.sources is not None:
        rendered["from"] = [
            {"source": {"principals": [principal(mesh, caller) for caller in rule.sources]}}
        ]
    operation: dict[str, Any] = {}
    if rule.methods is not None:
        operation["methods"] = list(rule.methods)
    if rule.paths is not None:
        operation["paths"] = [_path(path) for path in rule.paths]
    if operation:
        rendered["to"] = [{"operation": operation}]
    # A rule with no fields matches every request, as `allow: [{}]` means.
    return rendered


def service_policy(mesh: Mesh, service_name: str) -> dict[str, Any]:
    allow = mesh.services[service_name].allow
    assert allow is not None
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {c.APP_LABEL: service_name}},
        "action": "ALLOW",
    }
    if allow:
        spec["rules"] = [_rule(mesh, rule) for rule in allow]
    return {
        "apiVersion": SECURITY,
        "kind": "AuthorizationPolicy",
        "metadata": metadata(mesh, service_name, service_labels(mesh, service_name)),
        "spec": spec,
    }


def allow_nothing(mesh: Mesh) -> dict[str, Any]:
    """No selector: every workload of the namespace; no rules: it matches no request."""
    return {
        "apiVersion": SECURITY,
        "kind": "AuthorizationPolicy",
        "metadata": metadata(mesh, ALLOW_NOTHING, mesh_labels(mesh)),
        "spec": {"action": "ALLOW"},
    }


def render_authorization_policies(mesh: Mesh) -> list[dict[str, Any]]:
    """Per service with `allow` (sorted) its policy, then `allow-nothing` with `default: deny`."""
    objects = [
        service_policy(mesh, name)
        for name in sorted(mesh.services)
        if mesh.services[name].allow is not None
    ]
    if mesh.authorization.default == "deny":
        objects.append(allow_nothing(mesh))
    return objects
