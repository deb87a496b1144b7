"""What README.md and docs/cli/*.md show a user typing, they get: each console transcript whose
output does not depend on ports, pids, timing or chance is replayed in a shell, command by
command, and must print exactly what the page shows. The rest are listed with the reason they are
not replayed, so a new transcript is either replayed or excused on purpose."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_MESH, REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs" / "cli").glob("*.md"))]
EXAMPLES = REPO / "examples" / "meshes"
# The venv's `sailplan`, as a user who installed it has it on the PATH.
BIN = Path(sys.executable).parent

# Transcripts not replayed, by page and first command, and why.
NOT_REPLAYED = {
    ("README.md", "$ sailplan sandbox stacks/demo.mesh.yaml --watch"): "ports, pids, random split",
    ("README.md", "$ sudo sailplan sandbox examples/apps/node-client/mesh.yaml --quiet"): (
        "a sandbox: ports and pids"
    ),
    ("README.md", "$ sailplan diff git:main:stacks/demo.mesh.yaml stacks/demo.mesh.yaml"): (
        "replayed by test_the_readme_diff_is_what_diff_prints, which makes the change it describes"
    ),
    (
        "diff.md",
        "$ sailplan diff git:origin/main:mesh.yaml mesh.yaml --format markdown --graph > comment.md",
    ): "needs a clone with an origin remote",
    ("sandbox.md", "$ sailplan sandbox split-80-20.yaml --ingress-port 18123 --quiet"): (
        "a sandbox: pids and ports"
    ),
    (
        "sandbox.md",
        "$ sudo sailplan sandbox examples/apps/node-client/mesh.yaml --ingress-port 18124 --quiet",
    ): "a sandbox: pids",
    (
        "sandbox.md",
        "ingress certificate: signed by this run's CA /tmp/sailplan-…/gateway-ingress-tls/ca.crt "
        "(sailplan traffic --cacert /tmp/sailplan-…/gateway-ingress-tls/ca.crt, or --insecure)",
    ): "a sandbox's output, then curl",
    ("traffic.md", '$ curl -X POST -d \'{"username": "a"}\' http://127.0.0.1:18123/api/users'): (
        "a sandbox and a random split"
    ),
}


def _transcripts(page: Path) -> list[str]:
    return re.findall(r"^```console\n(.*?)^```", page.read_text(encoding="utf-8"), re.M | re.S)


def _first_line(transcript: str) -> str:
    return transcript.splitlines()[0]


def _all_transcripts() -> list[tuple[str, str]]:
    return [(page.name, t) for page in PAGES for t in _transcripts(page)]


def _replayed() -> list[tuple[str, str]]:
    return [(p, t) for p, t in _all_transcripts() if (p, _first_line(t)) not in NOT_REPLAYED]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Where the pages' commands run: examples/meshes/'s files (the pages say "from
    examples/meshes/"), and stacks/ and docs/ as in a checkout."""
    for mesh in EXAMPLES.glob("*.yaml"):
        shutil.copy(mesh, tmp_path / mesh.name)
    (tmp_path / "stacks").mkdir()
    shutil.copy(DEMO_MESH, tmp_path / "stacks" / DEMO_MESH.name)
    (tmp_path / "docs").mkdir()
    return tmp_path


def _steps(transcript: str) -> list[tuple[str, str]]:
    """(command, what it prints) per `$ ` line of a transcript."""
    steps: list[tuple[str, list[str]]] = []
    for line in transcript.splitlines(keepends=True):
        if line.startswith("$ "):
            steps.append((line[2:].rstrip("\n"), []))
        else:
            assert steps, f"output before the first command: {line!r}"
            steps[-1][1].append(line)
    return [(command, "".join(output)) for command, output in steps]


def _write_shown_files(transcripts: list[str], cwd: Path) -> None:
    """A transcript that opens with `cat FILE` is how a page gives FILE to the commands after it,
    in that transcript or a later one of the same page: FILE is written first."""
    for transcript in transcripts:
        command, output = _steps(transcript)[0]
        shown = re.fullmatch(r"cat (\S+)", command)
        if shown:
            (cwd / shown[1]).write_text(output, encoding="utf-8")


def replay(transcript: str, cwd: Path) -> str:
    """Runs a transcript's commands in one shell (so `echo $?` sees the last status) and returns
    what they printed, standard error included as a terminal shows it."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-c", "\n".join(command for command, _ in _steps(transcript))],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=30,
    )
    return result.stdout


def test_every_excused_transcript_is_on_its_page() -> None:
    shown = {(page, _first_line(t)) for page, t in _all_transcripts()}
    assert set(NOT_REPLAYED) <= shown


@pytest.mark.parametrize(
    ("page", "transcript"),
    _replayed(),
    ids=[f"{page}:{_first_line(t)[2:50]}" for page, t in _replayed()],
)
def test_a_transcript_prints_what_its_page_shows(page: str, transcript: str, workdir: Path) -> None:
    on_page = [t for p, t in _all_transcripts() if p == page]
    _write_shown_files(on_page[: on_page.index(transcript) + 1], workdir)
    assert replay(transcript, workdir) == "".join(output for _, output in _steps(transcript))


def _page(name: str) -> str:
    return next(page for page in PAGES if page.name == name).read_text(encoding="utf-8")


def _transcript(page: str, first_command: str) -> str:
    return next(t for p, t in _all_transcripts() if p == page and _first_line(t) == first_command)


def test_the_readme_diff_is_what_diff_prints(workdir: Path) -> None:
    # The change the README describes, made in a repository whose main branch has the demo mesh.
    git = ["git", "-c", "user.name=docs", "-c", "user.email=docs@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=workdir, check=True)
    subprocess.run([*git, "add", "stacks"], cwd=workdir, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "demo"], cwd=workdir, check=True)
    mesh = workdir / "stacks" / DEMO_MESH.name
    text = mesh.read_text(encoding="utf-8")
    canary = "      - name: canary\n        split: {v1: 80, v2: 20}\n"
    assert canary in text
    text = text.replace(
        canary,
        "      - name: testers\n"
        "        match: [{headers: {end-user: {exact: jason}}}]\n"
        "        to: v2\n"
        "      - name: canary\n"
        "        split: {v1: 70, v2: 30}\n"
        "        timeout: 2s\n",
    ).replace("sailplan/demo-greeter:0.1.0", "sailplan/demo-greeter:0.2.0")
    mesh.write_text(text, encoding="utf-8")
    transcript = _transcript(
        "README.md", "$ sailplan diff git:main:stacks/demo.mesh.yaml stacks/demo.mesh.yaml"
    )
    assert replay(transcript, workdir) == "".join(output for _, output in _steps(transcript))


def test_the_markdown_review_is_what_diff_prints(workdir: Path) -> None:
    page = _page("diff.md")
    shown = re.search(r"^````markdown\n(.*?)^````", page, re.M | re.S)
    assert shown, "diff.md shows a review as markdown"
    transcript = _transcript(
        "diff.md", "$ sed 's/{v1: 80, v2: 20}/{v1: 50, v2: 50}/' split-80-20.yaml > even.yaml"
    )
    sed = _steps(transcript)[0][0]
    printed = replay(
        f"$ {sed}\n$ sailplan diff split-80-20.yaml even.yaml --format markdown\n", workdir
    )
    assert printed == shown[1]


def test_the_sandbox_says_which_version_has_no_local_command(workdir: Path) -> None:
    quoted = re.search(r"`(services\.web\.versions\.v1\.local: [^`]*), …`", _page("sandbox.md"))
    assert quoted, "sandbox.md quotes the problem of a version without `local`"
    (workdir / "nolocal.yaml").write_text(
        "apiVersion: sailplan/v1\nkind: Mesh\nname: shop\nservices:\n  web:\n    port: 8080\n"
        "    versions:\n      v1: {image: shop/web:1.0.0}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["sailplan", "sandbox", "nolocal.yaml"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert f"  {quoted[1]}, e.g. local: {{command: [python, app.py]}}\n" in result.stderr


@pytest.mark.parametrize(
    ("page", "first_command"),
    [
        ("README.md", "$ sailplan sandbox stacks/demo.mesh.yaml --watch"),
        ("traffic.md", '$ curl -X POST -d \'{"username": "a"}\' http://127.0.0.1:18123/api/users'),
    ],
)
def test_a_traffic_table_is_laid_out_as_traffic_lays_it_out(page: str, first_command: str) -> None:
    # The counts come from a random split and the latencies from the machine; the columns, the
    # shares and the bars follow from the counts, so they are checked against `table`.
    from sailplan.traffic import Outcome, table

    output = next(
        out
        for cmd, out in _steps(_transcript(page, first_command))
        if cmd.startswith("sailplan traffic ")
    )
    *rows, summary = output.splitlines()
    outcomes = []
    for row in rows[1:]:
        shown = re.fullmatch(r"(.+?) +(\d+) +[\d.]+%  █*", row)
        assert shown, f"{page}: not a row of the table: {row!r}"
        outcomes += [Outcome(shown[1], 0.001)] * int(shown[2])
    assert table(outcomes).splitlines()[:-1] == rows
    assert re.fullmatch(
        rf"{len(outcomes)} requests  latency p50 [\d.]+ ms  p99 [\d.]+ ms  max [\d.]+ ms", summary
    )


_REPO_PATH = re.compile(
    r"`((?:tests|sailplan|examples|bench|stacks|scripts|third_party|docs)/[^`\s<]*)`"
)


@pytest.mark.parametrize(
    "page", [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))], ids=lambda p: p.name
)
def test_every_file_and_test_a_page_names_exists(page: Path) -> None:
    # A page sends the reader to `tests/test_mtls.py` or `...py::test_name` for the proof: they
    # must be there. (`sailplan/v1` is the apiVersion, not a path.)
    for named in _REPO_PATH.findall(page.read_text(encoding="utf-8")):
        if named == "sailplan/v1":
            continue
        path, _, test = named.partition("::")
        assert (REPO / path).exists(), f"{page.name} names {path}, which is not in the repository"
        if test:
            assert f"def {test}(" in (REPO / path).read_text(encoding="utf-8"), (
                f"{page.name} names {named}, which is not a test of {path}"
            )


def _keys(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


@pytest.mark.parametrize(
    ("page", "introduced_by", "command"),
    [
        ("README.md", "`check --format json` prints ", "sailplan check --format json sec.yaml"),
        (
            "diff.md",
            "`--format json` for tools: ",
            "sailplan diff split-80-20.yaml even.yaml --format json",
        ),
    ],
)
def test_the_json_a_page_describes_has_those_keys(
    page: str, introduced_by: str, command: str, workdir: Path
) -> None:
    import json

    text = " ".join(_page(page).split())
    shape = re.search(re.escape(introduced_by) + r"`(\{[^`]*\})`", text)
    assert shape, f"{page} describes the JSON after {introduced_by!r}"
    # With a change and a warning, so that every list has an item whose keys count.
    (workdir / "even.yaml").write_text(
        (workdir / "split-80-20.yaml")
        .read_text(encoding="utf-8")
        .replace("{v1: 80, v2: 20}", "{v1: 50, v2: 50}"),
        encoding="utf-8",
    )
    (workdir / "sec.yaml").write_text(
        (workdir / "split-80-20.yaml")
        .read_text(encoding="utf-8")
        .replace("{SERVICE_VERSION: v1}", "{SERVICE_VERSION: v1, API_TOKEN: abc}"),
        encoding="utf-8",
    )
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    printed = subprocess.run(
        command.split(), cwd=workdir, env=env, capture_output=True, text=True, timeout=30
    ).stdout
    assert set(re.findall(r"\w+", shape[1])) == _keys(json.loads(printed))


# The mesh a page's YAML excerpt (a list of routes, the security keys, an ingress) is read in: the
# services and versions the excerpts name.
_AROUND_AN_EXCERPT: dict[str, Any] = {
    "apiVersion": "sailplan/v1",
    "kind": "Mesh",
    "name": "excerpt",
    "services": {
        "service1": {
            "port": 8088,
            "versions": {v: {"image": f"users:{v}"} for v in ("v1", "v2", "v3")},
        },
        "service2": {"port": 8880, "versions": {"v1": {"image": "greeter:1"}}},
        "web": {"port": 8080, "versions": {"v1": {"image": "web:1"}}},
    },
    "ingress": {"routes": [{"service": "service1"}]},
}


def _merged(base: Any, part: Any) -> Any:
    if isinstance(base, dict) and isinstance(part, dict):
        return {**base, **{k: _merged(base.get(k), v) for k, v in part.items()}}
    return part


def _yaml_excerpts() -> list[tuple[str, str]]:
    return [
        (page.name, block)
        for page in PAGES
        for block in re.findall(
            r"^```yaml\n(.*?)^```", page.read_text(encoding="utf-8"), re.M | re.S
        )
    ]


@pytest.mark.parametrize(
    ("page", "excerpt"),
    _yaml_excerpts(),
    ids=[f"{page}:{block.splitlines()[0].strip()[:40]}" for page, block in _yaml_excerpts()],
)
def test_every_yaml_excerpt_is_valid_in_a_mesh(page: str, excerpt: str) -> None:
    import json
    import textwrap

    from sailplan import load_mesh_text
    from sailplan.loader import parse_yaml

    # sailplan's own YAML reading (`on:` is a key, not True, as in YAML 1.2).
    part = parse_yaml(textwrap.dedent(excerpt), f"{page} excerpt")
    if part is None:  # only a comment, such as the schema line for editors
        return
    if isinstance(part, dict) and part.get("kind") == "Mesh":  # a whole mesh, as it is
        load_mesh_text(excerpt, f"{page} excerpt")
        return
    if isinstance(part, list):  # routes, as they sit in a service
        part = {"routes": part}
    if set(part) == {"routes"}:
        part = {"services": {"service1": part}}
    load_mesh_text(json.dumps(_merged(_AROUND_AN_EXCERPT, part)), f"{page} excerpt")


def _readme_cli_summary() -> dict[str, str]:
    """The README's summary of the CLI: each command's lines, by command."""
    block = re.search(r"^## The CLI\n\n```\n(.*?)^```", _page("README.md"), re.M | re.S)
    assert block, "README.md has a summary of the CLI"
    found: dict[str, str] = {}
    for line in block[1].splitlines():
        head = re.match(r"sailplan (\w+)", line)
        if head:
            command = head[1]
        found[command] = found.get(command, "") + line + "\n"
    return found


def test_the_readme_sums_up_every_command_and_option() -> None:
    from sailplan.reference import cli_commands

    summary = _readme_cli_summary()
    assert set(summary) == set(cli_commands())
    for name, parser in cli_commands().items():
        for action in parser._actions:
            if not action.option_strings or "--help" in action.option_strings:
                continue
            shown = {re.escape(option) + r"\b" for option in action.option_strings}
            assert any(re.search(rf"\[{o}", summary[name]) for o in shown), (
                f"README's CLI summary of {name} does not show {action.option_strings[-1]}"
            )


def test_the_readme_links_every_command_page() -> None:
    readme = _page("README.md")
    for page in sorted((REPO / "docs" / "cli").glob("*.md")):
        assert f"](docs/cli/{page.name})" in readme, f"README.md does not link docs/cli/{page.name}"
