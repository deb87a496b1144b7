"""docs/conformance.md: the scenarios the suite runs on every plane, and where the planes still
differ, generated from tests/conformance/scenarios.py (`pytest --update-golden` rewrites it)."""

from __future__ import annotations

from pathlib import Path

from conftest import REPO

from .gateway_api_plane import DIVERGES, REFUSED
from .scenarios import PLAINTEXT, SCENARIOS, Burst, Expect, Scenario, Send

REPORT = REPO / "docs" / "conformance.md"

INTRO = """\
# Conformance: one spec, one behaviour

Generated from `tests/conformance/scenarios.py` by `pytest tests/conformance --update-golden`;
`make test` fails when this page and the scenarios disagree.

Every scenario runs on every data plane and must give the same answers: on **builtin** for real
(the sidecar and gateway compiled from the spec, on haproxy, in front of one backend per pod), on
**istio** through a reference evaluator of the rendered VirtualServices, DestinationRules,
Gateway and AuthorizationPolicies, written from Istio's and Envoy's documentation, and on
**gateway-api** through an evaluator of the rendered HTTPRoutes and Gateway written from the
Gateway API specification, run once per choice the specification leaves to implementations (where
a regex path ranks, whether a regex matches the whole value); a scenario the Gateway API's
standard channel cannot express is *refused* by `check` on that plane, with the reason given.
`tests/conformance/test_random_meshes.py` adds random small meshes whose answers the istio
evaluator decides and haproxy must match.

Mesh requests come from the `caller` service unless the step names another caller. In a
scenario with authorization (`allow`, `authorization.default`) every pod on builtin runs behind
its own sidecar with a certificate for its workload's identity, made for the run, so a request
crosses the caller's sidecar, mTLS as `mtls` says, and the called pod's sidecar, which decides on
the caller's identity; a plaintext client connects straight to the pods.

A plane marked *differs* still answers differently there; the suite expects it to fail on that
plane (a strict xfail), so closing the difference makes the suite say so.
"""


def _request(send: Send | Burst) -> str:
    if isinstance(send, Burst):
        return " + ".join(_request(one) for one in send.sends) + " in flight together"
    parts = [send.method, send.path]
    if send.headers:
        parts.append(", ".join(f"{k}: {v}" for k, v in send.headers.items()))
    where = "through the ingress" if send.via == "ingress" else f"to {send.host}"
    if send.via == "mesh" and send.caller == PLAINTEXT:
        where += " from a plaintext client without a sidecar"
    elif send.via == "mesh" and send.caller is not None:
        where += f" from {send.caller}"
    times = f" x{send.count}" if send.count > 1 else ""
    body = f" with body `{send.body}`" if send.body else ""
    return f"`{' '.join(parts)}`{body} {where}{times}"


def _extras(expect: Expect) -> str:
    text = ""
    if expect.seconds:
        text += f" in {expect.seconds[0]:g} to {expect.seconds[1]:g} s"
    if expect.attempts is not None:
        text += f", {expect.attempts} attempts"
    if expect.mirrored is not None:
        to = " and ".join((expect.mirrored, *expect.also_mirrored))
        text += f", each copied alike to {to}, over all its pods in turn"
    if expect.upstream_headers:
        text += f"; the pods see {_headers(expect.upstream_headers)}"
    if expect.upstream_path is not None:
        text += f"; the pods see the path `{expect.upstream_path}`"
    if expect.location is not None:
        text += f" to `{expect.location}`"
    if expect.answer_headers:
        text += f"; the pods' answers arrive with {_headers(expect.answer_headers)}"
    if expect.reply_headers:
        text += f"; every reply has {_headers(expect.reply_headers)}"
    return text


def _headers(wanted: dict[str, str | None]) -> str:
    return ", ".join(
        f"no `{name}`" if value is None else f"`{name}: {value}`" for name, value in wanted.items()
    )


def _answer(shares: dict[str, float]) -> str:
    # A 200 without a body (a preflight the proxy answers) has an empty label.
    return ", ".join(f"{label or '200 (no body)'} {share:.0%}" for label, share in shares.items())


def _plane(scenario: Scenario, plane: str) -> str:
    if plane in scenario.diverges:
        return f"differs: {scenario.diverges[plane]}"
    if plane == "gateway-api" and scenario.name in DIVERGES:
        return f"differs: {DIVERGES[scenario.name]}"
    if plane == "gateway-api" and scenario.name in REFUSED:
        return f"refused: {REFUSED[scenario.name][1]}"
    return "same"


# Divergences that no request could show on both planes: one plane refuses the spec, or the
# behaviour is not an answer (a log line, a Service port). Each names the test that settles it.
SETTLED_ELSEWHERE = [
    "D5 a tcp service's split: rendered as an Istio tcp route "
    "(`tests/test_render_istio.py::test_a_tcp_split_becomes_a_tcp_route`); builtin proxies http "
    "only and `check` refuses tcp there; an ingress route to a tcp service is refused on both "
    "(`::test_the_ingress_cannot_route_to_a_tcp_service`).",
    "D8 `ingress.port` / `nodePort` on istio: the gateway chart's Service exposes them, an "
    "explicit control plane that does not is refused (`tests/test_components_mesh.py::"
    "test_the_istio_gateway_service_exposes_the_ingress_port_and_node_port`).",
    "D14 access log, request ids, trace headers, metric names: one JSON line per request with "
    "Envoy's response flags on builtin, a Telemetry resource on istio "
    "(`tests/test_observability.py`).",
    "D15 routes to a version with `replicas: 0`, and rules an earlier rule makes unreachable: "
    "refused by `check` on every plane (`tests/test_model_analysis.py`).",
]


def report() -> str:
    lines = [
        INTRO,
        "| scenario | requests and expected answers | istio | builtin | gateway-api |",
        "|---|---|---|---|---|",
    ]
    for scenario in SCENARIOS:
        steps = "<br>".join(
            f"{_request(send)} → {_answer(expect.shares)}{_extras(expect)}"
            for send, expect in scenario.steps
        )
        for pods, refusing in scenario.refusing.items():
            steps += f"<br>({refusing} pods of {pods} refuse connections)"
        lines.append(
            f"| {scenario.name} | {steps} | {_plane(scenario, 'istio')} | "
            f"{_plane(scenario, 'builtin')} | {_plane(scenario, 'gateway-api')} |"
        )
    still = sorted(
        {reason for scenario in SCENARIOS for reason in scenario.diverges.values()}
        | set(DIVERGES.values())
    )
    lines += ["", "## Where the planes still differ", ""]
    lines += [f"- {reason}" for reason in still] or ["Nowhere: every scenario answers alike."]
    lines += ["", "## Settled outside the request scenarios", ""]
    lines += [f"- {item}" for item in SETTLED_ELSEWHERE]
    return "\n".join(lines) + "\n"


def test_the_conformance_page_is_a_fresh_render(update_golden: bool) -> None:
    text = report()
    if update_golden:
        REPORT.write_text(text, encoding="utf-8")
    assert Path(REPORT).read_text(encoding="utf-8") == text
