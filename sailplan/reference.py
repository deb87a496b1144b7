"""The mesh file's JSON Schema and its reference page, both generated from the spec models.

`python -m sailplan.reference` (`make docs`) writes the files the repository ships; tests compare
them with a fresh render, so neither can drift from the models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from sailplan.model import Mesh

SCHEMA_FILE = Path(__file__).parent / "mesh.schema.json"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _MeshJsonSchema(GenerateJsonSchema):
    """Pydantic's generator, with mapping keys checked by `propertyNames`.

    Pydantic writes a key pattern as `patternProperties`, which lets keys that do not match
    through unchecked; `propertyNames` rejects them, as the models do.
    """

    def field_title_should_be_set(self, schema: Any) -> bool:
        # Titles would repeat the key ("Maxconnections"); the description says what it is.
        return False

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        json_schema = super().dict_schema(schema)
        patterns = json_schema.pop("patternProperties", None)
        if patterns:
            ((pattern, values),) = patterns.items()
            json_schema["additionalProperties"] = values
            json_schema["propertyNames"] = {
                "pattern": pattern,
                **json_schema.get("propertyNames", {}),
            }
        return json_schema


def mesh_json_schema() -> dict[str, Any]:
    """The JSON Schema of a mesh file: validation mode, YAML (camelCase) keys."""
    schema = Mesh.model_json_schema(
        by_alias=True, mode="validation", schema_generator=_MeshJsonSchema
    )
    return {**schema, "$schema": SCHEMA_DIALECT, "title": "sailplan mesh file"}


def schema_text() -> str:
    """The JSON Schema as `sailplan schema` prints it and the package ships it."""
    return json.dumps(mesh_json_schema(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    """Write the generated files of a checkout (`make docs`)."""
    SCHEMA_FILE.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
