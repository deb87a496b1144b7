"""`sailplan traffic`: the outcome table, its numbers, and its errors."""

from __future__ import annotations

import pytest
from proxy_support import backends

from sailplan.cli import main
from sailplan.traffic import (
    Outcome,
    TrafficUsageError,
    parse_headers,
    parse_target,
    percentile,
    table,
)


def test_targets_and_headers_parse() -> None:
    target = parse_target("http://127.0.0.1:8080/api/users/1?x=1")
    assert (target.host, target.port, target.path) == ("127.0.0.1", 8080, "/api/users/1?x=1")
    assert parse_target("http://example.com").port == 80
    assert (parse_target("https://example.com").port, parse_target("https://e").scheme) == (
        443,
        "https",
    )
    assert parse_headers(["end-user: jason", "x-a:b"]) == {"end-user": "jason", "x-a": "b"}


@pytest.mark.parametrize("url", ["ftp://x/", "127.0.0.1:80", "http://:80/", "http://h:99999/"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(TrafficUsageError):
        parse_target(url)


def test_percentiles_use_nearest_rank() -> None:
    values = [i / 1000 for i in range(1, 101)]
    assert percentile(values, 0.5) == 0.05
    assert percentile(values, 0.99) == 0.099
    assert percentile([], 0.5) == 0.0


def test_table_counts_shares_and_bars() -> None:
    outcomes = [Outcome("200 Hello, a v1", 0.001)] * 3 + [Outcome("200 error", 0.003)]
    assert table(outcomes).splitlines() == [
        "outcome          count   share",
        "200 Hello, a v1      3   75.0%  " + "█" * 22,
        "200 error            1   25.0%  " + "█" * 8,
        "4 requests  latency p50 1.0 ms  p99 3.0 ms  max 3.0 ms",
    ]


def test_traffic_against_a_real_server(capsys: pytest.CaptureFixture[str]) -> None:
    with backends("hello") as started:
        port = started["hello"].port
        assert (
            main(["traffic", f"http://127.0.0.1:{port}/", "-n", "20", "-c", "3", "-H", "x-test: 1"])
            == 0
        )
        assert (
            main(
                [
                    "traffic",
                    f"http://127.0.0.1:{port}/status/503",
                    "-n",
                    "5",
                    "-X",
                    "post",
                    "-d",
                    "{}",
                ]
            )
            == 0
        )
        assert started["hello"].requests[0][2]["x-test"] == "1"
        assert started["hello"].requests[-1][0] == "POST"
    out = capsys.readouterr().out
    assert "200 hello     20  100.0%" in out
    assert "503 hello      5  100.0%" in out


def test_when_every_request_fails_the_exit_code_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["traffic", "http://127.0.0.1:1/", "-n", "3"]) == 1
    captured = capsys.readouterr()
    assert "failed: connection refused      3  100.0%" in captured.out
    assert captured.err == "error: all 3 requests failed (connection refused)\n"


def test_expected_statuses_and_a_failure_budget_let_a_script_assert(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with backends("hello") as started:
        base = f"http://127.0.0.1:{started['hello'].port}"
        # Answers of any status are a success by default: the table tells what they were.
        assert main(["traffic", f"{base}/status/503", "-n", "4"]) == 0
        assert main(["traffic", f"{base}/status/503", "-n", "4", "--expect-status", "200"]) == 1
        assert capsys.readouterr().err == (
            "error: 4 of 4 requests got no answer or an answer other than 200; at most 0 allowed\n"
        )
        assert main(["traffic", f"{base}/", "-n", "4", "--expect-status", "204,200"]) == 0
        assert (
            main(
                [
                    *("traffic", f"{base}/status/503", "-n", "4"),
                    *("--expect-status", "200", "--max-failures", "4"),
                ]
            )
            == 0
        )
    capsys.readouterr()
    assert main(["traffic", "http://127.0.0.1:1/", "-n", "3", "--max-failures", "2"]) == 1
    assert capsys.readouterr().err == ("error: 3 of 3 requests got no answer; at most 2 allowed\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["traffic", "nope", "-n", "1"], "error: 'nope' is not an http:// or https:// URL"),
        (
            ["traffic", "https://127.0.0.1/", "--insecure", "--cacert", "ca.crt"],
            "error: give --cacert or --insecure, not both",
        ),
        (
            ["traffic", "http://127.0.0.1/", "--insecure"],
            "error: --cacert and --insecure apply to https:// URLs only",
        ),
        (
            ["traffic", "https://127.0.0.1/", "--cacert", "/nonexistent/ca.crt"],
            "error: --cacert /nonexistent/ca.crt: no such file",
        ),
        (["traffic", "http://127.0.0.1/", "-n", "0"], "error: -n must be at least 1"),
        (
            ["traffic", "http://127.0.0.1/", "-H", "novalue"],
            "error: header 'novalue' is not of the form 'Name: value'",
        ),
        (
            ["traffic", "http://127.0.0.1/", "--expect-status", "ok"],
            "error: --expect-status 'ok': give HTTP statuses from 100 to 599, e.g. 200,204",
        ),
        (
            ["traffic", "http://127.0.0.1/", "--max-failures", "-1"],
            "error: --max-failures must be 0 or more",
        ),
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == message
