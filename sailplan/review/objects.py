"""Which Kubernetes objects a mesh change creates, updates or deletes, per data plane, and what
that does to running pods.

Every plane is rendered from both meshes (`render_manifests`) and objects compared by kind,
namespace and name, so the answer is exactly what `sailplan render` and the Pulumi component apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sailplan.model import DataPlane, Mesh, SpecError
from sailplan.render.manifests import KIND_ORDER, render_manifests

Action = Literal["created", "updated", "deleted"]
# Every review compares these two, whichever plane the mesh uses: the spec means the same on both.
PLANES: tuple[DataPlane, ...] = ("builtin", "istio")
# API groups whose objects a controller turns into proxy configuration, and what it does then.
# By group, not by kind: Istio's and the Gateway API's `Gateway` share a kind.
_PUSHED_BY = {
    "networking.istio.io": "istiod pushes to the proxies",
    "security.istio.io": "istiod pushes to the proxies",
    "gateway.networking.k8s.io": "the mesh implementation reprograms its proxies",
}
Key = tuple[str, str, str]


@dataclass(frozen=True)
class ObjectChange:
    action: Action
    kind: str
    namespace: str
    name: str
    effect: str = ""

    @property
    def ref(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"

    def to_json(self) -> dict[str, str]:
        return {
            "action": self.action,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "effect": self.effect,
        }


@dataclass(frozen=True)
class PlaneChanges:
    """One data plane's object changes; `note` says why the plane could not be compared."""

    plane: str  # `builtin`, `istio`, or `builtin → istio` when the change switches planes
    current: bool
    changes: list[ObjectChange] = field(default_factory=list)
    note: str = ""

    @property
    def counts(self) -> str:
        if self.note:
            return "not compared"
        found = [
            f"{sum(c.action == a for c in self.changes)} {a}"
            for a in ("created", "updated", "deleted")
            if any(c.action == a for c in self.changes)
        ]
        return ", ".join(found) or "no change"

    def to_json(self) -> dict[str, Any]:
        return {
            "plane": self.plane,
            "current": self.current,
            "note": self.note,
            "changes": [c.to_json() for c in self.changes],
        }


def _by_key(manifests: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    keyed = {}
    for manifest in manifests:
        metadata = manifest.get("metadata", {})
        key = (manifest["kind"], str(metadata.get("namespace", "")), str(metadata["name"]))
        keyed[key] = manifest
    return keyed


def _mounted_config_maps(manifests: dict[Key, dict[str, Any]]) -> set[str]:
    """ConfigMaps a Deployment's pods mount: on the builtin plane, the sidecars' proxy configs."""
    names = set()
    for (kind, _, _), manifest in manifests.items():
        if kind == "Deployment":
            for volume in manifest["spec"]["template"]["spec"].get("volumes", []):
                if "configMap" in volume:
                    names.add(str(volume["configMap"]["name"]))
                # A sidecar's config directory projects its own ConfigMap and the mesh's
                # shared outbound ones.
                for source in volume.get("projected", {}).get("sources", []):
                    if "configMap" in source:
                        names.add(str(source["configMap"]["name"]))
    return names


def _effect(
    action: Action, kind: str, old: dict[str, Any], new: dict[str, Any], mounted: set[str]
) -> str:
    if kind == "Deployment":
        if action != "updated":
            return "pods start" if action == "created" else "pods stop"
        if old["spec"].get("template") != new["spec"].get("template"):
            return "pods restart"
        if old["spec"].get("replicas") != new["spec"].get("replicas"):
            return f"scales {old['spec'].get('replicas')} → {new['spec'].get('replicas')}"
        return ""
    if action == "updated" and kind == "ConfigMap" and new["metadata"]["name"] in mounted:
        # The builtin sidecar watches its mounted config and reloads HAProxy seamlessly: the pod
        # template does not change, so nothing restarts.
        return "sidecars reload"
    group = str((new or old).get("apiVersion", "")).partition("/")[0]
    return _PUSHED_BY.get(group, "")


def _rank(change: ObjectChange) -> tuple[int, str, str]:
    rank = KIND_ORDER.index(change.kind) if change.kind in KIND_ORDER else len(KIND_ORDER)
    return (rank, change.namespace, change.name)


def compare_manifests(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[ObjectChange]:
    before, after = _by_key(old), _by_key(new)
    mounted = _mounted_config_maps(after)
    changes = []
    for key in [*before, *(k for k in after if k not in before)]:
        was, now = before.get(key), after.get(key)
        if was == now:
            continue
        action: Action = "created" if was is None else "deleted" if now is None else "updated"
        effect = _effect(action, key[0], was or {}, now or {}, mounted)
        changes.append(ObjectChange(action, *key, effect=effect))
    return sorted(changes, key=_rank)


def object_changes(old: Mesh, new: Mesh) -> list[PlaneChanges]:
    """The builtin and istio planes, and the gateway-api plane when either mesh uses it (a
    builtin or istio mesh would mostly read "not compared" there: node ports, tcp services);
    NEW's own plane first. A change of `dataPlane` comes first of all: OLD's
    objects on its plane against NEW's on its own, which is what applying the change does."""
    result = []
    if old.data_plane != new.data_plane:
        switch = compare_manifests(render_manifests(old), render_manifests(new))
        result.append(PlaneChanges(f"{old.data_plane} → {new.data_plane}", True, switch))
    planes = [*PLANES, *sorted({old.data_plane, new.data_plane} - set(PLANES))]
    for plane in sorted(planes, key=lambda plane: plane != new.data_plane):
        current = plane == new.data_plane and old.data_plane == new.data_plane
        rendered = []
        for which, mesh in (("old", old), ("new", new)):
            try:
                rendered.append(render_manifests(mesh, plane))
            except SpecError as error:
                note = f"the {which} mesh cannot use this plane: {error.problems[0]}"
                result.append(PlaneChanges(plane, current, note=note))
                break
        else:
            result.append(PlaneChanges(plane, current, compare_manifests(*rendered)))
    return result
