"""Property-based: generated valid specs validate and render; one corrupted field is reported at its path."""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sailplan
from sailplan.render.manifests import render_manifests

NAMES = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)

DURATIONS = st.builds(
    lambda n, unit: f"{n}{unit}", st.integers(1, 999), st.sampled_from(["ms", "s", "m"])
)
PERCENT = st.one_of(
    st.integers(0, 100), st.floats(0.001, 100, allow_nan=False).map(lambda f: round(f, 3))
)
STRING_MATCH = st.one_of(
    st.builds(lambda v: {"exact": f"/{v}"}, NAMES),
    st.builds(lambda v: {"prefix": f"/{v}"}, NAMES),
    st.builds(lambda v: {"regex": f"^/{v}[0-9]*$"}, NAMES),
)
# Header values as a route sets them: printable ASCII with inner spaces, HAProxy's and Envoy's
# syntax characters (`%`, quotes, `#`, `$`, braces) included.
HEADER_VALUE = st.from_regex(r"[!-~]([ !-~]{0,8}[!-~])?", fullmatch=True)
HEADER_CHANGES = st.fixed_dictionaries(
    {"set": st.dictionaries(st.sampled_from(["x-a", "x-b"]), HEADER_VALUE, min_size=1)},
    optional={"add": st.dictionaries(st.sampled_from(["x-c"]), HEADER_VALUE, min_size=1)},
)
# A regex rewrite's new path: path characters (HAProxy's `%`, `$`, `'`, `&` among them) and groups.
REWRITE_PATH = st.from_regex(r"/([A-Za-z0-9._~!$&'()*+,;=:@/%-]|\\[12]){0,10}", fullmatch=True)
# What a route answers with: a redirect's parts, a fixed response's one-line body.
REDIRECTS = st.fixed_dictionaries(
    {"uri": REWRITE_PATH.map(lambda p: p.replace("\\", "")), "code": st.sampled_from([301, 308])},
    optional={"authority": st.from_regex(r"[a-z0-9]{1,8}(\.[a-z]{2,4})?", fullmatch=True)},
)
RESPONSES = st.fixed_dictionaries(
    {"status": st.integers(200, 599).filter(lambda s: s not in (204, 304))},
    optional={
        "body": st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=20)
    },
)
MATCH = st.fixed_dictionaries(
    {},
    optional={
        "path": STRING_MATCH,
        "headers": st.dictionaries(
            st.sampled_from(["end-user", "x-canary"]), NAMES.map(lambda v: {"exact": v}), max_size=2
        ),
        "method": st.sampled_from(["GET", "POST"]),
        "withoutHeaders": st.dictionaries(
            st.sampled_from(["x-debug", "x-test"]),
            st.sampled_from([{}, {"exact": "1"}, {"regex": ".*"}]),
            min_size=1,
            max_size=2,
        ),
    },
).filter(lambda m: any(m.values()))


def _weights(versions: list[str]) -> st.SearchStrategy[dict[str, int]]:
    def split(cuts: list[int]) -> dict[str, int]:
        bounds = [0, *sorted(cuts), 100]
        return {v: bounds[i + 1] - bounds[i] for i, v in enumerate(versions)}

    return st.lists(
        st.integers(0, 100), min_size=len(versions) - 1, max_size=len(versions) - 1
    ).map(split)


@st.composite
def routes(draw: st.DrawFn, versions: list[str]) -> list[dict[str, Any]]:
    result = []
    count = draw(st.integers(0, 3))
    for index in range(count):
        route: dict[str, Any] = {}
        if index < count - 1 or draw(st.booleans()):
            # A header only this route asks for keeps an earlier route from taking all of its
            # requests (check refuses unreachable rules and repeated alternatives).
            alternatives = draw(
                st.lists(
                    MATCH.map(
                        lambda m, i=index: {
                            **m,
                            "headers": {**m.get("headers", {}), "x-route": str(i)},
                        }
                    ),
                    min_size=1,
                    max_size=2,
                    # By content: the same conditions in another key order are the same
                    # alternative, which check refuses as repeated.
                    unique_by=lambda m: json.dumps(m, sort_keys=True),
                )
            )
            route["match"] = alternatives
        if draw(st.booleans()):
            route["to"] = draw(st.sampled_from(versions))
        else:
            route["split"] = draw(_weights(versions))
        if draw(st.booleans()):
            route["fault"] = {
                "abort": {"status": draw(st.integers(200, 599)), "percent": draw(PERCENT)}
            }
        if draw(st.booleans()):
            route["headers"] = {
                direction: draw(HEADER_CHANGES)
                for direction in draw(
                    st.lists(st.sampled_from(["request", "response"]), min_size=1, unique=True)
                )
            }
        if draw(st.booleans()):
            route["rewrite"] = {
                "authority": draw(
                    st.from_regex(
                        r"[a-z0-9]([a-z0-9.-]{0,8}[a-z0-9])?(:[0-9]{1,4})?", fullmatch=True
                    )
                ),
                "uriRegexRewrite": {"match": "/([a-z]+)/(.*)", "rewrite": draw(REWRITE_PATH)},
            }
        if draw(st.booleans()):
            route["timeout"] = draw(DURATIONS)
        if draw(st.booleans()):
            route["retries"] = {
                "attempts": draw(st.integers(1, 5)),
                "perTryTimeout": draw(DURATIONS),
                "on": ["5xx"],
            }
        if draw(st.integers(0, 5)) == 0:
            # A route that answers itself: no destination, nothing that acts on forwarding.
            for key in ("to", "split", "timeout", "retries", "headers", "rewrite"):
                route.pop(key, None)
            if draw(st.booleans()):
                route["redirect"] = draw(REDIRECTS)
            else:
                route["respond"] = draw(RESPONSES)
        result.append(route)
    return result


@st.composite
def meshes(draw: st.DrawFn) -> dict[str, Any]:
    service_names = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    services = {}
    for name in service_names:
        versions = draw(
            st.lists(
                st.sampled_from(["v1", "v2", "v3", "canary"]), min_size=1, max_size=3, unique=True
            )
        )
        services[name] = {
            # Not the sidecars' own ports (15000-15090), which check reserves.
            "port": draw(st.integers(1, 65535).filter(lambda p: not 15000 <= p <= 15090)),
            "versions": {
                v: {"image": f"{name}:{v}", "replicas": draw(st.integers(1, 3))} for v in versions
            },
            "routes": draw(routes(versions)),
        }
    spec: dict[str, Any] = {
        "apiVersion": "sailplan/v1",
        "kind": "Mesh",
        "name": draw(NAMES.filter(lambda name: name != "default")),
        "services": services,
    }
    if draw(st.booleans()):
        spec["ingress"] = {
            "routes": [
                {
                    "match": {"path": {"prefix": "/"}},
                    "service": draw(st.sampled_from(service_names)),
                }
            ]
        }
    return spec


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(meshes())
def test_generated_valid_specs_validate_and_render(spec: dict[str, Any]) -> None:
    mesh = sailplan.load_mesh_text(yaml.safe_dump(spec))
    assert mesh.to_dict()["services"].keys() == spec["services"].keys()
    for plane in ("istio", "builtin"):
        assert render_manifests(mesh, plane)


CORRUPTIONS = ["port", "replicas", "unknown-key", "timeout", "split", "abort-status", "name"]


@FAST
@given(meshes(), st.sampled_from(CORRUPTIONS), st.data())
def test_one_corrupted_field_is_reported_at_its_path(
    spec: dict[str, Any], corruption: str, data: st.DataObject
) -> None:
    bad = copy.deepcopy(spec)
    service = data.draw(st.sampled_from(sorted(bad["services"])))
    at = f"services.{service}"
    target = bad["services"][service]
    routes = target["routes"]
    if corruption == "port":
        target["port"], path = data.draw(st.sampled_from([0, 65536, -80])), f"{at}.port"
    elif corruption == "replicas":
        version = sorted(target["versions"])[0]
        target["versions"][version]["replicas"], path = -1, f"{at}.versions.{version}.replicas"
    elif corruption == "unknown-key":
        target["versions"][sorted(target["versions"])[0]]["imagee"] = "x"
        path = f"{at}.versions.{sorted(target['versions'])[0]}.imagee"
    elif corruption == "name":
        bad["name"], path = "Not_A_Name", "name"
    elif not routes:
        target["port"], path = 0, f"{at}.port"
    else:
        index = data.draw(st.integers(0, len(routes) - 1))
        route = routes[index]
        if corruption == "timeout":
            route["timeout"], path = "1.5 s", f"{at}.routes[{index}].timeout"
        elif corruption == "abort-status":
            route["fault"], path = (
                {"abort": {"status": 700}},
                f"{at}.routes[{index}].fault.abort.status",
            )
        else:
            route.pop("to", None)
            route["split"] = {sorted(target["versions"])[0]: 99}
            path = f"{at}.routes[{index}].split"
    try:
        sailplan.load_mesh_text(yaml.safe_dump(bad))
    except sailplan.SpecError as error:
        assert [p.path for p in error.problems] == [path]
    else:
        raise AssertionError(f"corrupting {path} was not reported")
