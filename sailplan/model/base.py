"""The base every spec model shares, and the small value types they are built from."""

from __future__ import annotations

import re
from fractions import Fraction
from functools import total_ordering
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

# The key, in a field's JSON Schema, of what each data plane does with the field: kept next to the
# field so the spec reference (docs/spec.md) is generated from it and cannot miss a field.
DATA_PLANES_KEY = "x-data-planes"


def planes(*, istio: str, builtin: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A field's `json_schema_extra`: what the istio and builtin data planes do with the field,
    plus any JSON Schema keywords its validators need (`schema`)."""
    return {**(schema or {}), DATA_PLANES_KEY: {"istio": istio, "builtin": builtin}}


class SpecModel(BaseModel):
    """Frozen, strict about unknown keys and types, snake_case in Python and camelCase in YAML.

    Strict types: `replicas: "2"` or `replicas: true` is a mistake to point at, not to coerce
    (a quoted number is often a templating slip; true is 1 only to Python)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=True,
    )

    def to_dict(self) -> dict[str, Any]:
        """The YAML-shaped form of this object: camelCase keys, no unset (None) fields."""
        data: dict[str, Any] = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        return data


# A DNS-1123 label; Kubernetes Service names must in addition start with a letter (DNS-1035).
# Every check uses fullmatch: `$` would also accept a value ending in a newline.
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_HOST = re.compile(r"\*|(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# RFC 9110 token characters (lower case), without the three HAProxy reads as syntax in an
# unquoted word: `#` (comment), `$` (environment variable) and `'` (quote).
_HEADER_NAME = re.compile(r"[a-z0-9!%&*+.^_`|~-]+")


def check_label(value: str) -> str:
    if not _LABEL.fullmatch(value) or len(value) > 63:
        raise ValueError(
            f"{value!r} is not a valid name: use lowercase letters, digits and '-', "
            "start and end with a letter or digit, at most 63 characters"
        )
    return value


def check_service_name(value: str) -> str:
    check_label(value)
    if not _DNS1035.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid service name: it must start with a letter")
    return value


def check_host(value: str) -> str:
    if not _HOST.fullmatch(value) or len(value) > 253:
        raise ValueError(
            f"{value!r} is not a valid host: use a DNS name such as 'shop.example.com', "
            "'*.example.com' or '*'"
        )
    return value


def check_env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid environment variable name: use letters, digits and '_', "
            "not starting with a digit"
        )
    return value


def check_header_name(value: str) -> str:
    if not _HEADER_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid header name: use lowercase letters, digits and '-'"
        )
    return value


def _check_percent(value: float) -> float:
    if not 0 <= value <= 100:
        raise ValueError(f"{value:g} is not a percentage: use a number from 0 to 100")
    if 0 < value < 0.0001:
        raise ValueError(f"{value:g} is too small: use 0 or at least 0.0001")
    return value


def _numbers_as_text(value: Any) -> Any:
    # YAML turns `PORT: 8080` into an int; environment values are text, so accept plain numbers.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


# The JSON Schema of each value type says what its validator checks, so editors flag the same
# mistakes; WithJsonSchema changes the schema only, never validation.
def _text(pattern: re.Pattern[str], max_length: int | None = None) -> WithJsonSchema:
    # The validators use fullmatch; a JSON Schema pattern searches, so it is anchored here.
    schema: dict[str, Any] = {"type": "string", "pattern": f"^(?:{pattern.pattern})$"}
    if max_length is not None:
        schema["maxLength"] = max_length
    return WithJsonSchema(schema)


DnsLabel = Annotated[str, AfterValidator(check_label), _text(_LABEL, 63)]
ServiceName = Annotated[str, AfterValidator(check_service_name), _text(_DNS1035, 63)]
Host = Annotated[str, AfterValidator(check_host), _text(_HOST, 253)]
EnvName = Annotated[str, AfterValidator(check_env_name), _text(_ENV_NAME)]
EnvValue = Annotated[
    str, BeforeValidator(_numbers_as_text), WithJsonSchema({"type": ["string", "number"]})
]
HeaderName = Annotated[str, AfterValidator(check_header_name), _text(_HEADER_NAME)]
Percent = Annotated[
    float,
    AfterValidator(_check_percent),
    WithJsonSchema(
        {
            "type": "number",
            "minimum": 0,
            "maximum": 100,
            "not": {"exclusiveMinimum": 0, "exclusiveMaximum": 0.0001},
        }
    ),
]


def _check_port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"{value} is not a valid port: use a number from 1 to 65535")
    return value


Port = Annotated[
    int,
    AfterValidator(_check_port),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 65535}),
]


# Kubernetes' replicas and Istio's counters are 32-bit: a larger number is refused at apply time.
INT32_MAX = 2**31 - 1
# A duration as Go's time.ParseDuration reads it (Istio's CRDs check durations with CEL's
# duration(), which is Go's): one or more decimal numbers, each with a unit, such as `1m30s`.
# [0-9], not \d: \d would take other scripts' digits, which int() then reads.
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_DURATION = re.compile(rf"[+-]?(?:{_DURATION_PART.pattern})+")
# The JSON Schema of a duration: what `Duration.parse` accepts, less zero, signs and durations
# finer than a millisecond (refused after parsing).
# The lookahead asks for a digit other than 0, which refuses zero.
DURATION_PATTERN = rf"^\s*(?=[^1-9]*[1-9])(?:{_DURATION_PART.pattern})+\s*$"
# Each unit in nanoseconds, so a fraction of any unit is exact (Fraction, never float).
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
# HAProxy's timers stop at 2^31-1 ms (about 24.8 days) and refuse a config past it; sums of
# durations (retries, delays) must stay below that too. A day bounds every real timeout.
MAX_DURATION_MS = 24 * 3_600_000
# More digits than any duration up to a day needs: longer numbers are refused before they are
# turned into integers (Python refuses to read integers of more than 4300 digits).
_MAX_DURATION_TEXT = 64
_EXAMPLES = "such as 500ms, 0.5s, 1m30s or 2h"


# Valid duration texts already read (`Duration.parse`), at most this many.
_PARSED_DURATIONS: dict[str, Duration] = {}
_PARSED_DURATIONS_MAX = 10_000


def _rounded(ms: Fraction) -> str:
    """The nearest whole-millisecond duration, for the message that asks for one."""
    return str(Duration(max(1, round(ms))))


@total_ordering
class Duration:
    """A whole number of milliseconds, written as Go and Istio write durations in a mesh file:
    `500ms`, `0.5s`, `1m30s`, `2h`. Printed as one whole number and unit (`1500ms`, `90s`).

    Immutable and ordered, but not a dataclass: pydantic writes a dataclass default into the JSON
    Schema as a mapping (`{"ms": 10000}`), where a duration default must read `10s`."""

    __slots__ = ("ms",)
    ms: int

    def __init__(self, ms: int) -> None:
        object.__setattr__(self, "ms", ms)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Duration is immutable: cannot set {name}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Duration):
            return NotImplemented
        return self.ms == other.ms

    def __lt__(self, other: Duration) -> bool:
        if not isinstance(other, Duration):
            return NotImplemented
        return self.ms < other.ms

    def __hash__(self) -> int:
        return hash(self.ms)

    def __repr__(self) -> str:
        return f"Duration(ms={self.ms})"

    def __reduce__(self) -> tuple[type[Duration], tuple[int]]:
        # copy, deepcopy and pickle rebuild it through __init__, not by setting the slot.
        return (Duration, (self.ms,))

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Go's duration syntax (`0.5s`, `1m30s`, `500ms`), as Istio takes it: at least 1ms, in
        whole milliseconds (Istio refuses finer ones), and at most 24h."""
        # A mesh repeats a few durations (`500ms` in every route's retries): each text is read
        # once. Durations are immutable, so one instance serves every field with that text.
        known = _PARSED_DURATIONS.get(text) if cls is Duration else None
        if known is not None:
            return known
        parsed = cls._parse(text)
        if cls is Duration and len(_PARSED_DURATIONS) < _PARSED_DURATIONS_MAX:
            _PARSED_DURATIONS[text] = parsed
        return parsed

    @classmethod
    def _parse(cls, text: str) -> Duration:
        stripped = text.strip()
        if len(stripped) > _MAX_DURATION_TEXT or not _DURATION.fullmatch(stripped):
            raise ValueError(f"{text!r} is not a duration: write a number with a unit, {_EXAMPLES}")
        total = Fraction(0)
        for number, unit in _DURATION_PART.findall(stripped):
            whole, _, decimals = number.partition(".")
            total += (int(whole or "0") + Fraction(int(decimals or "0"), 10 ** len(decimals))) * (
                _UNIT_NS[unit]
            )
        ms = total / 1_000_000
        if stripped.startswith("-") and total > 0:
            raise ValueError(f"{text!r} is negative: a duration must be at least 1ms")
        if ms < 1:
            raise ValueError(f"{text!r} is too short: a duration must be at least 1ms")
        if ms.denominator != 1:
            raise ValueError(
                f"{text!r} is finer than a millisecond: Istio takes whole milliseconds, "
                f"so write {_rounded(ms)} or another whole number of milliseconds"
            )
        if ms > MAX_DURATION_MS:
            raise ValueError(f"{text!r} is too long: a duration must be at most 24h")
        return cls(int(ms))

    @property
    def seconds(self) -> float:
        return self.ms / 1000

    def __str__(self) -> str:
        for unit in ("h", "m", "s"):
            if self.ms % _UNIT_MS[unit] == 0:
                return f"{self.ms // _UNIT_MS[unit]}{unit}"
        return f"{self.ms}ms"

    @classmethod
    def _validate(cls, value: Any) -> Duration:
        if isinstance(value, Duration):
            return value
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"must be a duration {_EXAMPLES}")
        if not isinstance(value, str):
            raise ValueError(f"{value} has no unit: write {value}s or {value}ms")
        return cls.parse(value)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "examples": ["500ms", "0.5s", "1m30s", "2h"],
        }
