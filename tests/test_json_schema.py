"""The mesh file's JSON Schema: shipped, printed by `sailplan schema`, and as strict as a schema can be."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import DEMO_MESH, EXAMPLE_MESHES, REPO
from model_support import edited
from test_bad_input import CASES

from sailplan.reference import SCHEMA_FILE, mesh_json_schema, schema_text

# Bad cases of tests/test_bad_input.py that a JSON Schema cannot express: references between
# objects, sums, uniqueness, order, and what a regular expression engine accepts. Every other case
# must be rejected by the schema, so a new bad case needs the schema or a line here.
NOT_EXPRESSIBLE = {
    "allow from an unknown caller",
    "workload name too long",
    "route to unknown version",
    "split with unknown version",
    "mirror unknown version",
    "mirror to its own destination",
    "ingress unknown service",
    "split sums to 90",
    "split sums to 110",
    "duplicate route names",
    "catch-all first",
    "ingress catch-all first",
    "bad regex",
    "lookahead regex",
    "regex nested too deep",
    "retries zero with perTryTimeout",
    "http features on tcp",
    "duration past a day",
    "duration finer than a millisecond",
    # What the builtin plane cannot honour depends on dataPlane.
    "retry conditions HAProxy cannot honour on builtin",
    "retry headers and rate limits on builtin",
    "comma-separated retry conditions HAProxy cannot honour on builtin",
    "connection pool HAProxy cannot honour on builtin",
    # JSON Schema counts 2.0 as an integer; pydantic's strict mode does not.
    "replicas float",
    # Across fields: the namespace defaults to the name, allowSystemNamespace lifts the rule,
    # derived names add suffixes, reserved ports depend on the data plane.
    "kube-system namespace",
    "default namespace through the mesh name",
    "gateway name over 63",
    "app port on the sidecar's outbound port",
    "app port on istio's prometheus port",
}

VALIDATOR = jsonschema.Draft202012Validator(mesh_json_schema())


def _errors(data: Any) -> list[str]:
    return [error.message for error in VALIDATOR.iter_errors(data)]


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(mesh_json_schema())


def test_the_shipped_schema_is_the_generated_one() -> None:
    # `make docs` rewrites it; a model change without it fails here.
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text()


def test_the_schema_ships_in_the_package() -> None:
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert '"mesh.schema.json"' in pyproject


@pytest.mark.parametrize(
    "path", [*EXAMPLE_MESHES, DEMO_MESH], ids=lambda p: str(Path(p).relative_to(REPO))
)
def test_every_example_mesh_validates(path: Path) -> None:
    assert _errors(yaml.safe_load(path.read_text(encoding="utf-8"))) == []


def test_every_default_of_the_schema_validates_against_the_schema() -> None:
    # A mesh spelling out every default the schema advertises is still a valid mesh.
    data = yaml.safe_load(DEMO_MESH.read_text(encoding="utf-8"))
    data.update(apiVersion="sailplan/v1", kind="Mesh", dataPlane="builtin", mtls="permissive")
    data["ingress"].update(port=80, hosts=["*"])
    assert _errors(data) == []


# test_bad_input.py also holds valid neighbours of its bad cases (no problems expected).
BAD = [(name, e) for name, e, problems in CASES if problems]
VALID = [(name, e) for name, e, problems in CASES if not problems]


@pytest.mark.parametrize("edits", [e for _, e in VALID], ids=[name for name, _ in VALID])
def test_the_schema_accepts_the_valid_neighbours(edits: dict[str, Any]) -> None:
    assert _errors(edited(edits)) == []


@pytest.mark.parametrize(
    "edits",
    [e for name, e in BAD if name not in NOT_EXPRESSIBLE],
    ids=[name for name, _ in BAD if name not in NOT_EXPRESSIBLE],
)
def test_the_schema_rejects_what_it_can_express(edits: dict[str, Any]) -> None:
    assert _errors(edited(edits)) != []


@pytest.mark.parametrize(
    "edits",
    [e for name, e, _ in CASES if name in NOT_EXPRESSIBLE],
    ids=[name for name, _, _ in CASES if name in NOT_EXPRESSIBLE],
)
def test_the_list_of_inexpressible_cases_is_honest(edits: dict[str, Any]) -> None:
    # Once the schema learns a case, it leaves NOT_EXPRESSIBLE and joins the test above.
    assert _errors(edited(edits)) == []


def test_every_inexpressible_case_exists() -> None:
    assert {name for name, _, _ in CASES} >= NOT_EXPRESSIBLE


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        ({"services.service1.versions.v1.replicaz": 2}, "Additional properties are not allowed"),
        ({"services.service1.versions.v1.replicas": True}, "True is not of type 'integer'"),
        ({"services.service1.versions.v1.replicas": "2"}, "'2' is not of type 'integer'"),
        ({"services.service1.protocol": "udp"}, "'udp' is not one of ['http', 'tcp', 'grpc']"),
        ({"services.Service3": {"port": 80, "versions": {"v1": {"image": "x"}}}}, "'Service3'"),
    ],
    ids=["unknown key", "boolean for a number", "text for a number", "enum", "key pattern"],
)
def test_the_schema_says_what_is_wrong(edits: dict[str, Any], message: str) -> None:
    assert any(message in error for error in _errors(edited(edits))), _errors(edited(edits))


def test_sailplan_schema_prints_the_schema() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sailplan", "schema"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == schema_text()
    assert json.loads(done.stdout)["title"] == "sailplan mesh file"
