"""What the `gateway-api` data plane can say, and the rules it renders, in the order sailplan means.

The plane writes Kubernetes Gateway API v1 standard-channel objects: an HTTPRoute per service bound
to the Service itself (GAMMA, for mesh traffic), and a Gateway with one HTTPRoute for the ingress.
Two differences from sailplan's own reading of a mesh shape this module:

- **Which rule applies.** sailplan takes the first route whose match holds. An HTTPRoute takes the
  most specific match of all its rules: an exact path, then the longest path prefix, then a method
  match, then the most header matches, then the most query matches, and only on a full tie the
  first rule in list order (Gateway API v1 `HTTPRouteRule.matches`). Where a regular-expression
  path ranks is left to each implementation. `rules()` lists the rules sailplan renders and
  `precedence_problems()` refuses a mesh in which some request could match an earlier rule and a
  later, differently routed one that the Gateway API ranks higher, or ranks in an
  implementation-specific way. Then, for every request, the most specific matching rule IS the
  first matching one (ties go to rule order, and all rules of a parent are in one HTTPRoute).
- **What a condition means.** `PathPrefix` matches whole path segments and ignores a trailing
  `/` (`/api/` matches `/api`, `/api/x`, not `/apix`), where sailplan's prefix matches characters;
  header and query matches are exact or regular expressions only. So a prefix ending in `/`
  becomes a `PathPrefix`, and the one path it takes that sailplan's prefix does not (`/api`) gets
  rules of its own: the mesh's rules narrowed to that exact path, listed first, which every
  implementation ranks above any prefix (`carve_outs()`). Any other prefix (but `/`) and every
  regex become a `RegularExpression` anchored at both ends (`^/api.*`, `^(?:<regex>)$`), which
  means the same whether an implementation matches a regex against the whole value or searches
  it. Regex dialects differ between implementations (RE2 for Envoy-based ones, Rust's regex for
  Linkerd); sailplan's prefixes only use `^ . *` and backslash escapes, which all read alike.

A request no rule matches is answered 404 by the Gateway API, where sailplan sends it to every
version: each service's HTTPRoute ends with a rule without matches (every request) to the
Service, as on istio.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sailplan.model.errors import Problem
from sailplan.model.intersect import Inexpressible, intersect, intersect_lists
from sailplan.model.match import Match, StringMatch
from sailplan.model.route import Redirect, Route

if TYPE_CHECKING:  # model/mesh.py imports this module
    from sailplan.model.mesh import Mesh

PLANE = "gateway-api"
# Limits of the standard-channel HTTPRoute schema (v1.4.1).
MAX_RULES = 16
MAX_MATCHES = 64
MAX_CONDITIONS = 16  # headers, and query parameters, per match
MAX_BACKENDS = 16
MAX_PATH = 1024
# What an Exact or PathPrefix value may hold (the HTTPRoute CRD's CEL rules).
_LITERAL_PATH_CHARACTERS = frozenset(
    "-ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._~!$&'()*+,;=:@%"
)
_LITERAL_PATH_FORBIDDEN = ("//", "/./", "/../", "%2f", "%2F")
# Characters a regular expression reads as syntax; escaped with a backslash, which every dialect
# the Gateway API's implementations use (RE2, Rust regex, PCRE, POSIX ERE) reads as the character.
_REGEX_SYNTAX = frozenset(".^$*+?()[]{}|\\")
# Ports the mesh implementation's proxies bind in every pod: Istio's Envoy and agent, and
# Linkerd's proxy (outbound 4140, inbound 4143, admin 4191, tap 4190).
SIDECAR_PORTS = (4140, 4143, 4190, 4191, 15000, 15001, 15004, 15006, 15008, 15009, 15020, 15021)
_OTHER_PLANES = "use the istio or builtin data plane"

MatchType = Literal["Exact", "PathPrefix", "RegularExpression"]
# URLRewrite.hostname: a PreciseHostname.
_PRECISE_HOSTNAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def gateway_class_problem(name: object) -> str | None:
    """Why `name` cannot name a GatewayClass (a Kubernetes object: a DNS subdomain), or None."""
    if isinstance(name, str) and _DNS_SUBDOMAIN.fullmatch(name) and len(name) <= 253:
        return None
    return (
        f"{name!r} is not a GatewayClass name: use lowercase letters, digits, '-' and '.', "
        "such as istio or eg"
    )


def regex_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in _REGEX_SYNTAX else char for char in text)


def string_match(match: StringMatch) -> tuple[MatchType, str]:
    """The HTTPRoute (type, value) of a header or query condition, or of a path."""
    if match.kind == "exact":
        return "Exact", match.value
    if match.kind == "prefix":
        return "RegularExpression", f"^{regex_escape(match.value)}.*"
    return "RegularExpression", f"^(?:{match.value})$"


def path_match(match: Match) -> tuple[MatchType, str]:
    """The HTTPRoute path match of a sailplan match (no path: every path, PathPrefix `/`)."""
    if match.path is None:
        return "PathPrefix", "/"
    if match.path.kind == "prefix" and match.path.value.endswith("/"):
        # Segment-aligned: the PathPrefix takes what the prefix takes, and the path without the
        # trailing `/`, which carve_outs() routes as sailplan would.
        return "PathPrefix", match.path.value
    return string_match(match.path)


def carved_path(match: Match) -> str | None:
    """The exact path a PathPrefix takes beyond sailplan's prefix (`/api` for `/api/`)."""
    kind, value = path_match(match)
    return value[:-1] if kind == "PathPrefix" and value != "/" else None


@dataclass(frozen=True)
class Rule:
    """One rule of an HTTPRoute, as sailplan renders it.

    `matches` is None for "every request" (a rule without matches); `route` is None for the rule
    sailplan adds last, sending what no route matched to every version of `service`."""

    at: str  # where in the mesh file the rule comes from: the route, or the ingress route
    name: str
    service: str
    route: Route | None
    matches: tuple[Match, ...] | None
    origin: str = ""  # the service's route (or the service, for the last rule) it repeats

    @property
    def action(self) -> tuple[str, str]:
        """Rules with equal actions do the same with a request, so their order does not matter."""
        if self.route is None:
            return self.service, "every version"
        # A prefix rewrite's result depends on the prefix that matched: the match is part of it.
        rewrites_prefix = self.route.rewrite is not None and self.route.rewrite.uri is not None
        exclude = {"name"} if rewrites_prefix else {"name", "match"}
        return self.service, self.route.model_dump_json(exclude=exclude)

    def alternatives(self) -> tuple[Match, ...]:
        return self.matches if self.matches is not None else (Match(),)


def _route_name(route: Route, index: int) -> str:
    return route.name or f"route-{index}"


def service_rules(
    mesh: Mesh, service_name: str, within: list[Match] | None = None, prefix: str = ""
) -> list[Rule] | Inexpressible:
    """The rules of a service's HTTPRoute, in sailplan's order; `within` narrows every rule to
    the requests an ingress route sends to the service (Inexpressible when one cannot be)."""
    service = mesh.services[service_name]
    rules = []
    for index, route in enumerate(service.routes):
        matches = intersect_lists(within, route.match)
        if isinstance(matches, Inexpressible):
            return matches
        if matches == []:
            continue  # no request the ingress route sends here can match this route
        at = f"services.{service_name}.routes[{index}]"
        rules.append(
            Rule(
                at,
                prefix + _route_name(route, index),
                service_name,
                route,
                None if matches is None else tuple(matches),
                at,
            )
        )
    if not service.routes or not service.routes[-1].is_catch_all:
        rules.append(
            Rule(
                f"services.{service_name}",
                prefix + "all-versions",
                service_name,
                None,
                None if within is None else tuple(within),
                f"services.{service_name}",
            )
        )
    return rules


def carve_outs(rules: list[Rule]) -> list[Rule]:
    """`rules`, preceded for each path a PathPrefix takes beyond sailplan's prefix by every rule
    narrowed to exactly that path: an Exact match outranks every PathPrefix in the Gateway API,
    so these decide the requests for that path, as sailplan's routes in order would."""
    paths = sorted({path for rule in rules for m in rule.matches or () if (path := carved_path(m))})
    carved: list[Rule] = []
    for number, path in enumerate(paths, start=1):
        exactly = [Match(path=StringMatch(exact=path))]
        for rule in rules:
            narrowed = intersect_lists(exactly, list(rule.matches) if rule.matches else None)
            # An exact path folds with any path condition, and adds none to the others.
            assert not isinstance(narrowed, Inexpressible) and narrowed is not None
            if narrowed:
                carved.append(
                    Rule(
                        rule.at,
                        f"{rule.name}-exact-{number}",
                        rule.service,
                        rule.route,
                        tuple(narrowed),
                        rule.origin,
                    )
                )
    return carved + rules


def mesh_rules(mesh: Mesh, service_name: str) -> list[Rule]:
    """The rules of the service's own HTTPRoute, bound to its Service."""
    rules = service_rules(mesh, service_name)
    assert not isinstance(rules, Inexpressible)  # nothing to narrow to
    return carve_outs(rules)


def ingress_rules(mesh: Mesh) -> list[Rule] | tuple[int, Inexpressible]:
    """The ingress HTTPRoute's rules: each ingress route's service's rules narrowed to it, in
    order (an ingress route's index and why, when a narrowed rule cannot be written)."""
    assert mesh.ingress is not None
    rules: list[Rule] = []
    for index, ingress_route in enumerate(mesh.ingress.routes):
        prefix = f"{ingress_route.name or f'ingress-{index}'}-"
        narrowed = service_rules(mesh, ingress_route.service, ingress_route.match, prefix)
        if isinstance(narrowed, Inexpressible):
            return index, narrowed
        rules += [
            Rule(f"ingress.routes[{index}]", r.name, r.service, r.route, r.matches, r.origin)
            for r in narrowed
        ]
    return carve_outs(rules)


def gateway_api_problems(mesh: Mesh) -> list[Problem]:
    """Everything in the mesh the gateway-api plane cannot render as it means; each a sentence
    naming what to change."""
    problems = _mesh_wide_problems(mesh)
    renderable = True
    for service_name, service in sorted(mesh.services.items()):
        at = f"services.{service_name}"
        if service.protocol != "http":
            problems.append(
                Problem(
                    f"{at}.protocol",
                    f"protocol {service.protocol}: the gateway-api data plane renders HTTPRoutes, "
                    f"for http services only; {_OTHER_PLANES}",
                )
            )
            renderable = False
            continue
        found = _policy_problems(at, service.policy)
        if service.allow is not None:
            found.append(
                Problem(
                    f"{at}.allow",
                    "the Gateway API says nothing about which callers a service admits "
                    "(Linkerd's AuthorizationPolicy and Istio's are their own APIs); drop allow, "
                    f"or {_OTHER_PLANES}",
                )
            )
        if service.calls is not None:
            found.append(
                Problem(
                    f"{at}.calls",
                    "the Gateway API cannot scope a workload's proxy to the services it calls "
                    "(Istio's Sidecar is its own API); drop calls, or "
                    f"{_OTHER_PLANES}",
                )
            )
        for index, route in enumerate(service.routes):
            found += _route_problems(f"{at}.routes[{index}]", route)
        if not found:  # the order of rules matters only once each can be rendered
            found = _rule_list_problems(f"{at}.routes", mesh_rules(mesh, service_name))
        renderable &= not found
        problems += found
    if mesh.ingress is not None and renderable:
        problems += _ingress_problems(mesh)
    return problems


def _mesh_wide_problems(mesh: Mesh) -> list[Problem]:
    problems = []
    if mesh.mtls != "permissive":
        problems.append(
            Problem(
                "mtls",
                f"mtls {mesh.mtls}: the Gateway API does not say how services authenticate each "
                "other (the mesh implementation does, e.g. Linkerd encrypts between meshed pods "
                f"and accepts plaintext from others); use mtls: permissive, or {_OTHER_PLANES}",
            )
        )
    if mesh.authorization.default != "allow":
        problems.append(
            Problem(
                "authorization.default",
                "the Gateway API says nothing about which callers a service admits (Linkerd's "
                "AuthorizationPolicy and Istio's are their own APIs); use authorization: "
                f"{{default: allow}}, or {_OTHER_PLANES}",
            )
        )
    if mesh.trust_domain != "cluster.local":
        problems.append(
            Problem(
                "trustDomain",
                "the Gateway API does not name workload identities: the mesh implementation "
                f"chooses its trust domain; drop trustDomain, or {_OTHER_PLANES}",
            )
        )
    if mesh.access_log:
        problems.append(
            Problem(
                "accessLog",
                "the Gateway API has no access-log setting: turn access logs on in the mesh "
                f"implementation and set accessLog: false, or {_OTHER_PLANES}",
            )
        )
    if mesh.interception != "iptables":
        problems.append(
            Problem(
                "interception",
                f"{mesh.interception}: on the gateway-api data plane the mesh implementation "
                "injects its own proxy and decides how traffic reaches it (Linkerd: its init "
                "container or CNI plugin); use iptables, or the builtin data plane",
            )
        )
    if mesh.ingress is not None and mesh.ingress.node_port is not None:
        problems.append(
            Problem(
                "ingress.nodePort",
                "the Gateway API has no node port: the Gateway's implementation creates the "
                "gateway's Service itself; drop nodePort, or use the istio or builtin data plane",
            )
        )
    tls = mesh.ingress.tls if mesh.ingress is not None else None
    if tls is not None and tls.min_version != DEFAULT_TLS_VERSION:
        problems.append(
            Problem(
                "ingress.tls.minVersion",
                f"{tls.min_version}: the Gateway API's standard channel has no setting for the "
                "oldest TLS version a client may use (a listener's tls.options are each "
                f"implementation's own, and {DEFAULT_TLS_VERSION} is the usual default); drop "
                "minVersion, or use the istio or builtin data plane",
            )
        )
    return problems


def _policy_problems(at: str, policy: object) -> list[Problem]:
    problems = []
    for field, key, what in (
        ("load_balancer", "loadBalancer", "load-balancing"),
        ("connection_pool", "connectionPool", "connection-pool"),
        ("outlier_detection", "outlierDetection", "outlier-detection"),
    ):
        if policy is not None and getattr(policy, field) is not None:
            problems.append(
                Problem(
                    f"{at}.policy.{key}",
                    f"the Gateway API's standard channel has no {what} setting; {_OTHER_PLANES}",
                )
            )
    return problems


# The oldest TLS version Envoy-based Gateway implementations accept unless told otherwise.
DEFAULT_TLS_VERSION = "TLSv1.2"
# HTTPRequestRedirectFilter.statusCode of the standard channel.
REDIRECT_CODES = (301, 302)


def authority_parts(authority: str) -> tuple[str, int | None]:
    """The host and the port (None when not given) of a sailplan authority."""
    host, colon, port = authority.rpartition(":")
    if colon and port.isdigit():
        return host, int(port)
    return authority, None


def _redirect_problems(at: str, redirect: Redirect) -> list[Problem]:
    problems = []
    if redirect.code not in REDIRECT_CODES:
        problems.append(
            Problem(
                f"{at}.code",
                f"{redirect.code}: the Gateway API's standard channel redirects with 301 or 302 "
                f"only; use one of them, or {_OTHER_PLANES}",
            )
        )
    if redirect.authority is not None:
        host, _ = authority_parts(redirect.authority)
        if not _PRECISE_HOSTNAME.fullmatch(host):
            problems.append(
                Problem(
                    f"{at}.authority",
                    f"{redirect.authority!r}: the Gateway API redirects to a lowercase host name "
                    f"(and a port); write the host in lowercase, or {_OTHER_PLANES}",
                )
            )
    if redirect.uri is not None and len(redirect.uri) > MAX_PATH:
        problems.append(
            Problem(
                f"{at}.uri",
                f"has {len(redirect.uri)} characters; a Gateway API redirect path has at most "
                f"{MAX_PATH}",
            )
        )
    return problems


def _route_problems(at: str, route: Route) -> list[Problem]:
    problems = []
    if route.respond is not None:
        problems.append(
            Problem(
                f"{at}.respond",
                "the Gateway API's standard channel has no direct response (a fixed status and "
                f"body); {_OTHER_PLANES}",
            )
        )
    if route.redirect is not None:
        problems += _redirect_problems(f"{at}.redirect", route.redirect)
    if route.fault is not None:
        problems.append(
            Problem(
                f"{at}.fault",
                f"the Gateway API has no fault injection; {_OTHER_PLANES}",
            )
        )
    if route.cors is not None:
        problems.append(
            Problem(
                f"{at}.cors",
                "HTTPRoute's CORS filter is in the Gateway API's experimental channel only, which "
                f"sailplan does not render; {_OTHER_PLANES}",
            )
        )
    if route.destination_headers is not None:
        problems.append(
            Problem(
                f"{at}.destinationHeaders",
                "an HTTPRoute's filters per backend are implementation-specific in the Gateway "
                "API (an implementation may ignore them), so sailplan does not render them; put "
                f"the changes in the route's headers, or {_OTHER_PLANES}",
            )
        )
    if route.retries is not None:
        problems.append(
            Problem(
                f"{at}.retries",
                "HTTPRoute retries are in the Gateway API's experimental channel only, which "
                f"sailplan does not render; {_OTHER_PLANES}",
            )
        )
    if route.rewrite is not None and route.rewrite.uri_regex_rewrite is not None:
        problems.append(
            Problem(
                f"{at}.rewrite.uriRegexRewrite",
                "the Gateway API rewrites a path prefix or the full path only, not by a regular "
                f"expression; use uri, or {_OTHER_PLANES}",
            )
        )
    authority = route.rewrite.authority if route.rewrite is not None else None
    if authority is not None and not _PRECISE_HOSTNAME.fullmatch(authority):
        problems.append(
            Problem(
                f"{at}.rewrite.authority",
                f"{authority!r}: the Gateway API rewrites the host to a lowercase host name "
                f"without a port; drop the port, or {_OTHER_PLANES}",
            )
        )
    if len(route.weights) > MAX_BACKENDS:
        problems.append(
            Problem(
                f"{at}.split",
                f"{len(route.weights)} versions: an HTTPRoute rule has at most {MAX_BACKENDS} "
                "backends",
            )
        )
    for index, match in enumerate(route.match or []):
        problems += match_problems(f"{at}.match[{index}]", match)
    if route.match is not None and len(route.match) > MAX_MATCHES:
        problems.append(
            Problem(
                f"{at}.match",
                f"{len(route.match)} alternatives: an HTTPRoute rule has at most {MAX_MATCHES}",
            )
        )
    return problems


def match_problems(at: str, match: Match) -> list[Problem]:
    """What in one match an HTTPRoute match cannot say."""
    problems = []
    if match.without_headers:
        problems.append(
            Problem(
                f"{at}.withoutHeaders",
                f"an HTTPRoute match has no negative header conditions; {_OTHER_PLANES}",
            )
        )
    if match.ignore_uri_case:
        problems.append(
            Problem(
                f"{at}.ignoreUriCase",
                f"an HTTPRoute path match cannot ignore letter case; {_OTHER_PLANES}",
            )
        )
    for name, header in sorted((match.headers or {}).items()):
        if header.kind == "present":
            problems.append(
                Problem(
                    f"{at}.headers.{name}",
                    "an HTTPRoute header match compares a value; its presence alone would need "
                    f"a regular expression, which each implementation reads its own way; "
                    f"{_OTHER_PLANES}",
                )
            )
    if match.method is not None and match.method.kind != "exact":
        problems.append(
            Problem(
                f"{at}.method",
                f"the Gateway API matches a method exactly only, not by {match.method.kind}; "
                f"list the methods as alternatives, or {_OTHER_PLANES}",
            )
        )
    kind, value = path_match(match)
    if kind != "RegularExpression" and (
        not set(value) <= _LITERAL_PATH_CHARACTERS
        or any(text in value for text in _LITERAL_PATH_FORBIDDEN)
        or value.endswith(("/.", "/.."))
    ):
        problems.append(
            Problem(
                f"{at}.path",
                f"{value!r} cannot be a Gateway API {kind} path: use letters, digits, "
                "-/._~!$&'()*+,;=:@ and %XX escapes, without //, /./, /../ or %2F",
            )
        )
    if len(value) > MAX_PATH:
        problems.append(
            Problem(
                f"{at}.path",
                f"becomes a {len(value)}-character regular expression; an HTTPRoute path has at "
                f"most {MAX_PATH} characters",
            )
        )
    for field in ("headers", "query"):
        conditions = getattr(match, field) or {}
        if len(conditions) > MAX_CONDITIONS:
            problems.append(
                Problem(
                    f"{at}.{field}",
                    f"{len(conditions)} {field} conditions: an HTTPRoute match has at most "
                    f"{MAX_CONDITIONS}",
                )
            )
    return problems


def _ingress_problems(mesh: Mesh) -> list[Problem]:
    assert mesh.ingress is not None
    rules = ingress_rules(mesh)
    if isinstance(rules, tuple):
        index, why = rules
        return [
            Problem(
                f"ingress.routes[{index}].match",
                f"an HTTPRoute rule of the gateway would need to match both this route and one "
                f"of {mesh.ingress.routes[index].service}'s routes, and no single match can "
                f"({why.field}: {why.reason})",
            )
        ]
    problems = []
    for rule in rules:
        for index, match in enumerate(rule.matches or ()):
            problems += [
                Problem(rule.at, f"{problem.message} (folded with {rule.name})")
                for problem in match_problems(f"match[{index}]", match)
            ]
    return problems or _rule_list_problems("ingress.routes", rules)


def path_rewrite(rule: Rule) -> tuple[Literal["ReplaceFullPath", "ReplacePrefixMatch"], str] | None:
    """The URLRewrite path of a rule whose route rewrites `uri`, when the Gateway API can say it
    as sailplan means it (None when the route does not rewrite the path). Raises ValueError with
    the reason when it cannot."""
    route = rule.route
    if route is None or route.rewrite is None or route.rewrite.uri is None:
        return None
    uri = route.rewrite.uri
    own = [m.path for m in route.match or []]
    paths = [path_match(m) for m in rule.alternatives()]
    if own and all(p is not None and p.kind == "exact" for p in own):
        # Every alternative names a whole path, and the rewrite replaces it whole.
        return "ReplaceFullPath", uri
    prefix = own[0] if len(own) == 1 and own[0] is not None and own[0].kind == "prefix" else None
    if prefix is not None and all(kind == "Exact" for kind, _ in paths):
        # The route's prefix narrowed to exact paths (a carve-out, an ingress route): the
        # rewritten path is fixed, when it is one.
        results = {uri + value[len(prefix.value) :] for _, value in paths}
        if len(results) == 1:
            return "ReplaceFullPath", results.pop()
    if len(own) == 1 and own[0] is not None and len(paths) == 1:
        kind, value = paths[0]
        if kind != "PathPrefix" or value != own[0].value:
            narrowed = "a regular expression" if kind == "RegularExpression" else repr(value)
            raise ValueError(
                f"the Gateway API rewrites the prefix a PathPrefix matched, and this rule's path "
                f"is {narrowed}, not the route's own prefix {own[0].value!r}: end the prefix with "
                "/ (and let no ingress route narrow it)"
            )
        if not uri.endswith("/"):
            raise ValueError(
                f"the Gateway API puts one / between the new prefix and the rest of the path, so "
                f"{uri!r} must end with / (as the prefix it replaces does) to mean the same"
            )
        return "ReplacePrefixMatch", uri
    raise ValueError(
        "the Gateway API rewrites a prefix only in a rule with exactly one match, a PathPrefix, "
        "and the full path only for exact paths: give the route one prefix, or exact paths"
    )


def _rewrite_problems(rules: list[Rule]) -> list[Problem]:
    problems: list[Problem] = []
    for rule in rules:
        try:
            path_rewrite(rule)
        except ValueError as why:
            problem = Problem(f"{rule.origin}.rewrite.uri", f"{why}; or {_OTHER_PLANES}")
            if problem not in problems:
                problems.append(problem)
    return problems


def _rule_list_problems(at: str, rules: list[Rule]) -> list[Problem]:
    problems = _rewrite_problems(rules)
    if problems:
        return problems
    if len(rules) > MAX_RULES:
        return [
            Problem(
                at,
                f"renders {len(rules)} HTTPRoute rules (with the rule for requests no route "
                f"matches); an HTTPRoute has at most {MAX_RULES}, and splitting it into several "
                "would order the rules by creation time",
            )
        ]
    total = sum(len(rule.alternatives()) for rule in rules)
    if total > 128:
        return [Problem(at, f"renders {total} matches; an HTTPRoute has at most 128 in all")]
    return precedence_problems(rules)


def compare(a: Match, b: Match) -> int | None:
    """Which of two HTTPRoute matches the Gateway API prefers: > 0 `a`, < 0 `b`, 0 neither
    (rule order decides), None when it is up to the implementation (a regex path against
    another path)."""
    (kind_a, value_a), (kind_b, value_b) = path_match(a), path_match(b)
    if (kind_a, value_a) != (kind_b, value_b):
        if "RegularExpression" in (kind_a, kind_b):
            return None
        if kind_a != kind_b:
            return 1 if kind_a == "Exact" else -1
        if kind_a == "PathPrefix" and len(value_a) != len(value_b):
            return len(value_a) - len(value_b)
    if (a.method is None) != (b.method is None):
        return 1 if a.method is not None else -1
    for field in ("headers", "query"):
        count_a, count_b = len(getattr(a, field) or {}), len(getattr(b, field) or {})
        if count_a != count_b:
            return count_a - count_b
    return 0


def _why_later_wins(first: Match, later: Match) -> str:
    (kind_first, value_first), (kind_later, value_later) = path_match(first), path_match(later)
    if kind_later == "Exact" and kind_first != "Exact":
        return "its path is exact"
    if kind_later == kind_first == "PathPrefix" and len(value_later) > len(value_first):
        return "its path prefix is longer"
    if (later.method is None) != (first.method is None):
        return "it matches the method"
    if len(later.headers or {}) != len(first.headers or {}):
        return "it has more header conditions"
    return "it has more query conditions"


def _describe(match: Match) -> str:
    kind, value = path_match(match)
    return f"{kind} {value!r}"


def precedence_problems(rules: list[Rule]) -> list[Problem]:
    """Pairs of rules whose order the Gateway API's precedence would not keep, for requests
    both match and that they route differently."""
    problems: list[Problem] = []
    for i, first in enumerate(rules):
        for later in rules[i + 1 :]:
            if later.action == first.action:
                continue
            problem = _pair_problem(first, later)
            if problem is not None and problem not in problems:
                problems.append(problem)
    return problems


def _pair_problem(first: Rule, later: Rule) -> Problem | None:
    for a in first.alternatives():
        for b in later.alternatives():
            if intersect(a, b) is None:
                continue  # no request matches both
            order = compare(a, b)
            if order is not None and order >= 0:
                continue
            # The later rule sailplan adds for unmatched requests is not the user's to change.
            at = first.at if later.route is None else later.at
            later_name = "the rule for unmatched requests" if later.route is None else later.name
            if order is None:
                return Problem(
                    at,
                    f"{first.name} ({_describe(a)}) and {later_name} ({_describe(b)}) can match "
                    "the same request, and how a regex path (a regex, or a prefix not ending in "
                    "/) ranks against another path is up to each Gateway API implementation: make "
                    "the matches disjoint, give them the same path, end the prefix with /, or "
                    f"{_OTHER_PLANES}",
                )
            return Problem(
                at,
                f"{later_name} would take requests that {first.name} also matches, since "
                f"{_why_later_wins(a, b)} and the Gateway API prefers the more specific match "
                f"over rule order: make the two matches disjoint, or {_OTHER_PLANES}",
            )
    return None
