"""scripts/vendor_schemas.py keeps a CRD's facts and drops its prose."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import vendor_schemas

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.io}
spec:
  group: example.io
  scope: Namespaced
  names: {kind: Widget, plural: widgets}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        description: A widget.
        type: object
        properties:
          spec:
            description: What the widget does.
            type: object
            required: [size]
            properties:
              description: {type: string, description: A field that is named description.}
              size:
                type: integer
                minimum: 1
                x-kubernetes-validations:
                - {rule: self < 10, message: too big, messageExpression: "'x'"}
              mode: {type: string, enum: [a, b], example: a}
              labels:
                type: object
                additionalProperties: {type: string, description: A label value.}
            oneOf:
            - required: [size]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: not-a-crd}
"""


def test_facts_are_kept_and_prose_dropped(tmp_path: Path) -> None:
    source = tmp_path / "crds.yaml"
    source.write_text(CRD, encoding="utf-8")
    written = vendor_schemas.vendor(source, tmp_path / "out")
    assert [path.name for path in written] == ["widgets.example.io.json"]
    crd = json.loads(written[0].read_text(encoding="utf-8"))
    assert crd["kind"] == "Widget"
    assert crd["group"] == "example.io"
    schema = crd["versions"][0]["openAPIV3Schema"]
    assert schema == {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["size"],
                "properties": {
                    "description": {"type": "string"},
                    "size": {
                        "type": "integer",
                        "minimum": 1,
                        "x-kubernetes-validations": [{"rule": "self < 10", "message": "too big"}],
                    },
                    "mode": {"type": "string", "enum": ["a", "b"]},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                },
                "oneOf": [{"required": ["size"]}],
            }
        },
    }


def test_output_is_deterministic(tmp_path: Path) -> None:
    source = tmp_path / "crds.yaml"
    source.write_text(CRD, encoding="utf-8")
    first = vendor_schemas.vendor(source, tmp_path / "a")[0].read_bytes()
    second = vendor_schemas.vendor(source, tmp_path / "b")[0].read_bytes()
    assert first == second


def test_several_sources_go_into_one_folder(tmp_path: Path) -> None:
    # cert-manager ships one file per CRD: the script takes them all in one run.
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(CRD, encoding="utf-8")
    second.write_text(
        CRD.replace("widgets", "gadgets").replace("Widget", "Gadget"), encoding="utf-8"
    )
    assert vendor_schemas.main([str(first), str(second), str(tmp_path / "out")]) == 0
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "gadgets.example.io.json",
        "widgets.example.io.json",
    ]


def test_vendor_files_writes_every_source_sorted(tmp_path: Path) -> None:
    # The Gateway API ships one file per CRD.
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(CRD, encoding="utf-8")
    second.write_text(CRD.replace("widgets", "gadgets").replace("Widget", "Gadget"), "utf-8")
    written = vendor_schemas.vendor_files([second, first], tmp_path / "out")
    assert [path.name for path in written] == ["gadgets.example.io.json", "widgets.example.io.json"]
