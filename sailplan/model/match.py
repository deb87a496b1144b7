"""Request matching: which requests a route applies to."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
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

# Constructs Envoy's RE2 rejects but Python's `re` accepts: catch them here rather than at apply time.
_NON_RE2 = re.compile(r"\(\?<?[=!]|\\[1-9]")

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
        description="The value matches this regular expression, in RE2 syntax (no lookaround, "
        "no backreferences). Anchor it with `^` and `$` for the same meaning on both data planes.",
        examples=["^/api/v[0-9]+/.*$"],
        json_schema_extra=planes(
            istio="`regex`: Envoy matches the whole value.",
            builtin=(
                "HAProxy's `-m reg`, which matches anywhere in the value: anchor with `^` and"
                " `$` to behave as on istio (known difference D1)."
            ),
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

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"{value!r} is not a valid regular expression: {error}") from None
        if _NON_RE2.search(value):
            raise ValueError(
                f"{value!r} uses lookaround or a backreference, which RE2 (Envoy) does not support"
            )
        return value

    @property
    def kind(self) -> Literal["exact", "prefix", "regex"]:
        if self.exact is not None:
            return "exact"
        if self.prefix is not None:
            return "prefix"
        return "regex"

    @property
    def value(self) -> str:
        return next(v for v in (self.exact, self.prefix, self.regex) if v is not None)

    @model_serializer(mode="plain")
    def _one_key(self) -> dict[str, str]:
        return {self.kind: self.value}

    def describe(self) -> str:
        if self.kind == "exact":
            return self.value
        if self.kind == "prefix":
            return f"{self.value}*"
        return f"~{self.value}"


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
    headers: dict[HeaderName, StringMatch] | None = Field(
        default=None,
        description="Request headers by lowercase name; each must be present and match.",
        examples=[{"end-user": "jason"}],
        json_schema_extra=planes(
            istio="`headers` of the match.",
            builtin="A condition on `req.hdr(<name>)` per header. HAProxy splits a header's "
            "value at commas and compares each part, so `exact: jason` also matches "
            "`bob, jason` (known difference D16).",
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
    query: dict[str, StringMatch] | None = Field(
        default=None,
        description="Query parameters by name; each must be present and match.",
        examples=[{"debug": "1"}],
        json_schema_extra=planes(
            istio="`queryParams` of the match.",
            builtin="A condition on `url_param(<name>)` per parameter.",
        ),
    )

    @field_validator("path")
    @classmethod
    def _path_is_absolute(cls, value: StringMatch | None) -> StringMatch | None:
        if value is not None and value.kind != "regex" and not value.value.startswith("/"):
            raise ValueError(f"{value.value!r} must start with '/'")
        return value

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: StringMatch | None) -> StringMatch | None:
        if value is not None and value.kind == "exact" and value.value not in HTTP_METHODS:
            raise ValueError(
                f"{value.value!r} is not an HTTP method: use one of {', '.join(HTTP_METHODS)}"
            )
        return value

    @property
    def is_catch_all(self) -> bool:
        return not (self.path or self.headers or self.method or self.query)

    def describe(self) -> str:
        parts = []
        if self.method:
            parts.append(self.method.describe())
        if self.path:
            parts.append(self.path.describe())
        for name, header in sorted((self.headers or {}).items()):
            parts.append(f"{name}: {header.describe()}")
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
