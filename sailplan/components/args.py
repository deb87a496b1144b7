"""Checks the components' argument classes run on construction.

A Pulumi program that passes a wrong value should stop at the line that built the arguments, with
the argument's path and a plain sentence, before anything is registered: not deploy a chart with
`type: Nodeport` and fail minutes later in the cluster.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from typing import Any

import pulumi

from sailplan.model.gateway_api import gateway_class_problem

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_NAME_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class ArgsError(ValueError):
    """A component argument is wrong; the message starts with its path, e.g. `MeshArgs.spec:`."""

    def __init__(self, path: str, sentence: str) -> None:
        super().__init__(f"{path}: {sentence}")
        self.path = path
        self.sentence = sentence


def _described(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def require_bool(path: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ArgsError(path, f"must be True or False, not {_described(value)}")


def require_str(path: str, value: Any, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ArgsError(path, f"must be {what} (a non-empty string), not {_described(value)}")


def require_dict(path: str, value: Any, optional: bool = True) -> None:
    if (value is None and optional) or isinstance(value, dict):
        return
    raise ArgsError(path, f"must be a dict of Helm values, not {_described(value)}")


def require_input_str(path: str, value: Any, what: str) -> None:
    """A plain string is checked now; an Output (e.g. another resource's image digest) at deploy."""
    if isinstance(value, pulumi.Output) or inspect.isawaitable(value):
        return
    if not isinstance(value, str) or not value.strip() or any(ch.isspace() for ch in value):
        raise ArgsError(
            path,
            f"must be {what} (a string without spaces, or a pulumi Output of one), "
            f"not {_described(value)}",
        )


def require_dns_label(path: str, value: Any, what: str) -> None:
    if not isinstance(value, str) or len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise ArgsError(
            path,
            f"{value!r} is not {what}: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters",
        )


def require_name_prefix(path: str, value: Any) -> None:
    if not isinstance(value, str) or not _NAME_PREFIX.fullmatch(value):
        raise ArgsError(
            path,
            f"{value!r} is not a name prefix: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit",
        )


def require_gateway_class(path: str, value: Any) -> None:
    problem = gateway_class_problem(value)
    if problem is not None:
        raise ArgsError(path, problem)


def require_port(path: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ArgsError(path, f"must be a port number from 1 to 65535, not {_described(value)}")


def require_choice(path: str, value: Any, choices: Iterable[str], what: str) -> None:
    allowed = list(choices)
    if value in allowed:
        return
    hint = ""
    if isinstance(value, str):
        close = [choice for choice in allowed if choice.casefold() == value.casefold()]
        if close:
            hint = f" (did you mean {close[0]!r}?)"
    listed = ", ".join(repr(choice) for choice in allowed)
    raise ArgsError(path, f"{value!r} is not {what}: use one of {listed}{hint}")


def require_instance(path: str, value: Any, cls: type, what: str) -> None:
    if value is not None and not isinstance(value, cls):
        raise ArgsError(path, f"must be {what}, not {_described(value)}")
