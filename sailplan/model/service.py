"""Services and their versions: what runs, where, and how it is reached."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from sailplan.model.base import (
    INT32_MAX,
    DnsLabel,
    EnvName,
    EnvValue,
    Port,
    ServiceName,
    SpecModel,
    planes,
)
from sailplan.model.errors import ENV_REFERENCE, ENV_TEXT
from sailplan.model.policy import Policy
from sailplan.model.route import Route
from sailplan.model.security import AllowRule

_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")

# Set by sailplan on every app: the port the app must listen on.
RESERVED_ENV = ("PORT",)


def _check_quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError(
            f"{value!r} is not a Kubernetes quantity: write e.g. 100m or 0.5 for CPU, 128Mi for memory"
        )
    return value


Quantity = Annotated[
    str,
    AfterValidator(_check_quantity),
    WithJsonSchema({"type": "string", "pattern": _QUANTITY.pattern}),
]

# Secret and ConfigMap names are DNS subdomains; their keys are letters, digits, '-', '_' and '.'.
_OBJECT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DATA_KEY = re.compile(r"[-._a-zA-Z0-9]+")


def _check_object_name(value: str) -> str:
    if not _OBJECT_NAME.fullmatch(value) or len(value) > 253:
        raise ValueError(
            f"{value!r} is not a valid Secret or ConfigMap name: use lowercase letters, digits, "
            "'-' and '.', at most 253 characters"
        )
    return value


def _check_data_key(value: str) -> str:
    if not _DATA_KEY.fullmatch(value) or len(value) > 253:
        raise ValueError(
            f"{value!r} is not a valid Secret or ConfigMap key: use letters, digits, '-', '_' "
            "and '.', at most 253 characters"
        )
    return value


def _check_env_text(value: str) -> str:
    # The kernel passes environment strings NUL-terminated: a NUL cannot reach the app.
    if "\x00" in value:
        raise ValueError("an environment value cannot contain a NUL character")
    return value


ObjectName = Annotated[
    str,
    AfterValidator(_check_object_name),
    WithJsonSchema(
        {"type": "string", "pattern": f"^(?:{_OBJECT_NAME.pattern})$", "maxLength": 253}
    ),
]
DataKey = Annotated[
    str,
    AfterValidator(_check_data_key),
    WithJsonSchema({"type": "string", "pattern": f"^(?:{_DATA_KEY.pattern})$", "maxLength": 253}),
]
EnvText = Annotated[
    EnvValue,
    AfterValidator(_check_env_text),
    WithJsonSchema({"type": ["string", "number"], "pattern": "^[^\\x00]*$"}),
]
_REF_PLANES = planes(
    istio="The app container's `valueFrom`.",
    builtin="The app container's `valueFrom`; the sandbox reads the variable from your "
    "environment or `local.envFile`.",
)


class KeyRef(SpecModel):
    """One key of a Secret or ConfigMap in the mesh's namespace."""

    name: ObjectName = Field(
        description="The Secret's or ConfigMap's name.",
        examples=["db"],
        json_schema_extra=_REF_PLANES,
    )
    key: DataKey = Field(
        description="The key within it whose value the variable takes.",
        examples=["password"],
        json_schema_extra=_REF_PLANES,
    )


class EnvRef(SpecModel):
    """A value kept out of the mesh file: read from a Secret or ConfigMap key when the pod starts.

    The sandbox takes it from the developer's environment or from `local.envFile` instead."""

    # Exactly one of the two, for editors as for the validator below.
    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    secret_key_ref: KeyRef | None = Field(
        default=None,
        description="Take the value from a key of a Secret: `{name: db, key: password}`.",
        examples=[{"name": "db", "key": "password"}],
        json_schema_extra=_REF_PLANES,
    )
    config_map_key_ref: KeyRef | None = Field(
        default=None,
        description="Take the value from a key of a ConfigMap: `{name: settings, key: mode}`.",
        examples=[{"name": "settings", "key": "mode"}],
        json_schema_extra=_REF_PLANES,
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> EnvRef:
        if (self.secret_key_ref is None) == (self.config_map_key_ref is None):
            raise ValueError("give exactly one of secretKeyRef or configMapKeyRef")
        return self

    @property
    def kind(self) -> Literal["secretKeyRef", "configMapKeyRef"]:
        return "secretKeyRef" if self.secret_key_ref is not None else "configMapKeyRef"

    @property
    def ref(self) -> KeyRef:
        ref = self.secret_key_ref or self.config_map_key_ref
        assert ref is not None
        return ref


def _env_kind(value: Any) -> str:
    return ENV_REFERENCE if isinstance(value, dict | EnvRef) else ENV_TEXT


# An env value: text (numbers are taken as text) or a reference to a Secret or ConfigMap key.
EnvEntry = Annotated[
    Annotated[EnvText, Tag(ENV_TEXT)] | Annotated[EnvRef, Tag(ENV_REFERENCE)],
    Discriminator(_env_kind),
]


_ENV_FROM_PLANES = planes(
    istio="The app container's `envFrom`.",
    builtin="The app container's `envFrom`; the sandbox reads the variables from your "
    "environment or `local.envFile`.",
)


class NameRef(SpecModel):
    """A Secret or ConfigMap in the mesh's namespace, by name."""

    name: ObjectName = Field(
        description="The Secret's or ConfigMap's name.",
        examples=["db"],
        json_schema_extra=_ENV_FROM_PLANES,
    )


class EnvFrom(SpecModel):
    """Every key of a Secret or ConfigMap as an environment variable of the app."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["secretRef"], "not": {"required": ["configMapRef"]}},
                {"required": ["configMapRef"], "not": {"required": ["secretRef"]}},
            ]
        }
    )

    secret_ref: NameRef | None = Field(
        default=None,
        description="Every key of this Secret: `{name: db}`.",
        examples=[{"name": "db"}],
        json_schema_extra=_ENV_FROM_PLANES,
    )
    config_map_ref: NameRef | None = Field(
        default=None,
        description="Every key of this ConfigMap: `{name: settings}`.",
        examples=[{"name": "settings"}],
        json_schema_extra=_ENV_FROM_PLANES,
    )
    prefix: EnvName | None = Field(
        default=None,
        description="Put before every variable name, e.g. `DB_`. Default: none.",
        examples=["DB_"],
        json_schema_extra=_ENV_FROM_PLANES,
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> EnvFrom:
        if (self.secret_ref is None) == (self.config_map_ref is None):
            raise ValueError("give exactly one of secretRef or configMapRef")
        return self


class ResourceAmounts(SpecModel):
    """CPU and memory amounts, written as Kubernetes quantities."""

    cpu: Quantity | None = Field(
        default=None,
        description="CPU as a Kubernetes quantity: cores such as `0.5` or millicores such as `100m`.",
        examples=["250m"],
        json_schema_extra=planes(
            istio="The `cpu` amount, as written.", builtin="The `cpu` amount, as written."
        ),
    )
    memory: Quantity | None = Field(
        default=None,
        description="Memory as a Kubernetes quantity with a binary or decimal suffix, such as "
        "`128Mi` or `1G`.",
        examples=["256Mi"],
        json_schema_extra=planes(
            istio="The `memory` amount, as written.", builtin="The `memory` amount, as written."
        ),
    )


class Resources(SpecModel):
    """Requests and limits of the app container. Defaults are small and always set."""

    requests: ResourceAmounts = Field(
        default=ResourceAmounts(cpu="50m", memory="64Mi"),
        description="What the scheduler reserves for the app container. Default: cpu `50m`, "
        "memory `64Mi`.",
        examples=[{"cpu": "100m", "memory": "128Mi"}],
        json_schema_extra=planes(
            istio="`resources.requests` of the app container.",
            builtin="`resources.requests` of the app container.",
        ),
    )
    limits: ResourceAmounts = Field(
        default=ResourceAmounts(cpu="500m", memory="256Mi"),
        description="The most the app container may use: CPU is throttled above it, and the "
        "container is killed above the memory limit. Default: cpu `500m`, memory `256Mi`.",
        examples=[{"cpu": "1", "memory": "512Mi"}],
        json_schema_extra=planes(
            istio="`resources.limits` of the app container.",
            builtin="`resources.limits` of the app container.",
        ),
    )


class LocalRun(SpecModel):
    """How `sailplan sandbox` runs this version on a laptop. The process must listen on $PORT."""

    command: Annotated[list[str], Field(min_length=1)] = Field(
        description="The program and its arguments, as a list (no shell). At least one item.",
        examples=[["python", "../apps/users/app.py"]],
        json_schema_extra=planes(
            istio="Not rendered; only `sailplan sandbox` reads it.",
            builtin=(
                "Not rendered; only `sailplan sandbox` reads it. It runs the command with "
                "`PORT` set to a free port and `HTTP_PROXY` pointing at the version's "
                "sidecar."
            ),
        ),
    )
    cwd: str | None = Field(
        default=None,
        description="The working directory of the process, relative to the mesh file's folder. "
        "Default: the mesh file's folder.",
        examples=["../apps/users"],
        json_schema_extra=planes(
            istio="Not rendered; only `sailplan sandbox` reads it.",
            builtin="Not rendered; only `sailplan sandbox` reads it.",
        ),
    )
    env: dict[EnvName, EnvText] | None = Field(
        default=None,
        description="Environment variables for the sandbox only, added over the version's `env`.",
        examples=[{"DEBUG": "1"}],
        json_schema_extra=planes(
            istio="Not rendered; only `sailplan sandbox` reads it.",
            builtin="Not rendered; only `sailplan sandbox` reads it.",
        ),
    )
    env_file: str | None = Field(
        default=None,
        description="A `.env`-style file (`NAME=value` lines, relative to the mesh file's "
        "folder) whose variables the process gets, and where values the cluster reads from "
        "Secrets or ConfigMaps (`secretKeyRef`, `configMapKeyRef`) are found. Variables set in "
        "your environment win over the file. Default: none.",
        examples=[".env"],
        json_schema_extra=planes(
            istio="Not rendered; only `sailplan sandbox` reads it.",
            builtin="Not rendered; only `sailplan sandbox` reads it.",
        ),
    )


# Visible ASCII: what a request line may carry without encoding.
URL_PATH = re.compile(r"/[!-~]*")


class Readiness(SpecModel):
    """An HTTP GET the app answers with 2xx once it can take traffic."""

    path: str = Field(
        default="/healthz",
        description="The path probed on the service port; it must start with `/`. "
        "Default: `/healthz`.",
        json_schema_extra=planes(
            istio="The probe's `httpGet.path`.",
            builtin="The probe's `httpGet.path`; the sandbox polls the same path.",
            schema={"pattern": f"^(?:{URL_PATH.pattern})$"},
        ),
        examples=["/ready"],
    )

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} must start with '/'")
        if not URL_PATH.fullmatch(value):
            # A space or control character ends the request line early: the kubelet's probe
            # and HAProxy would send a malformed request.
            raise ValueError(
                f"{value!r} is not a URL path: use visible ASCII characters and percent-encode "
                "the rest (a space is %20)"
            )
        return value


class Version(SpecModel):
    """One deployable version of a service: its own image, replicas and settings."""

    image: str = Field(
        min_length=1,
        description="The container image that runs this version, e.g. `registry/app:1.2.0`.",
        examples=["registry.example.com/users:1.4.0"],
        json_schema_extra=planes(
            istio="The app container's image.",
            builtin="The app container's image; the sidecar runs the proxy image beside it.",
        ),
    )
    replicas: int = Field(
        default=1,
        ge=0,
        le=INT32_MAX,
        description="How many pods run this version; 0 keeps it defined but stopped. Default: 1.",
        examples=[3],
        json_schema_extra=planes(
            istio="The Deployment's `replicas`.",
            builtin="The Deployment's `replicas`; the sandbox starts as many processes.",
        ),
    )
    env: dict[EnvName, EnvEntry] | None = Field(
        default=None,
        description="Environment variables of the app container. Names are letters, digits and "
        "`_`; numbers are taken as text. `PORT` is reserved: sailplan sets it to the service port. "
        "Keep secrets out of the file with a reference: `DB_PASSWORD: {secretKeyRef: {name: db, "
        "key: password}}` (or `configMapKeyRef`).",
        json_schema_extra=planes(
            istio="The app container's environment, sorted by name, with `PORT` added; "
            "references become `valueFrom`.",
            builtin=(
                "The app container's environment, sorted by name, with `PORT` added; "
                "references become `valueFrom`. The sandbox passes it to the process, taking "
                "referenced values from the developer's environment or `local.envFile`."
            ),
            schema={"propertyNames": {"not": {"enum": list(RESERVED_ENV)}}},
        ),
        examples=[{"LOG_LEVEL": "debug"}],
    )
    env_from: list[EnvFrom] | None = Field(
        default=None,
        description="Whole Secrets or ConfigMaps whose every key becomes a variable of the app: "
        "`[{secretRef: {name: db}}, {configMapRef: {name: settings}, prefix: APP_}]`. "
        "Default: none.",
        json_schema_extra=planes(
            istio="The app container's `envFrom`.",
            builtin="The app container's `envFrom`; the sandbox reads the variables from the "
            "developer's environment or `local.envFile`.",
        ),
        examples=[[{"secretRef": {"name": "db"}}]],
    )
    resources: Resources = Field(
        default=Resources(),
        description="CPU and memory requests and limits of the app container. Default: requests "
        "`50m`/`64Mi`, limits `500m`/`256Mi`.",
        examples=[
            {
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"cpu": "1", "memory": "512Mi"},
            }
        ],
        json_schema_extra=planes(
            istio="The app container's `resources`; Istio's injected sidecar sets its own.",
            builtin=(
                "The app container's `resources`; the sidecar has its own (requests 50m/32Mi,"
                " limits 1/128Mi)."
            ),
        ),
    )
    readiness: Readiness | None = Field(
        default=None,
        description="An HTTP readiness check of the app. Default: none, the pod is ready once "
        "it runs.",
        examples=[{"path": "/ready"}],
        json_schema_extra=planes(
            istio=(
                "A `readinessProbe` of the app container: HTTP GET on the service port every "
                "5s, unready after 3 failures."
            ),
            builtin=(
                "A `readinessProbe` of the app container: HTTP GET on the service port every "
                "5s, unready after 3 failures; the sandbox waits for it before it reports "
                "ready."
            ),
        ),
    )
    local: LocalRun | None = Field(
        default=None,
        description="How `sailplan sandbox` starts this version as a local process. A version "
        "without it (and with replicas above 0) cannot run in the sandbox.",
        examples=[{"command": ["python", "app.py"]}],
        json_schema_extra=planes(
            istio="Not rendered; only `sailplan sandbox` reads it.",
            builtin=(
                "Not rendered; only `sailplan sandbox` reads it. The sandbox runs the builtin"
                " sidecar."
            ),
        ),
    )

    @field_validator("env")
    @classmethod
    def _not_reserved(cls, value: dict[str, str | EnvRef] | None) -> dict[str, str | EnvRef] | None:
        for name in RESERVED_ENV:
            if value and name in value:
                raise ValueError(f"{name} is set by sailplan to the service port; remove it")
        return value


Protocol = Literal["http", "tcp", "grpc"]


class Service(SpecModel):
    """A named service: one port, one or more versions, and the routes that choose among them."""

    port: Port = Field(
        description="The port the service is reached on, and the port its app listens on "
        "(given to the app as `$PORT`). From 1 to 65535.",
        examples=[8080],
        json_schema_extra=planes(
            istio=(
                "The Service port and the container port (named `<protocol>-<port>`), `PORT` "
                "in the app's environment, and the port of every route destination."
            ),
            builtin=(
                "The Service port and the container port, `PORT` in the app's environment; "
                "the sidecar's inbound listener forwards to it and callers' sidecars dial "
                "versions on it."
            ),
        ),
    )
    protocol: Protocol = Field(
        default="http",
        description="What the service speaks: `http`, `grpc` or `tcp`. The builtin data plane "
        "proxies `http` only. Default: `http`.",
        examples=["grpc"],
        json_schema_extra=planes(
            istio=(
                "The port's name prefix and `appProtocol`, from which Istio picks how to "
                "proxy it; a tcp service gets a DestinationRule and no VirtualService."
            ),
            builtin="Only `http` is supported; `tcp` and `grpc` are refused.",
        ),
    )
    versions: Annotated[dict[DnsLabel, Version], Field(min_length=1)] = Field(
        description="The versions of the service by name (a DNS label such as `v1`). At least one.",
        examples=[
            {
                "v1": {"image": "registry.example.com/users:1.4.0"},
                "v2": {"image": "registry.example.com/users:1.5.0"},
            }
        ],
        json_schema_extra=planes(
            istio=(
                "A Deployment `<service>-<version>` each, its pods labelled `version: "
                "<version>`, and a subset per version in the DestinationRule."
            ),
            builtin=(
                "A Deployment `<service>-<version>` each, with a headless Service of the same"
                " name that callers' sidecars resolve."
            ),
        ),
    )
    routes: list[Route] = Field(
        default=[],
        description="Ordered routing rules: the first whose `match` holds decides where a request "
        "goes. Default: none, requests are spread over every version.",
        examples=[[{"split": {"v1": 90, "v2": 10}}]],
        json_schema_extra=planes(
            istio=(
                "The ordered `http` rules of the service's VirtualService; unless the last "
                "rule matches every request, a final `all-versions` rule sends the rest to "
                "every version."
            ),
            builtin=(
                "Ordered rules in the outbound listener of every sidecar (and in the "
                "gateway); requests no rule matched go to a backend of every version."
            ),
        ),
    )
    policy: Policy | None = Field(
        default=None,
        description="How callers treat the service's endpoints: load balancing, connection "
        "limits, outlier detection. Default: none.",
        examples=[{"loadBalancer": "least-request"}],
        json_schema_extra=planes(
            istio="The `trafficPolicy` of the service's DestinationRule.",
            builtin="Options of the service's backends in every caller's sidecar.",
        ),
    )
    allow: list[AllowRule] | None = Field(
        default=None,
        description="Who may call the service, and with which methods and paths: a request is "
        "let in when any rule holds; everything else is refused with 403. An empty list "
        "refuses every request. Needs `mtls` `permissive` or `strict`, since callers are known "
        "by their certificates. Default: the mesh's `authorization.default`.",
        examples=[
            [{"from": ["web", "ingress"], "methods": ["GET"], "paths": [{"prefix": "/api"}]}]
        ],
        json_schema_extra=planes(
            istio=(
                "An AuthorizationPolicy `<service>` (action ALLOW) selecting the service's "
                "pods, one rule per entry."
            ),
            builtin=(
                "Rules in the inbound listener of the service's sidecars, on the verified "
                "caller identity, method and path; a refused request gets 403 "
                "`RBAC: access denied` (text/plain), Envoy's answer."
            ),
        ),
    )
    calls: list[ServiceName] | None = Field(
        default=None,
        description="The services this service's workloads call, when not every one: their "
        "sidecars then carry only these services' routes, as Istio's `Sidecar` resource scopes "
        "a proxy. A call to a service not listed gets no mesh policy on either plane: it passes "
        "through to the address the caller dialled (the service's ClusterIP, so any of its pods), "
        "as to a destination outside the mesh, with no routes, splits, retries, timeouts or "
        "faults, and without mTLS: with `mtls: strict` the callee's sidecar refuses it, so list "
        "every service called. Default: every service of the mesh; worth setting past about "
        "50 services.",
        examples=[["users", "orders"]],
        json_schema_extra=planes(
            istio="A `Sidecar` named after the service, selecting its pods (`app: <service>`), "
            "with `egress.hosts` of `./<service>.<namespace>.svc.cluster.local` per listed "
            "service and `istio-system/*`; a host not listed is unknown to the proxy and goes "
            "to `PassthroughCluster` (Istio's default outbound policy `ALLOW_ANY`).",
            builtin="The sidecar's outbound config holds the listed services' routes only, in "
            "the workload's own ConfigMap instead of the mesh's shared shards; any other Host "
            "goes to the passthrough backend, to the address the caller dialled; with "
            "`interception: explicit-proxy`, to the Host's name resolved by the cluster's DNS "
            "as the pod's resolver would (a short name in the workload's namespace), 503 "
            "`DNS resolution failure: <name>` when it does not resolve. In the sandbox, "
            "which has no kube-proxy, the caller's sidecar sends it to any of the service's "
            "pods.",
        ),
    )
