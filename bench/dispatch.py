"""An experiment, not the compiler: the outbound frontend rewritten for O(1) dispatch.

The compiled outbound frontend is flat: every request walks every service's host, route, fault
and use_backend rules (about 11 rules a service in the generated mesh), so its cost grows with the
mesh. Here host -> service is one map lookup, and each service's rules move to an in-process
frontend (abns@) reached through `use_backend <service>__dispatch`: constant cost per request,
paid for with one extra in-process hop. Used to measure what the change would buy.
"""

from __future__ import annotations

import re


def rewrite_outbound(config: str, config_dir: str) -> tuple[str, dict[str, str]]:
    """(new haproxy.cfg, extra files) for a compiled sidecar config."""
    start = config.index("frontend outbound\n")
    end = config.index("\n\n", start)
    head, body, tail = config[:start], config[start:end].splitlines(), config[end:]
    hosts: list[str] = []
    for rule in (line for line in body if "set-var(txn.svc) str(" in line):
        found = re.search(r"str\(([^)]+)\) if", rule)
        assert found is not None
        aliases = rule.split("-m str ", 1)[1].rstrip(" }").split()
        hosts += [f"{alias} {found.group(1)}" for alias in aliases]
    rules: dict[str, list[str]] = {}
    current: str | None = None
    for line in body:
        section = re.match(r"\s+# services\.([a-z0-9-]+)$", line)
        if section:
            current = section.group(1)
            rules.setdefault(current, [])
        elif line.strip().startswith("use_backend"):
            target = re.search(r"use_backend ([a-z0-9-]+)__", line)
            assert target is not None
            rules.setdefault(target.group(1), []).append(line)
        elif current and "txn.route" in line and not line.strip().startswith("#"):
            rules[current].append(line)
    out = [
        "frontend outbound",
        body[1],
        *[line for line in body if "set-uri" in line or "set-var(txn.host)" in line],
        f"    http-request set-var(txn.svc) var(txn.host),map_str({config_dir}/hosts.map)",
        "    use_backend %[var(txn.svc),concat(,,__dispatch)] if { var(txn.svc) -m found }",
        "    default_backend passthrough",
    ]
    for service, service_rules in sorted(rules.items()):
        out += ["", f"backend {service}__dispatch", f"    server local abns@route-{service}"]
        out += [
            "",
            f"frontend route-{service}",
            f"    bind abns@route-{service}",
            f"    http-request set-var(txn.svc) str({service})",
            "    http-request set-var(txn.draw) rand(100)",
            *service_rules,
        ]
    return head + "\n".join(out) + tail, {"hosts.map": "\n".join(hosts) + "\n"}
