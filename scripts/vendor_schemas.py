"""Vendor the facts of CustomResourceDefinition schemas into third_party/schemas/.

Reads CRD YAML streams (files from the upstream project's release) and writes, per CRD, a compact
JSON file with only what validation needs: types, required fields, enums, patterns, formats, bounds,
defaults, CEL rules and the `x-kubernetes-*` markers. Descriptions and other prose are dropped — we
carry the upstream facts, not its documentation text.

    python scripts/vendor_schemas.py SOURCE.yaml [...] third_party/schemas/<family>-<version>/

Istio ships all its CRDs in one file; cert-manager and the Gateway API ship one file per CRD, hence
several sources, all written into one folder.
The output is deterministic (sorted keys, one CRD per file named <plural>.<group>.json), so
re-running it on the same sources changes nothing. The README beside the output names the sources,
their sha256 and this command.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

# Keywords of an OpenAPI v3 schema object that carry prose, not facts.
PROSE_KEYWORDS = frozenset({"description", "example", "externalDocs", "title"})
# Keywords whose value is a map from *names* to schemas: the names are data, never dropped.
SCHEMA_MAPS = frozenset({"properties", "patternProperties", "definitions"})
# Keywords whose value is a schema or a list of schemas.
SCHEMA_VALUED = frozenset({"items", "additionalProperties", "not"})
SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf"})


def facts(schema: Any) -> Any:
    """The schema object `schema` without its prose, recursively."""
    if not isinstance(schema, dict):
        return schema
    kept: dict[str, Any] = {}
    for key, value in schema.items():
        if key in PROSE_KEYWORDS:
            continue
        if key in SCHEMA_MAPS:
            kept[key] = {name: facts(sub) for name, sub in value.items()}
        elif key in SCHEMA_VALUED:
            kept[key] = facts(value)
        elif key in SCHEMA_LISTS:
            kept[key] = [facts(sub) for sub in value]
        elif key == "x-kubernetes-validations":
            # CEL rules are facts; their messages say what a rule means, which tests report.
            kept[key] = [
                {k: v for k, v in rule.items() if k in ("rule", "message", "reason", "fieldPath")}
                for rule in value
            ]
        else:
            kept[key] = value
    return kept


def vendor(source: Path, out_dir: Path) -> list[Path]:
    """Write one JSON file per CRD found in `source`; return the files written."""
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for document in yaml.safe_load_all(source.read_text(encoding="utf-8")):
        if not document or document.get("kind") != "CustomResourceDefinition":
            continue
        spec = document["spec"]
        crd = {
            "group": spec["group"],
            "kind": spec["names"]["kind"],
            "plural": spec["names"]["plural"],
            "scope": spec["scope"],
            "versions": [
                {
                    "name": version["name"],
                    "served": bool(version.get("served")),
                    "storage": bool(version.get("storage")),
                    "openAPIV3Schema": facts(version["schema"]["openAPIV3Schema"]),
                }
                for version in spec["versions"]
            ],
        }
        path = out_dir / f"{spec['names']['plural']}.{spec['group']}.json"
        path.write_text(json.dumps(crd, sort_keys=True, separators=(",", ":")) + "\n")
        written.append(path)
    return sorted(written)


def vendor_files(sources: list[Path], out_dir: Path) -> list[Path]:
    """`vendor` for each source in turn (the Gateway API's config/crd/standard/ has one file per
    CRD); the files written by all of them, sorted."""
    written: list[Path] = []
    for source in sources:
        written += vendor(source, out_dir)
    return sorted(written)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, nargs="+", help="upstream CRD YAML file(s)")
    parser.add_argument("out_dir", type=Path, help="folder to write <plural>.<group>.json into")
    args = parser.parse_args(argv)
    written = vendor_files(args.source, args.out_dir)
    for source in args.source:
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        print(f"{source.name} (sha256 {digest})")
    print(f"{len(written)} CRDs -> {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
