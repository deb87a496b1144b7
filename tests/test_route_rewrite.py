"""Rewrites of a route (issue 15, item 3): the path by prefix, exact path or regex, and the
authority; validation, the istio rule, and behaviour on real HAProxy."""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from route_support import load, problems, sidecar, spec, values

import sailplan
from sailplan.render.istio import ingress_virtual_service, virtual_service

R0 = "services.service1.routes[0]"

ROUTES: list[dict[str, Any]] = [
    {
        "match": [{"path": {"prefix": "/old/"}}, {"path": {"prefix": "/legacy"}}],
        "to": "v2",
        "rewrite": {"uri": "/new/", "authority": "users.internal:8080"},
    },
    {"match": {"path": "/exact"}, "to": "v2", "rewrite": {"uri": "/replaced"}},
    {
        "match": {"path": {"prefix": "/api/"}},
        "to": "v1",
        "rewrite": {"uriRegexRewrite": {"match": "/api/v([0-9]+)/(.*)", "rewrite": "/\\2/v\\1"}},
    },
    {"to": "v1"},
]


def test_istio_rules_carry_the_rewrites() -> None:
    rules = virtual_service(load(ROUTES), "service1")["spec"]["http"]
    assert [rule.get("rewrite") for rule in rules] == [
        {"uri": "/new/", "authority": "users.internal:8080"},
        {"uri": "/replaced"},
        {"uriRegexRewrite": {"match": "^(?:/api/v([0-9]+)/(.*))$", "rewrite": "/\\2/v\\1"}},
        None,
    ]


@pytest.mark.haproxy
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("sent", "forwarded", "version"),
    [
        ("/old/items?x=1", "/new/items?x=1", "v2"),
        ("/old/", "/new/", "v2"),
        # The second alternative's prefix is the one replaced, even though the first one's
        # text appears in the path too.
        ("/legacy/old/a", "/new//old/a", "v2"),
        ("/legacyx", "/new/x", "v2"),
        ("/exact?q=2", "/replaced?q=2", "v2"),
        ("/api/v12/users/7?y=%20", "/users/7/v12?y=%20", "v1"),
        ("/api/other", "/api/other", "v1"),
        ("/elsewhere", "/elsewhere", "v1"),
    ],
)
def test_paths_are_rewritten_as_istio_does(sent: str, forwarded: str, version: str) -> None:
    with sidecar(load(ROUTES)) as proxy:
        reply = proxy.get(sent)
        assert (reply.status, reply.body) == (200, version)
        _, path, seen = proxy.last(version)
        assert path == forwarded
        host = "users.internal:8080" if sent.startswith(("/old/", "/legacy")) else "service1"
        assert values(seen, "host") == [host]


@pytest.mark.haproxy
@pytest.mark.timeout(60)
def test_a_mirror_copies_the_rewritten_request() -> None:
    routes = [{"to": "v1", "rewrite": {"authority": "a.internal"}, "mirror": {"to": "v2"}}]
    with sidecar(load(routes)) as proxy:
        assert proxy.get("/x").body == "v1"
        assert values(proxy.last("v1")[2], "host") == ["a.internal"]
        deadline = time.monotonic() + 5  # the copy travels detached from the request
        while not proxy.pods["v2"].requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert values(proxy.last("v2")[2], "host") == ["a.internal-shadow"]


def test_the_gateway_rule_replaces_the_routes_own_prefix() -> None:
    """The ingress narrows /api/ to /api/v1/; Envoy would replace /api/v1/ with `uri`, so the
    gateway's rule replaces the route's own /api/ by regex, as the sidecar does."""
    routes = [{"match": {"path": {"prefix": "/api/"}}, "to": "v2", "rewrite": {"uri": "/"}}]
    mesh = spec(routes)
    mesh["ingress"] = {
        "port": 80,
        "routes": [{"match": {"path": {"prefix": "/api/v1/"}}, "service": "service1"}],
    }
    rules = ingress_virtual_service(sailplan.load_mesh_text(yaml.safe_dump(mesh)))["spec"]["http"]
    assert rules[0]["match"] == [{"uri": {"prefix": "/api/v1/"}}]
    assert rules[0]["rewrite"] == {"uriRegexRewrite": {"match": "^/api/", "rewrite": "/"}}


def test_a_gateway_rule_with_several_prefixes_narrowed_is_refused_on_istio() -> None:
    routes = [
        {
            "match": [{"path": {"prefix": "/a"}}, {"path": {"prefix": "/b"}}],
            "to": "v2",
            "rewrite": {"uri": "/"},
        },
        {"to": "v1"},
    ]
    mesh = spec(routes)
    mesh["dataPlane"] = "istio"
    mesh["ingress"] = {
        "port": 80,
        "routes": [{"match": {"path": {"prefix": "/a/x"}}, "service": "service1"}],
    }
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh_text(yaml.safe_dump(mesh))
    assert [str(p) for p in error.value.problems] == [
        f"{R0}.rewrite.uri: the istio gateway cannot apply this rewrite to requests of "
        "ingress.routes[0]: that route narrows the path, Envoy would replace the narrower "
        "prefix, and a rule with several path alternatives cannot say which prefix to replace; "
        "give this route one path alternative, or use uriRegexRewrite"
    ]


@pytest.mark.parametrize(
    ("route", "problem"),
    [
        (
            {"to": "v1", "rewrite": {"uri": "/x"}},
            f"{R0}.rewrite.uri: uri replaces the path prefix the route matched, and match has no "
            "path prefix or exact path: give every alternative one, or use uriRegexRewrite",
        ),
        (
            {
                "match": [{"path": {"prefix": "/a"}}, {"headers": {"x": "1"}}],
                "to": "v1",
                "rewrite": {"uri": "/x"},
            },
            f"{R0}.rewrite.uri: uri replaces the path prefix the route matched, and match[1] has "
            "no path prefix or exact path: give every alternative one, or use uriRegexRewrite",
        ),
        (
            {"match": {"path": {"prefix": "/a"}}, "to": "v1", "rewrite": {"uri": "/x?y=1"}},
            f"{R0}.rewrite.uri: '/x?y=1' cannot be a path: start with '/' and use letters, "
            "digits and - . _ ~ ! $ & ' ( ) * + , ; = : @ / % (no spaces, '?', '#' or '\\')",
        ),
        (
            {"to": "v1", "rewrite": {"uriRegexRewrite": {"match": "/(a)", "rewrite": "/\\2"}}},
            f"{R0}.rewrite.uriRegexRewrite: rewrite refers to group \\2, and match has 1 group",
        ),
        (
            {"to": "v1", "rewrite": {"uriRegexRewrite": {"match": "/(?=a)", "rewrite": "/"}}},
            f"{R0}.rewrite.uriRegexRewrite.match: '/(?=a)' uses lookaround or a backreference, "
            "which RE2 (Envoy) does not support",
        ),
        (
            {"to": "v1", "rewrite": {"uriRegexRewrite": {"match": "/a", "rewrite": "x\\1"}}},
            f"{R0}.rewrite.uriRegexRewrite.rewrite: 'x\\\\1' cannot be a new path: start with "
            "'/', and use path characters and the groups \\1 to \\9 (no spaces, '?' or '#')",
        ),
        (
            {"to": "v1", "rewrite": {"authority": "a b"}},
            f"{R0}.rewrite.authority: 'a b' is not an authority: use a host name such as "
            "'api.example.com', optionally with a port ('api.example.com:8080')",
        ),
        (
            {
                "match": {"path": {"prefix": "/a"}},
                "to": "v1",
                "rewrite": {"uri": "/", "uriRegexRewrite": {"match": "/a", "rewrite": "/"}},
            },
            f"{R0}.rewrite: give uri or uriRegexRewrite, not both: each replaces the path",
        ),
        ({"to": "v1", "rewrite": {}}, f"{R0}.rewrite: give uri, uriRegexRewrite or authority"),
    ],
)
def test_bad_rewrites_are_refused(route: dict[str, Any], problem: str) -> None:
    assert problems([route]) == [problem]


def test_a_stalling_rewrite_regex_is_refused_on_builtin() -> None:
    route = {"to": "v1", "rewrite": {"uriRegexRewrite": {"match": "/(a+)+b", "rewrite": "/"}}}
    found = problems([route])
    assert len(found) == 1
    assert found[0].startswith(f"{R0}.rewrite.uriRegexRewrite.match: '/(a+)+b' ")


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=10)
_printable = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=10)
# Valid for both fields: so every run forwards some rewritten requests.
_valid = st.from_regex(r"[a-z0-9][a-z0-9.%~-]{0,8}", fullmatch=True)


@pytest.mark.haproxy
@pytest.mark.timeout(120)
@settings(
    max_examples=10, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(st.one_of(_valid, _printable, _text), min_size=2, max_size=4, unique=True))
def test_any_new_path_is_refused_or_forwarded_as_written(texts: list[str]) -> None:
    """Each drawn text as the prefix rewrite of its own route (/r<i>/): refused at its path, or
    the request arrives with exactly that prefix."""
    routes: list[dict[str, Any]] = []
    for text in texts:
        route = {
            "match": {"path": {"prefix": f"/r{len(routes)}/"}},
            "to": "v1",
            "rewrite": {"uri": "/" + text, "authority": "h" + text},
        }
        try:
            load([route])
        except sailplan.SpecError as error:
            assert {p.path.rsplit(".", 1)[-1] for p in error.problems} <= {"uri", "authority"}
            assert all(p.path.startswith(f"{R0}.rewrite.") for p in error.problems)
            continue
        routes.append(route)
    if not routes:
        return
    with sidecar(load([*routes, {"to": "v2"}])) as proxy:
        for index, route in enumerate(routes):
            assert proxy.get(f"/r{index}/tail?q=1").body == "v1"
            _, path, seen = proxy.last("v1")
            assert path == route["rewrite"]["uri"] + "tail?q=1"
            assert values(seen, "host") == [route["rewrite"]["authority"]]
