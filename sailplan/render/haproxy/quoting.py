"""The boundary between spec values and proxy config text."""

from __future__ import annotations

import re


def quote(text: str) -> str:
    """One HAProxy argument, taken literally: single quotes stop escapes and `$VAR` expansion;
    a single quote inside is closed, escaped and reopened, as in a shell."""
    return "'" + text.replace("'", "'\\''") + "'"


def ident(*parts: str) -> str:
    """A section name built from spec names: anything outside HAProxy's name characters becomes `_`."""
    return "__".join(re.sub(r"[^A-Za-z0-9_.-]", "_", part) for part in parts)
