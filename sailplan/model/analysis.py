"""Checks in the spirit of `istioctl analyze`: meshes that validate field by field but would not
route as written — rules no request can reach, routes to versions without pods, and ingress rules
the istio gateway cannot express."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from sailplan.model.errors import Problem
from sailplan.model.ingress import IngressRoute
from sailplan.model.intersect import Inexpressible, intersect_lists
from sailplan.model.match import Match, StringMatch
from sailplan.model.route import Route, folded_prefix_rewrite
from sailplan.model.service import Service

if TYPE_CHECKING:  # model/mesh.py imports this module
    from sailplan.model.mesh import Mesh


def analysis_problems(mesh: Mesh) -> list[Problem]:
    problems: list[Problem] = []
    for service_name, service in mesh.services.items():
        at = f"services.{service_name}"
        problems += shadowed_route_problems(at, service.routes)
        problems += empty_version_problems(at, service)
    if mesh.ingress is not None:
        problems += shadowed_route_problems("ingress", mesh.ingress.routes)
        problems += ingress_protocol_problems(mesh)
        if mesh.data_plane == "istio":
            problems += istio_gateway_problems(mesh)
    return problems


def _string_covers(earlier: StringMatch, later: StringMatch) -> bool:
    """Every value `later` accepts, `earlier` accepts too (provably; regexes only when equal)."""
    if earlier == later or earlier.kind == "present":
        return True
    if earlier.kind == "prefix" and later.kind in ("prefix", "exact"):
        return later.value.startswith(earlier.value)
    return False


def _path_covers(earlier: Match, later: Match) -> bool:
    """`_string_covers` for paths, where either side may ignore letter case."""
    assert earlier.path is not None and later.path is not None
    if not earlier.ignore_uri_case:
        return not later.ignore_uri_case and _string_covers(earlier.path, later.path)
    if later.path.kind == "regex":
        return False
    lowered = [m.model_copy(update={m.kind: m.value.lower()}) for m in (earlier.path, later.path)]
    return _string_covers(*lowered)


def _map_covers(
    earlier: Mapping[str, StringMatch] | None, later: Mapping[str, StringMatch] | None
) -> bool:
    later = later or {}
    return all(
        key in later and _string_covers(condition, later[key])
        for key, condition in (earlier or {}).items()
    )


def match_covers(earlier: Match, later: Match) -> bool:
    """Every request `later` matches, `earlier` matches too."""
    for field in ("path", "method"):
        condition = getattr(earlier, field)
        if condition is None:
            continue
        other = getattr(later, field)
        if other is None:
            return False
        if not (
            _path_covers(earlier, later) if field == "path" else _string_covers(condition, other)
        ):
            return False
    # A negative condition of `earlier` holds for every request of `later` provably only when
    # `later` has the same one.
    later_without = later.without_headers or {}
    if any(later_without.get(k) != v for k, v in (earlier.without_headers or {}).items()):
        return False
    return _map_covers(earlier.headers, later.headers) and _map_covers(earlier.query, later.query)


def shadowed_route_problems(
    at: str, routes: Sequence[Route] | Sequence[IngressRoute]
) -> list[Problem]:
    """A rule whose every alternative an earlier rule already takes can never match (istioctl
    analyze IST0130 "unreachable rule"; an alternative repeated within a rule, IST0131). Rules that
    match everything are reported by the catch-all check; they are skipped here."""
    problems = []
    rules: list[Route | IngressRoute] = list(routes)
    for index, route in enumerate(rules):
        if route.match is None:
            continue
        for earlier_index, earlier in enumerate(rules[:index]):
            if earlier.match is None:
                break  # the catch-all check reports this one
            if all(any(match_covers(e, m) for e in earlier.match) for m in route.match):
                problems.append(
                    Problem(
                        f"{at}.routes[{index}].match",
                        f"routes[{earlier_index}] before this route already takes every request "
                        "it matches, so it can never match; reorder the routes or narrow the "
                        "earlier one",
                    )
                )
                break
        else:
            for position, match in enumerate(route.match):
                if match in route.match[:position]:
                    problems.append(
                        Problem(
                            f"{at}.routes[{index}].match[{position}]",
                            f"this alternative repeats match[{route.match.index(match)}]; "
                            "remove one",
                        )
                    )
                    break
    return problems


def empty_version_problems(at: str, service: Service) -> list[Problem]:
    """A route sending requests to a version with `replicas: 0` fails them all with 503 "no
    healthy upstream" (istioctl analyze IST0173)."""
    problems = []
    for index, route in enumerate(service.routes):
        for version, weight in route.weights.items():
            if (
                weight > 0
                and version in service.versions
                and service.versions[version].replicas == 0
            ):
                problems.append(
                    Problem(
                        f"{at}.routes[{index}]",
                        f"sends {weight}% of its requests to {version!r}, which has replicas: 0, "
                        "so they would fail with 503; give the version replicas or route "
                        "elsewhere",
                    )
                )
    return problems


def istio_gateway_problems(mesh: Mesh) -> list[Problem]:
    """An ingress route narrows its service's rules; Istio's gateway needs each pair folded into
    one rule with one condition per field (model/intersect.py)."""
    assert mesh.ingress is not None
    problems = []
    for ingress_index, ingress_route in enumerate(mesh.ingress.routes):
        service = mesh.services.get(ingress_route.service)
        if service is None:
            continue
        for index, route in enumerate(service.routes):
            folded = intersect_lists(ingress_route.match, route.match)
            if isinstance(folded, Inexpressible):
                problems.append(
                    Problem(
                        f"services.{ingress_route.service}.routes[{index}].match",
                        f"the istio gateway cannot apply this rule to requests of "
                        f"ingress.routes[{ingress_index}]: an Istio rule matches the "
                        f"{folded.field} with one condition, and {folded.reason}",
                    )
                )
            elif (
                folded
                and route.rewrite is not None
                and route.rewrite.uri is not None
                and folded_prefix_rewrite(route, folded) is None
            ):
                problems.append(
                    Problem(
                        f"services.{ingress_route.service}.routes[{index}].rewrite.uri",
                        f"the istio gateway cannot apply this rewrite to requests of "
                        f"ingress.routes[{ingress_index}]: that route narrows the path, Envoy "
                        "would replace the narrower prefix, and a rule with several path "
                        "alternatives cannot say which prefix to replace; give this route one "
                        "path alternative, or use uriRegexRewrite",
                    )
                )
    return problems


def ingress_protocol_problems(mesh: Mesh) -> list[Problem]:
    """The ingress gateway routes HTTP requests; a tcp service has none to route."""
    assert mesh.ingress is not None
    problems = []
    for index, ingress_route in enumerate(mesh.ingress.routes):
        service = mesh.services.get(ingress_route.service)
        if service is not None and service.protocol == "tcp":
            problems.append(
                Problem(
                    f"ingress.routes[{index}].service",
                    f"{ingress_route.service!r} speaks tcp, and the ingress routes HTTP requests; "
                    "point the ingress at an http or grpc service",
                )
            )
    return problems
