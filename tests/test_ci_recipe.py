"""examples/ci/: the sailplan steps of the pull-request recipe, run for real (the same script the
GitHub and GitLab workflows call, the installed `sailplan`, real git) on a temporary repository
with a base branch and a change; and the two workflows call that script and `pulumi preview`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import DEMO_MESH, REPO
from mermaid_support import parse_mermaid

CI = REPO / "examples" / "ci"
SCRIPT = CI / "mesh-review.sh"
MARKER = "<!-- sailplan-review: mesh.yaml -->"


def _run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The `sailplan` of this checkout's virtualenv, as `pip install` puts it on a CI runner's PATH.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        list(args),
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": path},
    )


def _git(repo: Path, *args: str) -> None:
    done = _run(repo, "git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository as the recipe expects: ci/mesh-review.sh and mesh.yaml on main, then a branch
    `change` whose commit moves the canary to 70/30 (a pull request's head)."""
    repo = tmp_path / "repo"
    (repo / "ci").mkdir(parents=True)
    shutil.copy(SCRIPT, repo / "ci" / "mesh-review.sh")
    shutil.copy(DEMO_MESH, repo / "mesh.yaml")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "the mesh")
    _git(repo, "checkout", "-q", "-b", "change")
    mesh = repo / "mesh.yaml"
    mesh.write_text(mesh.read_text().replace("{v1: 80, v2: 20}", "{v1: 70, v2: 30}"))
    _git(repo, "commit", "-q", "-am", "canary 70/30")
    return repo


def _review(repo: Path) -> subprocess.CompletedProcess[str]:
    return _run(repo, "sh", "ci/mesh-review.sh", "main", "mesh.yaml", "review")


def test_a_change_gets_a_check_and_a_diff_comment_with_the_graph(repo: Path) -> None:
    done = _review(repo)
    assert done.returncode == 0, done.stderr
    check = json.loads((repo / "review" / "check.json").read_text())
    assert check["valid"] is True and check["problems"] == []
    comment = (repo / "review" / "comment.md").read_text()
    assert done.stdout == comment  # the job log carries the whole review
    lines = comment.splitlines()
    assert lines[:2] == [
        MARKER,
        "### sailplan diff: mesh `demo`: 1 change from `git:main:mesh.yaml` to `mesh.yaml`",
    ]
    assert "- **service1 › canary**: v1 80% → 70%, v2 20% → 30%" in lines  # noqa: RUF001
    assert (
        "**builtin (this mesh's data plane): 1 updated** — no pod restarts (sidecars reload "
        "their config)" in lines
    )
    graph = re.search(r"\n```mermaid\n(.*?)```\n$", comment, flags=re.DOTALL)
    assert graph
    chart = parse_mermaid(graph.group(1))
    assert ("svc_service1", "-->", "canary 70%<br/>(changed)", "ver_service1_v1") in chart.edges


def test_no_change_still_comments_and_succeeds(repo: Path) -> None:
    _git(repo, "checkout", "-q", "main")
    done = _review(repo)
    assert done.returncode == 0, done.stderr
    comment = (repo / "review" / "comment.md").read_text()
    assert comment.splitlines()[1] == (
        "### sailplan diff: mesh `demo`: no change from `git:main:mesh.yaml` to `mesh.yaml`"
    )


def test_an_invalid_mesh_fails_the_job_and_the_comment_lists_the_problems(repo: Path) -> None:
    mesh = repo / "mesh.yaml"
    mesh.write_text(mesh.read_text().replace("{v1: 70, v2: 30}", "{v1: 70, v3: 30}"))
    _git(repo, "commit", "-q", "-am", "a typo")
    done = _review(repo)
    assert done.returncode == 2
    comment = (repo / "review" / "comment.md").read_text()
    assert comment.startswith(f"{MARKER}\n### sailplan check: `mesh.yaml` is invalid\n\n```json\n")
    check = json.loads((repo / "review" / "check.json").read_text())
    assert check["valid"] is False
    assert [p["path"] for p in check["problems"]] == ["services.service1.routes[0].split.v3"]


def test_a_mesh_the_pull_request_adds_is_shown_as_a_graph(repo: Path) -> None:
    shutil.copy(repo / "mesh.yaml", repo / "other.yaml")
    _git(repo, "add", "other.yaml")
    _git(repo, "commit", "-q", "-m", "a second mesh")
    done = _run(repo, "sh", "ci/mesh-review.sh", "main", "other.yaml", "review")
    assert done.returncode == 0, done.stderr
    comment = (repo / "review" / "comment.md").read_text()
    head, graph = comment.split("```mermaid\n")
    assert head == "<!-- sailplan-review: other.yaml -->\n### sailplan: new mesh `other.yaml`\n\n"
    parse_mermaid(graph.removesuffix("```\n"))


def test_a_base_that_is_not_there_fails_instead_of_passing_as_new(repo: Path) -> None:
    done = _run(repo, "sh", "ci/mesh-review.sh", "origin/main", "mesh.yaml", "review")
    assert done.returncode == 1
    assert done.stderr == (
        "error: no commit origin/main here: fetch the base branch (fetch-depth: 0, GIT_DEPTH: 0)\n"
    )


def test_usage(repo: Path) -> None:
    done = _run(repo, "sh", "ci/mesh-review.sh", "main")
    assert (done.returncode, done.stderr) == (
        2,
        "usage: mesh-review.sh BASE_REF MESH_FILE OUT_DIR\n",
    )


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_the_github_workflow_runs_the_script_posts_it_and_previews() -> None:
    workflow = _yaml(CI / "github" / "mesh-review.yml")
    assert "pull_request" in workflow[True]  # PyYAML reads the key `on` as a boolean
    steps = workflow["jobs"]["review"]["steps"]
    runs = [step.get("run", "") for step in steps]
    assert 'sh ci/mesh-review.sh "$BASE_REF" "$MESH_FILE" review' in runs
    review = next(s for s in steps if "mesh-review.sh" in s.get("run", ""))
    assert review["env"]["BASE_REF"] == "origin/${{ github.base_ref }}"
    assert any("--body-file review/comment.md" in run for run in runs)
    assert steps[0]["with"]["fetch-depth"] == 0
    preview = next(s for s in steps if s.get("uses", "").startswith("pulumi/actions@"))
    assert preview["with"]["command"] == "preview" and preview["with"]["diff"] is True
    assert workflow["permissions"]["pull-requests"] == "write"


def test_the_gitlab_pipeline_runs_the_same_script_and_previews() -> None:
    pipeline = _yaml(CI / "gitlab" / ".gitlab-ci.yml")
    review = pipeline["mesh-review"]
    assert review["script"][-1] == (
        'sh ci/mesh-review.sh "origin/$CI_MERGE_REQUEST_TARGET_BRANCH_NAME" "$MESH_FILE" review'
    )
    assert "body@review/comment.md" in review["after_script"][0]
    assert review["variables"]["GIT_DEPTH"] == 0
    preview = pipeline["pulumi-preview"]["script"][-1]
    assert preview.startswith("pulumi preview --diff --stack")
