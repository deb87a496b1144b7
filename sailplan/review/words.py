"""The spec's own words for routes, matches and faults, shared by `diff` and `graph`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sailplan.model import Fault, IngressRoute, Match, Retries, Route


def conditions(match: list[Match] | None) -> str:
    """A route's `match` alternatives, as `check` prints them: `a | b`, or `any request`."""
    return " | ".join(m.describe() for m in match) if match else "any request"


def destination(route: Route) -> str:
    """`v2`, or `v1 80% / v2 20%` for a split."""
    if route.to is not None:
        return route.to
    return " / ".join(f"{version} {weight}%" for version, weight in (route.split or {}).items())


def fault(value: Fault | None) -> str:
    if value is None:
        return "none"
    parts = []
    if value.delay:
        parts.append(f"delay {value.delay.fixed} at {value.delay.percent:g}%")
    if value.abort:
        parts.append(f"abort {value.abort.status} at {value.abort.percent:g}%")
    return " + ".join(parts)


def retries(value: Retries | None) -> str:
    if value is None:
        return "none"
    if value.attempts == 0:
        return "off"
    per_try = f", {value.per_try_timeout} per try" if value.per_try_timeout else ""
    return f"{value.attempts} on {', '.join(value.conditions)}{per_try}"


def route_extras(route: Route) -> list[str]:
    """What a route does to requests besides choosing a version."""
    extras = []
    if route.fault:
        extras.append(f"fault {fault(route.fault)}")
    if route.timeout:
        extras.append(f"timeout {route.timeout}")
    if route.retries:
        extras.append(f"retries {retries(route.retries)}")
    for mirror in route.copies:
        extras.append(f"mirror {mirror.percent:g}% to {mirror.to}")
    return extras


def route_summary(route: Route | IngressRoute) -> str:
    """`end-user: jason → v2, timeout 1s`: conditions, destination, extras."""
    if isinstance(route, IngressRoute):
        return f"{conditions(route.match)} → {route.service}"
    return ", ".join([f"{conditions(route.match)} → {destination(route)}", *route_extras(route)])


def value_text(value: Any) -> str:
    """A YAML-shaped value (from `to_dict`) on one line."""
    if value is None:
        return "none"
    if isinstance(value, dict):
        return ", ".join(f"{key} {value_text(item)}" for key, item in value.items())
    if isinstance(value, list):
        return ", ".join(value_text(item) for item in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as `a.b.c -> leaf`, so that two values compare key by key."""
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def field_changes(old: Any, new: Any) -> list[str]:
    """`maxConnections 100 → 50`, `interval added: 5s`: each leaf that differs, in the spec's keys."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return [] if old == new else [f"{value_text(old)} → {value_text(new)}"]
    before, after = flatten(old), flatten(new)
    texts = []
    for key in [*before, *(k for k in after if k not in before)]:
        if key not in after:
            texts.append(f"{key} removed (was {value_text(before[key])})")
        elif key not in before:
            texts.append(f"{key} added: {value_text(after[key])}")
        elif before[key] != after[key]:
            texts.append(f"{key} {value_text(before[key])} → {value_text(after[key])}")
    return texts


def route_keys(routes: Sequence[Route | IngressRoute]) -> list[str]:
    """Who each route is across two versions of a mesh: its name, or for an unnamed route its
    conditions (repeats numbered), so that inserting a route does not shift the others' keys."""
    keys, seen = [], dict[str, int]()
    for route in routes:
        key = f"name:{route.name}" if route.name else f"when:{conditions(route.match)}"
        seen[key] = seen.get(key, 0) + 1
        keys.append(key if seen[key] == 1 else f"{key}#{seen[key]}")
    return keys
