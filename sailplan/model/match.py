"""Request matching: which requests a route applies to."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import re2
from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from sailplan.model.base import HeaderName, SpecModel, planes

# Lookaround and backreferences: what users most often bring from other engines; named in the
# problem, as RE2's own message ("invalid perl operator") does not say what to do.
_NON_RE2 = re.compile(r"\(\?<?[=!]|\\[1-9]")
# HAProxy's PCRE2 refuses what RE2 takes past these: parentheses nested over 250 deep, and
# patterns that compile too large (a 70,000-character one). Envoy bounds a regex's program size
# too; no route needs more.
MAX_REGEX_LENGTH = 1024
MAX_REGEX_NESTING = 50
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the problem reports the error; RE2 would also print it to stderr
# C0 controls and DEL: no request carries them in a path, header or query, and a newline or NUL
# has no place in a proxy config.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What a request target carries unencoded (HAProxy answers 400 to anything else); a path ends
# at `?`, a query value at `&` (and `;` for HAProxy's url_param), `#` never reaches the proxy,
# and url_param does not find a value holding a `?`.
_PATH_TEXT = re.compile(r"[!-~]*")
_PATH_STOPS = "?#"
_QUERY_STOPS = "#&;?"
# Query parameter names: RFC 9110 token characters without `#`, `$`, `'` (HAProxy syntax) and
# `&` (the parameter separator).
_QUERY_NAME = re.compile(r"[A-Za-z0-9!%*+.^_`|~-]+")
_METHOD_TEXT = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]*")
# HAProxy reads at most 64 words on a line: a match's conditions share one rule line.
MAX_CONDITIONS = 32


def check_query_name(value: str) -> str:
    if not _QUERY_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid query parameter name: use letters, digits and "
            "- _ . ~ ! * + ^ ` | %"
        )
    return value


QueryName = Annotated[str, AfterValidator(check_query_name)]


def _nesting(pattern: str) -> int:
    """How deep the pattern's groups nest (escapes and character classes skipped)."""
    depth = deepest = 0
    index, in_class = 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[index + 1 : index + 2] == "]":
                index += 1  # a leading `]` is a literal inside the class
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
        index += 1
    return deepest


def check_re2(value: str) -> str:
    """RE2 is Envoy's engine: accept exactly what Istio accepts, within the bounds HAProxy's PCRE2
    compiles too."""
    if len(value) > MAX_REGEX_LENGTH:
        raise ValueError(
            f"is {len(value)} characters long: a regular expression may have at most "
            f"{MAX_REGEX_LENGTH}"
        )
    if _nesting(value) > MAX_REGEX_NESTING:
        raise ValueError(
            f"nests groups {_nesting(value)} deep: a regular expression may nest at most "
            f"{MAX_REGEX_NESTING}"
        )
    try:
        re2.compile(value, _RE2_OPTIONS)
    except re2.error as error:
        if _NON_RE2.search(value):
            raise ValueError(
                f"{value!r} uses lookaround or a backreference, which RE2 (Envoy) does not support"
            ) from None
        reason = error.args[0]
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(
            f"{value!r} is not a valid regular expression (RE2 syntax): {reason}"
        ) from None
    return value


def re2_groups(value: str) -> int:
    """How many capturing groups a valid RE2 pattern has."""
    return int(re2.compile(value, _RE2_OPTIONS).groups)


HTTP_METHODS = ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")


def _string_or_one_kind(schema: dict[str, Any]) -> None:
    """JSON Schema of a StringMatch as the validator reads it: a plain string, or a mapping with
    exactly one of exact, prefix or regex."""
    mapping = {key: schema.pop(key) for key in ("type", "properties", "additionalProperties")}
    schema["anyOf"] = [{"type": "string"}, {**mapping, "minProperties": 1, "maxProperties": 1}]


def _exact_and_prefix(rule: dict[str, Any], kinds: tuple[str, ...]) -> dict[str, Any]:
    """JSON Schema that holds when the given kinds of a StringMatch (a plain string is `exact`)
    satisfy `rule`."""
    return {
        "if": {"type": "string"},
        "then": rule,
        "else": {"properties": dict.fromkeys(kinds, rule)},
    }


class StringMatch(SpecModel):
    """Exactly one of `exact`, `prefix` or `regex`; a plain string means `exact`."""

    model_config = ConfigDict(json_schema_extra=_string_or_one_kind)

    exact: str | None = Field(
        default=None,
        description="The whole value equals this text.",
        examples=["/api/users"],
        json_schema_extra=planes(istio="`exact`.", builtin="HAProxy's `-m str`."),
    )
    prefix: str | None = Field(
        default=None,
        description="The value starts with this text.",
        examples=["/api/"],
        json_schema_extra=planes(istio="`prefix`.", builtin="HAProxy's `-m beg`."),
    )
    regex: str | None = Field(
        default=None,
        description="The whole value matches this regular expression, in RE2 syntax (no "
        "lookaround, no backreferences), at most 1024 characters and 50 nested groups.",
        examples=["^/api/v[0-9]+/.*$"],
        json_schema_extra=planes(
            istio="`regex`: Envoy matches the whole value.",
            builtin="HAProxy's `-m reg` on `^(?:<regex>)$`: the whole value, as on istio. "
            "HAProxy's matcher backtracks, so patterns that could take it super-linear time "
            "(a repeated part of varying length, repeated alternatives that start alike, two "
            "repetitions of the same characters in a row) are refused, with a rewrite hint.",
            schema={"maxLength": MAX_REGEX_LENGTH},
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _plain_string_is_exact(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"exact": value}
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> StringMatch:
        given = [kind for kind in ("exact", "prefix", "regex") if getattr(self, kind) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(f"give exactly one of exact, prefix or regex (found: {found})")
        return self

    @field_validator("exact", "prefix", "regex")
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        if value is not None and _CONTROL.search(value):
            raise ValueError(
                f"{value!r} contains a control character (such as a newline, tab or NUL), "
                "which no request can match"
            )
        return value

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        return None if value is None else check_re2(value)

    @property
    def kind(self) -> Literal["exact", "prefix", "regex", "present"]:
        """`present` only for a header's `{}`: the header is there, with any value."""
        if self.exact is not None:
            return "exact"
        if self.prefix is not None:
            return "prefix"
        if self.regex is not None:
            return "regex"
        return "present"

    @property
    def value(self) -> str:
        return next((v for v in (self.exact, self.prefix, self.regex) if v is not None), "")

    @model_serializer(mode="plain")
    def _one_key(self) -> dict[str, str]:
        return {} if self.kind == "present" else {self.kind: self.value}

    def matches_empty(self) -> bool:
        """Whether an empty value matches (Envoy reads a missing header as empty in
        `withoutHeaders`)."""
        if self.kind == "regex":
            return re2.fullmatch(self.value, "") is not None
        return self.kind == "prefix" or (self.kind == "exact" and self.value == "")

    def describe(self) -> str:
        if self.kind == "exact":
            return self.value
        if self.kind == "prefix":
            return f"{self.value}*"
        if self.kind == "present":
            return "present"
        return f"~{self.value}"


def _string_or_at_most_one_kind(schema: dict[str, Any]) -> None:
    """JSON Schema of a HeaderMatch: a plain string, or a mapping with at most one of exact,
    prefix or regex (`{}`: the header is present)."""
    mapping = {key: schema.pop(key) for key in ("type", "properties", "additionalProperties")}
    schema["anyOf"] = [{"type": "string"}, {**mapping, "maxProperties": 1}]


class HeaderMatch(StringMatch):
    """At most one of `exact`, `prefix` or `regex`; a plain string means `exact`, `{}` that the
    header is present with any value."""

    model_config = ConfigDict(json_schema_extra=_string_or_at_most_one_kind)

    @model_validator(mode="after")
    def _exactly_one(self) -> HeaderMatch:
        given = [kind for kind in ("exact", "prefix", "regex") if getattr(self, kind) is not None]
        if len(given) > 1:
            raise ValueError(
                f"give at most one of exact, prefix or regex (found: {', '.join(given)}); "
                "{} means the header is present"
            )
        return self


def _check_header_value(match: HeaderMatch) -> HeaderMatch:
    if match.kind in ("exact", "prefix") and match.value != match.value.strip(" "):
        raise ValueError(
            f"{match.value!r} starts or ends with a space, which HTTP strips from every header "
            "value, so no request could match"
        )
    return match


def _check_query_value(match: StringMatch) -> StringMatch:
    text = match.value
    if match.kind != "regex" and (
        not _PATH_TEXT.fullmatch(text) or any(c in text for c in _QUERY_STOPS)
    ):
        raise ValueError(
            f"{text!r} cannot be a query value: use printable ASCII without spaces, '#', '&', ';' "
            "or '?', and percent-encode the rest (a space is %20)"
        )
    return match


HeaderValueMatch = Annotated[HeaderMatch, AfterValidator(_check_header_value)]
QueryValueMatch = Annotated[StringMatch, AfterValidator(_check_query_value)]


class Match(SpecModel):
    """One alternative: every field given must hold (AND). A route's `match` is a list of these (OR)."""

    path: StringMatch | None = Field(
        default=None,
        description="The request path, without the query string. An exact or prefix path starts "
        "with `/`.",
        json_schema_extra=planes(
            istio="`uri` of the match.",
            builtin="A condition on HAProxy's `path`.",
            schema=_exact_and_prefix({"pattern": "^/"}, ("exact", "prefix")),
        ),
        examples=[{"prefix": "/api/"}],
    )
    headers: dict[HeaderName, HeaderValueMatch] | None = Field(
        default=None,
        description="Request headers by lowercase name; each must be present and match. `{}` "
        "asks only that the header is present.",
        examples=[{"end-user": "jason", "x-canary": {}}],
        json_schema_extra=planes(
            istio="`headers` of the match (`{}`: Envoy's present match).",
            builtin="A condition on `req.fhdr(<name>)` per header: the whole value as sent, "
            "so `exact: jason` does not match `bob, jason`, as on istio; `{}` is `-m found`.",
        ),
    )
    without_headers: dict[HeaderName, HeaderValueMatch] | None = Field(
        default=None,
        description="Request headers by lowercase name that must NOT match: `{}` holds when the "
        "header is absent; a value condition holds when the header's value does not match it, "
        "a missing header counting as an empty value (as Istio has Envoy read it).",
        examples=[{"x-debug": {}, "end-user": "jason"}],
        json_schema_extra=planes(
            istio="`withoutHeaders` of the match.",
            builtin="The negated condition on `req.fhdr(<name>)`; when the condition matches "
            "an empty value, also that the header is present.",
        ),
    )
    method: StringMatch | None = Field(
        default=None,
        description="The HTTP method, such as `GET`; an exact method is upper case.",
        json_schema_extra=planes(
            istio="`method` of the match.",
            builtin="A condition on HAProxy's `method`.",
            schema=_exact_and_prefix({"enum": list(HTTP_METHODS)}, ("exact",)),
        ),
        examples=["POST"],
    )
    query: dict[QueryName, QueryValueMatch] | None = Field(
        default=None,
        description="Query parameters by name; each must be present and match.",
        examples=[{"debug": "1"}],
        json_schema_extra=planes(
            istio="`queryParams` of the match.",
            builtin="A condition on `url_param(<name>)` per parameter.",
        ),
    )
    # None, not False, when not given: a mesh's YAML form keeps only what was written.
    ignore_uri_case: bool | None = Field(
        default=None,
        description="Match an exact or prefix `path` without regard to ASCII letter case. "
        "Default: `false`.",
        examples=[True],
        json_schema_extra=planes(
            istio="`ignoreUriCase` of the match.",
            builtin="HAProxy's `-i` on the path condition.",
        ),
    )

    @field_validator("path")
    @classmethod
    def _path_is_absolute(cls, value: StringMatch | None) -> StringMatch | None:
        if value is None or value.kind == "regex":
            return value
        if not value.value.startswith("/"):
            raise ValueError(f"{value.value!r} must start with '/'")
        if not _PATH_TEXT.fullmatch(value.value) or any(c in value.value for c in _PATH_STOPS):
            raise ValueError(
                f"{value.value!r} cannot be a request path: use printable ASCII without spaces, "
                "'?' or '#', and percent-encode the rest (a space is %20)"
            )
        return value

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: StringMatch | None) -> StringMatch | None:
        if value is not None and value.kind == "exact" and value.value not in HTTP_METHODS:
            raise ValueError(
                f"{value.value!r} is not an HTTP method: use one of {', '.join(HTTP_METHODS)}"
            )
        if value is not None and value.kind == "prefix" and not _METHOD_TEXT.fullmatch(value.value):
            raise ValueError(
                f"{value.value!r} cannot start an HTTP method: use letters, digits and '-'"
            )
        return value

    @model_validator(mode="after")
    def _case_of_a_path(self) -> Match:
        if self.ignore_uri_case and (self.path is None or self.path.kind == "regex"):
            raise ValueError(
                "ignoreUriCase applies to an exact or prefix path only: "
                + (
                    "write the regex case-insensitively, such as (?i)/api/.*"
                    if self.path is not None
                    else "give a path, or remove ignoreUriCase"
                )
            )
        return self

    @model_validator(mode="after")
    def _fits_one_rule(self) -> Match:
        count = len(self.headers or {}) + len(self.query or {}) + len(self.without_headers or {})
        if count > MAX_CONDITIONS:
            raise ValueError(
                f"{count} header and query conditions in one match: use at most {MAX_CONDITIONS}"
            )
        return self

    @property
    def is_catch_all(self) -> bool:
        return not (self.path or self.headers or self.method or self.query or self.without_headers)

    def describe(self) -> str:
        parts = []
        if self.method:
            parts.append(self.method.describe())
        if self.path:
            parts.append(self.path.describe() + (" (any case)" if self.ignore_uri_case else ""))
        for name, header in sorted((self.headers or {}).items()):
            parts.append(f"{name}: {header.describe()}")
        for name, header in sorted((self.without_headers or {}).items()):
            parts.append(f"not {name}: {header.describe()}")
        for name, param in sorted((self.query or {}).items()):
            parts.append(f"?{name}={param.describe()}")
        return " ".join(parts) or "any request"


def as_match_list(value: Any) -> Any:
    """`match:` takes a list of alternatives; a single mapping is a list of one."""
    if isinstance(value, dict):
        return [value]
    return value


class OneOrList:
    """JSON Schema of what `as_match_list` reads: a list, or one item standing for a list of one."""

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        as_list = handler(schema)
        return {"anyOf": [as_list["items"], as_list]}
