"""Golden files: rendered scenarios compared as data, rewritten with `pytest --update-golden`."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from sailplan.render.yaml_output import dump_all


def _diff(expected: Any, actual: Any, path: str = "") -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        lines = []
        for key in sorted(set(expected) | set(actual), key=str):
            at = f"{path}.{key}" if path else str(key)
            if key not in actual:
                lines.append(f"{at}: missing (golden has {expected[key]!r})")
            elif key not in expected:
                lines.append(f"{at}: unexpected {actual[key]!r}")
            else:
                lines += _diff(expected[key], actual[key], at)
        return lines
    if isinstance(expected, list) and isinstance(actual, list):
        lines = []
        if len(expected) != len(actual):
            lines.append(f"{path}: {len(actual)} items, golden has {len(expected)}")
        for index, (e, a) in enumerate(zip(expected, actual, strict=False)):
            lines += _diff(e, a, f"{path}[{index}]")
        return lines
    if expected == actual:
        return []
    if isinstance(expected, str) and isinstance(actual, str) and "\n" in expected + actual:
        # A proxy config inside a ConfigMap: show the changed lines, not two walls of text.
        changed = difflib.unified_diff(
            expected.splitlines(), actual.splitlines(), "golden", "rendered", lineterm="", n=1
        )
        return [f"{path}:", *(f"    {line}" for line in list(changed)[2:])]
    return [f"{path}: {actual!r}, golden has {expected!r}"]


def check_golden(path: Path, manifests: list[dict[str, Any]], update: bool) -> None:
    if update or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_all(manifests), encoding="utf-8")
        return
    golden = [
        doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None
    ]
    differences = _diff(golden, manifests)
    assert not differences, (
        f"{path.name} differs (run `pytest --update-golden` if the change is intended):\n  "
        + "\n  ".join(differences[:40])
    )
