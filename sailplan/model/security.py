"""Security: workload identities (SPIFFE IDs), who may call a service (`allow`), and the names of
the certificates that prove an identity.

Identities follow Istio's: `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceaccount>`, and every
service runs as a ServiceAccount named after it, so an identity means the same on both planes.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal, get_args

from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema, model_validator

from sailplan import constants as c
from sailplan.model.base import SpecModel, planes
from sailplan.model.errors import Problem, shown
from sailplan.model.match import HTTP_METHODS

if TYPE_CHECKING:
    from sailplan.model.mesh import Mesh

# The name `from` uses for the mesh's ingress gateway (Istio's sources are principals, not names).
INGRESS = "ingress"

DEFAULT_TRUST_DOMAIN = "cluster.local"

# A DNS-1123 subdomain, as Istio's trust domain and a SPIFFE trust domain both allow.
_DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# Printable ASCII without space: a path as it appears on the request line.
_PATH_TEXT = re.compile(r"[!-~]*")


def _check_dns_name(value: str) -> str:
    if not _DNS_NAME.fullmatch(value) or len(value) > 253:
        raise ValueError(
            f"{shown(value)} is not a valid trust domain: use a DNS name such as "
            "'cluster.local' or 'prod.example.com' (lowercase letters, digits, '-' and '.')"
        )
    return value


TrustDomain = Annotated[
    str,
    AfterValidator(_check_dns_name),
    WithJsonSchema({"type": "string", "pattern": f"^(?:{_DNS_NAME.pattern})$", "maxLength": 253}),
]


def _check_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{shown(value)} must start with '/'")
    if not _PATH_TEXT.fullmatch(value) or "?" in value or "#" in value:
        raise ValueError(
            f"{shown(value)} cannot be a request path: use printable ASCII without spaces, "
            "'?' or '#', and percent-encode the rest (a space is %20)"
        )
    return value


RequestPath = Annotated[
    str,
    AfterValidator(_check_path),
    WithJsonSchema({"type": "string", "pattern": '^/[!-"$-=@-~]*$'}),
]
Method = Literal["CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"]
assert tuple(sorted(get_args(Method))) == HTTP_METHODS  # one list of methods for match and allow


class PathRule(SpecModel):
    """A request path: exactly one of `exact` or `prefix`."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    exact: RequestPath | None = Field(
        default=None,
        description="The path (without the query string) equals this text.",
        examples=["/api/users"],
        json_schema_extra=planes(
            istio="An entry of `to.operation.paths` of the AuthorizationPolicy rule.",
            builtin="An exact (`-m str`) condition on HAProxy's `path` in the inbound listener.",
        ),
    )
    prefix: RequestPath | None = Field(
        default=None,
        description="The path starts with this text.",
        examples=["/api/"],
        json_schema_extra=planes(
            istio="An entry `<prefix>*` of `to.operation.paths` of the AuthorizationPolicy rule.",
            builtin="A prefix (`-m beg`) condition on HAProxy's `path` in the inbound listener.",
        ),
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> PathRule:
        if (self.exact is None) == (self.prefix is None):
            raise ValueError("give exactly one of exact or prefix")
        return self

    @property
    def kind(self) -> Literal["exact", "prefix"]:
        return "exact" if self.exact is not None else "prefix"

    @property
    def value(self) -> str:
        return self.exact if self.exact is not None else (self.prefix or "")


class AllowRule(SpecModel):
    """Requests this rule lets in: every field given must hold (AND); a list holds when any of its
    entries does (OR). A rule with no fields lets every request in."""

    sources: list[str] | None = Field(
        default=None,
        alias="from",
        min_length=1,
        description="Who may call: names of services of the mesh, and `ingress` for the mesh's "
        "ingress gateway. The caller is known by the identity in its mTLS certificate. "
        "Default: any caller, including plaintext ones when `mtls` is `permissive`.",
        examples=[["web", "ingress"]],
        json_schema_extra=planes(
            istio=(
                "`from.source.principals` of the AuthorizationPolicy rule: "
                "`<trustDomain>/ns/<namespace>/sa/<service>`, and the gateway's "
                "ServiceAccount for `ingress`."
            ),
            builtin=(
                "The inbound listener compares the URI SAN of the caller's verified client "
                "certificate with the SPIFFE ID of each named workload."
            ),
        ),
    )
    methods: list[Method] | None = Field(
        default=None,
        min_length=1,
        description="The HTTP methods allowed, upper case. Default: any method.",
        examples=[["GET", "HEAD"]],
        json_schema_extra=planes(
            istio="`to.operation.methods` of the AuthorizationPolicy rule.",
            builtin="A condition on HAProxy's `method` in the inbound listener.",
        ),
    )
    paths: list[PathRule] | None = Field(
        default=None,
        min_length=1,
        description="The request paths allowed. Default: any path.",
        examples=[[{"prefix": "/api/users"}]],
        json_schema_extra=planes(
            istio="`to.operation.paths` of the AuthorizationPolicy rule.",
            builtin="Conditions on HAProxy's `path` in the inbound listener.",
        ),
    )


class Authorization(SpecModel):
    """Mesh-wide authorization settings."""

    default: Literal["allow", "deny"] = Field(
        default="allow",
        description="What happens to a request for a service without `allow`: `allow` lets "
        "every caller in, `deny` refuses every request (with 403) unless an `allow` rule of the "
        "service lets it in. Default: `allow`.",
        examples=["deny"],
        json_schema_extra=planes(
            istio=(
                "`deny`: an AuthorizationPolicy `allow-nothing` in the namespace (an ALLOW "
                "policy with no rules), so only the services' own ALLOW rules let requests in."
            ),
            builtin=(
                "`deny`: every sidecar without `allow` answers every request 403 "
                "`RBAC: access denied`, as Envoy does."
            ),
        ),
    )


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    """The SPIFFE ID of a workload running as `service_account`, as Istio writes it."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def service_identity(mesh: Mesh, service: str) -> str:
    """The SPIFFE ID of a service of the mesh: its ServiceAccount is named after it."""
    return spiffe_id(mesh.trust_domain, mesh.target_namespace, service)


def gateway_service_account(mesh: Mesh) -> tuple[str, str]:
    """(namespace, ServiceAccount) of the pods of the mesh's ingress gateway: the builtin plane's
    own `<mesh>-gateway`, or the istio gateway chart's release in its namespace."""
    if mesh.data_plane == "istio":
        return c.ISTIO_GATEWAY_NAMESPACE, c.ISTIO_GATEWAY_RELEASE
    return mesh.target_namespace, f"{mesh.name}-gateway"


def ingress_identity(mesh: Mesh) -> str:
    """The SPIFFE ID of the mesh's ingress gateway, the caller `from: [ingress]` names."""
    namespace, account = gateway_service_account(mesh)
    return spiffe_id(mesh.trust_domain, namespace, account)


# `spiffe://<trust domain>/ns/<namespace>/sa/<serviceaccount>`, as `spiffe_id` writes it.
_SPIFFE_ID = re.compile(r"spiffe://([^/]+)/ns/([^/]+)/sa/([^/]+)")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def identity_dns_name(identity: str) -> str | None:
    """The DNS name a workload certificate carries beside its SPIFFE ID, so that a caller's
    proxy can check a server's identity during the handshake (HAProxy's `verifyhost` matches DNS
    names and the CN, never a URI SAN). None when `identity` is not a SPIFFE ID of that form or
    the name would not be a valid DNS name (a label over 63 characters, over 253 in all).

    `<serviceaccount>.<namespace>.sa.<trustDomain>`: the identity's parts most specific first,
    as DNS reads, so a certificate shows who it is at a glance; one-to-one, since a ServiceAccount
    and a namespace are single labels and the fixed `sa` label separates them from the trust
    domain; and under the trust domain, so meshes of different trust domains that share an
    issuer still cannot pass for each other."""
    match = _SPIFFE_ID.fullmatch(identity)
    if match is None:
        return None
    trust_domain, namespace, account = match.groups()
    name = _dns_name(trust_domain, namespace, account)
    labels = name.split(".")
    if len(name) > 253 or not all(len(x) <= 63 and _DNS_LABEL.fullmatch(x) for x in labels):
        return None
    return name


def workload_dns_name(identity: str) -> str:
    """`identity_dns_name` of a workload of a mesh the model accepted: with mTLS on the builtin
    plane it refuses a mesh whose names DNS cannot hold (`_dns_name_problems`)."""
    name = identity_dns_name(identity)
    assert name is not None, identity
    return name


def _dns_name(trust_domain: str, namespace: str, account: str) -> str:
    return f"{account}.{namespace}.sa.{trust_domain}"


def caller_identity(mesh: Mesh, caller: str) -> str:
    """The SPIFFE ID a name in `from` stands for (a service, or `ingress`)."""
    return ingress_identity(mesh) if caller == INGRESS else service_identity(mesh, caller)


def certificate_secret_name(workload: str) -> str:
    """The Secret holding a workload's mesh certificate (`tls.crt`, `tls.key`, `ca.crt`, as
    cert-manager writes them): `workload` is its ServiceAccount, the service's name or the
    builtin gateway's `<mesh>-gateway`. The builtin sidecar mounts it; cert-manager fills it."""
    return f"sailplan-cert-{workload}"


def denies_by_default(mesh: Mesh, service: str) -> bool:
    """Whether requests to `service` are checked against rules (its `allow`, or default deny)."""
    return mesh.services[service].allow is not None or mesh.authorization.default == "deny"


def security_problems(mesh: Mesh) -> list[Problem]:
    """Names in `from` that are not callers, and authorization that plaintext cannot carry."""
    problems: list[Problem] = []
    callers = ", ".join([*sorted(mesh.services), INGRESS])
    for name, service in mesh.services.items():
        for index, rule in enumerate(service.allow or []):
            for position, source in enumerate(rule.sources or []):
                at = f"services.{name}.allow[{index}].from[{position}]"
                if source == INGRESS and mesh.ingress is None:
                    problems.append(
                        Problem(at, "'ingress' names the ingress gateway, but this mesh has none")
                    )
                elif source == INGRESS and INGRESS in mesh.services:
                    problems.append(
                        Problem(
                            at,
                            "'ingress' in from always names the ingress gateway, so the service "
                            "named ingress cannot be named here; rename that service",
                        )
                    )
                elif source != INGRESS and source not in mesh.services:
                    problems.append(
                        Problem(at, f"unknown caller {shown(source)}; callers are: {callers}")
                    )
        if service.allow is not None and mesh.mtls == "disable":
            problems.append(
                Problem(
                    f"services.{name}.allow",
                    "allow needs mTLS: with mtls: disable callers connect in plaintext and "
                    "carry no identity, so no proxy can tell who is calling; set mtls to "
                    "permissive or strict",
                )
            )
    problems += _dns_name_problems(mesh)
    if mesh.authorization.default == "deny" and mesh.mtls == "disable":
        problems.append(
            Problem(
                "authorization.default",
                "default deny needs mTLS: with mtls: disable callers connect in plaintext and "
                "carry no identity, so allow rules could never let a caller in; set mtls to "
                "permissive or strict",
            )
        )
    return problems


def _dns_name_problems(mesh: Mesh) -> list[Problem]:
    """On the builtin plane with mTLS, every workload certificate carries its identity's DNS name
    (`identity_dns_name`), which a caller's proxy checks during the handshake: one that DNS cannot
    hold is refused here rather than rendered into a certificate no issuer signs."""
    if mesh.data_plane != "builtin" or mesh.mtls == "disable":
        return []
    long_label = next((x for x in mesh.trust_domain.split(".") if len(x) > 63), None)
    if long_label is not None:
        return [
            Problem(
                "trustDomain",
                f"the label {shown(long_label)} is {len(long_label)} characters long; with mTLS "
                "on the builtin plane every workload certificate also names its identity as the "
                "DNS name <serviceaccount>.<namespace>.sa.<trustDomain>, and a DNS label holds "
                "at most 63 characters; shorten that label",
            )
        ]
    # (who, namespace, ServiceAccount) of every workload that gets a certificate; the
    # namespace and the accounts are single labels the model already bounds.
    workloads = [(shown(name), mesh.target_namespace, name) for name in sorted(mesh.services)]
    if mesh.ingress is not None:
        workloads.append(("the ingress gateway", *gateway_service_account(mesh)))
    who, namespace, account = max(workloads, key=lambda w: len(w[1]) + len(w[2]))
    length = len(_dns_name(mesh.trust_domain, namespace, account))
    if length <= 253:
        return []
    return [
        Problem(
            "trustDomain",
            "with mTLS on the builtin plane every workload certificate also names its identity "
            "as the DNS name <serviceaccount>.<namespace>.sa.<trustDomain>, which for "
            f"{who} would be {length} characters, more than the 253 DNS allows; shorten the "
            "trust domain, the namespace or the longest service names",
        )
    ]
