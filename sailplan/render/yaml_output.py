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


def object_file_name(manifest: dict[str, Any]) -> str:
    """A file name that depends on the object alone: kind rank, kind, namespace and name.

    No running index, so adding an object adds a file and renames none (`git diff` and `diff -r` on
    rendered output stay minimal). The two-digit kind rank keeps `kubectl apply -f DIR`, which reads
    a directory in name order, applying a Namespace before what lives in it. A namespace is a DNS
    label (no dots), so `<namespace>.<name>` cannot be read two ways.
    """
    from sailplan.render.manifests import KIND_ORDER

    kind = str(manifest.get("kind", "object"))
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    metadata = manifest.get("metadata", {})
    name = str(metadata.get("name", "unnamed"))
    namespace = metadata.get("namespace")
    qualified = f"{namespace}.{name}" if namespace else name
    return f"{rank:02d}-{kind.lower()}-{qualified}.yaml"


# What `render -o` wrote, and may remove when it is stale: these names, and the indexed names of
# earlier versions (`000-kind-name.yaml`), so that upgrading leaves no duplicate objects behind.
RENDERED_FILE_PATTERNS = ("[0-9][0-9]-*.yaml", "[0-9][0-9][0-9]-*.yaml")
