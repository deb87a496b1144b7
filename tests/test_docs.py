"""The docs cannot drift: the generated pages equal a fresh render, every field is documented,
every example is valid, and every link inside the repository leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import REPO
from pydantic import Field

from sailplan.model import SpecModel
from sailplan.model.base import planes
from sailplan.reference import (
    CLI_DOCS,
    SPEC_FILE,
    cli_commands,
    cli_help,
    mesh_json_schema,
    model_order,
    model_properties,
    spec_markdown,
    type_text,
    undocumented,
    with_usage,
)

DOCS = REPO / "docs"


def _models(base: type[SpecModel] = SpecModel) -> list[type[SpecModel]]:
    found = []
    for model in base.__subclasses__():
        found += [model, *_models(model)]
    return sorted(set(found), key=lambda m: m.__name__)


MODELS = _models()


def test_the_generated_files_live_in_the_repository() -> None:
    assert SPEC_FILE == DOCS / "spec.md"
    assert CLI_DOCS == DOCS / "cli"


def test_the_spec_reference_is_a_fresh_render() -> None:
    # `make docs` regenerates it; a model change without it fails here.
    assert SPEC_FILE.read_text(encoding="utf-8") == spec_markdown()


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_field_is_documented(model: type[SpecModel]) -> None:
    assert undocumented(model) == []


def test_an_undocumented_field_is_caught() -> None:
    class Half(SpecModel):
        """Documented model, half-documented fields."""

        bare: int = 0
        described: int = Field(default=0, description="Described only.")
        full: int = Field(
            default=0,
            description="Everything.",
            examples=[1],
            json_schema_extra=planes(istio="Used.", builtin=""),
        )

    assert undocumented(Half) == [
        "Half.bare: description",
        "Half.bare: examples",
        "Half.bare: what the istio data plane does",
        "Half.bare: what the builtin data plane does",
        "Half.described: examples",
        "Half.described: what the istio data plane does",
        "Half.described: what the builtin data plane does",
        "Half.full: what the builtin data plane does",
    ]


def test_every_model_has_a_section_in_the_reference() -> None:
    documented = set(model_order(mesh_json_schema()))
    # Test-local models (above) are not part of the spec.
    spec_models = {m.__name__ for m in MODELS if m.__module__.startswith("sailplan.")}
    assert documented == spec_models
    for name in documented:
        assert f"\n## {name} object\n" in SPEC_FILE.read_text(encoding="utf-8")


def _fields() -> list[tuple[str, str, dict[str, Any]]]:
    schema = mesh_json_schema()
    models = {"Mesh": schema, **schema["$defs"]}
    return [
        (name, key, field)
        for name in model_order(schema)
        for key, field in model_properties(models[name]).items()
    ]


@pytest.mark.parametrize(
    ("model", "key", "field"), _fields(), ids=[f"{m}.{k}" for m, k, _ in _fields()]
)
def test_every_example_is_valid_for_its_field(model: str, key: str, field: dict[str, Any]) -> None:
    schema = {"$defs": mesh_json_schema()["$defs"], **field}
    assert field["examples"]
    for example in field["examples"]:
        errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(example)]
        assert errors == [], f"{model}.{key}: example {example!r}"


def test_every_field_has_words_for_its_type() -> None:
    for model, key, field in _fields():
        assert type_text(field), f"{model}.{key}"


def test_types_read_as_words() -> None:
    assert type_text({"type": "integer", "minimum": 1, "maximum": 65535}) == (
        "integer from 1 to 65535"
    )
    assert type_text({"anyOf": [{"type": "integer"}, {"type": "null"}], "minimum": 30000}) == (
        "integer, at least 30000"
    )
    assert type_text({"enum": ["http", "tcp"]}) == "one of `http`, `tcp`"
    assert type_text({"type": "boolean"}) == "boolean"
    assert type_text({"oneOf": [{"type": "string"}, {"$ref": "#/$defs/EnvRef"}]}) == (
        "string or [EnvRef](#envref-object)"
    )
    assert type_text({"type": "string", "pattern": "^a`b$"}) == "string matching `` ^a`b$ ``"
    assert type_text({"type": "array", "items": {"$ref": "#/$defs/Route"}, "minItems": 1}) == (
        "list of [Route](#route-object), at least one item"
    )
    with pytest.raises(ValueError, match="no words for the JSON Schema"):
        type_text({"type": "null"})


def test_known_differences_are_the_open_conformance_divergences() -> None:
    # A divergence fixed in a renderer leaves the scenarios; its note must leave the field too.
    from conformance.scenarios import SCENARIOS

    open_ones = {
        (plane, re.match(r"D\d+", reason).group())  # type: ignore[union-attr]
        for scenario in SCENARIOS
        for plane, reason in scenario.diverges.items()
    }
    noted = {
        (plane, found)
        for _, _, field in _fields()
        for plane, note in field["x-data-planes"].items()
        for found in re.findall(r"known difference (D\d+)", note)
    }
    assert noted == open_ones


# -- the CLI pages -----------------------------------------------------------------------------


def test_every_command_has_a_page_and_every_page_a_command() -> None:
    pages = {page.stem for page in CLI_DOCS.glob("*.md")}
    assert pages == set(cli_commands())


@pytest.mark.parametrize("command", sorted(cli_commands()))
def test_a_command_page_shows_the_current_usage(command: str) -> None:
    page = (CLI_DOCS / f"{command}.md").read_text(encoding="utf-8")
    assert page == with_usage(page, command)
    assert f"usage: sailplan {command}" in cli_help(command)
    for heading in ("## Usage", "## Exit codes", "## Example"):
        assert heading in page, f"docs/cli/{command}.md has no {heading!r} section"


def test_a_page_without_its_usage_markers_is_refused() -> None:
    with pytest.raises(ValueError, match=r"docs/cli/check.md needs one usage block"):
        with_usage("# check\n", "check")


# -- links ---------------------------------------------------------------------------------------

_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _pages() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_leads_inside_the_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    # Code is not markdown: a regular expression such as `([-a-z]*)` is no link.
    prose = re.sub(r"``.*?``|`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.S))
    for target in _LINK.findall(prose):
        if target.startswith(("http://", "https://", "#")):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(REPO), f"{page.name} links outside the repository: {target}"
        assert path.exists(), f"{page.name} links to a missing file: {target}"


def test_links_to_spec_objects_have_their_sections() -> None:
    text = SPEC_FILE.read_text(encoding="utf-8")
    anchors = {f"{name.lower()}-object" for name in re.findall(r"^## (\w+) object$", text, re.M)}
    for anchor in re.findall(r"\]\(#([^)]+)\)", text):
        assert anchor in anchors
