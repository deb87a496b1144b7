"""What changed between two meshes, in traffic terms and the spec's own words.

Pure: two validated Mesh objects in, a list of Change out. Routes are matched by name, unnamed ones
by their conditions, so inserting a route reads as one new route, not as every later one changing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sailplan.model import IngressRoute, Mesh, Route, Service, Version
from sailplan.review import words

Category = Literal["security", "traffic", "workload", "policy", "ingress", "mesh"]

# In this order in every report: what a reviewer must not miss comes first.
CATEGORIES: tuple[Category, ...] = ("security", "traffic", "ingress", "policy", "workload", "mesh")

# Version fields that are part of the pod template: changing one replaces every pod of the version.
_POD_FIELDS = ("image", "env", "envFrom", "resources", "readiness")
POD_ROLL = "pods restart"

_MTLS_MEANING = {
    "strict": "only mutual-TLS callers are accepted; plaintext is refused",
    "permissive": "mutual TLS and plaintext are both accepted",
    "disable": "traffic between services is plaintext",
}


@dataclass(frozen=True)
class Change:
    """One change: `subject: text`. `path` is where it is in the mesh file."""

    category: Category
    subject: str
    text: str
    path: str

    @property
    def line(self) -> str:
        return f"{self.subject}: {self.text}"

    def to_json(self) -> dict[str, str]:
        return {
            "category": self.category,
            "subject": self.subject,
            "text": self.text,
            "path": self.path,
        }


def mesh_changes(old: Mesh, new: Mesh) -> list[Change]:
    """Every difference between OLD and NEW, grouped by category, in the spec's order within."""
    changes = _mesh_level(old, new)
    for name in words.union(old.services, new.services):
        changes += _service_changes(name, old.services.get(name), new.services.get(name))
        if name in old.services and name in new.services:
            changes += _calls_changes(name, old, new)
    changes += _ingress_changes(old, new)
    if not changes and old.to_dict() != new.to_dict():
        # A backstop: each object already says the fields it has no sentence for by their keys
        # (tests/test_diff.py changes every field of the spec), so this should never be reached.
        changes = _generic("mesh", "mesh", "", old.to_dict(), new.to_dict())
    return sorted(changes, key=lambda change: CATEGORIES.index(change.category))


def _generic(
    category: Category, subject: str, path: str, old: Any, new: Any, label: str = ""
) -> list[Change]:
    prefix = f"{label} " if label else ""
    if old is None or new is None:
        if old == new:
            return []
        text = (
            f"{prefix}added: {words.value_text(new)}"
            if old is None
            else f"{prefix}removed (was {words.value_text(old)})"
        )
        return [Change(category, subject, text, path)]
    return [
        Change(category, subject, prefix + text, path) for text in words.field_changes(old, new)
    ]


_MESH_HANDLED = {"apiVersion", "kind", "services", "ingress", "mtls"}


# Between `disable` and the other modes builtin sidecars change ports and protocol: a caller
# with mTLS dials the callee's mTLS port (15007), which a callee without it does not have, and
# the NetworkPolicy follows at once. Sidecars take the new config one by one (reloads, then pod
# restarts), so a mixed pair fails meanwhile. `permissive` <-> `strict` keeps callers on 15007.
_BUILTIN_ROLLOUT = (
    "; builtin sidecars take it one by one (config reloads, pod restarts), and calls between one "
    "that has it and one that has not can fail until all have"
)


def _mesh_level(old: Mesh, new: Mesh) -> list[Change]:
    changes = []
    if old.mtls != new.mtls:
        rollout = (
            _BUILTIN_ROLLOUT
            if old.data_plane == new.data_plane == "builtin"
            and (old.mtls == "disable") != (new.mtls == "disable")
            else ""
        )
        changes.append(
            Change(
                "security",
                "mesh",
                f"mTLS {old.mtls} → {new.mtls} — security change: {_MTLS_MEANING[new.mtls]}"
                + rollout,
                "mtls",
            )
        )
    before, after = old.to_dict(), new.to_dict()
    for key in words.union(before, after):
        if key in _MESH_HANDLED or before.get(key) == after.get(key):
            continue
        # Authorization-like fields are security changes wherever they appear.
        category: Category = "security" if "auth" in key.lower() else "mesh"
        changes += _generic(category, "mesh", key, before.get(key), after.get(key), key)
    return changes


def _service_changes(name: str, old: Service | None, new: Service | None) -> list[Change]:
    at = f"services.{name}"
    if new is None:
        return [Change("workload", name, "service removed — its pods stop", at)]
    if old is None:
        versions = ", ".join(f"{v} ({_version_text(spec)})" for v, spec in new.versions.items())
        changes = [
            Change("workload", name, f"new service :{new.port}/{new.protocol}, {versions}", at)
        ]
        return changes + _route_list_changes(name, f"{at}.routes", [], new.routes)
    changes = []
    for key in ("port", "protocol"):
        if getattr(old, key) != getattr(new, key):
            text = f"{key} {getattr(old, key)} → {getattr(new, key)}"
            changes.append(Change("traffic", name, text, f"{at}.{key}"))
    for version in words.union(old.versions, new.versions):
        changes += _version_changes(
            name, version, old.versions.get(version), new.versions.get(version)
        )
    changes += _route_list_changes(name, f"{at}.routes", old.routes, new.routes)
    changes += _policy_changes(name, f"{at}.policy", old, new)
    before, after = old.to_dict(), new.to_dict()
    for key in words.union(before, after):
        handled = key in {"port", "protocol", "versions", "routes", "policy", "calls"}
        if handled or before.get(key) == after.get(key):
            continue
        if key == "allow":
            changes += _allow_changes(name, f"{at}.allow", before.get(key), after.get(key))
            continue
        category: Category = "security" if "auth" in key.lower() else "traffic"
        changes += _generic(category, name, f"{at}.{key}", before.get(key), after.get(key), key)
    return changes


def _version_text(version: Version) -> str:
    replicas = f"{version.replicas} replica{'' if version.replicas == 1 else 's'}"
    return f"{version.image}, {replicas}"


def _version_changes(
    service: str, name: str, old: Version | None, new: Version | None
) -> list[Change]:
    subject, at = f"{service} {name}", f"services.{service}.versions.{name}"
    if new is None:
        return [Change("workload", subject, "version removed — its pods stop", at)]
    if old is None:
        return [Change("workload", subject, f"new version: {_version_text(new)}", at)]
    changes = []
    before, after = old.to_dict(), new.to_dict()
    for key in words.union(before, after):
        was, now = before.get(key), after.get(key)
        if was == now:
            continue
        if key == "image":
            text = f"image {was} → {now}"
        elif key == "replicas":
            stopped = " (stopped)" if now == 0 else ""
            text = f"replicas {was} → {now}{stopped}"
        elif key == "env":
            text = "env " + "; ".join(words.field_changes(was or {}, now or {}))
        elif key == "local":
            text = "; ".join(f"local {t}" for t in words.field_changes(was or {}, now or {}))
            text += " (sandbox only)"
        else:
            text = "; ".join(
                words.field_changes(
                    {} if was is None else {key: was}, {} if now is None else {key: now}
                )
            )
        if key in _POD_FIELDS:
            text += f" — {POD_ROLL}"
        changes.append(Change("workload", subject, text, f"{at}.{key}"))
    return changes


_POLICY_LABELS = {
    "loadBalancer": "load balancer",
    "connectionPool": "connection pool (circuit breaker)",
    "outlierDetection": "outlier detection (circuit breaker)",
}


def _policy_changes(name: str, at: str, old: Service, new: Service) -> list[Change]:
    before = old.policy.to_dict() if old.policy else {}
    after = new.policy.to_dict() if new.policy else {}
    changes = []
    for key in words.union(before, after):
        label = _POLICY_LABELS.get(key, key)
        was, now = before.get(key), after.get(key)
        if key == "loadBalancer" and was != now:
            # Which sticky kind (header, cookie, source IP, query parameter), not which keys moved.
            if was is None or now is None:
                was, now = (None if v is None else words.load_balancer(v) for v in (was, now))
            else:
                text = f"{label} {words.load_balancer(was)} → {words.load_balancer(now)}"
                changes.append(Change("policy", name, text, f"{at}.{key}"))
                continue
        changes += _generic("policy", name, f"{at}.{key}", was, now, label)
    return changes


# `service1 › canary`: a route of a service, as reviewers write it.  # noqa: RUF003
ROUTE_OF = " › "  # noqa: RUF001

# Routes of a service and of the ingress are diffed alike.
AnyRoute = Route | IngressRoute


def _label(routes: Sequence[AnyRoute], index: int) -> str:
    route = routes[index]
    return route.name or f"routes[{index}]"


def _route_list_changes(
    subject: str, at: str, old: Sequence[AnyRoute], new: Sequence[AnyRoute]
) -> list[Change]:
    category: Category = "ingress" if subject == "ingress" else "traffic"
    old_keys, new_keys = words.route_keys(old), words.route_keys(new)
    # An unnamed route whose conditions changed keeps its place: pair it with the old one there.
    for index, key in enumerate(new_keys):
        unnamed = not new[index].name and index < len(old) and not old[index].name
        if unnamed and key not in old_keys and old_keys[index] not in new_keys:
            old_keys[index] = key
    changes = []
    for index, key in enumerate(old_keys):
        if key not in new_keys:
            text = f"route {_label(old, index)} removed (was {words.route_summary(old[index])})"
            changes.append(Change(category, subject, text, f"{at}[{index}]"))
    for index, key in enumerate(new_keys):
        if key in old_keys:
            continue
        if len(new) == 1:
            where = "as the only route"
        elif index + 1 < len(new):
            where = f"before {_label(new, index + 1)}"
        else:
            where = f"after {_label(new, index - 1)}"
        label = _label(new, index)
        text = f"new route {label} ({words.route_summary(new[index])}) {where}"
        changes.append(Change(category, subject, text, f"{at}[{index}]"))
    common_old = [k for k in old_keys if k in new_keys]
    common_new = [k for k in new_keys if k in old_keys]
    if common_old != common_new:
        names = {k: _label(old, old_keys.index(k)) for k in common_old}
        text = (
            f"routes reordered: {', '.join(names[k] for k in common_old)} → "
            f"{', '.join(names[k] for k in common_new)} (the first matching route decides)"
        )
        changes.append(Change(category, subject, text, at))
    for index, key in enumerate(new_keys):
        if key in old_keys:
            before = old[old_keys.index(key)]
            route_subject = f"{subject}{ROUTE_OF}{_label(new, index)}"
            for field, text in _route_field_changes(before, new[index]):
                changes.append(Change(category, route_subject, text, f"{at}[{index}].{field}"))
    return changes


def _route_field_changes(old: AnyRoute, new: AnyRoute) -> list[tuple[str, str]]:
    """(field, text) for each difference: the fields a reviewer reads first in traffic terms,
    then every other field of the route generically, so that no field can change unsaid."""
    before, after = old.to_dict(), new.to_dict()
    said: list[tuple[str, str]] = []
    for fields, describe in _ROUTE_TERMS:
        if all(before.get(key) == after.get(key) for key in fields):
            continue
        field = next((key for key in fields if key in after), fields[0])
        texts = describe(old, new)
        said += [(field, text) for text in texts]
        if texts:
            before = {key: value for key, value in before.items() if key not in fields}
            after = {key: value for key, value in after.items() if key not in fields}
    for key in words.union(before, after):
        if before.get(key) != after.get(key):
            said += [
                (key, change.text)
                for change in _generic("traffic", "", key, before.get(key), after.get(key), key)
            ]
    return said


def _arrow(label: str, before: str, after: str) -> list[str]:
    """`timeout 1s → 2s`; nothing when the words are the same for two different values (path
    exact `/m/*` and prefix `/m/` both read `/m/*`), which then are said by their keys."""
    return [] if before == after else [f"{label} {before} → {after}"]


def _match(old: AnyRoute, new: AnyRoute) -> list[str]:
    return _arrow("match", words.conditions(old.match), words.conditions(new.match))


def _service(old: Any, new: Any) -> list[str]:
    return [f"service {old.service} → {new.service}"]


def _destination(route: Route) -> str:
    return words.destination(route) or f"none (answers with {route.answer})"


def _weights(old: Any, new: Any) -> list[str]:
    if old.weights == new.weights:
        return []  # `to: v1` and `split: {v1: 100}` send the same: said generically.
    if old.answer or new.answer:
        return [f"destination {_destination(old)} → {_destination(new)}"]
    if old.to is not None and new.to is not None:
        return [f"to {old.to} → {new.to}"]
    versions = words.union(old.weights, new.weights)
    return [
        ", ".join(
            f"{v} {old.weights.get(v, 0)}% → {new.weights.get(v, 0)}%"
            for v in versions
            if old.weights.get(v, 0) != new.weights.get(v, 0)
        )
    ]


def _fault(old: Any, new: Any) -> list[str]:
    return _arrow("fault", words.fault(old.fault), words.fault(new.fault))


def _timeout(old: Any, new: Any) -> list[str]:
    return _arrow("timeout", old.timeout or "none", new.timeout or "none")


def _retries(old: Any, new: Any) -> list[str]:
    return _arrow("retries", words.retries(old.retries), words.retries(new.retries))


def _mirrors(old: Any, new: Any) -> list[str]:
    """Per copied version: added, removed, or its percent changed (`mirror` and `mirrors`)."""
    was = {m.to: m.percent for m in old.copies}
    now = {m.to: m.percent for m in new.copies}
    texts = []
    for version in words.union(was, now):
        if version not in now:
            texts.append(f"no longer mirrors requests to {version} (was {was[version]:g}%)")
        elif version not in was:
            texts.append(f"mirrors {now[version]:g}% of requests to {version}")
        elif was[version] != now[version]:
            texts.append(
                f"mirrors {now[version]:g}% of requests to {version} (was {was[version]:g}%)"
            )
    return texts


def _headers(old: Any, new: Any) -> list[str]:
    return words.header_changes(_dict(old.headers), _dict(new.headers))


def _destination_headers(old: Any, new: Any) -> list[str]:
    was = {v: h.to_dict() for v, h in (old.destination_headers or {}).items()}
    now = {v: h.to_dict() for v, h in (new.destination_headers or {}).items()}
    return [
        f"when sent to {version}: {text}"
        for version in words.union(was, now)
        for text in words.header_changes(was.get(version), now.get(version))
    ]


def _rewrite(old: Any, new: Any) -> list[str]:
    was, now = words.rewrite_parts(_dict(old.rewrite)), words.rewrite_parts(_dict(new.rewrite))
    return [
        f"rewrite {part} {was.get(part, 'none')} → {now.get(part, 'none')}"
        for part in words.union(was, now)
        if was.get(part) != now.get(part)
    ]


def _redirect(old: Any, new: Any) -> list[str]:
    return _arrow(
        "redirect", words.redirect(_dict(old.redirect)), words.redirect(_dict(new.redirect))
    )


def _respond(old: Any, new: Any) -> list[str]:
    return _arrow("respond", words.respond(_dict(old.respond)), words.respond(_dict(new.respond)))


def _cors(old: Any, new: Any) -> list[str]:
    """Origins allowed or no longer allowed, then the other CORS settings by key."""
    was, now = _dict(old.cors) or {}, _dict(new.cors) or {}
    before = [words.string_match(o) for o in was.pop("allowOrigins", [])]
    after = [words.string_match(o) for o in now.pop("allowOrigins", [])]
    texts = [f"CORS no longer allows origin {o}" for o in before if o not in after]
    texts += [f"CORS allows origin {o}" for o in after if o not in before]
    return texts + [f"CORS {text}" for text in words.field_changes(was, now)]


def _dict(value: Any) -> Any:
    return None if value is None else value.to_dict()


Describe = Callable[[Any, Any], list[str]]
# Route fields said in traffic terms, in this order; every other field is said generically.
_ROUTE_TERMS: tuple[tuple[tuple[str, ...], Describe], ...] = (
    (("match",), _match),
    (("service",), _service),
    (("to", "split"), _weights),
    (("redirect",), _redirect),
    (("respond",), _respond),
    (("fault",), _fault),
    (("timeout",), _timeout),
    (("retries",), _retries),
    (("mirror", "mirrors"), _mirrors),
    (("headers",), _headers),
    (("destinationHeaders",), _destination_headers),
    (("rewrite",), _rewrite),
    (("cors",), _cors),
)


def _calls_changes(name: str, old: Mesh, new: Mesh) -> list[Change]:
    """Services added to or dropped from a workload's scope (no `calls`: every service)."""
    was, now = old.services[name].calls, new.services[name].calls
    if was == now:
        return []
    before = list(old.services) if was is None else was
    after = list(new.services) if now is None else now
    at = f"services.{name}.calls"
    changes = [
        Change(
            "traffic",
            name,
            f"no longer gets {service}'s routes; its calls there pass through",
            at,
        )
        for service in before
        if service not in after
    ]
    changes += [
        Change("traffic", name, f"now gets {service}'s routes", at)
        for service in after
        if service not in before
    ]
    # Listing every service, or no longer, changes no route: still a change of the file.
    return changes or _generic("traffic", name, at, was, now, "calls")


_ALLOW_PARTS = (("from", "callers"), ("methods", "methods"), ("paths", "paths"))


def _allow_changes(name: str, at: str, was: Any, now: Any) -> list[Change]:
    """Who may call the service: rules added or removed, callers/methods/paths per rule."""
    if was is None:
        rules = " | ".join(words.allow_rule(rule) for rule in now) or "no rules"
        text = f"allow added: {rules} — every other request is refused with 403"
        return [Change("security", name, text, at)]
    if now is None:
        rules = " | ".join(words.allow_rule(rule) for rule in was) or "no rules"
        text = f"allow removed (was {rules}) — the mesh's authorization default applies"
        return [Change("security", name, text, at)]
    changes = []
    for index in range(max(len(was), len(now))):
        where = f"{at}[{index}]"
        if index >= len(now):
            text = f"allow[{index}] removed (was {words.allow_rule(was[index])})"
            changes.append(Change("security", name, text, where))
        elif index >= len(was):
            text = f"allow[{index}] added: {words.allow_rule(now[index])}"
            changes.append(Change("security", name, text, where))
        else:
            changes += _allow_rule_changes(name, f"allow[{index}]", where, was[index], now[index])
    return changes


def _allow_rule_changes(name: str, label: str, at: str, was: Any, now: Any) -> list[Change]:
    changes = []
    for key, part in _ALLOW_PARTS:
        before, after = was.get(key), now.get(key)
        if before == after:
            continue
        if key == "paths":
            before = None if before is None else words.access_paths(before)
            after = None if after is None else words.access_paths(after)
        if before is None or after is None:
            text = f"{label} {part} {', '.join(before or ['any'])} → {', '.join(after or ['any'])}"
            changes.append(Change("security", name, text, f"{at}.{key}"))
            continue
        removed = [item for item in before if item not in after]
        added = [item for item in after if item not in before]
        texts = [
            f"{label} {part} {verb}: {', '.join(items)}"
            for items, verb in ((added, "added"), (removed, "removed"))
            if items
        ]
        if not texts:
            # Reordered, or the same in these words (exact `/a*`, prefix `/a`): say the keys.
            was_text, now_text = words.value_text(was[key]), words.value_text(now[key])
            texts = [f"{label} {part} {was_text} → {now_text}"]
        changes += [Change("security", name, text, f"{at}.{key}") for text in texts]
    return changes


def _tls_changes(was: Any, now: Any) -> list[Change]:
    """HTTPS at the ingress: the certificate, the oldest TLS version, the redirect of HTTP."""
    at = "ingress.tls"
    if now is None:
        text = "HTTPS removed — the ingress serves plain HTTP"
        return [Change("security", "ingress", text, at)]
    redirect = "; plain HTTP on port 80 is redirected to HTTPS"
    if was is None:
        text = (
            f"HTTPS added: certificate {words.tls_certificate(now)}, "
            f"{now['minVersion']} or newer{redirect if now.get('httpsRedirect') else ''}"
        )
        return [Change("security", "ingress", text, at)]
    changes = []
    old_cert, new_cert = words.tls_certificate(was), words.tls_certificate(now)
    if old_cert != new_cert:
        text = f"HTTPS certificate {old_cert} → {new_cert}"
        key = "issuer" if "issuer" in now else "secretName"
        changes.append(Change("security", "ingress", text, f"{at}.{key}"))
    if was.get("minVersion") != now.get("minVersion"):
        text = f"HTTPS oldest TLS version {was.get('minVersion')} → {now.get('minVersion')}"
        changes.append(Change("security", "ingress", text, f"{at}.minVersion"))
    if bool(was.get("httpsRedirect")) != bool(now.get("httpsRedirect")):
        text = (
            "plain HTTP on port 80 is now redirected to HTTPS"
            if now.get("httpsRedirect")
            else "plain HTTP on port 80 is no longer redirected to HTTPS"
        )
        changes.append(Change("security", "ingress", text, f"{at}.httpsRedirect"))
    said = {"secretName", "issuer", "minVersion", "httpsRedirect"}
    for key in words.union(was, now):
        if key not in said:
            changes += _generic(
                "security", "ingress", f"{at}.{key}", was.get(key), now.get(key), f"tls {key}"
            )
    return changes


def _ingress_changes(old: Mesh, new: Mesh) -> list[Change]:
    if old.ingress is None and new.ingress is None:
        return []
    if new.ingress is None:
        return [
            Change(
                "ingress",
                "ingress",
                "removed — the mesh is no longer reachable from outside the cluster",
                "ingress",
            )
        ]
    if old.ingress is None:
        routes = "; ".join(words.route_summary(r) for r in new.ingress.routes)
        text = f"new ingress :{new.ingress.port}, hosts {', '.join(new.ingress.hosts)}: {routes}"
        return [Change("ingress", "ingress", text, "ingress")]
    changes = []
    before, after = old.ingress.to_dict(), new.ingress.to_dict()
    for key in words.union(before, after):
        if key == "tls" and before.get(key) != after.get(key):
            changes += _tls_changes(before.get(key), after.get(key))
        elif key not in {"routes", "tls"}:
            changes += _generic(
                "ingress", "ingress", f"ingress.{key}", before.get(key), after.get(key), key
            )
    return changes + _route_list_changes(
        "ingress", "ingress.routes", old.ingress.routes, new.ingress.routes
    )
