"""Routes: which version a request goes to, and what happens to it on the way."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import re2
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from sailplan.model.base import (
    INT32_MAX,
    DnsLabel,
    Duration,
    HeaderName,
    Percent,
    Port,
    SpecModel,
    planes,
)
from sailplan.model.errors import Problem, shown
from sailplan.model.match import (
    Match,
    OneOrList,
    StringMatch,
    as_match_list,
    check_re2,
    re2_groups,
)

# Every retryOn token Istio's webhook accepts besides status codes (agent/validation.go), each
# with Envoy's meaning (x-envoy-retry-on, x-envoy-retry-grpc-on).
RETRY_CONDITIONS = (
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
)
# The status codes Istio takes as retryOn tokens: those Go's http.StatusText names.
HTTP_STATUS_CODES = (
    *range(100, 104),
    *range(200, 209),
    226,
    *range(300, 306),
    307,
    308,
    *range(400, 419),
    *range(421, 427),
    428,
    429,
    431,
    451,
    *range(500, 509),
    510,
    511,
)
# HAProxy 2.6 `retry-on` retries on these status codes only.
RETRY_STATUS_CODES = (401, 403, 404, 408, 425, 500, 501, 502, 503, 504)
_RETRY_TOKENS = RETRY_CONDITIONS + tuple(map(str, HTTP_STATUS_CODES))
_TOKEN = "|".join(map(re.escape, _RETRY_TOKENS))
# The JSON Schema key that marks Istio's comma-separated form, for the spec reference's words.
COMMA_SEPARATED_KEY = "x-comma-separated"


def _comma_separated(value: Any) -> Any:
    # Istio writes `retryOn: gateway-error,connect-failure,refused-stream`; one string is read
    # as that list, so a single condition (`on: refused-stream`) is a list of one.
    if isinstance(value, str):
        return tuple(token.strip() for token in value.split(","))
    return value


RetryOn = Annotated[
    tuple[str, ...],
    BeforeValidator(_comma_separated),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "array", "items": {"enum": list(_RETRY_TOKENS)}},
                {
                    "type": "string",
                    "pattern": rf"^\s*(?:{_TOKEN})(?:\s*,\s*(?:{_TOKEN}))*\s*$",
                    COMMA_SEPARATED_KEY: True,
                },
            ]
        }
    ),
]
_GRPC = "retries on a gRPC status read from the answer's trailers, which HAProxy cannot do"
# Conditions HAProxy cannot retry on, and why: refused on the builtin plane, never ignored.
BUILTIN_UNSUPPORTED_RETRIES = {
    "retriable-4xx": "retries answers 409 Conflict, which HAProxy cannot retry on",
    "retriable-headers": (
        "retries answers carrying the headers the request names in "
        "x-envoy-retriable-header-names, which HAProxy cannot do"
    ),
    "envoy-ratelimited": (
        "retries answers carrying Envoy's x-envoy-ratelimited header, which HAProxy cannot do"
    ),
    "cancelled": _GRPC,
    "deadline-exceeded": _GRPC,
    "internal": _GRPC,
    "resource-exhausted": _GRPC,
    "unavailable": _GRPC,
}


def builtin_retry_problem(token: str) -> str | None:
    """Why the builtin plane cannot honour a retry condition, or None when it can."""
    if token in BUILTIN_UNSUPPORTED_RETRIES:
        return (
            f"{token} {BUILTIN_UNSUPPORTED_RETRIES[token]}: use the istio data plane, "
            "or conditions the builtin data plane honours"
        )
    if token.isdigit() and int(token) not in RETRY_STATUS_CODES:
        return (
            f"HAProxy retries on the status codes {', '.join(map(str, RETRY_STATUS_CODES))} "
            f"only, not {token}: use the istio data plane, or one of these"
        )
    return None


class Delay(SpecModel):
    """Hold requests for a fixed time before passing them on."""

    fixed: Duration = Field(
        description="How long to hold a request, such as `500ms` or `2s`.",
        examples=["2s"],
        json_schema_extra=planes(
            istio="`fixedDelay`, in seconds with millisecond decimals.",
            builtin="The Lua delay, in milliseconds.",
        ),
    )
    percent: Percent = Field(
        default=100,
        description="The share of requests delayed, from 0 to 100 (fractions allowed). "
        "Default: 100.",
        examples=[50],
        json_schema_extra=planes(
            istio="`percentage.value` of the delay.",
            builtin="A draw out of a million per request, so fractions down to 0.0001 hold.",
        ),
    )


class Abort(SpecModel):
    """Answer requests at once with an HTTP status instead of passing them on."""

    status: int = Field(
        description="The HTTP status to answer with, from 200 to 599.",
        json_schema_extra=planes(
            istio="`httpStatus` of the abort.",
            builtin="The status the proxy answers with.",
            schema={"minimum": 200, "maximum": 599},
        ),
        examples=[503],
    )
    percent: Percent = Field(
        default=100,
        description="The share of requests aborted, from 0 to 100 (fractions allowed). "
        "Default: 100.",
        examples=[10],
        json_schema_extra=planes(
            istio="`percentage.value` of the abort.",
            builtin="A draw out of a million per request, so fractions down to 0.0001 hold.",
        ),
    )

    @field_validator("status")
    @classmethod
    def _http_status(cls, value: int) -> int:
        if not 200 <= value <= 599:
            raise ValueError(f"{value} is not an HTTP status to abort with: use 200 to 599")
        return value


class Fault(SpecModel):
    """Injected faults: a delay, an abort, or both (the delay comes first)."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    delay: Delay | None = Field(
        default=None,
        description="Delay some requests.",
        examples=[{"fixed": "2s", "percent": 50}],
        json_schema_extra=planes(
            istio="`fault.delay` of the rule.",
            builtin="A Lua action holds the request before it is forwarded.",
        ),
    )
    abort: Abort | None = Field(
        default=None,
        description="Answer some requests with an error.",
        examples=[{"status": 503, "percent": 10}],
        json_schema_extra=planes(
            istio="`fault.abort` of the rule.",
            builtin=(
                "The proxy answers at once with the status and the body `fault filter abort`,"
                " as Envoy does."
            ),
        ),
    )

    @model_validator(mode="after")
    def _something_to_inject(self) -> Fault:
        if self.delay is None and self.abort is None:
            raise ValueError("a fault needs a delay, an abort or both")
        return self


class Retries(SpecModel):
    """Try a failed request again, on another endpoint when there is one."""

    attempts: int = Field(
        ge=0,
        le=INT32_MAX,
        description="How many times a failed request is retried; 0 turns retries off.",
        examples=[3],
        json_schema_extra=planes(
            istio="`retries.attempts`; 0 turns retries off.",
            builtin="`retries` of the route's backends; 0 turns retries off.",
        ),
    )
    per_try_timeout: Duration | None = Field(
        default=None,
        description="How long each attempt may take, as a duration. Default: no limit per "
        "attempt beyond the route's `timeout`.",
        examples=["500ms"],
        json_schema_extra=planes(
            istio="`retries.perTryTimeout`.",
            builtin=(
                "`timeout server` of the listener that makes the attempts, when shorter than "
                "the route's `timeout`."
            ),
        ),
    )
    on: RetryOn | None = Field(
        default=None,
        # Strict tuples take only Python tuples; YAML gives a list. The items stay strict text.
        strict=False,
        description="What is retried: any of Istio's `retryOn` conditions (`5xx`, "
        "`gateway-error`, `reset`, `reset-before-request`, `connect-failure`, `retriable-4xx`, "
        "`refused-stream`, `retriable-status-codes`, `retriable-headers`, `envoy-ratelimited`, "
        "`http3-post-connect-failure`, and the gRPC `cancelled`, `deadline-exceeded`, "
        "`internal`, `resource-exhausted`, `unavailable`) or an HTTP status code such as `503`; "
        "a list, or one string comma-separated as Istio writes `retryOn`. "
        "Default: `5xx` and `connect-failure`.",
        examples=[
            ["5xx", "connect-failure"],
            ["gateway-error", "connect-failure", "refused-stream"],
        ],
        json_schema_extra=planes(
            istio="`retries.retryOn`, comma-separated.",
            builtin=(
                "HAProxy `retry-on` keywords with Envoy's meaning of each condition: `5xx` is"
                " 500-504 (HAProxy cannot retry 505-599), failed connections, empty or broken"
                " answers and answer timeouts;"
                " `gateway-error` 502-504; `reset` empty or broken answers and answer timeouts;"
                " `connect-failure` and `reset-before-request` a connection that failed before"
                " the request was sent; status codes 401, 403, 404, 408, 425 and 500-504."
                " `refused-stream`, `http3-post-connect-failure` and `retriable-status-codes`"
                " add nothing, as with Envoy to an HTTP/1.1 app: no stream is refused and no"
                " HTTP/3 is spoken, and the codes are retried as listed. `check` refuses"
                " `retriable-4xx` (409), `retriable-headers`, `envoy-ratelimited`, the gRPC"
                " conditions and other status codes, which HAProxy cannot retry on."
            ),
        ),
    )

    @field_validator("on")
    @classmethod
    def _known_conditions(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for token in value or ():
            if token not in _RETRY_TOKENS:
                raise ValueError(
                    f"{token!r} is not a retry condition: use {', '.join(RETRY_CONDITIONS)} "
                    "or an HTTP status code such as 503"
                )
        return value

    @model_validator(mode="after")
    def _attempts_for_settings(self) -> Retries:
        if self.attempts == 0 and (self.per_try_timeout is not None or self.on):
            raise ValueError(
                "attempts is 0, so perTryTimeout and on have no effect: "
                "set attempts to 1 or more, or remove them"
            )
        return self

    @property
    def conditions(self) -> tuple[str, ...]:
        """What is retried when `on` is not given: the 5xx family and failed connections."""
        return self.on or ("5xx", "connect-failure")


class Mirror(SpecModel):
    """Send a copy of the route's requests to another version; its answers are dropped."""

    to: DnsLabel = Field(
        description="The version that receives the copies; not one the route sends requests to.",
        examples=["v2"],
        json_schema_extra=planes(
            istio="`mirror`: the service's host, subset `<version>`.",
            builtin=(
                "A Lua task writes each copy, method, headers and body as they came, to a "
                "listener that spreads the copies over every pod of the version in turn."
            ),
        ),
    )
    percent: Percent = Field(
        default=100,
        description="The share of requests copied, from 0 to 100 (fractions allowed). "
        "Default: 100.",
        examples=[10],
        json_schema_extra=planes(
            istio="`mirrorPercentage.value`.",
            builtin="A draw out of a million per request, so fractions down to 0.0001 hold.",
        ),
    )


# Headers the proxies own: they frame the message or name its destination, so a route may not
# change them (Envoy ignores or refuses such changes; HAProxy would corrupt the message).
PROXY_OWNED_HEADERS = {
    "host": "is the request's authority, which routing reads",
    "content-length": "frames the message",
    "transfer-encoding": "frames the message",
    "connection": "is hop-by-hop",
    "keep-alive": "is hop-by-hop",
    "proxy-connection": "is hop-by-hop",
    "te": "is hop-by-hop",
    "trailer": "is hop-by-hop",
    "upgrade": "is hop-by-hop",
}
# What a header value may hold: printable ASCII and inner spaces (HTTP strips them at either end).
_HEADER_VALUE = re.compile(r"[!-~]([ !-~]*[!-~])?")


def check_header_value(value: str) -> str:
    if value == "":
        raise ValueError(
            "is empty, and an empty value is not sent: list the header under remove instead"
        )
    if not _HEADER_VALUE.fullmatch(value):
        raise ValueError(
            f"{value!r} cannot be a header value: use printable ASCII, with no space at either end"
        )
    return value


HeaderValue = Annotated[
    str,
    AfterValidator(check_header_value),
    WithJsonSchema({"type": "string", "pattern": f"^(?:{_HEADER_VALUE.pattern})$"}),
]


class HeaderChanges(SpecModel):
    """Changes to the headers of one direction. Removed first, then set, then added, as Envoy
    applies them; each header takes one change."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    set: dict[HeaderName, HeaderValue] | None = Field(
        default=None,
        description="Headers to set, replacing every value they had: lowercase name -> value, "
        "taken literally (`%` is a plain character).",
        examples=[{"x-canary": "true"}],
        json_schema_extra=planes(
            istio="`set`; each `%` is written `%%`, so Envoy sends it literally.",
            builtin="`set-header`, with each `%` written `%%`, so HAProxy sends it literally.",
        ),
    )
    add: dict[HeaderName, HeaderValue] | None = Field(
        default=None,
        description="Headers to add, keeping any values they already had: lowercase name -> "
        "value, taken literally.",
        examples=[{"x-trace-tag": "checkout"}],
        json_schema_extra=planes(
            istio="`add`: Envoy appends one more header line; each `%` is written `%%`.",
            builtin="`add-header`: one more header line; each `%` is written `%%`.",
        ),
    )
    remove: list[HeaderName] | None = Field(
        default=None,
        description="Headers to remove, by lowercase name.",
        examples=[["x-internal-debug"]],
        json_schema_extra=planes(
            istio="`remove`.",
            builtin="`del-header`.",
            schema={"minItems": 1, "uniqueItems": True},
        ),
    )

    @model_validator(mode="after")
    def _one_change_per_header(self) -> HeaderChanges:
        if not (self.set or self.add or self.remove):
            raise ValueError("give set, add or remove, with at least one header")
        seen: dict[str, str] = {}
        problems = []
        changes = (("set", self.set or {}), ("add", self.add or {}), ("remove", self.remove or []))
        for kind, names in changes:
            for name in names:
                if name in PROXY_OWNED_HEADERS:
                    hint = " (rewrite.authority changes it)" if name == "host" else ""
                    problems.append(
                        f"{kind} {name!r}: {name} {PROXY_OWNED_HEADERS[name]}, so the proxies "
                        f"own it and a route cannot change it{hint}"
                    )
                elif name in seen and seen[name] != kind:
                    problems.append(
                        f"{name!r} is both in {seen[name]} and in {kind}: give a header one change"
                    )
                elif name in seen:
                    problems.append(f"{name!r} is removed twice: list it once")
                seen.setdefault(name, kind)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _changed_names(changes: HeaderChanges | None) -> set[str]:
    if changes is None:
        return set()
    return {*(changes.set or {}), *(changes.add or {}), *(changes.remove or [])}


class Headers(SpecModel):
    """Header changes of a route: on the request before it is forwarded, on the answer on its way
    back."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    request: HeaderChanges | None = Field(
        default=None,
        description="Changes to the request's headers, made before it is forwarded (and before "
        "a mirror copies it).",
        examples=[{"set": {"x-canary": "true"}, "remove": ["x-debug"]}],
        json_schema_extra=planes(
            istio="`headers.request` of the rule.",
            builtin="`http-request del-header`, `set-header`, `add-header` once the route is "
            "picked, before the mirror's copy.",
        ),
    )
    response: HeaderChanges | None = Field(
        default=None,
        description="Changes to the headers of the app's answer. Answers the proxy makes itself "
        "(a fault's abort, a timeout's 504) are left alone, as Envoy leaves its local replies.",
        examples=[{"add": {"cache-control": "no-store"}}],
        json_schema_extra=planes(
            istio="`headers.response` of the rule.",
            builtin="`http-response del-header`, `set-header`, `add-header`: HAProxy runs "
            "`http-response` rules on a server's answers only. A `perTryTimeout`'s 504 comes "
            "from the listener that makes the attempts, so it does get the changes.",
        ),
    )

    @model_validator(mode="after")
    def _something_to_change(self) -> Headers:
        if self.request is None and self.response is None:
            raise ValueError("give request, response or both")
        return self


# RFC 3986 path characters (unreserved, sub-delims, `:`, `@`, `/` and percent-escapes): what a
# rewritten path may hold. No `?` or `#` (the query is kept), no backslash (a group reference in both
# Envoy's and HAProxy's replacement text), no space.
_PATH_CHARS = r"A-Za-z0-9\-._~!$&'()*+,;=:@/%"
_REWRITE_PATH = re.compile(rf"/[{_PATH_CHARS}]*")
# A replacement: path characters and group references \1 to \9.
_REPLACEMENT = re.compile(rf"/(?:[{_PATH_CHARS}]|\\[1-9])*")
_GROUP_REF = re.compile(r"\\([1-9])")
# An authority: a DNS name or IPv4 address, optionally with a port.
_AUTHORITY = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_rewrite_path(value: str) -> str:
    if not _REWRITE_PATH.fullmatch(value):
        raise ValueError(
            f"{value!r} cannot be a path: start with '/' and use letters, digits and "
            "- . _ ~ ! $ & ' ( ) * + , ; = : @ / % (no spaces, '?', '#' or '\\')"
        )
    return value


def check_authority(value: str) -> str:
    if not _AUTHORITY.fullmatch(value) or len(value) > 253:
        raise ValueError(
            f"{value!r} is not an authority: use a host name such as 'api.example.com', "
            "optionally with a port ('api.example.com:8080')"
        )
    return value


RewritePath = Annotated[
    str,
    AfterValidator(check_rewrite_path),
    WithJsonSchema({"type": "string", "pattern": f"^(?:{_REWRITE_PATH.pattern})$"}),
]
Authority = Annotated[
    str,
    AfterValidator(check_authority),
    WithJsonSchema({"type": "string", "pattern": f"^(?:{_AUTHORITY.pattern})$", "maxLength": 253}),
]


class RegexRewrite(SpecModel):
    """Replace a path that the regular expression matches as a whole."""

    match: str = Field(
        description="A regular expression in RE2 syntax that must match the whole path (without "
        "the query string); a path it does not match is left as it is.",
        examples=["/api/v[0-9]+/(.*)"],
        json_schema_extra=planes(
            istio="`uriRegexRewrite.match`, as `^(?:<match>)$` so Envoy replaces the whole path "
            "once.",
            builtin="`replace-path` on `^(?:<match>)$`, refused like a match's regex when "
            "HAProxy's matcher could stall on it.",
        ),
    )
    rewrite: str = Field(
        description="The new path: path characters, with `\\1` to `\\9` for the groups of "
        "`match`. The query string is kept.",
        examples=["/\\1"],
        json_schema_extra=planes(
            istio="`uriRegexRewrite.rewrite`.",
            builtin="The replacement of `replace-path` (a `%` is written `%%`).",
            schema={"pattern": f"^(?:{_REPLACEMENT.pattern})$"},
        ),
    )

    @field_validator("match")
    @classmethod
    def _valid_re2(cls, value: str) -> str:
        if _CONTROL.search(value):
            raise ValueError(
                f"{value!r} contains a control character (such as a newline, tab or NUL), "
                "which no path holds"
            )
        return check_re2(value)

    @field_validator("rewrite")
    @classmethod
    def _path_with_groups(cls, value: str) -> str:
        if not _REPLACEMENT.fullmatch(value):
            raise ValueError(
                f"{value!r} cannot be a new path: start with '/', and use path characters and "
                "the groups \\1 to \\9 (no spaces, '?' or '#')"
            )
        return value

    @model_validator(mode="after")
    def _groups_exist(self) -> RegexRewrite:
        groups = re2_groups(self.match)
        for found in _GROUP_REF.findall(self.rewrite):
            if int(found) > groups:
                raise ValueError(
                    f"rewrite refers to group \\{found}, and match has {groups} "
                    f"group{'s' if groups != 1 else ''}"
                )
        return self


class Rewrite(SpecModel):
    """Change the request's path or authority before it is forwarded."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    uri: RewritePath | None = Field(
        default=None,
        description="Replace the path prefix the route matched (the whole path, for an exact "
        "path) with this, keeping the rest and the query string. Every alternative of the "
        "route's `match` needs a `path` prefix or exact path.",
        examples=["/v2/"],
        json_schema_extra=planes(
            istio="`rewrite.uri` (Envoy's prefix rewrite); in the gateway's rules, where the "
            "ingress route may narrow the path, `uriRegexRewrite` on the route's own prefix.",
            builtin="`replace-path` of the prefix of the alternative that matched, `set-path` "
            "for an exact path.",
        ),
    )
    uri_regex_rewrite: RegexRewrite | None = Field(
        default=None,
        description="Replace the path by a regular expression and a replacement. Not with `uri`.",
        examples=[{"match": "/api/v[0-9]+/(.*)", "rewrite": "/\\1"}],
        json_schema_extra=planes(
            istio="`rewrite.uriRegexRewrite`.",
            builtin="`replace-path`.",
        ),
    )
    authority: Authority | None = Field(
        default=None,
        description="The Host (authority) the request is forwarded with; routing already "
        "happened, so this does not change where it goes.",
        examples=["users.internal"],
        json_schema_extra=planes(
            istio="`rewrite.authority`.",
            builtin="`set-header host`; a mirror's copy then carries `<authority>-shadow`.",
        ),
    )

    @model_validator(mode="after")
    def _one_path_change(self) -> Rewrite:
        if self.uri is not None and self.uri_regex_rewrite is not None:
            raise ValueError("give uri or uriRegexRewrite, not both: each replaces the path")
        if self.uri is None and self.uri_regex_rewrite is None and self.authority is None:
            raise ValueError("give uri, uriRegexRewrite or authority")
        return self


REDIRECT_CODES = (301, 302, 303, 307, 308)
# Envoy's default limit on a direct response's body is 4 KiB; a line of haproxy.cfg holds less.
MAX_BODY_BYTES = 1024


class Redirect(SpecModel):
    """Answer with a redirect to a URL made from the request's, with the parts given replaced."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    uri: RewritePath | None = Field(
        default=None,
        description="The path of the new URL (the whole path; the query string is kept). "
        "Default: the request's path.",
        examples=["/v2/login"],
        json_schema_extra=planes(
            istio="`redirect.uri`.",
            builtin="The path of `http-request redirect location`.",
        ),
    )
    authority: Authority | None = Field(
        default=None,
        description="The host (and port) of the new URL. Default: the request's Host.",
        examples=["login.example.com"],
        json_schema_extra=planes(
            istio="`redirect.authority`.",
            builtin="The host of `http-request redirect location`.",
        ),
    )
    scheme: Literal["http", "https"] | None = Field(
        default=None,
        description="`http` or `https`. Default: the request's scheme.",
        examples=["https"],
        json_schema_extra=planes(
            istio="`redirect.scheme`.",
            builtin="The scheme of `http-request redirect location`.",
        ),
    )
    port: Port | None = Field(
        default=None,
        description="The port of the new URL, replacing any the host has. Default: the "
        "request's Host port, if any.",
        examples=[8443],
        json_schema_extra=planes(
            istio="`redirect.port`.",
            builtin="The port of `http-request redirect location`.",
        ),
    )
    code: int = Field(
        default=301,
        description="The redirect status: 301, 302, 303, 307 or 308. Default: 301, as Istio's.",
        examples=[302],
        json_schema_extra=planes(
            istio="`redirect.redirectCode`.",
            builtin="`code` of `http-request redirect`.",
            schema={"enum": list(REDIRECT_CODES)},
        ),
    )

    @field_validator("code")
    @classmethod
    def _redirect_code(cls, value: int) -> int:
        if value not in REDIRECT_CODES:
            raise ValueError(
                f"{value} is not a redirect status: use {', '.join(map(str, REDIRECT_CODES))}"
            )
        return value

    @model_validator(mode="after")
    def _changes_something(self) -> Redirect:
        if (
            self.uri is None
            and self.authority is None
            and self.scheme is None
            and self.port is None
        ):
            raise ValueError(
                "a redirect to the same URL loops: give uri, authority, scheme or port"
            )
        return self


class Respond(SpecModel):
    """Answer the request at once with a fixed status and body."""

    status: int = Field(
        description="The HTTP status, from 200 to 599.",
        examples=[503],
        json_schema_extra=planes(
            istio="`directResponse.status`.",
            builtin="`http-request return status`.",
            schema={"minimum": 200, "maximum": 599},
        ),
    )
    body: str | None = Field(
        default=None,
        description="The answer's text, sent as `text/plain`; at most 1024 bytes, no control "
        "characters. Default: no body.",
        examples=["down for maintenance"],
        json_schema_extra=planes(
            istio="`directResponse.body.string`.",
            builtin="`content-type text/plain string` of `http-request return`.",
        ),
    )

    @field_validator("status")
    @classmethod
    def _http_status(cls, value: int) -> int:
        if not 200 <= value <= 599:
            raise ValueError(f"{value} is not an HTTP status to answer with: use 200 to 599")
        return value

    @field_validator("body")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if _CONTROL.search(value):
            raise ValueError(
                f"{shown(value)} contains a control character (such as a newline or tab): "
                "write the body on one line"
            )
        if len(value.encode()) > MAX_BODY_BYTES:
            raise ValueError(
                f"is {len(value.encode())} bytes long: a body may have at most {MAX_BODY_BYTES}"
            )
        return value

    @model_validator(mode="after")
    def _body_allowed(self) -> Respond:
        if self.body is not None and self.status in (204, 304):
            raise ValueError(f"a {self.status} answer has no body: remove body")
        return self


# A method in a CORS list: an RFC 9110 token without `*` (Envoy reads a lone `*` as "echo the
# request's method", which the list form cannot say unambiguously) and without `,` (the join).
_CORS_METHOD = re.compile(r"[A-Za-z0-9!#$%&'+.^_`|~-]+")


def _check_cors_method(value: str) -> str:
    if not _CORS_METHOD.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an HTTP method: use a method name such as GET or POST (no '*' "
            "or ',')"
        )
    return value


CorsMethod = Annotated[
    str,
    AfterValidator(_check_cors_method),
    WithJsonSchema({"type": "string", "pattern": f"^(?:{_CORS_METHOD.pattern})$"}),
]


class Cors(SpecModel):
    """Cross-origin resource sharing for the route: which web origins may call it from a
    browser. The proxy answers preflights itself, as Envoy's CORS filter does."""

    allow_origins: list[StringMatch] = Field(
        min_length=1,
        description="The origins allowed, each `exact`, `prefix` or `regex` (RE2, the whole "
        "origin); a plain string is `exact`. A request whose `Origin` none of them matches gets "
        "no CORS headers, and its preflight is forwarded to the app. As in Envoy, an entry that "
        "matches the text `*` (such as `exact: '*'`) allows every origin.",
        examples=[[{"exact": "https://shop.example.com"}, {"regex": "https://.*[.]example[.]org"}]],
        json_schema_extra=planes(
            istio="`corsPolicy.allowOrigins`.",
            builtin="ACLs on the request's `Origin` once the route is picked (`-m str`, `-m beg`, "
            "`-m reg` on `^(?:<regex>)$`); regexes HAProxy's matcher could stall on are refused "
            "as in a match.",
        ),
    )
    allow_methods: list[CorsMethod] | None = Field(
        default=None,
        min_length=1,
        description="The methods a preflight allows, sent joined by `,`. Default: no "
        "`access-control-allow-methods` header.",
        examples=[["GET", "POST"]],
        json_schema_extra=planes(
            istio="`corsPolicy.allowMethods`.",
            builtin="`access-control-allow-methods` of the preflight answer.",
        ),
    )
    allow_headers: list[HeaderName] | None = Field(
        default=None,
        min_length=1,
        description="The request headers a preflight allows, lowercase, sent joined by `,`. "
        "Default: no `access-control-allow-headers` header.",
        examples=[["content-type", "authorization"]],
        json_schema_extra=planes(
            istio="`corsPolicy.allowHeaders`.",
            builtin="`access-control-allow-headers` of the preflight answer.",
        ),
    )
    expose_headers: list[HeaderName] | None = Field(
        default=None,
        min_length=1,
        description="The answer headers a browser lets the page read, lowercase, sent joined "
        "by `,` on every answer to an allowed origin. Default: none.",
        examples=[["x-request-id"]],
        json_schema_extra=planes(
            istio="`corsPolicy.exposeHeaders`.",
            builtin="`access-control-expose-headers`, set by `http-after-response` on every "
            "answer to an allowed origin.",
        ),
    )
    max_age: Duration | None = Field(
        default=None,
        description="How long a browser may cache a preflight's answer: whole seconds, such as "
        "`1h`. Default: no `access-control-max-age` header (the browser's own default).",
        examples=["1h"],
        json_schema_extra=planes(
            istio="`corsPolicy.maxAge`: Envoy sends it in seconds.",
            builtin="`access-control-max-age` of the preflight answer, in seconds.",
        ),
    )
    allow_credentials: bool | None = Field(
        default=None,
        description="Whether the browser may send cookies and credentials: `true` sends "
        "`access-control-allow-credentials: true` to allowed origins. Default: not sent.",
        examples=[True],
        json_schema_extra=planes(
            istio="`corsPolicy.allowCredentials`.",
            builtin="`access-control-allow-credentials: true` on the preflight answer and "
            "every answer to an allowed origin.",
        ),
    )

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, value: list[StringMatch]) -> list[StringMatch]:
        for origin in value:
            if origin.kind == "exact" and origin.value == "":
                raise ValueError(
                    "an empty exact origin matches no request (a request without an Origin "
                    "is not a CORS request): give the origin, such as 'https://example.com'"
                )
        return value

    @field_validator("max_age")
    @classmethod
    def _whole_seconds(cls, value: Duration | None) -> Duration | None:
        if value is not None and value.ms % 1000 != 0:
            raise ValueError(
                f"{value} is not a whole number of seconds: Istio and browsers take "
                "access-control-max-age in seconds, so write it in seconds, such as "
                f"{max(1, round(value.ms / 1000))}s"
            )
        return value

    @property
    def allows_any_origin(self) -> bool:
        """Whether an entry matches the text `*`: Envoy then allows every origin
        (CorsFilter::isOriginAllowed tries `*` before the request's origin)."""
        for origin in self.allow_origins:
            if origin.kind == "exact" and origin.value == "*":
                return True
            if origin.kind == "prefix" and "*".startswith(origin.value):
                return True
            if origin.kind == "regex" and re2.fullmatch(origin.value, "*") is not None:
                return True
        return False


Weight = Annotated[int, Field(ge=0, le=100)]
MatchList = Annotated[list[Match], Field(min_length=1), BeforeValidator(as_match_list), OneOrList()]


class Route(SpecModel):
    """An ordered routing rule of a service. The first rule whose `match` holds decides."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["to"]},
                {"required": ["split"]},
                {"required": ["redirect"]},
                {"required": ["respond"]},
            ]
        }
    )

    name: DnsLabel | None = Field(
        default=None,
        description="A name for the rule, unique within the service; shown in rendered output.",
        examples=["canary"],
        json_schema_extra=planes(
            istio=(
                "The rule's `name` in the VirtualService (`route-<index>` when not given); in"
                " the gateway's VirtualService it follows the ingress route's name."
            ),
            builtin=(
                "A comment above the rule in the HAProxy config; names the rule's backends "
                "`<service>__<name>__<version>` (`route-<index>` when not given), hence its "
                "Prometheus series, and the access log's `route_name`."
            ),
        ),
    )
    match: MatchList | None = Field(
        default=None,
        description="Alternatives (OR) of request conditions; a single mapping is a list of one. "
        "Default: every request. Not for tcp services.",
        examples=[[{"headers": {"end-user": "jason"}}]],
        json_schema_extra=planes(
            istio="The rule's `match` list (`uri`, `method`, `headers`, `queryParams`).",
            builtin=(
                "HAProxy conditions on `path`, `method`, `req.hdr()` and `url_param()`: ANDed"
                " within an alternative, ORed across alternatives."
            ),
        ),
    )
    to: DnsLabel | None = Field(
        default=None,
        description="Send every matching request to this version. Give `to` or `split`.",
        examples=["v2"],
        json_schema_extra=planes(
            istio="One `route` destination: the service's host and port, subset `<version>`.",
            builtin=(
                "The route's backend: the version's endpoints, found through its headless Service."
            ),
        ),
    )
    split: dict[DnsLabel, Weight] | None = Field(
        default=None,
        description="Spread matching requests over versions by weight: version -> percent "
        "(0-100), adding up to 100. Give `to` or `split`.",
        json_schema_extra=planes(
            istio="Weighted `route` destinations, one per version with a weight above 0.",
            builtin=(
                "One draw from 0 to 99 per request picks a version's backend by cumulative "
                "weight; a version with weight 0 gets no backend."
            ),
            schema={"minProperties": 1},
        ),
        examples=[{"v1": 80, "v2": 20}],
    )
    fault: Fault | None = Field(
        default=None,
        description="Inject delays or errors, for testing resilience. HTTP only.",
        examples=[{"abort": {"status": 503, "percent": 10}}],
        json_schema_extra=planes(
            istio="The rule's `fault`.",
            builtin=(
                "Applied by the caller's proxy before the request is forwarded, with Envoy's "
                "answer texts."
            ),
        ),
    )
    timeout: Duration | None = Field(
        default=None,
        description="How long a request may take before the caller gets a 504, as a duration. "
        "Default: no timeout. HTTP only.",
        examples=["2s"],
        json_schema_extra=planes(
            istio="The rule's `timeout`: the whole request, retries included.",
            builtin=(
                "The route's backend hops through a local socket into a listener that makes "
                "the attempts (each bounded by `perTryTimeout`); the backend's `timeout server` "
                "is the deadline over all of them, so the answer never comes later than the "
                "timeout. An expired timeout answers 504 `upstream request timeout`."
            ),
        ),
    )
    retries: Retries | None = Field(
        default=None,
        description="Retry failed requests. Default: Istio's default policy, a failed "
        "connection is retried twice. HTTP only.",
        examples=[{"attempts": 3, "perTryTimeout": "500ms"}],
        json_schema_extra=planes(
            istio="The rule's `retries`; without it Istio's default retry policy applies.",
            builtin=(
                "`retries` and `retry-on` on the route's backends. Without it, Istio's "
                "default: a failed connection is retried twice, on the next endpoints."
            ),
        ),
    )
    mirror: Mirror | None = Field(
        default=None,
        description="Copy matching requests to another version and drop its answers. HTTP only.",
        examples=[{"to": "v2", "percent": 10}],
        json_schema_extra=planes(
            istio="The rule's `mirror` (subset `<version>`) and `mirrorPercentage`.",
            builtin=(
                "The caller's proxy sends a copy to the version's headless Service from Lua "
                "and drops its answer; the request body is buffered."
            ),
        ),
    )
    headers: Headers | None = Field(
        default=None,
        description="Set, add or remove headers of the request and of the app's answer. HTTP only.",
        examples=[{"request": {"set": {"x-canary": "true"}}, "response": {"remove": ["server"]}}],
        json_schema_extra=planes(
            istio="The rule's `headers`.",
            builtin="Header rules of the caller's proxy, under the condition that this route "
            "was picked.",
        ),
    )
    destination_headers: dict[DnsLabel, Headers] | None = Field(
        default=None,
        description="Header changes for one destination of the route only: version -> "
        "`request` and `response` changes, the shape of `headers`, made when the request goes "
        "to that version (a `to` version or one of the `split` with a weight above 0). A "
        "header takes its changes from `headers` or from here, not both. HTTP only.",
        examples=[{"v2": {"request": {"set": {"x-canary": "true"}}}}],
        json_schema_extra=planes(
            istio="`headers` of the rule's `route` destination of that subset (Istio's "
            "HTTPRouteDestination.headers).",
            builtin="Header rules in the backend of the route's version only, after the "
            "route's own; `http-response` rules there see that version's answers only. "
            "`check` refuses request changes on a route with `mirror` or `mirrors`: the copy "
            "leaves before the version is drawn, and Envoy's copy carries the changes.",
            schema={"minProperties": 1},
        ),
    )
    rewrite: Rewrite | None = Field(
        default=None,
        description="Rewrite the request's path or authority before it is forwarded (and "
        "mirrored). HTTP only.",
        examples=[{"uri": "/v2/"}],
        json_schema_extra=planes(
            istio="The rule's `rewrite`.",
            builtin="Path and Host rules of the caller's proxy once this route is picked, after "
            "the header changes and before the mirror's copy.",
        ),
    )
    mirrors: list[Mirror] | None = Field(
        default=None,
        min_length=1,
        description="Copy matching requests to several versions, each with its own share, and "
        "drop their answers. Instead of `mirror`. HTTP only.",
        examples=[[{"to": "v2", "percent": 10}, {"to": "v3", "percent": 50}]],
        json_schema_extra=planes(
            istio="The rule's `mirrors`: per version a destination (subset `<version>`) and "
            "`percentage`.",
            builtin="A Lua mirror action per version, each with its own draw; each copy keeps "
            "the method, headers and body.",
        ),
    )
    redirect: Redirect | None = Field(
        default=None,
        description="Answer with a redirect instead of forwarding. Instead of `to` or `split`.",
        examples=[{"scheme": "https", "code": 308}],
        json_schema_extra=planes(
            istio="The rule's `redirect`.",
            builtin="`http-request redirect location <url> code <code>` once the route is "
            "picked, after its faults.",
        ),
    )
    respond: Respond | None = Field(
        default=None,
        description="Answer with a fixed status and body instead of forwarding. Instead of `to` "
        "or `split`.",
        examples=[{"status": 503, "body": "down for maintenance"}],
        json_schema_extra=planes(
            istio="The rule's `directResponse`.",
            builtin="`http-request return` once the route is picked, after its faults.",
        ),
    )

    cors: Cors | None = Field(
        default=None,
        description="Answer browsers' cross-origin checks for the route: preflights are answered "
        "by the proxy, and answers to allowed origins carry the CORS headers. HTTP only.",
        examples=[
            {
                "allowOrigins": [{"exact": "https://shop.example.com"}],
                "allowMethods": ["GET", "POST"],
                "allowHeaders": ["content-type"],
                "maxAge": "1h",
            }
        ],
        json_schema_extra=planes(
            istio="The rule's `corsPolicy` (Istio's Envoy answers preflights in its CORS filter, "
            "before faults; an unmatched preflight is forwarded).",
            builtin="Once the route is picked and before its faults, a preflight (`OPTIONS` with "
            "`Origin` and `Access-Control-Request-Method`) from an allowed origin is answered "
            "200 by `http-request return`; `http-after-response` adds "
            "`access-control-allow-origin` (the request's origin), credentials and expose "
            "headers to every answer to an allowed origin, the proxy's own included, as "
            "Envoy's filter does.",
        ),
    )

    @field_validator("split")
    @classmethod
    def _weights_sum_to_100(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        if value is not None:
            if not value:
                raise ValueError("a split needs at least one version")
            total = sum(value.values())
            if total != 100:
                raise ValueError(f"weights add up to {total}, they must add up to 100")
        return value

    @model_validator(mode="after")
    def _one_destination(self) -> Route:
        answers = [key for key in ("redirect", "respond") if getattr(self, key) is not None]
        if self.to is None and self.split is None and not answers:
            raise ValueError(
                "a route needs a destination: `to: <version>` or a `split`, or an answer: "
                "`redirect` or `respond`"
            )
        if self.to is not None and self.split is not None:
            raise ValueError("give either `to` or `split`, not both")
        if len(answers) == 2:
            raise ValueError("give either `redirect` or `respond`, not both")
        if answers and (self.to is not None or self.split is not None):
            destination = "to" if self.to is not None else "split"
            raise ValueError(
                f"`{answers[0]}` answers the request itself, so `{destination}` would never be "
                f"used: give one of them"
            )
        return self

    @field_validator("destination_headers")
    @classmethod
    def _some_destination(cls, value: dict[str, Headers] | None) -> dict[str, Headers] | None:
        if value is not None and not value:
            raise ValueError("give at least one version, or remove destinationHeaders")
        return value

    @model_validator(mode="after")
    def _one_mirror_field(self) -> Route:
        if self.mirror is not None and self.mirrors is not None:
            raise ValueError("give mirror or mirrors, not both")
        seen = [m.to for m in self.mirrors or []]
        for version in seen:
            if seen.count(version) > 1:
                raise ValueError(f"mirrors copies to {version!r} twice: list each version once")
        return self

    @property
    def copies(self) -> list[Mirror]:
        """Every mirror of the route: `mirrors`, or the one `mirror`."""
        if self.mirrors is not None:
            return list(self.mirrors)
        return [self.mirror] if self.mirror is not None else []

    @property
    def answer(self) -> str | None:
        """`redirect` or `respond` when the route answers itself instead of forwarding."""
        if self.redirect is not None:
            return "redirect"
        if self.respond is not None:
            return "respond"
        return None

    @property
    def is_catch_all(self) -> bool:
        return self.match is None or any(m.is_catch_all for m in self.match)

    @property
    def weights(self) -> dict[str, int]:
        """Where the route sends requests, as version -> percent (a `to` route is 100%)."""
        if self.to is not None:
            return {self.to: 100}
        return dict(self.split or {})


# What acts on a forwarded request or its answer: nothing, on a route that answers itself.
_FORWARDING_FIELDS = ("timeout", "retries", "mirror", "mirrors", "headers", "rewrite")


def route_problems(route_at: str, route: Route) -> list[Problem]:
    """What spans a route's fields: a prefix rewrite needs a path prefix to replace; a route
    that answers itself forwards nothing to time, retry, mirror, rewrite or change headers of."""
    problems = []
    if route.answer is not None:
        problems += [
            Problem(
                f"{route_at}.{key}",
                f"{key} acts on a forwarded request, and this route answers itself "
                f"({route.answer}): remove {key}",
            )
            for key in _FORWARDING_FIELDS
            if getattr(route, key) is not None
        ]
    problems += _destination_header_problems(route_at, route)
    if route.rewrite is not None and route.rewrite.uri is not None:
        without = [
            number
            for number, match in enumerate(route.match or [Match()])
            if match.path is None or match.path.kind == "regex"
        ]
        if without:
            problems.append(
                Problem(
                    f"{route_at}.rewrite.uri",
                    "uri replaces the path prefix the route matched, and match"
                    + ("" if route.match is None else f"[{without[0]}]")
                    + " has no path prefix or exact path: give every alternative one, or use "
                    "uriRegexRewrite",
                )
            )
    return problems


def _destination_header_problems(route_at: str, route: Route) -> list[Problem]:
    """Each version of destinationHeaders receives the route's requests, and a header takes its
    changes from the route or from the destination: Envoy applies the two lists in an order that
    differs between one destination and a split, so sailplan keeps them apart."""
    problems = []
    destinations = [version for version, weight in route.weights.items() if weight > 0]
    for version, changes in (route.destination_headers or {}).items():
        at = f"{route_at}.destinationHeaders.{version}"
        if version not in destinations:
            problems.append(
                Problem(
                    at,
                    f"{version!r} is not a destination of this route: name a version of `to`, "
                    "or of `split` with a weight above 0",
                )
            )
            continue
        for direction in ("request", "response"):
            own = _changed_names(getattr(route.headers, direction, None))
            theirs = _changed_names(getattr(changes, direction))
            problems += [
                Problem(
                    f"{at}.{direction}",
                    f"{name!r} is changed by the route's headers.{direction} too: give a "
                    "header one change, on the route or on the destination",
                )
                for name in sorted(own & theirs)
            ]
    return problems


def folded_prefix_rewrite(route: Route, folded: list[Match]) -> str | None:
    """How Istio's gateway rule can rewrite the prefix of `route` once an ingress route narrowed
    its alternatives to `folded`: "uri" when every folded path is one of the route's own (Envoy
    replaces the matched prefix, so it must be the route's), "regex" when the route has one
    alternative (its own prefix, replaced by a regex), None when neither can say it."""
    own = {(m.path.kind, m.path.value) for m in route.match or [] if m.path is not None}
    if all(m.path is not None and (m.path.kind, m.path.value) in own for m in folded):
        return "uri"
    if len(own) == 1:
        return "regex"
    return None
