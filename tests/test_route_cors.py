"""CORS policy of a route (issue 15, item 5): validation, the istio rule, and behaviour on real
HAProxy, as Envoy's CORS filter behaves (preflights answered by the proxy, answers to allowed
origins carrying the CORS headers, other origins left alone)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from route_support import load, problems, sidecar, spec, values
from schema_support import validate_manifest

import sailplan
from sailplan.render.haproxy import FLAT_SERVICE_LIMIT
from sailplan.render.istio import virtual_service

R0 = "services.service1.routes[0]"

CORS = {
    "allowOrigins": [
        {"exact": "https://shop.example.com"},
        {"prefix": "https://admin."},
        {"regex": "https://[a-z]+[.]example[.]org"},
    ],
    "allowMethods": ["GET", "POST"],
    "allowHeaders": ["content-type", "x-token"],
    "exposeHeaders": ["x-request-id", "x-served-by"],
    "maxAge": "1h",
    "allowCredentials": True,
}
CORS_HEADERS = (
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-max-age",
    "access-control-allow-credentials",
    "access-control-expose-headers",
)


def _routes(cors: dict[str, Any], **more: Any) -> list[dict[str, Any]]:
    return [
        {"match": {"path": {"prefix": "/api/"}}, "to": "v2", "cors": cors, **more},
        {"to": "v1"},
    ]


def _cors(headers: tuple[tuple[str, str], ...]) -> dict[str, list[str]]:
    return {name: values(headers, name) for name in CORS_HEADERS if values(headers, name)}


def _preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {"origin": origin, "access-control-request-method": method}


def test_istio_rule_carries_the_cors_policy() -> None:
    rendered = virtual_service(load(_routes(CORS)), "service1")
    validate_manifest(rendered)
    rule = rendered["spec"]["http"][0]
    assert rule["corsPolicy"] == {
        "allowOrigins": [
            {"exact": "https://shop.example.com"},
            {"prefix": "https://admin."},
            {"regex": "https://[a-z]+[.]example[.]org"},
        ],
        "allowMethods": ["GET", "POST"],
        "allowHeaders": ["content-type", "x-token"],
        "exposeHeaders": ["x-request-id", "x-served-by"],
        "maxAge": "3600s",
        "allowCredentials": True,
    }
    plain = virtual_service(load(_routes({"allowOrigins": ["https://a.example"]})), "service1")
    assert plain["spec"]["http"][0]["corsPolicy"] == {
        "allowOrigins": [{"exact": "https://a.example"}]
    }


@pytest.mark.haproxy
@pytest.mark.timeout(60)
def test_a_preflight_from_an_allowed_origin_is_answered_by_the_proxy() -> None:
    with sidecar(load(_routes(CORS))) as proxy:
        for origin in ("https://shop.example.com", "https://admin.x", "https://abc.example.org"):
            reply = proxy.get("/api/items", method="OPTIONS", headers=_preflight(origin))
            assert (reply.status, reply.body) == (200, "")
            # Envoy's filter answers the preflight and its own encoder side then adds the
            # origin, the credentials and the expose headers to that answer too.
            assert _cors(reply.headers) == {
                "access-control-allow-origin": [origin],
                "access-control-allow-methods": ["GET,POST"],
                "access-control-allow-headers": ["content-type,x-token"],
                "access-control-max-age": ["3600"],
                "access-control-allow-credentials": ["true"],
                "access-control-expose-headers": ["x-request-id,x-served-by"],
            }
        assert proxy.pods["v2"].requests == []


@pytest.mark.haproxy
@pytest.mark.timeout(60)
def test_an_allowed_origin_s_requests_reach_the_app_and_get_the_cors_headers() -> None:
    with sidecar(load(_routes(CORS))) as proxy:
        reply = proxy.get("/api/items", headers={"origin": "https://shop.example.com"})
        assert (reply.status, reply.body) == (200, "v2")
        assert _cors(reply.headers) == {
            "access-control-allow-origin": ["https://shop.example.com"],
            "access-control-allow-credentials": ["true"],
            "access-control-expose-headers": ["x-request-id,x-served-by"],
        }
        # The Origin goes on to the app as it came.
        _, _, seen = proxy.last("v2")
        assert values(seen, "origin") == ["https://shop.example.com"]
        # An OPTIONS without Access-Control-Request-Method is no preflight: forwarded.
        reply = proxy.get(
            "/api/items", method="OPTIONS", headers={"origin": "https://shop.example.com"}
        )
        assert (reply.status, reply.body) == (200, "v2")
        assert values(reply.headers, "access-control-allow-origin") == ["https://shop.example.com"]
        assert proxy.last("v2")[0] == "OPTIONS"


@pytest.mark.haproxy
@pytest.mark.timeout(60)
def test_other_origins_and_other_routes_get_no_cors_headers() -> None:
    with sidecar(load(_routes(CORS))) as proxy:
        for origin in (
            "https://evil.example.com",
            "https://shop.example.com.evil",  # exact is the whole origin
            "https://abc.example.org.evil",  # a regex matches the whole origin
            "https://ABC.example.org",  # origins compare case-sensitively
        ):
            reply = proxy.get("/api/items", headers={"origin": origin})
            assert (reply.status, reply.body, _cors(reply.headers)) == (200, "v2", {})
            # A preflight from another origin is forwarded to the app (Istio's default,
            # unmatchedPreflights FORWARD), which answers it.
            reply = proxy.get("/api/items", method="OPTIONS", headers=_preflight(origin))
            assert (reply.status, reply.body, _cors(reply.headers)) == (200, "v2", {})
        # No Origin, or an empty one: no CORS request.
        for headers in ({}, {"origin": ""}):
            reply = proxy.get("/api/items", headers=headers)
            assert (reply.status, reply.body, _cors(reply.headers)) == (200, "v2", {})
        # The route without a policy: an allowed origin of the other route gets nothing.
        reply = proxy.get("/other", method="OPTIONS", headers=_preflight("https://admin.x"))
        assert (reply.status, reply.body, _cors(reply.headers)) == (200, "v1", {})


@pytest.mark.haproxy
@pytest.mark.timeout(60)
def test_a_star_origin_allows_every_origin_and_the_proxys_own_answers_carry_the_headers() -> None:
    """Envoy allows every origin when an entry matches the text `*`; its CORS filter comes
    before the fault filter, and its encoder side sets the headers on the abort too."""
    cors = {"allowOrigins": ["*"], "allowMethods": ["PUT"]}
    routes = _routes(cors, fault={"abort": {"status": 503}})
    with sidecar(load(routes)) as proxy:
        reply = proxy.get("/api/x", method="OPTIONS", headers=_preflight("null", "PUT"))
        assert (reply.status, reply.body) == (200, "")
        assert _cors(reply.headers) == {
            "access-control-allow-origin": ["null"],
            "access-control-allow-methods": ["PUT"],
        }
        reply = proxy.get("/api/x", headers={"origin": "https://any.where"})
        assert (reply.status, reply.body) == (503, "fault filter abort")
        assert _cors(reply.headers) == {"access-control-allow-origin": ["https://any.where"]}


@pytest.mark.haproxy
@pytest.mark.timeout(60)
def test_origins_with_config_syntax_are_compared_as_text() -> None:
    """Quotes, `$`, `#`, braces and `-` words in an origin are data in the proxy config."""
    odd = "https://it's.$HOME #x } -m {"
    cors = {"allowOrigins": [odd, {"prefix": "-i '"}], "exposeHeaders": ["x-a"]}
    with sidecar(load(_routes(cors))) as proxy:
        for origin in (odd, "-i 'x"):
            reply = proxy.get("/api/", method="OPTIONS", headers=_preflight(origin))
            assert (reply.status, _cors(reply.headers)) == (
                200,
                {
                    "access-control-allow-origin": [origin],
                    "access-control-expose-headers": ["x-a"],
                },
            )
        reply = proxy.get("/api/", headers={"origin": "https://it"})
        assert (reply.body, _cors(reply.headers)) == ("v2", {})


@pytest.mark.haproxy
@pytest.mark.timeout(60)
def test_past_the_flat_limit_the_service_s_routing_frontend_answers_cors() -> None:
    """Past FLAT_SERVICE_LIMIT services each service routes in its own frontend, reached
    through a socket: the preflight and the answers' headers are made there."""
    data = spec(_routes(CORS))
    data["services"].update(
        {
            f"extra{i}": {"port": 9100 + i, "versions": {"v1": {"image": "x"}}}
            for i in range(FLAT_SERVICE_LIMIT)
        }
    )
    with sidecar(sailplan.load_mesh_text(yaml.safe_dump(data))) as proxy:
        origin = "https://shop.example.com"
        reply = proxy.get("/api/items", method="OPTIONS", headers=_preflight(origin))
        assert (reply.status, reply.body) == (200, "")
        assert values(reply.headers, "access-control-allow-methods") == ["GET,POST"]
        assert values(reply.headers, "access-control-allow-origin") == [origin]
        reply = proxy.get("/api/items", headers={"origin": origin})
        assert (reply.body, values(reply.headers, "access-control-allow-origin")) == (
            "v2",
            [origin],
        )


def test_an_entry_matching_the_text_star_allows_every_origin() -> None:
    """Envoy's CorsFilter::isOriginAllowed tries `*` against each entry before the origin."""
    for anything in (["*"], [{"prefix": ""}], [{"regex": ".*"}], [{"prefix": "*"}]):
        policy = load(_routes({"allowOrigins": anything})).services["service1"].routes[0].cors
        assert policy is not None and policy.allows_any_origin, anything
    policy = load(_routes(CORS)).services["service1"].routes[0].cors
    assert policy is not None and not policy.allows_any_origin


@pytest.mark.parametrize(
    ("cors", "where", "problem"),
    [
        ({}, "cors.allowOrigins", "is required"),
        ({"allowOrigins": []}, "cors.allowOrigins", "must not be empty"),
        (
            {"allowOrigins": [""]},
            "cors.allowOrigins",
            "an empty exact origin matches no request (a request without an Origin is not a "
            "CORS request): give the origin, such as 'https://example.com'",
        ),
        (
            {"allowOrigins": ["a"], "maxAge": "1500ms"},
            "cors.maxAge",
            "1500ms is not a whole number of seconds: Istio and browsers take "
            "access-control-max-age in seconds, so write it in seconds, such as 2s",
        ),
        (
            {"allowOrigins": ["a"], "allowMethods": ["*"]},
            "cors.allowMethods[0]",
            "'*' is not an HTTP method: use a method name such as GET or POST (no '*' or ',')",
        ),
        (
            {"allowOrigins": ["a"], "allowMethods": ["GET,POST"]},
            "cors.allowMethods[0]",
            "'GET,POST' is not an HTTP method: use a method name such as GET or POST (no '*' "
            "or ',')",
        ),
        (
            {"allowOrigins": ["a"], "allowHeaders": ["Content-Type"]},
            "cors.allowHeaders[0]",
            "'Content-Type' is not a valid header name: use lowercase letters, digits and '-'",
        ),
        (
            {"allowOrigins": [{"regex": "(?=a)b"}]},
            "cors.allowOrigins[0].regex",
            "'(?=a)b' uses lookaround or a backreference, which RE2 (Envoy) does not support",
        ),
    ],
)
def test_bad_cors_policies_are_refused(cors: dict[str, Any], where: str, problem: str) -> None:
    assert problems([{"to": "v1", "cors": cors}]) == [f"{R0}.{where}: {problem}"]


def test_a_backtracking_origin_regex_is_refused_on_builtin_only() -> None:
    routes = [{"to": "v1", "cors": {"allowOrigins": [{"regex": "(a|ab)*c"}]}}]
    assert problems(routes) == [
        f"{R0}.cors.allowOrigins[0].regex: '(a|ab)*c' repeats a part of varying length, which "
        "HAProxy's backtracking matcher can take exponential time on; on the builtin data "
        "plane repeat single characters instead (e.g. `[a-z.]+` for `([a-z]+\\.)+`) or use "
        "the istio data plane"
    ]
    mesh = spec(routes)
    mesh["dataPlane"] = "istio"
    sailplan.load_mesh_text(yaml.safe_dump(mesh))


def test_cors_needs_an_http_service() -> None:
    mesh = spec([{"to": "v1", "cors": {"allowOrigins": ["a"]}}])
    mesh["services"]["service1"]["protocol"] = "tcp"
    mesh["dataPlane"] = "istio"
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh_text(yaml.safe_dump(mesh))
    assert [str(p) for p in error.value.problems] == [
        f"{R0}.cors: cors needs protocol http or grpc; this service is tcp"
    ]
