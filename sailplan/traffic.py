"""`sailplan traffic URL`: the walkthrough's request.sh as a command.

Sends the requests, then prints one row per outcome (status + body) with its count, percentage and
a bar, and the latency p50/p99/max.
"""

from __future__ import annotations

import argparse
import http.client
import math
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

BAR_WIDTH = 30
BODY_WIDTH = 60


class TrafficUsageError(Exception):
    """Bad arguments: exit 2."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str
    authority: str
    scheme: str = "http"


@dataclass(frozen=True)
class Outcome:
    label: str
    seconds: float
    # The HTTP status, or None when no answer came (refused, reset, timed out).
    status: int | None = None


def parse_statuses(raw: Sequence[str]) -> frozenset[int]:
    """`--expect-status 200 --expect-status 201,204`: every status a script accepts."""
    statuses = set()
    for item in raw:
        for part in item.split(","):
            text = part.strip()
            if not text.isdigit() or not 100 <= int(text) <= 599:
                raise TrafficUsageError(
                    f"--expect-status {item!r}: give HTTP statuses from 100 to 599, e.g. 200,204"
                )
            statuses.add(int(text))
    return frozenset(statuses)


def failures(outcomes: Sequence[Outcome], expected: frozenset[int]) -> list[Outcome]:
    """Requests that got no answer, or (when statuses are expected) an answer not among them."""
    return [o for o in outcomes if o.status is None or (expected and o.status not in expected)]


def verdict(
    outcomes: Sequence[Outcome], expected: frozenset[int], max_failures: int | None
) -> str | None:
    """Why the run failed, or None. Without --expect-status and --max-failures, only a run where
    no request got an answer fails: the table already shows what the answers were. With
    --expect-status, any other answer is a failure, and none is allowed unless --max-failures
    says how many."""
    failed = failures(outcomes, expected)
    total = len(outcomes)
    what = (
        f"got no answer or an answer other than {', '.join(map(str, sorted(expected)))}"
        if expected
        else "got no answer"
    )
    if max_failures is None and not expected:
        if len(failed) == total:
            return f"all {total} requests failed ({failed[0].label.removeprefix('failed: ')})"
        return None
    allowed = max_failures or 0
    if len(failed) > allowed:
        return f"{len(failed)} of {total} requests {what}; at most {allowed} allowed"
    return None


def parse_target(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TrafficUsageError(f"{url!r} is not an http:// or https:// URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TrafficUsageError(f"{url!r} has an invalid port") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.hostname, port, path, parts.netloc, parts.scheme)


def tls_context(target: Target, cacert: str | None, insecure: bool) -> ssl.SSLContext | None:
    """How an https:// target's certificate is checked: against the system's CAs, the CA in
    `cacert` (the sandbox prints its own), or not at all (`insecure`). None for http://."""
    if cacert is not None and insecure:
        raise TrafficUsageError("give --cacert or --insecure, not both")
    if target.scheme != "https":
        if cacert is not None or insecure:
            raise TrafficUsageError("--cacert and --insecure apply to https:// URLs only")
        return None
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=cacert)
    except FileNotFoundError:
        raise TrafficUsageError(f"--cacert {cacert}: no such file") from None
    except (OSError, ssl.SSLError):
        raise TrafficUsageError(f"--cacert {cacert}: not a PEM certificate file") from None


def parse_headers(raw: Sequence[str]) -> dict[str, str]:
    headers = {}
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise TrafficUsageError(f"header {item!r} is not of the form 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= BODY_WIDTH else flat[: BODY_WIDTH - 1] + "…"


def percentile(sorted_seconds: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_seconds:
        return 0.0
    rank = max(1, min(len(sorted_seconds), math.ceil(fraction * len(sorted_seconds))))
    return sorted_seconds[rank - 1]


def table(outcomes: Sequence[Outcome]) -> str:
    counts = Counter(o.label for o in outcomes)
    total = len(outcomes)
    width = max((len(label) for label in counts), default=7)
    lines = [f"{'outcome':<{width}}  {'count':>5}  {'share':>6}"]
    for label, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        share = 100 * count / total
        bar = "█" * round(BAR_WIDTH * count / total)
        lines.append(f"{label:<{width}}  {count:>5}  {share:>5.1f}%  {bar}")
    seconds = sorted(o.seconds for o in outcomes)
    lines.append(
        f"{total} requests  latency p50 {1000 * percentile(seconds, 0.5):.1f} ms  "
        f"p99 {1000 * percentile(seconds, 0.99):.1f} ms  max {1000 * (seconds[-1] if seconds else 0):.1f} ms"
    )
    return "\n".join(lines)


class _Client:
    """One keep-alive connection per worker thread."""

    def __init__(self, target: Target, timeout: float, context: ssl.SSLContext | None) -> None:
        self.target = target
        self.timeout = timeout
        self.context = context
        self.local = threading.local()

    def send(self, method: str, headers: dict[str, str], body: bytes | None) -> Outcome:
        started = time.monotonic()
        connection: http.client.HTTPConnection | None = getattr(self.local, "connection", None)
        try:
            if connection is None:
                connection = (
                    http.client.HTTPConnection(
                        self.target.host, self.target.port, timeout=self.timeout
                    )
                    if self.context is None
                    else http.client.HTTPSConnection(
                        self.target.host,
                        self.target.port,
                        timeout=self.timeout,
                        context=self.context,
                    )
                )
                self.local.connection = connection
            connection.request(method, self.target.path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode(errors="replace")
            if response.will_close:
                connection.close()
                self.local.connection = None
            return Outcome(
                f"{response.status} {one_line(text)}".rstrip(),
                time.monotonic() - started,
                response.status,
            )
        except (OSError, http.client.HTTPException) as error:
            if connection is not None:
                connection.close()
            self.local.connection = None
            if isinstance(error, ssl.SSLCertVerificationError):
                reason = f"certificate verify failed: {error.verify_message}"
            elif isinstance(error, ssl.SSLError) and error.reason:
                # OpenSSL's short reason (`tlsv1 alert protocol version`), not its long text.
                reason = error.reason.replace("_", " ")
            else:
                reason = (
                    "timed out"
                    if isinstance(error, TimeoutError)
                    else getattr(error, "strerror", None) or type(error).__name__
                )
            return Outcome(f"failed: {str(reason).lower()}", time.monotonic() - started)


def send_all(
    target: Target,
    count: int,
    concurrency: int,
    method: str,
    headers: dict[str, str],
    body: bytes | None,
    timeout: float,
    context: ssl.SSLContext | None = None,
) -> list[Outcome]:
    client = _Client(target, timeout, context)
    done = [0]
    lock = threading.Lock()
    progress = sys.stderr.isatty()

    def one(_: int) -> Outcome:
        outcome = client.send(method, headers, body)
        if progress:
            with lock:
                done[0] += 1
                filled = BAR_WIDTH * done[0] // count
                print(
                    f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done[0]}/{count}",
                    end="",
                    file=sys.stderr,
                )
        return outcome

    with ThreadPoolExecutor(concurrency) as pool:
        outcomes = list(pool.map(one, range(count)))
    if progress:
        print(file=sys.stderr)
    return outcomes


def run_traffic(args: argparse.Namespace) -> int:
    try:
        target = parse_target(args.url)
        context = tls_context(target, args.cacert, args.insecure)
        headers = parse_headers(args.header)
        if args.requests < 1:
            raise TrafficUsageError("-n must be at least 1")
        if args.concurrency < 1:
            raise TrafficUsageError("-c must be at least 1")
        expected = parse_statuses(args.expect_status)
        if args.max_failures is not None and args.max_failures < 0:
            raise TrafficUsageError("--max-failures must be 0 or more")
    except TrafficUsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    body = args.data.encode() if args.data is not None else None
    if body is not None:
        headers.setdefault("content-type", "application/json")
    outcomes = send_all(
        target,
        args.requests,
        min(args.concurrency, args.requests),
        args.method.upper(),
        headers,
        body,
        args.timeout,
        context,
    )
    print(table(outcomes))
    failed = verdict(outcomes, expected, args.max_failures)
    if failed is not None:
        print(f"error: {failed}", file=sys.stderr)
        return 1
    return 0
