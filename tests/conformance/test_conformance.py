"""Every scenario on every data plane: builtin on real haproxy, istio through the reference
evaluator of the rendered Istio objects, gateway-api through the evaluator of the rendered
HTTPRoutes under every choice the Gateway API leaves to implementations (or `check` refusing the
scenario there, exactly as gateway_api_plane.REFUSED says). All must meet the expectation."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from proxy_support import Backend, Reply, many

import sailplan
from sailplan.model import SpecError
from sailplan.render.manifests import render_manifests

from . import gateway_api_reference as gateway_api
from .builtin_runner import builtin_plane
from .gateway_api_plane import DIVERGES, REFUSED
from .istio_reference import (
    Cluster,
    Outcome,
    Request,
    Upstreams,
    evaluate_burst,
    evaluate_direct,
    evaluate_gateway,
    evaluate_mesh,
)
from .scenarios import (
    DEFAULT_CALLER,
    INGRESS,
    PLAINTEXT,
    SCENARIOS,
    Burst,
    Expect,
    Scenario,
    Send,
    label,
)

PLANES = ("istio", "builtin", "gateway-api")


def _cases() -> list[object]:
    cases = []
    for scenario in SCENARIOS:
        for plane in PLANES:
            marks = []
            if plane in scenario.diverges:
                marks.append(pytest.mark.xfail(reason=scenario.diverges[plane], strict=True))
            if plane == "gateway-api" and scenario.name in DIVERGES:
                marks.append(pytest.mark.xfail(reason=DIVERGES[scenario.name], strict=True))
            if plane == "builtin":
                marks.append(pytest.mark.haproxy)
            cases.append(pytest.param(scenario, plane, id=f"{scenario.name}-{plane}", marks=marks))
    return cases


def _load(scenario: Scenario) -> sailplan.Mesh:
    return sailplan.load_mesh_text(yaml.safe_dump(scenario.spec))


def _replicas(mesh: sailplan.Mesh, label: str) -> int:
    service, version = label.split("/")
    return mesh.services[service].versions[version].replicas


def _check_istio(
    outcome: Outcome, send: Send | Burst, expect: Expect, mesh: sailplan.Mesh, plane: str = "istio"
) -> None:
    observed = {key: round(value, 9) for key, value in outcome.shares().items() if value > 0}
    assert observed == expect.shares, f"{send}: {plane} answers {observed}"
    if expect.attempts is not None:
        attempts = [branch.attempts for branch in outcome.branches]
        assert set(attempts) == {expect.attempts}, f"{send}: {plane} attempts {attempts}"
    if isinstance(send, Send):
        copies = [
            (c.probability, c.to, c.pods, c.method, c.path, c.host, c.body) for c in outcome.copies
        ]
        wanted = []
        if expect.mirrored is not None:
            shadow = f"{send.host}-shadow"
            wanted = [
                (1.0, to, _replicas(mesh, to), send.method, send.path, shadow, send.body)
                for to in (expect.mirrored, *expect.also_mirrored)
            ]
        assert copies == wanted, f"{send}: {plane} copies {copies}"
    if isinstance(send, Send):
        _check_headers(f"{send}: {plane} forwards", [outcome.forwarded], expect.upstream_headers)
        if expect.upstream_path is not None:
            assert outcome.forwarded_path == expect.upstream_path, (
                f"{send}: {plane} forwards {outcome.forwarded_path}"
            )
    answers = [branch.headers for branch in outcome.branches if branch.upstream]
    _check_headers(f"{send}: {plane} answers", answers, expect.answer_headers)
    replies = [branch.headers for branch in outcome.branches]
    _check_headers(f"{send}: {plane} replies", replies, expect.reply_headers)
    if expect.location is not None:
        locations = {_joined(branch.headers).get("location") for branch in outcome.branches}
        assert locations == {expect.location}, f"{send}: {plane} redirects to {locations}"
    if expect.seconds is not None:
        low, high = expect.seconds
        for branch in outcome.branches:
            assert low <= branch.elapsed_ms / 1000 <= high, f"{send}: {plane} takes {branch}"


def _run_gateway_api(scenario: Scenario, mesh: sailplan.Mesh) -> None:
    """Refused exactly where REFUSED says; elsewhere every step, under every implementation
    choice the Gateway API leaves open, meets the expectation."""
    try:
        mesh = mesh.with_data_plane("gateway-api")
    except SpecError as error:
        assert scenario.name in REFUSED, f"gateway-api refuses: {error}"
        assert error.problems[0].path == REFUSED[scenario.name][0], str(error)
        return
    assert scenario.name not in REFUSED, "gateway-api accepts the scenario"
    manifests = render_manifests(mesh)
    for how in gateway_api.IMPLEMENTATIONS:
        cluster = gateway_api.Cluster(manifests)
        upstreams = Upstreams(refusing=dict(scenario.refusing))
        for send, expect in scenario.steps:
            assert isinstance(send, Send), "bursts measure connection pools, refused here"
            # Callers matter to authorization only, which the plane refuses.
            assert send.caller in (None, DEFAULT_CALLER, INGRESS), "a caller on gateway-api"
            request = Request(send.path, send.method, send.headers, send.host, send.body)
            if send.via == "mesh":
                outcome = gateway_api.evaluate_mesh(
                    cluster,
                    request,
                    caller_namespace=mesh.target_namespace,
                    upstreams=upstreams,
                    how=how,
                )
            else:
                outcome = gateway_api.evaluate_gateway(
                    cluster, request, upstreams=upstreams, how=how
                )
            _check_istio(outcome, send, expect, mesh, f"gateway-api ({how})")


def _joined(lines: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header lines as one value per name, lines of one name joined with ", "."""
    joined: dict[str, str] = {}
    for name, value in lines:
        name = name.lower()
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    return joined


def _check_headers(
    what: str, seen: list[tuple[tuple[str, str], ...]], wanted: dict[str, str | None]
) -> None:
    """Every header set of `seen` (there is at least one) has the wanted values."""
    if not wanted:
        return
    assert seen, f"{what}: nothing to check headers on"
    for lines in seen:
        joined = _joined(lines)
        observed = {name: joined.get(name) for name in wanted}
        assert observed == wanted, f"{what}: {observed}"


def _check_samples(replies: list[tuple[str, float]], send: Send | Burst, expect: Expect) -> None:
    counts = Counter(text for text, _ in replies)
    observed = {key: count / len(replies) for key, count in counts.items()}
    unexpected = set(observed) - set(expect.shares)
    assert not unexpected, f"{send}: builtin answers {observed}"
    for key, share in expect.shares.items():
        assert abs(observed.get(key, 0.0) - share) <= expect.tolerance, (
            f"{send}: builtin answers {observed}, expected {expect.shares}"
        )
    if expect.seconds is not None:
        low, high = expect.seconds
        for text, seconds in replies:
            assert low <= seconds <= high, f"{send}: builtin answered {text!r} in {seconds:.3f}s"


def _check_copies(pods: list[Backend], send: Send) -> None:
    """The copies of this step's sends (the pods saw nothing before it): all of them arrive,
    alike the originals, spread over the pods in turn."""
    deadline = time.monotonic() + 5  # copies travel detached from the requests
    while sum(len(pod.requests) for pod in pods) < send.count and time.monotonic() < deadline:
        time.sleep(0.02)
    per_pod = [len(pod.requests) for pod in pods]
    assert sum(per_pod) == send.count, f"{send}: builtin copies per pod {per_pod}"
    assert max(per_pod) - min(per_pod) <= 1, f"{send}: builtin copies per pod {per_pod}"
    for pod in pods:
        for (method, path, headers), body in zip(pod.requests, pod.bodies, strict=True):
            copy = (method, path, headers.get("host"), body.decode())
            assert copy == (send.method, send.path, f"{send.host}-shadow", send.body), (
                f"{send}: builtin copied {copy}"
            )
        pod.requests.clear()
        pod.bodies.clear()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("scenario", "plane"), _cases())
def test_scenario(scenario: Scenario, plane: str, tmp_path: Path) -> None:
    mesh = _load(scenario)
    if plane == "gateway-api":
        _run_gateway_api(scenario, mesh)
        return
    if plane == "istio":
        cluster = Cluster(render_manifests(mesh, "istio"), mesh.trust_domain)
        upstreams = Upstreams(refusing=dict(scenario.refusing))
        for send, expect in scenario.steps:
            if isinstance(send, Burst):
                principal = cluster.principal(DEFAULT_CALLER, mesh.target_namespace)
                requests = [
                    Request(s.path, s.method, s.headers, s.host, principal=principal)
                    for s in send.sends
                ]
                outcome = evaluate_burst(
                    cluster, requests, caller_namespace=mesh.target_namespace, upstreams=upstreams
                )
                _check_istio(outcome, send, expect, mesh)
                continue
            request = Request(send.path, send.method, send.headers, send.host, send.body)
            # The evaluator gives the exact distribution: one evaluation stands for `count` sends.
            if send.via == "mesh" and send.sender == PLAINTEXT:
                outcome = evaluate_direct(
                    cluster, request, caller_namespace=mesh.target_namespace, upstreams=upstreams
                )
            elif send.via == "mesh":
                principal = cluster.principal(send.sender, mesh.target_namespace)
                outcome = evaluate_mesh(
                    cluster,
                    replace(request, principal=principal),
                    caller_namespace=mesh.target_namespace,
                    upstreams=upstreams,
                )
            else:
                outcome = evaluate_gateway(cluster, request, upstreams=upstreams)
            _check_istio(outcome, send, expect, mesh)
        return
    with builtin_plane(mesh, tmp_path, scenario.refusing) as builtin:
        for send, expect in scenario.steps:
            if isinstance(send, Burst):
                with ThreadPoolExecutor(len(send.sends)) as pool:
                    futures = [
                        pool.submit(
                            builtin.send,
                            s.path,
                            via=s.via,
                            host=s.host,
                            method=s.method,
                            headers=s.headers,
                        )
                        for s in send.sends
                    ]
                    burst = [future.result() for future in futures]
                _check_samples([(label(r.status, r.body), r.seconds) for r in burst], send, expect)
                continue

            def one(send: Send = send) -> Reply:
                return builtin.send(
                    send.path,
                    via=send.via,
                    host=send.host,
                    method=send.method,
                    headers=send.headers,
                    body=send.body,
                    caller=send.caller,
                )

            seen = sum(len(pod.requests) for pods in builtin.pods.values() for pod in pods)
            before = {id(pod): len(pod.header_lines) for ps in builtin.pods.values() for pod in ps}
            # Requests with count 1 go one by one: their order matters (e.g. /flaky counters).
            if send.count > 1 and send.concurrency > 1:
                replies = many(send.count, one, concurrency=send.concurrency)
            else:
                replies = [one() for _ in range(send.count)]
            _check_samples([(label(r.status, r.body), r.seconds) for r in replies], send, expect)
            forwarded = [
                tuple(lines)
                for pods in builtin.pods.values()
                for pod in pods
                for lines in pod.header_lines[before[id(pod)] :]
            ]
            if expect.upstream_path is not None:
                paths = [
                    path
                    for pods in builtin.pods.values()
                    for pod in pods
                    for _, path, _ in pod.requests[before[id(pod)] :]
                ]
                assert paths, f"{send}: no request reached a pod"
                assert set(paths) == {expect.upstream_path}, f"{send}: builtin forwards {paths}"
            _check_headers(f"{send}: builtin forwards", forwarded, expect.upstream_headers)
            answers = [r.headers for r in replies if label(r.status, r.body) in builtin.pods]
            _check_headers(f"{send}: builtin answers", answers, expect.answer_headers)
            _check_headers(
                f"{send}: builtin replies", [r.headers for r in replies], expect.reply_headers
            )
            if expect.location is not None:
                locations = {_joined(r.headers).get("location") for r in replies}
                assert locations == {expect.location}, f"{send}: builtin redirects to {locations}"
            if expect.mirrored is not None:
                for to in (expect.mirrored, *expect.also_mirrored):
                    _check_copies(builtin.pods[to], send)
            if expect.attempts is not None:
                assert send.count == 1, "attempts are checked on single sends"
                time.sleep(0.5)  # an attempt made after the answer would show up by now
                made = sum(len(pod.requests) for pods in builtin.pods.values() for pod in pods)
                assert made - seen == expect.attempts, f"{send}: builtin made {made - seen}"
