"""The spec's own words for routes, matches, faults, headers, load balancers, access rules and
TLS, shared by `diff` and `graph`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
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
    for key in union(before, after):
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


# The review's words for the YAML-shaped (`to_dict`) values of the newer route, policy, access
# and ingress fields: what the proxy then does, not which keys moved.

_DIRECTIONS = {"request": ("on requests", "to requests", "from requests")}
_DIRECTIONS["response"] = ("on answers", "to answers", "from answers")


def union(before: Iterable[str], after: Iterable[str]) -> list[str]:
    """Keys of both, in BEFORE's order then AFTER's additions: the file's order, stable."""
    first = list(before)
    seen = set(first)
    return [*first, *(key for key in after if key not in seen)]


def header_changes(old: Any, new: Any) -> list[str]:
    """`sets x-canary: true on requests (was false)`: each header `headers` (request/response,
    set/add/remove) now treats differently."""
    texts = []
    for direction, (on, to, off) in _DIRECTIONS.items():
        was, now = (old or {}).get(direction) or {}, (new or {}).get(direction) or {}
        for verb, where in (("sets", on), ("adds", to)):
            key = "set" if verb == "sets" else "add"
            before, after = was.get(key) or {}, now.get(key) or {}
            for name in union(before, after):
                if name not in after:
                    texts.append(f"no longer {verb} {name} {where} (was {before[name]})")
                elif name not in before:
                    texts.append(f"{verb} {name}: {after[name]} {where}")
                elif before[name] != after[name]:
                    texts.append(f"{verb} {name}: {after[name]} {where} (was {before[name]})")
        removed, kept = was.get("remove") or [], now.get("remove") or []
        texts += [f"no longer removes {name} {off}" for name in removed if name not in kept]
        texts += [f"removes {name} {off}" for name in kept if name not in removed]
    return texts


def string_match(value: Any) -> str:
    """A YAML-shaped StringMatch as `check` prints it: `a`, `a*`, `~a`."""
    if not isinstance(value, dict):
        return str(value)
    if "prefix" in value:
        return f"{value['prefix']}*"
    if "regex" in value:
        return f"~{value['regex']}"
    return str(value.get("exact", "present"))


def rewrite_parts(value: Any) -> dict[str, str]:
    """A `rewrite` as {part: text}: `path`, `path by regex`, `Host`."""
    value = value or {}
    parts = {}
    if "uri" in value:
        parts["path"] = str(value["uri"])
    if "uriRegexRewrite" in value:
        regex = value["uriRegexRewrite"]
        parts["path by regex"] = f"{regex['match']} as {regex['rewrite']}"
    if "authority" in value:
        parts["Host"] = str(value["authority"])
    return parts


def redirect(value: Any) -> str:
    """`301 (scheme https, Host shop.example.com, port 8443, path /v2/login)`, or `none`."""
    if value is None:
        return "none"
    labels = (("scheme", "scheme"), ("authority", "Host"), ("port", "port"), ("uri", "path"))
    parts = [f"{label} {value[key]}" for key, label in labels if key in value]
    return f"{value.get('code', 301)} ({', '.join(parts)})" if parts else str(value.get("code"))


def respond(value: Any) -> str:
    """`503 with body "down for maintenance"`, or `none`."""
    if value is None:
        return "none"
    # JSON quoting keeps a body with newlines or quotes on one unambiguous line.
    body = f" with body {json.dumps(value['body'], ensure_ascii=False)}" if "body" in value else ""
    return f"{value['status']}{body}"


def load_balancer(value: Any) -> str:
    """`least-request`, or the sticky kind: `sticky by cookie session (ttl 1h, path /)`."""
    if not isinstance(value, dict):
        return value_text(value)
    if "hashCookie" in value:
        cookie = value["hashCookie"]
        extra = ", ".join(f"{key} {cookie[key]}" for key in ("ttl", "path") if key in cookie)
        return f"sticky by cookie {cookie['name']}" + (f" ({extra})" if extra else "")
    if "hashHeader" in value:
        return f"sticky by header {value['hashHeader']}"
    if "hashQueryParameter" in value:
        return f"sticky by query parameter {value['hashQueryParameter']}"
    if "hashSourceIp" in value:
        return "sticky by source IP"
    return value_text(value)


def access_paths(value: Any) -> list[str]:
    """An allow rule's `paths` as `/api*` (prefix) and `/health` (exact)."""
    return [
        f"{path['prefix']}*" if "prefix" in path else str(path.get("exact")) for path in value or []
    ]


def allow_rule(rule: Any) -> str:
    """`from web, ingress; GET, HEAD; paths /api*`, or `any request`."""
    parts = []
    if rule.get("from"):
        parts.append(f"from {', '.join(rule['from'])}")
    if rule.get("methods"):
        parts.append(", ".join(rule["methods"]))
    if rule.get("paths"):
        parts.append(f"paths {', '.join(access_paths(rule['paths']))}")
    return "; ".join(parts) or "any request"


def tls_certificate(value: Any) -> str:
    """`Secret shop-tls`, or `issued by ClusterIssuer letsencrypt`."""
    if "issuer" in value:
        issuer = value["issuer"]
        return f"issued by {issuer.get('kind', 'Issuer')} {issuer['name']}"
    return f"Secret {value.get('secretName')}"


# What one route does, said once (not as a change): `graph` labels its edges with these.


def redirect_target(value: Any) -> str:
    """`302 → /v2/login`, `301 → https://shop.example.com:8443/v2/login`: the Location a
    client is sent to, the parts the redirect keeps from the request left out."""
    host = str(value.get("authority", ""))
    if "port" in value:
        host = f"{host}:{value['port']}"
    scheme = f"{value['scheme']}://" if "scheme" in value else ("//" if host else "")
    where = f"{scheme}{host}{value.get('uri', '')}" or "the same URL"
    return f"{value.get('code', 301)} → {where}"


def answers(value: Any, body_limit: int = 40) -> str:
    """`answers 503`, `answers 200 with body "ok"`: a `respond` route, a body past BODY_LIMIT
    characters cut short (a page of HTML would bury the picture)."""
    body = value.get("body")
    if body is not None and len(body) > body_limit:
        value = {**value, "body": body[:body_limit] + "…"}
    return f"answers {respond(value)}"


def rewrite_steps(value: Any, matched: list[str]) -> list[str]:
    """`rewrite /api* → /`, `rewrite Host → users.internal`: a `rewrite`, its path step with the
    prefixes it replaces (MATCHED, the route's path conditions)."""
    steps = []
    for part, text in rewrite_parts(value).items():
        if part == "path" and matched:
            steps.append(f"rewrite {' | '.join(matched)} → {text}")
        elif part == "path by regex":
            steps.append(f"rewrite path ~{text}")
        else:
            steps.append(f"rewrite {part} → {text}")
    return steps


def cors_origins(value: Any) -> str:
    """`CORS allows origin https://shop.example.com`: who a `cors` route lets read answers."""
    origins = [string_match(origin) for origin in value.get("allowOrigins", [])]
    return f"CORS allows origin{'' if len(origins) == 1 else 's'} {', '.join(origins)}"


def calls_scope(calls: list[str]) -> str:
    """A scoped workload (`calls`): whose routes its sidecars carry; other calls pass through."""
    if not calls:
        return "calls scoped to no service: every call passes through"
    return f"routes for {', '.join(calls)} only; other calls pass through"
