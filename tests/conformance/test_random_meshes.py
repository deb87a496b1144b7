"""Random small meshes and requests: the Istio reference evaluator of the rendered objects decides
which version must answer; the builtin plane, compiled from the same spec and run on real haproxy,
must answer the same. Bounded: a few dozen meshes, a few requests each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import sailplan
from sailplan.render.manifests import render_manifests

from .builtin_runner import builtin_plane
from .istio_reference import Cluster, Request, evaluate_mesh
from .scenarios import label, mesh

pytestmark = [pytest.mark.haproxy, pytest.mark.timeout(240)]

# Few letters, so that generated matches and requests meet often.
SEGMENTS = st.sampled_from(["a", "ab", "v1"])
PATHS = st.lists(SEGMENTS, min_size=1, max_size=2).map(lambda parts: "/" + "/".join(parts))
USERS = st.sampled_from(["jason", "bob", "ja", "jason, bob"])


@st.composite
def path_matches(draw: st.DrawFn) -> dict[str, str]:
    kind = draw(st.sampled_from(["exact", "prefix", "regex"]))
    path = draw(PATHS)
    if kind == "regex":
        return {"regex": path.replace("/a", "/a[bp]?", 1) + draw(st.sampled_from(["", "/.*"]))}
    return {kind: path}


@st.composite
def matches(draw: st.DrawFn) -> dict[str, Any]:
    match: dict[str, Any] = {}
    if draw(st.booleans()):
        match["path"] = draw(path_matches())
    if draw(st.booleans()):
        kind = draw(st.sampled_from(["exact", "prefix"]))
        match["headers"] = {"x-user": {kind: draw(USERS.filter(lambda u: "," not in u))}}
    if draw(st.booleans()):
        match["method"] = draw(st.sampled_from(["GET", "POST"]))
    if not match:
        match["path"] = {"prefix": draw(PATHS)}
    return match


def _marked(index: int) -> dict[str, Any]:
    # Every rule answers its own status, so the reply names the rule that took the request.
    return {"to": "v1", "fault": {"abort": {"status": 420 + index, "percent": 100}}}


@st.composite
def routes(draw: st.DrawFn) -> list[dict[str, Any]]:
    result = []
    for index in range(draw(st.integers(1, 4))):
        alternatives = draw(st.lists(matches(), min_size=1, max_size=2, unique_by=repr))
        result.append({"match": alternatives, **_marked(index)})
    if draw(st.booleans()):
        result.append(_marked(len(result)))  # a catch-all; without one, every version answers
    return result


def _paths_near(service1_routes: list[dict[str, Any]]) -> list[str]:
    """The rules' own paths, each also one segment longer and one character shorter: requests
    at the edges of what the rules match."""
    paths = {"/a", "/v1/ab"}
    for route in service1_routes:
        for match in route.get("match", []):
            value = next(iter(match.get("path", {"exact": "/a"}).values()))
            base = value.split("[")[0].split(".")[0] or "/"
            paths |= {base, base + "/a", base[:-1] or "/", base + "b"}
    return sorted(paths)


@st.composite
def requests(draw: st.DrawFn, paths: list[str]) -> Request:
    headers = {"x-user": draw(USERS)} if draw(st.booleans()) else {}
    path = draw(st.sampled_from(paths))
    return Request(path, draw(st.sampled_from(["GET", "POST"])), headers, "service1")


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_builtin_answers_what_the_istio_objects_say(
    data: st.DataObject, tmp_path_factory: Any
) -> None:
    service1_routes = data.draw(routes(), label="routes")
    sent = data.draw(
        st.lists(requests(_paths_near(service1_routes)), min_size=2, max_size=8), label="requests"
    )
    try:
        spec = sailplan.load_mesh_text(yaml.safe_dump(mesh(service1_routes)))
    except sailplan.SpecError:
        assume(False)  # e.g. a rule an earlier one makes unreachable: check refuses it
        return
    cluster = Cluster(render_manifests(spec, "istio"))
    directory: Path = tmp_path_factory.mktemp("random")
    with builtin_plane(spec, directory) as builtin:
        for request in sent:
            shares = evaluate_mesh(
                cluster, request, caller_namespace=spec.target_namespace
            ).shares()
            reply = builtin.send(
                request.path,
                via="mesh",
                host=request.host,
                method=request.method,
                headers=dict(request.headers),
            )
            answered = label(reply.status, reply.body)
            # A request no rule takes may reach either version; a rule's own status exactly.
            assert shares.get(answered, 0) > 0, (service1_routes, request, shares, answered)
