"""Serialising manifests the same way every time: sorted keys, block style, no aliases."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _multiline_as_block(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # Proxy configs inside ConfigMaps stay readable in diffs when written as literal blocks.
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _multiline_as_block)


def dump(document: Any) -> str:
    return yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )


def dump_all(documents: Iterable[Any]) -> str:
    return "".join(f"---\n{dump(document)}" for document in documents)


def object_file_name(index: int, manifest: dict[str, Any]) -> str:
    """A stable file name per object: order, kind and name (namespaced objects share a mesh namespace)."""
    kind = str(manifest.get("kind", "object")).lower()
    name = str(manifest.get("metadata", {}).get("name", "unnamed"))
    return f"{index:03d}-{kind}-{name}.yaml"
