"""Strict validation of rendered manifests against the real schemas.

Core kinds: kubernetes-validate in strict mode (unknown fields are errors). Istio kinds: the
`openAPIV3Schema` of the matching CRD version, vendored from Istio 1.30.3 into
third_party/schemas/istio-1.30.3/ (see its README), made strict the way the API server treats
structural schemas (unknown fields would be pruned, so we reject them), plus the CEL rules that
matter for what we render (durations >= 1ms, port ranges). cert-manager kinds: the same, from
cert-manager 1.21.1's CRDs in third_party/schemas/cert-manager-1.21.1/. Gateway API kinds: the same,
from the standard channel of Gateway API v1.4.1 (third_party/schemas/gateway-api-1.4.1/), with every
CEL rule that can apply to what the gateway-api plane renders modelled by its message; a rule that is
not modelled fails the validation instead of passing unchecked. A missing schema fails the test: it
never skips.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import jsonschema
import kubernetes_validate
from conftest import REPO

ISTIO_SCHEMAS = REPO / "third_party" / "schemas" / "istio-1.30.3"
CERT_MANAGER_SCHEMAS = REPO / "third_party" / "schemas" / "cert-manager-1.21.1"
GATEWAY_API_SCHEMAS = REPO / "third_party" / "schemas" / "gateway-api-1.4.1"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"
KUBERNETES_VERSION = (
    "1.30.0"  # native sidecars (restartPolicy: Always in initContainers) are GA-ready here
)
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_GO_UNITS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


def _duration_ms(text: str) -> float:
    return sum(
        float(number) * _GO_UNITS[unit]
        for number, _, unit in re.findall(r"(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    )


def _cel(validator: Any, rules: list[dict[str, Any]], instance: Any, schema: Any) -> Any:
    for rule in rules:
        text = rule.get("rule", "")
        if text == "duration(self) >= duration('1ms')":
            if not isinstance(instance, str) or not _GO_DURATION.match(instance):
                yield jsonschema.ValidationError(f"{instance!r} is not a valid duration")
            elif _duration_ms(instance) < 1:
                yield jsonschema.ValidationError(f"{instance!r}: {rule.get('message', text)}")
        elif text == "0 < self && self <= 65535":
            if not 0 < instance <= 65535:
                yield jsonschema.ValidationError(f"{instance!r}: {rule.get('message', text)}")
        elif text == "self.all(key, key.size() != 0)" and any(len(key) == 0 for key in instance):
            yield jsonschema.ValidationError(f"empty key: {rule.get('message', text)}")
        # Other rules concern kinds and fields sailplan does not render.


_StrictValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator, {"x-kubernetes-validations": _cel}
)

# Gateway API's CEL rules, by message: what each rule says, in Python. The path rules apply to
# Exact and PathPrefix values only (RegularExpression values are free text).
_PATH_CHARACTERS = re.compile(r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$")
_LITERAL_PATH = ("Exact", "PathPrefix")


def _literal(path: dict[str, Any]) -> bool:
    return path.get("type") in _LITERAL_PATH


def _same_parent(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("group", "kind", "name")) and (
        a.get("namespace") or ""
    ) == (b.get("namespace") or "")


def _one_filter(kind: str) -> Any:
    return lambda filters: sum(f.get("type") == kind for f in filters) <= 1


def _filter_field(field: str, kind: str) -> tuple[Any, Any]:
    """The pair of rules tying a filter's `type` to the one field it may carry."""
    return (
        lambda f: not (field in f and f.get("type") != kind),
        lambda f: not (field not in f and f.get("type") == kind),
    )


_FILTER_FIELDS = {
    "requestHeaderModifier": "RequestHeaderModifier",
    "responseHeaderModifier": "ResponseHeaderModifier",
    "requestMirror": "RequestMirror",
    "requestRedirect": "RequestRedirect",
    "urlRewrite": "URLRewrite",
    "extensionRef": "ExtensionRef",
}


def _prefix_rewrite(filter_: dict[str, Any], field: str) -> bool:
    path = filter_.get(field, {}).get("path", {})
    return path.get("type") == "ReplacePrefixMatch" and "replacePrefixMatch" in path


def _one_prefix_match(rule: dict[str, Any]) -> bool:
    # The API server applies the `matches` default (one PathPrefix "/") before CEL runs.
    matches = rule.get("matches", [{"path": {"type": "PathPrefix", "value": "/"}}])
    return len(matches) == 1 and matches[0].get("path", {}).get("type") == "PathPrefix"


def _prefix_rewrite_rule(field: str, within_backends: bool) -> Any:
    """`<filter> with path.replacePrefixMatch needs exactly one PathPrefix match`, for the rule's
    filters or (within_backends) for one backendRef's filters; CEL's exists_one is "exactly one"."""

    def holds(rule: dict[str, Any]) -> bool:
        def one(filters: list[dict[str, Any]]) -> bool:
            return sum(_prefix_rewrite(f, field) for f in filters) == 1

        if within_backends:
            used = sum(one(b.get("filters", [])) for b in rule.get("backendRefs", [])) == 1
        else:
            used = one(rule.get("filters", []))
        return not used or _one_prefix_match(rule)

    return holds


GATEWAY_API_CEL: dict[str, Any] = {
    # HTTPRoute rules with prefix rewrites, and redirects
    "When using RequestRedirect filter with path.replacePrefixMatch, exactly one PathPrefix match "
    "must be specified": _prefix_rewrite_rule("requestRedirect", within_backends=False),
    "When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must "
    "be specified": _prefix_rewrite_rule("urlRewrite", within_backends=False),
    "Within backendRefs, when using RequestRedirect filter with path.replacePrefixMatch, exactly "
    "one PathPrefix match must be specified": _prefix_rewrite_rule(
        "requestRedirect", within_backends=True
    ),
    "Within backendRefs, When using URLRewrite filter with path.replacePrefixMatch, exactly one "
    "PathPrefix match must be specified": _prefix_rewrite_rule("urlRewrite", within_backends=True),
    **{
        message: rule
        for kind, field in (
            ("ReplaceFullPath", "replaceFullPath"),
            ("ReplacePrefixMatch", "replacePrefixMatch"),
        )
        for message, rule in (
            (
                f"{field} must be specified when type is set to {kind!r}",
                lambda path, kind=kind, field=field: path.get("type") != kind or field in path,
            ),
            (
                f"type must be {kind!r} when {field} is set",
                lambda path, kind=kind, field=field: field not in path or path.get("type") == kind,
            ),
        )
    },
    "RequestRedirect filter must not be used together with backendRefs": lambda rule: (
        not (
            rule.get("backendRefs") and any("requestRedirect" in f for f in rule.get("filters", []))
        )
    ),
    # Gateway listeners
    "Listener name must be unique within the Gateway": lambda ls: (
        len({x["name"] for x in ls}) == len(ls)
    ),
    "Combination of port, protocol and hostname must be unique for each listener": lambda ls: (
        len({(x["port"], x["protocol"], x.get("hostname")) for x in ls}) == len(ls)
    ),
    "hostname must not be specified for protocols ['TCP', 'UDP']": lambda ls: all(
        not x.get("hostname") for x in ls if x["protocol"] in ("TCP", "UDP")
    ),
    "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']": lambda ls: all(
        "tls" not in x for x in ls if x["protocol"] in ("HTTP", "TCP", "UDP")
    ),
    "certificateRefs or options must be specified when mode is Terminate": lambda tls: (
        tls.get("mode", "Terminate") != "Terminate"
        or bool(tls.get("certificateRefs"))
        or bool(tls.get("options"))
    ),
    "tls mode must be Terminate for protocol HTTPS": lambda ls: all(
        x.get("tls", {}).get("mode", "Terminate") == "Terminate"
        for x in ls
        if x["protocol"] == "HTTPS"
    ),
    # HTTPRoute parents and rules
    "sectionName must be specified when parentRefs includes 2 or more references to the same "
    "parent": lambda refs: all(
        bool(a.get("sectionName")) == bool(b.get("sectionName"))
        for a in refs
        for b in refs
        if _same_parent(a, b)
    ),
    "sectionName must be unique when parentRefs includes 2 or more references to the same "
    "parent": lambda refs: all(
        sum(_same_parent(a, b) and a.get("sectionName") == b.get("sectionName") for b in refs) == 1
        for a in refs
    ),
    "While 16 rules and 64 matches per rule are allowed, the total number of matches across all "
    "rules in a route must be less than 128": lambda rules: (
        sum(len(r.get("matches", [])) for r in rules) <= 128
    ),
    "Must have port for Service reference": lambda ref: (
        "port" in ref
        if ref.get("group", "") == "" and ref.get("kind", "Service") == "Service"
        else True
    ),
    "Only one of percent or fraction may be specified in HTTPRequestMirrorFilter": lambda m: (
        not ("percent" in m and "fraction" in m)
    ),
    "numerator must be less than or equal to denominator": lambda f: (
        f["numerator"] <= f.get("denominator", 100)
    ),
    "backendRequest timeout cannot be longer than request timeout": lambda t: (
        not (
            "request" in t
            and "backendRequest" in t
            and _duration_ms(t["request"]) != 0
            and _duration_ms(t["backendRequest"]) > _duration_ms(t["request"])
        )
    ),
    # paths
    "type must be one of ['Exact', 'PathPrefix', 'RegularExpression']": lambda p: (
        p.get("type") in (*_LITERAL_PATH, "RegularExpression")
    ),
    "value must be an absolute path and start with '/' when type one of ['Exact', "
    "'PathPrefix']": lambda p: not _literal(p) or p["value"].startswith("/"),
    "must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|"
    "[%][0-9a-fA-F]{2})+$) for types ['Exact', 'PathPrefix']": lambda p: (
        not _literal(p) or bool(_PATH_CHARACTERS.match(p["value"]))
    ),
    **{
        f"must not contain {text!r} when type one of ['Exact', 'PathPrefix']": (
            lambda p, text=text: not _literal(p) or text not in p["value"]
        )
        for text in ("#", "%2F", "%2f", "/../", "/./", "//")
    },
    **{
        f"must not end with {text!r} when type one of ['Exact', 'PathPrefix']": (
            lambda p, text=text: not _literal(p) or not p["value"].endswith(text)
        )
        for text in ("/.", "/..")
    },
    # filters
    **{
        f"{kind} filter cannot be repeated": _one_filter(kind)
        for kind in (
            "RequestHeaderModifier",
            "ResponseHeaderModifier",
            "RequestRedirect",
            "URLRewrite",
        )
    },
    "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not "
    "both": lambda fs: (
        not (
            any(f.get("type") == "RequestRedirect" for f in fs)
            and any(f.get("type") == "URLRewrite" for f in fs)
        )
    ),
    **{
        message: rule
        for field, kind in _FILTER_FIELDS.items()
        for message, rule in zip(
            (
                f"filter.{field} must be nil if the filter.type is not {kind}",
                f"filter.{field} must be specified for {kind} filter.type",
            ),
            _filter_field(field, kind),
            strict=True,
        )
    },
}


def _gateway_api_cel(
    validator: Any, rules: list[dict[str, Any]], instance: Any, schema: Any
) -> Any:
    for rule in rules:
        message = rule.get("message", "")
        check = GATEWAY_API_CEL.get(message)
        if check is None:
            yield jsonschema.ValidationError(f"CEL rule not modelled by the tests: {message!r}")
        elif not check(instance):
            yield jsonschema.ValidationError(f"{message}")


_GatewayApiValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator, {"x-kubernetes-validations": _gateway_api_cel}
)


def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@functools.cache
def istio_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict openAPIV3Schema for every served version of every Istio CRD."""
    return _crd_schemas(ISTIO_SCHEMAS, "Istio")


@functools.cache
def cert_manager_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict openAPIV3Schema for every served cert-manager.io CRD version."""
    return _crd_schemas(CERT_MANAGER_SCHEMAS, "cert-manager")


def _crd_schemas(folder: Any, project: str) -> dict[tuple[str, str], dict[str, Any]]:
    files = sorted(folder.glob("*.json"))
    assert files, f"no vendored {project} CRD schemas in {folder}: see scripts/vendor_schemas.py"
    schemas = {}
    for path in files:
        crd = json.loads(path.read_text(encoding="utf-8"))
        for version in crd["versions"]:
            if version["served"]:
                schema = version["openAPIV3Schema"]
                # metadata is validated by the API server itself, not by the CRD schema.
                schema["properties"].pop("metadata", None)
                schemas[(f"{crd['group']}/{version['name']}", crd["kind"])] = _strict(schema)
    return schemas


@functools.cache
def gateway_api_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict openAPIV3Schema of every served Gateway API version."""
    files = sorted(GATEWAY_API_SCHEMAS.glob("*.json"))
    assert files, (
        f"no vendored Gateway API CRD schemas in {GATEWAY_API_SCHEMAS}: see scripts/vendor_schemas.py"
    )
    schemas = {}
    for path in files:
        crd = json.loads(path.read_text(encoding="utf-8"))
        for version in crd["versions"]:
            if version["served"]:
                schema = version["openAPIV3Schema"]
                schema["properties"].pop("metadata", None)
                schema["properties"].pop("status", None)  # written by controllers, never by us
                schemas[(f"{crd['group']}/{version['name']}", crd["kind"])] = _strict(schema)
    return schemas


def _validate_custom(
    manifest: dict[str, Any], schema: dict[str, Any] | None, validator: Any, where: str
) -> None:
    api_version = manifest["apiVersion"]
    assert schema is not None, f"{where}: no served {api_version} {manifest['kind']}"
    extra = set(manifest) - {"apiVersion", "kind", "metadata", "spec"}
    assert not extra, f"{where}: unknown top-level fields {sorted(extra)}"
    body = {"spec": manifest.get("spec", {})}
    errors = sorted(validator(schema).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, f"{where}: " + "; ".join(
        f"{'.'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors
    )


def validate_manifest(manifest: dict[str, Any]) -> None:
    """Raise AssertionError with a readable reason when `manifest` would not be accepted."""
    name = manifest.get("metadata", {}).get("name", "")
    where = f"{manifest.get('kind')}/{name}"
    assert _DNS_SUBDOMAIN.match(name) and len(name) <= 253, f"{where}: invalid metadata.name"
    api_version = manifest["apiVersion"]
    if api_version.startswith(f"{GATEWAY_API_GROUP}/"):
        schema = gateway_api_schemas().get((api_version, manifest["kind"]))
        _validate_custom(manifest, schema, _GatewayApiValidator, where)
        return
    crds = None
    if ".istio.io/" in api_version:
        crds, project = istio_schemas(), "Istio"
    elif api_version.startswith("cert-manager.io/"):
        crds, project = cert_manager_schemas(), "cert-manager"
    if crds is not None:
        schema = crds.get((api_version, manifest["kind"]))
        assert schema is not None, f"{where}: {project} serves no {api_version} {manifest['kind']}"
        extra = set(manifest) - {"apiVersion", "kind", "metadata", "spec"}
        assert not extra, f"{where}: unknown top-level fields {sorted(extra)}"
        body = {"spec": manifest.get("spec", {})}
        errors = sorted(_StrictValidator(schema).iter_errors(body), key=lambda e: list(e.path))
        assert not errors, f"{where}: " + "; ".join(
            f"{'.'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors
        )
        return
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(map(str, error.path))
        raise AssertionError(f"{where}: {path}: {error.message}") from None
