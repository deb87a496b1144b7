"""The one boundary between spec values and proxy config text.

Every value from a mesh that reaches haproxy.cfg, a map file or a Lua action's arguments goes
through one of these functions. The model refuses bad values first, with the path of the field;
these checks are the last line, so a value that slipped past validation fails the render loudly
instead of becoming config syntax.
"""

from __future__ import annotations

import re

# HAProxy reads a config line by line; C0 controls and DEL are never meaningful in a match value
# and a newline would start a new directive.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Unquoted words HAProxy takes literally: RFC 9110 token characters without `#` (comment),
# `$` (environment expansion) and `'` (quoting); also none of `(),` that end a fetch argument.
_BARE_WORD = re.compile(r"[A-Za-z0-9!%&*+.^_`|~-]+")
_ACL_PART = re.compile(r"[A-Za-z0-9_.:-]+")


class UnsafeValue(ValueError):
    """A spec value that cannot be written into the proxy config as data."""


def quote(text: str) -> str:
    """One HAProxy argument, taken literally: single quotes stop escapes and `$VAR` expansion;
    a single quote inside is closed, escaped and reopened, as in a shell."""
    if _CONTROL.search(text):
        raise UnsafeValue(f"{text!r} contains a control character")
    return "'" + text.replace("'", "'\\''") + "'"


def format_text(text: str) -> str:
    """Spec text as a literal part of a log-format string that also holds `%[...]` samples:
    each `%` doubled. The whole string still goes through `quote`."""
    return text.replace("%", "%%")


def literal_format(text: str) -> str:
    """A log-format argument (`set-header`'s value) that HAProxy sends as the text itself: `%`
    starts a sample expression there (`%[src]`), so each is doubled, then the word is quoted."""
    return quote(format_text(text))


def bare(word: str) -> str:
    """A name written unquoted, such as a header name inside `req.fhdr(...)`."""
    if not _BARE_WORD.fullmatch(word):
        raise UnsafeValue(f"{word!r} is not safe unquoted in a proxy config")
    return word


# A literal argument of a sample fetch or converter, such as `str(...)`, or an ACL pattern: no
# space, quote, `,` or `)` (which end the argument), `#` or `$`. SPIFFE IDs fit.
_FETCH_ARG = re.compile(r"[A-Za-z0-9._~:/@+=-]+")


def fetch_arg(text: str) -> str:
    """A literal written unquoted as a sample fetch's argument or an ACL pattern."""
    if not _FETCH_ARG.fullmatch(text):
        raise UnsafeValue(f"{text!r} is not safe as a literal argument in a proxy config")
    return text


def acl_name(*parts: str) -> str:
    """A named ACL; HAProxy allows letters, digits, `-_.:` in the name."""
    name = ".".join(parts)
    if not _ACL_PART.fullmatch(name):
        raise UnsafeValue(f"{name!r} is not a valid ACL name")
    return name


_NOT_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def ident(*parts: str) -> str:
    """A section name built from spec names: anything outside HAProxy's name characters becomes `_`."""
    # Compiled once: `re.sub` looked the pattern up in re's cache for every part of every name.
    return "__".join([_NOT_NAME.sub("_", part) for part in parts])


# What ends or quotes a sample fetch's argument when HAProxy reads it (after the line's own
# quoting is undone): a backslash escapes each of them there.
_ARG_SYNTAX = re.compile(r"""([\\'",() ])""")


def fetch_text(text: str) -> str:
    """Any text as a sample fetch's argument, such as a cookie name in `req.cook(...)`: escaped
    for the argument parser, then quoted for the line, so `#`, `$`, `'` and `,` are data."""
    return quote(_ARG_SYNTAX.sub(r"\\\1", text))
