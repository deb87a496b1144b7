"""Random small meshes and requests, on the gateway-api plane: whenever `check` accepts a mesh for
the plane, the rendered HTTPRoutes (most specific match, path segments) must send every request
where the Istio objects (first match, as sailplan means) send it, under every choice the Gateway
API leaves to implementations. This is the proof that refusing what `precedence_problems` refuses
and carving out the bare paths of `/`-ending prefixes is enough. No proxy runs: both sides are
reference evaluators, so the search can be wide."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import sailplan
from sailplan.render.manifests import render_manifests

from . import gateway_api_reference as gateway_api
from . import istio_reference as istio

pytestmark = pytest.mark.timeout(240)

SEGMENTS = st.sampled_from(["a", "ab", "v1"])
PATHS = st.lists(SEGMENTS, min_size=1, max_size=2).map(lambda parts: "/" + "/".join(parts))
USERS = st.sampled_from(["jason", "bob", "ja"])
VERSIONS = [f"r{index}" for index in range(6)]


@st.composite
def path_matches(draw: st.DrawFn) -> dict[str, str]:
    kind = draw(st.sampled_from(["exact", "prefix", "prefix/", "regex"]))
    path = draw(PATHS)
    if kind == "prefix/":
        return {"prefix": path + "/"}
    if kind == "regex":
        return {"regex": path.replace("/a", "/a[bp]?", 1) + draw(st.sampled_from(["", "/.*"]))}
    return {kind: path}


@st.composite
def matches(draw: st.DrawFn) -> dict[str, Any]:
    match: dict[str, Any] = {}
    if draw(st.booleans()):
        match["path"] = draw(path_matches())
    for name in ("x-user", "x-lane"):
        if draw(st.booleans()):
            kind = draw(st.sampled_from(["exact", "exact", "prefix"]))
            match.setdefault("headers", {})[name] = {kind: draw(USERS)}
    if draw(st.booleans()):
        match["method"] = draw(st.sampled_from(["GET", "POST"]))
    if draw(st.booleans()):
        match["query"] = {"q": draw(st.sampled_from(["1", "2"]))}
    if not match:
        match["path"] = {"prefix": draw(PATHS) + "/"}
    return match


# Redirects replacing any of the URL's parts (at least one), with the codes both planes have.
REDIRECTS = st.fixed_dictionaries(
    {},
    optional={
        "uri": st.sampled_from(["/n", "/a/b"]),
        "scheme": st.sampled_from(["http", "https"]),
        "authority": st.sampled_from(["a.example", "b.example:8443"]),
        "port": st.sampled_from([80, 443, 8088]),
        "code": st.sampled_from([301, 302]),
    },
).filter(lambda redirect: set(redirect) - {"code"})


MIRRORS = st.fixed_dictionaries(
    {"to": st.sampled_from(VERSIONS[4:]), "percent": st.sampled_from([25, 12.5, 0.5, 100])}
)


@st.composite
def routes(draw: st.DrawFn) -> list[dict[str, Any]]:
    # Every rule sends to its own version (or redirects), so the answer names the rule that took
    # the request.
    result: list[dict[str, Any]] = []
    for index in range(draw(st.integers(1, 4))):
        alternatives = draw(st.lists(matches(), min_size=1, max_size=2, unique_by=repr))
        route: dict[str, Any] = {"match": alternatives, "to": VERSIONS[index]}
        if all("path" in m and "regex" not in m["path"] for m in alternatives) and draw(
            st.booleans()
        ):
            route["rewrite"] = {"uri": draw(st.sampled_from(["/n/", "/"]))}
        elif draw(st.integers(0, 3)) == 0:
            del route["to"]
            route["redirect"] = draw(REDIRECTS)
        if "to" in route and draw(st.integers(0, 2)) == 0:
            # r4 and r5 take no route's requests but the catch-all's, which mirrors none.
            route["mirrors"] = draw(st.lists(MIRRORS, min_size=1, max_size=2, unique_by=str))
            route["mirrors"] = list({m["to"]: m for m in route["mirrors"]}.values())
        result.append(route)
    if draw(st.booleans()):
        result.append({"to": VERSIONS[-1]})
    return result


def _spec(service1_routes: list[dict[str, Any]], ingress: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "apiVersion": "sailplan/v1",
        "kind": "Mesh",
        "name": "random",
        "services": {
            "service1": {
                "port": 8088,
                "versions": {v: {"image": f"example/{v}"} for v in VERSIONS},
                "routes": service1_routes,
            },
            "caller": {"port": 9000, "versions": {"v1": {"image": "example/caller"}}},
        },
    }
    if ingress:
        spec["ingress"] = {
            "routes": [
                {"match": {"path": {"prefix": "/a/"}}, "service": "service1"},
                {"service": "service1"},
            ]
        }
    return spec


def _paths_near(service1_routes: list[dict[str, Any]]) -> list[str]:
    """The rules' own paths, with and without a trailing /, one segment longer and one
    character longer: requests at the edges of what the rules match."""
    paths = {"/", "/a", "/a/", "/v1/ab"}
    for route in service1_routes:
        for match in route.get("match", []):
            value = next(iter(match.get("path", {"exact": "/a"}).values()))
            base = value.split("[")[0].split(".")[0].rstrip("/") or "/"
            paths |= {base, base + "/", base + "/a", base + "b"}
    return sorted(paths)


@st.composite
def requests(draw: st.DrawFn, paths: list[str]) -> istio.Request:
    headers = {}
    for name in ("x-user", "x-lane"):
        if draw(st.booleans()):
            headers[name] = draw(st.sampled_from(["jason", "bob", "ja", "jasonx"]))
    path = draw(st.sampled_from(paths)) + draw(st.sampled_from(["", "?q=1", "?q=2"]))
    # Host names the Service's port, as a client names the port it sends to (a redirect keeps it).
    return istio.Request(path, draw(st.sampled_from(["GET", "POST"])), headers, "service1:8088")


def _shares(outcome: istio.Outcome) -> dict[str, float]:
    return {key: round(value, 9) for key, value in outcome.shares().items() if value > 0}


_DEFAULT_PORT = re.compile(r"^(http://[^/]*):80(/|$)|^(https://[^/]*):443(/|$)")


def _without_default_port(match: re.Match[str]) -> str:
    return f"{match[1]}{match[2]}" if match[1] else f"{match[3]}{match[4]}"


def _locations(outcome: istio.Outcome) -> list[str]:
    """The redirects' Locations, without a scheme's default port: Envoy writes a port given as
    the redirect's, the Gateway API leaves a default one out, and both are the same URL
    (RFC 3986, 6.2.3)."""
    return sorted(
        _DEFAULT_PORT.sub(_without_default_port, value)
        for branch in outcome.branches
        for name, value in branch.headers
        if name == "location"
    )


@settings(
    max_examples=60,  # meshes the plane accepts (refused ones do not count)
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_the_rendered_httproutes_route_as_first_match_does(data: st.DataObject) -> None:
    service1_routes = data.draw(routes(), label="routes")
    ingress = data.draw(st.booleans(), label="ingress")
    sent = data.draw(
        st.lists(requests(_paths_near(service1_routes)), min_size=4, max_size=12),
        label="requests",
    )
    text = yaml.safe_dump(_spec(service1_routes, ingress))
    try:
        spec = sailplan.load_mesh_text(text)
        gateway_spec = spec.with_data_plane("gateway-api")
    except sailplan.SpecError:
        assume(False)  # refused (on every plane, or for the Gateway API's reading)
        return
    reference = istio.Cluster(render_manifests(spec, "istio"))
    rendered = gateway_api.Cluster(render_manifests(gateway_spec))
    for request in sent:
        reference_outcome = istio.evaluate_mesh(
            reference, request, caller_namespace=spec.target_namespace
        )
        expected = _shares(reference_outcome)
        at_gateway = istio.Request(request.path, request.method, request.headers, "any.example")
        reference_in = istio.evaluate_gateway(reference, at_gateway)
        expected_in = _shares(reference_in)
        for how in gateway_api.IMPLEMENTATIONS:
            outcome = gateway_api.evaluate_mesh(
                rendered, request, caller_namespace=spec.target_namespace, how=how
            )
            answer = _shares(outcome)
            assert answer == expected, (service1_routes, request, how, answer, expected)
            assert sorted(map(repr, outcome.copies)) == sorted(
                map(repr, reference_outcome.copies)
            ), (
                service1_routes,
                request,
                outcome.copies,
                reference_outcome.copies,
            )
            assert _locations(outcome) == _locations(reference_outcome), (
                service1_routes,
                request,
                how,
                _locations(outcome),
                _locations(reference_outcome),
            )
            redirected = _locations(reference_outcome)
            assert redirected or outcome.forwarded_path == reference_outcome.forwarded_path, (
                service1_routes,
                request,
                how,
                outcome.forwarded_path,
                reference_outcome.forwarded_path,
            )
            if ingress:
                at = gateway_api.evaluate_gateway(rendered, at_gateway, how=how)
                answer_in = _shares(at)
                assert answer_in == expected_in, (request, how, answer_in, expected_in)
                assert _locations(at) == _locations(reference_in), (request, how)
                assert sorted(map(repr, at.copies)) == sorted(map(repr, reference_in.copies)), (
                    request,
                    how,
                )
                assert (
                    _locations(reference_in) or at.forwarded_path == reference_in.forwarded_path
                ), (request, how)


def test_the_search_finds_meshes_the_plane_accepts_and_refuses() -> None:
    # Not void: both kinds occur among simple meshes like the generated ones.
    accepted = _spec([{"match": [{"path": {"prefix": "/a/"}}], "to": "r0"}], ingress=True)
    sailplan.load_mesh_text(yaml.safe_dump(accepted)).with_data_plane("gateway-api")
    refused = _spec([{"match": [{"path": {"prefix": "/a"}}], "to": "r0"}], ingress=False)
    with pytest.raises(sailplan.SpecError):
        sailplan.load_mesh_text(yaml.safe_dump(refused)).with_data_plane("gateway-api")
