"""Routes that answer themselves (issue 15, item 3): redirects and fixed responses; validation,
the istio rule, and behaviour on real HAProxy."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from route_support import load, problems, sidecar, values

import sailplan
from sailplan.render.istio import virtual_service

R0 = "services.service1.routes[0]"

ROUTES: list[dict[str, Any]] = [
    {"match": {"path": "/login"}, "redirect": {"uri": "/v2/login", "code": 302}},
    {
        "match": {"path": {"prefix": "/secure"}},
        "redirect": {"scheme": "https", "authority": "shop.example.com", "port": 8443},
    },
    {"match": {"path": {"prefix": "/moved"}}, "redirect": {"authority": "new.example.com:81"}},
    {"match": {"path": {"prefix": "/port"}}, "redirect": {"port": 9000, "code": 308}},
    {
        "match": {"path": {"prefix": "/maintenance"}},
        "respond": {"status": 503, "body": "down for 100% '$HOME' {maintenance}"},
    },
    {"match": {"path": "/empty"}, "respond": {"status": 204}},
    {"to": "v1"},
]


def test_istio_rules_carry_redirects_and_direct_responses() -> None:
    rules = virtual_service(load(ROUTES), "service1")["spec"]["http"]
    assert [
        {k: v for k, v in r.items() if k in ("redirect", "directResponse", "route")}
        for r in rules[:6]
    ] == [
        {"redirect": {"uri": "/v2/login", "redirectCode": 302}},
        {
            "redirect": {
                "authority": "shop.example.com",
                "scheme": "https",
                "port": 8443,
                "redirectCode": 301,
            }
        },
        {"redirect": {"authority": "new.example.com:81", "redirectCode": 301}},
        {"redirect": {"port": 9000, "redirectCode": 308}},
        {
            "directResponse": {
                "status": 503,
                "body": {"string": "down for 100% '$HOME' {maintenance}"},
            }
        },
        {"directResponse": {"status": 204}},
    ]


@pytest.mark.haproxy
@pytest.mark.timeout(60)
def test_redirects_and_responses_on_haproxy() -> None:
    with sidecar(load(ROUTES)) as proxy:
        cases = [
            ("/login?next=%2F", 302, "http://service1/v2/login?next=%2F"),
            ("/login", 302, "http://service1/v2/login"),
            ("/secure/cart?id=7", 301, "https://shop.example.com:8443/secure/cart?id=7"),
            ("/moved/x", 301, "http://new.example.com:81/moved/x"),
        ]
        for path, status, location in cases:
            reply = proxy.get(path)
            assert (reply.status, values(reply.headers, "location")) == (status, [location]), path
        reply = proxy.get("/port/a", host="service1:8088")
        assert (reply.status, values(reply.headers, "location")) == (
            308,
            ["http://service1:9000/port/a"],
        )
        reply = proxy.get("/maintenance")
        assert (reply.status, reply.body) == (503, "down for 100% '$HOME' {maintenance}")
        assert values(reply.headers, "content-type") == ["text/plain"]
        reply = proxy.get("/empty")
        assert (reply.status, reply.body) == (204, "")
        assert proxy.get("/other").body == "v1"
        assert not proxy.pods["v1"].requests[:-1]  # nothing answered by the proxy reached a pod


@pytest.mark.haproxy
@pytest.mark.timeout(60)
def test_a_fault_comes_before_the_answer() -> None:
    routes = [{"respond": {"status": 200, "body": "ok"}, "fault": {"abort": {"status": 418}}}]
    with sidecar(load(routes)) as proxy:
        assert (proxy.get().status, proxy.get().body) == (418, "fault filter abort")


@pytest.mark.parametrize(
    ("route", "problem"),
    [
        (
            {"redirect": {"code": 200}},
            f"{R0}.redirect.code: 200 is not a redirect status: use 301, 302, 303, 307, 308",
        ),
        (
            {"redirect": {"code": 302}},
            f"{R0}.redirect: a redirect to the same URL loops: give uri, authority, scheme or port",
        ),
        (
            {"redirect": {"scheme": "ftp"}},
            f"{R0}.redirect.scheme: 'ftp' is not allowed: use one of 'http' or 'https'",
        ),
        (
            {"respond": {"status": 700}},
            f"{R0}.respond.status: 700 is not an HTTP status to answer with: use 200 to 599",
        ),
        (
            {"respond": {"status": 200, "body": "a\nb"}},
            f"{R0}.respond.body: 'a\\nb' contains a control character (such as a newline or "
            "tab): write the body on one line",
        ),
        (
            {"respond": {"status": 200, "body": "x" * 1025}},
            f"{R0}.respond.body: is 1025 bytes long: a body may have at most 1024",
        ),
        (
            {"respond": {"status": 204, "body": "x"}},
            f"{R0}.respond: a 204 answer has no body: remove body",
        ),
        (
            {"to": "v1", "respond": {"status": 200}},
            f"{R0}: `respond` answers the request itself, so `to` would never be used: give one "
            "of them",
        ),
        (
            {"redirect": {"port": 1}, "respond": {"status": 200}},
            f"{R0}: give either `redirect` or `respond`, not both",
        ),
        (
            {"redirect": {"port": 1}, "timeout": "1s"},
            f"{R0}.timeout: timeout acts on a forwarded request, and this route answers itself "
            "(redirect): remove timeout",
        ),
        (
            {"respond": {"status": 200}, "headers": {"response": {"set": {"x": "1"}}}},
            f"{R0}.headers: headers acts on a forwarded request, and this route answers itself "
            "(respond): remove headers",
        ),
    ],
)
def test_bad_answers_are_refused(route: dict[str, Any], problem: str) -> None:
    assert problems([route]) == [problem]


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12)
_valid = st.from_regex(r"[a-z0-9][a-z0-9.%~-]{0,8}", fullmatch=True)


@pytest.mark.haproxy
@pytest.mark.timeout(120)
@settings(
    max_examples=10, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(st.one_of(_valid, _printable, _text), min_size=2, max_size=4, unique=True))
def test_any_body_or_location_is_refused_or_sent_as_written(texts: list[str]) -> None:
    """Each drawn text as a fixed response's body and as a redirect's path and host: refused at
    its path, or answered by real HAProxy exactly as written."""
    routes: list[dict[str, Any]] = []
    for text in texts:
        for answer in (
            {"respond": {"status": 200, "body": text}},
            {"redirect": {"uri": "/" + text, "authority": "h" + text}},
        ):
            route = {"match": {"path": f"/r{len(routes)}"}, **answer}
            try:
                load([route])
            except sailplan.SpecError as error:
                assert all(p.path.startswith(f"{R0}.re") for p in error.problems), error
                continue
            routes.append(route)
    if not routes:
        return
    with sidecar(load([*routes, {"to": "v1"}])) as proxy:
        for index, route in enumerate(routes):
            reply = proxy.get(f"/r{index}")
            if "respond" in route:
                assert (reply.status, reply.body) == (200, route["respond"]["body"])
            else:
                redirect = route["redirect"]
                location = f"http://{redirect['authority']}{redirect['uri']}"
                assert (reply.status, values(reply.headers, "location")) == (301, [location])
