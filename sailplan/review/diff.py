"""What changed between two meshes, in traffic terms and the spec's own words.

Pure: two validated Mesh objects in, a list of Change out. Routes are matched by name, unnamed ones
by their conditions, so inserting a route reads as one new route, not as every later one changing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sailplan.model import IngressRoute, Mesh, Route, Service, Version
from sailplan.review import words

Category = Literal["security", "traffic", "workload", "policy", "ingress", "mesh"]

# In this order in every report: what a reviewer must not miss comes first.
CATEGORIES: tuple[Category, ...] = ("security", "traffic", "ingress", "policy", "workload", "mesh")

# Version fields that are part of the pod template: changing one replaces every pod of the version.
_POD_FIELDS = ("image", "env", "resources", "readiness")
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
    for name in _union(old.services, new.services):
        changes += _service_changes(name, old.services.get(name), new.services.get(name))
    changes += _ingress_changes(old, new)
    if not changes and old.to_dict() != new.to_dict():
        # A field this module does not know yet must still show up rather than pass unnoticed.
        changes = _generic("mesh", "mesh", "", old.to_dict(), new.to_dict())
    return sorted(changes, key=lambda change: CATEGORIES.index(change.category))


def _union(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Keys of both, in OLD's order then NEW's additions: the file's order, stable."""
    return [*old, *(key for key in new if key not in old)]


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


def _mesh_level(old: Mesh, new: Mesh) -> list[Change]:
    changes = []
    if old.mtls != new.mtls:
        changes.append(
            Change(
                "security",
                "mesh",
                f"mTLS {old.mtls} → {new.mtls} — security change: {_MTLS_MEANING[new.mtls]}",
                "mtls",
            )
        )
    before, after = old.to_dict(), new.to_dict()
    for key in _union(before, after):
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
    for version in _union(old.versions, new.versions):
        changes += _version_changes(
            name, version, old.versions.get(version), new.versions.get(version)
        )
    changes += _route_list_changes(name, f"{at}.routes", old.routes, new.routes)
    changes += _policy_changes(name, f"{at}.policy", old, new)
    before, after = old.to_dict(), new.to_dict()
    for key in _union(before, after):
        handled = key in {"port", "protocol", "versions", "routes", "policy"}
        if handled or before.get(key) == after.get(key):
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
    for key in _union(before, after):
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
    for key in _union(before, after):
        label = _POLICY_LABELS.get(key, key)
        changes += _generic("policy", name, f"{at}.{key}", before.get(key), after.get(key), label)
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
            for text in _route_field_changes(before, new[index]):
                changes.append(Change(category, route_subject, text, f"{at}[{index}]"))
    return changes


def _route_field_changes(old: AnyRoute, new: AnyRoute) -> list[str]:
    texts = []
    if old.match != new.match:
        texts.append(f"match {words.conditions(old.match)} → {words.conditions(new.match)}")
    if isinstance(old, IngressRoute) or isinstance(new, IngressRoute):
        both = isinstance(old, IngressRoute) and isinstance(new, IngressRoute)
        if both and old.service != new.service:  # type: ignore[union-attr]
            texts.append(f"service {old.service} → {new.service}")  # type: ignore[union-attr]
        return texts
    if old.weights != new.weights:
        if old.to is not None and new.to is not None:
            texts.append(f"to {old.to} → {new.to}")
        else:
            versions = _union(old.weights, new.weights)
            texts.append(
                ", ".join(
                    f"{v} {old.weights.get(v, 0)}% → {new.weights.get(v, 0)}%"
                    for v in versions
                    if old.weights.get(v, 0) != new.weights.get(v, 0)
                )
            )
    if old.fault != new.fault:
        texts.append(f"fault {words.fault(old.fault)} → {words.fault(new.fault)}")
    if old.timeout != new.timeout:
        texts.append(f"timeout {old.timeout or 'none'} → {new.timeout or 'none'}")
    if old.retries != new.retries:
        texts.append(f"retries {words.retries(old.retries)} → {words.retries(new.retries)}")
    if old.copies != new.copies:
        texts.append(f"mirror {_mirror(old)} → {_mirror(new)}")
    return texts


def _mirror(route: Route) -> str:
    return ", ".join(f"{m.percent:g}% to {m.to}" for m in route.copies) or "none"


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
    for key in _union(before, after):
        if key != "routes":
            changes += _generic(
                "ingress", "ingress", f"ingress.{key}", before.get(key), after.get(key), key
            )
    return changes + _route_list_changes(
        "ingress", "ingress.routes", old.ingress.routes, new.ingress.routes
    )
