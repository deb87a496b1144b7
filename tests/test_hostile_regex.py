"""Regexes (issue 10): `check` accepts exactly what RE2 accepts, and on the builtin plane refuses
the patterns HAProxy's backtracking PCRE2 could stall on — on real HAProxy, an accepted pattern
answers a hostile value as fast as an ordinary one."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import re2
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from proxy_support import check_config, loopback_ports, running_haproxy

import sailplan
from sailplan.model.backtracking import backtracking_risk
from sailplan.render.haproxy import StaticEndpoints, compile_sidecar

AT = "services.service1.routes[0].match[0]"
NESTED = (
    "repeats a part of varying length, which HAProxy's backtracking matcher can take exponential "
    "time on; on the builtin data plane repeat single characters instead (e.g. `[a-z.]+` for "
    "`([a-z]+\\.)+`) or use the istio data plane"
)
ALTERNATION = (
    "repeats alternatives that can start with the same character, which HAProxy's backtracking "
    "matcher can take exponential time on; on the builtin data plane make each alternative start "
    "differently (e.g. `a(b)?` for `(a|ab)`) or use the istio data plane"
)
ADJACENT = (
    "has two repetitions that can match the same characters one after the other (such as "
    "`.*a.*b` or `\\d+\\d+`), which HAProxy's backtracking matcher takes quadratic time or worse "
    "on; on the builtin data plane exclude what follows (e.g. `[^a]*a`) or use the istio data plane"
)


def _spec(match: dict[str, Any], plane: str = "builtin") -> dict[str, Any]:
    return {
        "apiVersion": "sailplan/v1",
        "kind": "Mesh",
        "name": "regex",
        # The proxy alone answers here (aborts): no certificates to provision.
        "mtls": "disable",
        "dataPlane": plane,
        "services": {
            "service1": {
                "port": 8088,
                "versions": {"v1": {"image": "a"}},
                "routes": [
                    {"match": match, "to": "v1", "fault": {"abort": {"status": 418}}},
                    {"to": "v1", "fault": {"abort": {"status": 200}}},
                ],
            },
            "caller": {"port": 9000, "versions": {"v1": {"image": "c"}}},
        },
    }


def _load(match: dict[str, Any], plane: str = "builtin") -> sailplan.Mesh:
    return sailplan.load_mesh_text(yaml.safe_dump(_spec(match, plane)))


def _problems(match: dict[str, Any], plane: str = "builtin") -> list[str]:
    with pytest.raises(sailplan.SpecError) as error:
        _load(match, plane)
    return [str(problem) for problem in error.value.problems]


# -- RE2 is the syntax on both planes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(?>ab)c", "invalid perl operator: (?>"),
        ("a++", "bad repetition operator: ++"),
        ("ab\\Z", "invalid escape sequence: \\Z"),
        ("a{1001}", "invalid repetition size: {1001}"),
    ],
)
@pytest.mark.parametrize("plane", ["istio", "builtin"])
def test_what_re2_refuses_check_refuses(pattern: str, reason: str, plane: str) -> None:
    assert _problems({"path": {"regex": pattern}}, plane) == [
        f"{AT}.path.regex: {pattern!r} is not a valid regular expression (RE2 syntax): {reason}"
    ]


@pytest.mark.parametrize("pattern", ["\\pL+", "\\p{Greek}*x", "[[:alpha:]]+", "(?P<v>v[0-9]+)"])
def test_what_re2_accepts_check_accepts_and_haproxy_loads(pattern: str) -> None:
    mesh = _load({"headers": {"x-v": {"regex": pattern}}})
    endpoints = StaticEndpoints({"service1": {"v1": [("127.0.0.1", 9)]}})
    check_config(compile_sidecar(mesh, "caller", "v1", endpoints=endpoints).files, pattern)


# -- the builtin plane refuses patterns that backtrack super-linearly ------------------------------


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("(a+)+$", NESTED),
        ("^(\\w+\\s?)*$", NESTED),
        ("([a-z]+\\.)+com", NESTED),
        ("(a?a?)+", NESTED),
        ("(.*,)*", NESTED),
        ("(a|a)+$", ALTERNATION),
        ("(a|b|a)+", ALTERNATION),
        ("(x|[xy])*z", ALTERNATION),
        ("\\d+\\d+", ADJACENT),
        (".*a.*b", ADJACENT),
        (".*(a|b).*c", ADJACENT),
    ],
)
def test_builtin_refuses_backtracking_patterns_istio_accepts_them(
    pattern: str, problem: str
) -> None:
    assert backtracking_risk(pattern) == problem
    assert _problems({"headers": {"x-v": {"regex": pattern}}}) == [
        f"{AT}.headers.x-v.regex: {pattern!r} {problem}"
    ]
    _load({"headers": {"x-v": {"regex": pattern}}}, "istio")  # RE2 is linear: no problem


@pytest.mark.parametrize(
    "pattern",
    [
        "/api/v[0-9]+/.*",
        "/api/.*/users/.*",
        ".*\\.jpg",
        "(\\d{1,3}\\.){3}\\d{1,3}",
        "(?:ab)+",
        "GET|POST",
        "[a-z]*[0-9]*",
        "x*y*z*",
        "\\pL+",
        "(?i)bearer .*",
    ],
)
def test_builtin_accepts_linear_patterns(pattern: str) -> None:
    assert backtracking_risk(pattern) is None


def test_the_sandbox_path_refuses_an_istio_mesh_with_a_stalling_regex() -> None:
    """The sandbox runs every mesh on HAProxy, whatever its data plane."""
    mesh = _load({"headers": {"x-v": {"regex": "(a|a)+$"}}}, "istio")
    with pytest.raises(sailplan.SpecError) as error:
        compile_sidecar(mesh, "caller", "v1", endpoints=StaticEndpoints({}))
    assert [str(p) for p in error.value.problems] == [
        f"{AT}.headers.x-v.regex: '(a|a)+$' {ALTERNATION}"
    ]


@pytest.mark.haproxy
@pytest.mark.timeout(120)
def test_accepted_patterns_answer_hostile_values_at_once() -> None:
    """On real HAProxy: the rewrites the problems suggest, hit with the values that stall the
    refused originals (fresh values each time: HAProxy caches answers per value)."""
    import socket

    cases = [("a+", "a" * 4000 + "!"), ("[\\w\\s]*", "a" * 4000 + "!"), (".*\\.jpg", "a" * 4000)]
    with tempfile.TemporaryDirectory(prefix="sp-rx-") as name:
        for index, (pattern, value) in enumerate(cases):
            directory = Path(name) / str(index)
            mesh = _load({"headers": {"x-v": {"regex": pattern}}})
            ports = loopback_ports()
            files = compile_sidecar(
                mesh,
                "caller",
                "v1",
                endpoints=StaticEndpoints({"service1": {"v1": [("127.0.0.1", 9)]}}),
                ports=ports,
                config_dir=str(directory),
                runtime_dir=str(directory),
                passthrough="host-header",
            ).files
            with running_haproxy(files, directory, [ports.outbound]):
                started = time.monotonic()
                for count in range(50):
                    with socket.create_connection(("127.0.0.1", ports.outbound), timeout=5) as c:
                        c.sendall(
                            f"GET / HTTP/1.1\r\nhost: service1\r\nx-v: {value}{count}\r\n"
                            "connection: close\r\n\r\n".encode()
                        )
                        assert c.recv(64).startswith(b"HTTP/1.1 200"), pattern
                # 50 requests of 4 KB: milliseconds when linear; one catastrophic match alone
                # takes seconds (bench/RESULTS.md, ReDoS).
                assert time.monotonic() - started < 5, pattern


_QUIET = re2.Options()
_QUIET.log_errors = False
# Mostly regex syntax, so most drawn patterns are valid RE2 with structure worth checking.
_SYNTAX = st.sampled_from([*"ab.*+?|()[]{}^$\\,0123-:", "\\w", "\\d", "\\pL", "(?:", "(?i)"])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.one_of(
        st.lists(_SYNTAX, max_size=14).map("".join),
        st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=16),
    )
)
def test_the_backtracking_check_answers_every_re2_pattern(pattern: str) -> None:
    """Whatever RE2 accepts, the check gives an answer (a reason or None), never an exception."""
    try:
        re2.compile(pattern, _QUIET)
    except re2.error:
        return
    risk = backtracking_risk(pattern)
    assert risk is None or isinstance(risk, str)
