"""Problems found in a mesh spec, each with the path it is at and a sentence a person understands."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

# A problem quotes at most this many characters of a rejected value: a 10 MiB string or an alias
# bomb must not turn into megabytes of output.
CLIP = 80

# Tags of the two forms of an env value (text, or a Secret/ConfigMap reference). pydantic puts the
# tag in an error's location; problem paths leave it out. The space keeps a tag from ever equalling
# a key of the file (no name in a mesh file can hold a space).
ENV_TEXT = "env text"
ENV_REFERENCE = "env reference"
_UNION_TAGS = (ENV_TEXT, ENV_REFERENCE)
MESSAGE_LIMIT = 6 * CLIP


def clip(text: str, limit: int = CLIP) -> str:
    """`text`, cut to `limit` characters with an ellipsis when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown(value: Any) -> str:
    """The repr of a rejected value as a problem quotes it: clipped, so never huge."""
    if isinstance(value, str):
        return repr(clip(value))
    if isinstance(value, list | dict | tuple):
        # repr of a shared, alias-expanded structure could be enormous: never build it whole.
        return clip(_bounded_repr(value, CLIP + 1))
    return clip(repr(value))


def _bounded_repr(value: Any, budget: int) -> str:
    """A repr that stops producing text once about `budget` characters are out."""
    if isinstance(value, dict):
        opening, closing = "{", "}"
        items: list[Any] = list(value.items())
    elif isinstance(value, list | tuple):
        opening, closing = ("[", "]") if isinstance(value, list) else ("(", ")")
        items = list(value)
    else:
        return repr(value)[:budget]
    text = opening
    for index, item in enumerate(items):
        if len(text) >= budget:
            return text + "…"
        text += ", " if index else ""
        if isinstance(value, dict):
            key, item = item
            text += _bounded_repr(key, budget - len(text)) + ": "
        text += _bounded_repr(item, budget - len(text))
    return text + closing


@dataclass(frozen=True, order=True)
class Problem:
    """One problem: the YAML path it is at, a sentence, and the file's line for the path (when
    known; not part of equality, so the same problem found twice is reported once)."""

    path: str
    message: str
    line: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # The last guard on output size, whatever a validator quoted: no sentence needs more.
        object.__setattr__(self, "message", clip(self.message, MESSAGE_LIMIT))

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "message": self.message, "line": self.line}


class SpecError(Exception):
    """A mesh spec is invalid. `problems` lists every problem found, in document order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def format_path(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            # A key can be any text the file holds: quote at most CLIP characters of it.
            text += f".{clip(str(part))}" if text else clip(str(part))
    return text


def problems_from_validation_error(error: ValidationError, root: type[BaseModel]) -> list[Problem]:
    """Turn pydantic's errors into problems with YAML paths and plain sentences."""
    problems = []
    for detail in error.errors(include_url=False):
        loc = [part for part in detail["loc"] if part not in _UNION_TAGS]
        if loc and loc[-1] == "[key]":
            # A mapping key (a service or version name) failed: the path ends at the key itself.
            loc = loc[:-1]
        message = _sentence(detail, root, loc)
        if ENV_TEXT in detail["loc"] and detail["type"] == "string_type":
            message = (
                "must be text or a reference such as {secretKeyRef: {name: db, key: password}}, "
                f"got {shown(detail.get('input'))}"
            )
        problems.append(Problem(format_path(loc), message))
    return problems


def _sentence(detail: Any, root: type[BaseModel], loc: list[str | int]) -> str:
    message = _plain_sentence(detail, root, loc)
    given = detail.get("input")
    if isinstance(given, str) and len(given) > CLIP:
        # Validators quote the value with !r: clip it wherever it appears in their sentence.
        message = message.replace(repr(given), repr(clip(given)))
    return message


def _plain_sentence(detail: Any, root: type[BaseModel], loc: list[str | int]) -> str:
    kind = detail["type"]
    ctx = detail.get("ctx") or {}
    given = detail.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(root, loc[:-1])
        message = "unknown key"
        if allowed:
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            if close:
                message += f"; did you mean {close[0]!r}?"
            else:
                message += f"; allowed keys here: {', '.join(allowed)}"
        return message
    if kind == "missing":
        return "is required"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", detail["msg"]))
    if kind == "literal_error":
        return f"{shown(given)} is not allowed: use one of {ctx.get('expected', '')}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number, got {shown(given)}"
    if kind in ("float_type", "float_parsing"):
        return f"must be a number, got {shown(given)}"
    if kind == "string_type":
        return f"must be text, got {shown(given)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping, got {_describe(given)}"
    if kind in ("list_type", "tuple_type"):
        return f"must be a list, got {_describe(given)}"
    if kind in ("too_short",):
        return "must not be empty"
    if kind in ("string_too_short",):
        return "must not be empty"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}, got {shown(given)}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}, got {shown(given)}"
    msg = str(detail["msg"])
    return msg[:1].lower() + msg[1:]


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"the text {shown(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return shown(value)


def _allowed_keys(root: type[BaseModel], loc: list[str | int]) -> list[str]:
    """The keys the model at `loc` accepts, found by walking the type annotations down the path."""
    annotation: Any = root
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    model = _unwrap_model(annotation)
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def _step(annotation: Any, part: str | int) -> Any:
    annotation = _strip(annotation)
    model = _unwrap_model(annotation)
    if model is not None:
        for name, field in model.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (list, tuple) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


def _strip(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            models = [a for a in options if _unwrap_model(a) is not None]
            # Text or a mapping (an env value): the keys a mapping may have are the model's.
            options = models if len(models) == 1 else options
            annotation = options[0] if len(options) == 1 else annotation
            if len(options) != 1:
                return annotation
        else:
            return annotation


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    annotation = _strip(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None
