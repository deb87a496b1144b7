"""`sailplan graph`: mermaid that parses (checked line by line against the flowchart grammar it
uses), dot that real Graphviz draws as SVG and PNG, and `diff --graph` marking what changed."""

from __future__ import annotations

import copy
import re
import struct
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import DEMO_MESH, EXAMPLE_MESHES, GOLDEN
from mermaid_support import parse_mermaid

from sailplan import Mesh, load_mesh
from sailplan.cli import main
from sailplan.review.graph import graph_diff, mesh_graph, to_dot, to_mermaid
from sailplan.review.picture import draw


def test_the_demo_as_mermaid() -> None:
    chart = parse_mermaid(to_mermaid(mesh_graph(load_mesh(DEMO_MESH))))
    assert chart.title == "mesh demo · namespace demo · builtin data plane · mTLS permissive"
    assert chart.nodes == {
        "ingress": "ingress :80<br/>nodePort 32000<br/>hosts *",
        "svc_service1": "service1<br/>:8088/http",
        "ver_service1_v1": "v1<br/>sailplan/demo-users:0.1.0<br/>1 replica",
        "ver_service1_v2": "v2<br/>sailplan/demo-users:0.1.0<br/>1 replica",
        "svc_service2": "service2<br/>:8880/http",
        "ver_service2_v1": "v1<br/>sailplan/demo-greeter:0.1.0<br/>1 replica",
    }
    assert chart.edges == [
        ("ingress", "-->", "/api/users*", "svc_service2"),
        ("svc_service1", "-->", "canary 80%", "ver_service1_v1"),
        ("svc_service1", "-->", "canary 20%", "ver_service1_v2"),
        ("svc_service2", "-->", "every request", "ver_service2_v1"),
    ]
    assert chart.link_styles == {}
    assert chart.classes["ingress"] == {"ingress"}
    assert chart.classes["svc_service1"] == {"service"}
    assert chart.classes["ver_service2_v1"] == {"version"}


def _data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEMO_MESH.read_text())
    service1 = data["services"]["service1"]
    service1["routes"] = [
        {
            "name": "testers",
            "match": {"headers": {"end-user": 'say "<hi>" #1'}},
            "to": "v2",
            "fault": {"abort": {"status": 503, "percent": 10}},
            "retries": {"attempts": 2},
        },
        {"name": "canary", "to": "v1", "mirror": {"to": "v2", "percent": 5}, "timeout": "2s"},
    ]
    service1["policy"] = {
        "loadBalancer": {"hashHeader": "x-user"},
        "connectionPool": {"maxConnections": 50},
        "outlierDetection": {"consecutive5xxErrors": 3},
    }
    return data


def test_routes_faults_mirrors_and_policies_are_drawn() -> None:
    chart = parse_mermaid(to_mermaid(mesh_graph(Mesh.parse(_data()))))
    assert chart.nodes["svc_service1"] == (
        "service1<br/>:8088/http<br/>load balancer sticky by header x-user<br/>"
        "circuit breaker: 50 connections, 0 pending<br/>eject after 3 consecutive 5xx for 30s"
    )
    assert chart.edges[1:4] == [
        (
            "svc_service1",
            "-->",
            "testers<br/>when end-user: say #quot;#lt;hi#gt;#quot; #35;1<br/>"
            "fault abort 503 at 10%<br/>retries 2 on 5xx, connect-failure",
            "ver_service1_v2",
        ),
        ("svc_service1", "-->", "canary<br/>timeout 2s", "ver_service1_v1"),
        ("svc_service1", "-.->", "canary: mirrors 5%", "ver_service1_v2"),
    ]
    # The faulty route is red; nothing else is styled.
    assert chart.link_styles == {1: "stroke:#cf222e,stroke-width:2px"}


def test_every_example_mesh_parses_as_mermaid_and_as_dot() -> None:
    for path in [DEMO_MESH, *EXAMPLE_MESHES]:
        graph = mesh_graph(load_mesh(path))
        chart = parse_mermaid(to_mermaid(graph))
        assert len(chart.edges) == len(graph.edges)
        assert to_dot(graph).startswith("digraph mesh {\n")


def test_diff_graph_marks_added_changed_and_removed() -> None:
    old_data = _data()
    new_data = copy.deepcopy(old_data)
    routes = new_data["services"]["service1"]["routes"]
    routes.pop(0)  # testers removed
    routes[0]["timeout"] = "3s"  # canary changed
    new_data["services"]["service1"]["versions"]["v3"] = {"image": "sailplan/demo-users:0.3.0"}
    routes.insert(0, {"name": "beta", "match": {"headers": {"beta": "1"}}, "to": "v3"})
    new_data["mtls"] = "disable"
    chart = parse_mermaid(to_mermaid(graph_diff(Mesh.parse(old_data), Mesh.parse(new_data))))
    assert chart.title == (
        "mesh demo · namespace demo · builtin data plane · mTLS permissive → disable (changed)"
    )
    assert chart.classes["ver_service1_v3"] == {"version", "added"}
    assert chart.nodes["ver_service1_v3"].endswith("<br/>(added)")
    by_label = {edge[2].split("<br/>")[0]: (index, edge) for index, edge in enumerate(chart.edges)}
    beta_index, beta = by_label["beta"]
    assert beta[2].endswith("(added)") and beta[3] == "ver_service1_v3"
    assert chart.link_styles[beta_index] == "stroke:#1a7f37,stroke-width:2px"
    canary_index, canary = by_label["canary"]
    assert canary[2] == "canary<br/>timeout 3s<br/>(changed)"
    assert chart.link_styles[canary_index] == "stroke:#bc4c00,stroke-width:2px"
    testers_index, testers = by_label["testers"]
    assert testers[1] == "-.->" and testers[2].endswith("(removed)")
    assert chart.link_styles[testers_index] == "stroke:#8c959f,stroke-width:2px"
    # Untouched parts stay plain.
    assert chart.classes["svc_service2"] == {"service"}
    assert by_label["/api/users*"][0] not in chart.link_styles


def test_a_removed_service_and_version_are_drawn_dashed_by_graphviz() -> None:
    old_data = _data()
    old_data["services"]["service3"] = {"port": 9000, "versions": {"v1": {"image": "x/s3:1"}}}
    new_data = copy.deepcopy(old_data)
    del new_data["services"]["service3"]
    del new_data["services"]["service1"]["versions"]["v2"]
    new_data["services"]["service1"]["routes"] = [{"name": "canary", "to": "v1"}]
    graph = graph_diff(Mesh.parse(old_data), Mesh.parse(new_data))
    removed = sorted(node.id for node in graph.nodes if node.state == "removed")
    assert removed == ["svc_service3", "ver_service1_v2", "ver_service3_v1"]
    svg = ElementTree.fromstring(draw(to_dot(graph), "svg"))
    texts = {t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")}
    assert {"service3", "(removed)", "removed"} <= texts


def test_diff_with_graph_puts_a_mermaid_block_in_the_comment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = tmp_path / "new.yaml"
    new.write_text(DEMO_MESH.read_text().replace("{v1: 80, v2: 20}", "{v1: 70, v2: 30}"))
    assert main(["diff", str(DEMO_MESH), str(new), "--format", "markdown", "--graph"]) == 1
    out = capsys.readouterr().out
    block = re.search(r"\n#### Graph\n\n```mermaid\n(.*?)```\n$", out, flags=re.DOTALL)
    assert block, out
    chart = parse_mermaid(block.group(1))
    assert ("svc_service1", "-->", "canary 70%<br/>(changed)", "ver_service1_v1") in chart.edges


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_png_and_svg_are_drawn_by_graphviz(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "demo.png"
    assert main(["graph", str(DEMO_MESH), "--format", "png", "-o", str(png)]) == 0
    width, height = _png_size(png.read_bytes())
    # 144 dpi: wide enough to read the labels in a design doc.
    assert width > 1200 and height > 300
    svg = tmp_path / "demo.svg"
    assert main(["graph", str(DEMO_MESH), "--format", "svg", "-o", str(svg)]) == 0
    texts = {t.text for t in ElementTree.parse(svg).iter("{http://www.w3.org/2000/svg}text")}
    assert {"service1", "canary 80%", "/api/users*", "sailplan/demo-greeter:0.1.0"} <= texts
    assert "route with a fault" in {(t or "").strip("─ ") for t in texts}  # the legend
    assert capsys.readouterr().out == ""


def test_the_readme_picture_is_the_demos_current_graph(tmp_path: Path) -> None:
    committed = Path(__file__).resolve().parent.parent / "docs" / "demo-graph.png"
    assert main(["graph", str(DEMO_MESH), "--format", "png", "-o", str(tmp_path / "now.png")]) == 0
    # The same shape within a margin for another Graphviz's fonts: regenerate docs/demo-graph.png
    # (the command in the README) when the layout changes.
    width, height = _png_size(committed.read_bytes())
    now_width, now_height = _png_size((tmp_path / "now.png").read_bytes())
    assert abs(width / height - now_width / now_height) < 0.1 * now_width / now_height


def test_mermaid_goes_to_stdout_and_dot_to_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["graph", str(DEMO_MESH)]) == 0
    parse_mermaid(capsys.readouterr().out)
    out = tmp_path / "demo.dot"
    assert main(["graph", str(DEMO_MESH), "--format", "dot", "-o", str(out)]) == 0
    assert out.read_text() == to_dot(mesh_graph(load_mesh(DEMO_MESH)))


def test_without_graphviz_svg_is_a_runtime_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["graph", str(DEMO_MESH), "--format", "svg"]) == 1
    assert capsys.readouterr().err == (
        "error: Graphviz's `dot` is not installed; install graphviz (Debian: apt-get install "
        "graphviz, or `make os-deps`), or use --format mermaid or dot\n"
    )


def test_an_invalid_mesh_draws_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEMO_MESH.read_text().replace("{v1: 80, v2: 20}", "{v1: 80, v3: 20}"))
    assert main(["graph", str(bad), "--changes-from", str(DEMO_MESH)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"error: 1 problem in {bad}:",
        "  line 24: services.service1.routes[0].split.v3: unknown version 'v3'; this service has: v1, v2",
    ]


def test_the_readme_shows_the_demos_mermaid(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (DEMO_MESH.parent.parent / "README.md").read_text()
    shown = re.search(r"\$ sailplan graph stacks/demo.mesh.yaml\n(.*?)```", readme, re.DOTALL)
    assert shown
    assert main(["graph", str(DEMO_MESH)]) == 0
    assert capsys.readouterr().out == shown.group(1)


def test_inserting_a_route_marks_only_that_route() -> None:
    old_data = _data()
    for route in old_data["services"]["service1"]["routes"]:
        del route["name"]
    new_data = copy.deepcopy(old_data)
    new_data["services"]["service1"]["routes"].insert(
        0, {"match": {"path": {"prefix": "/beta/"}}, "to": "v2"}
    )
    new_data["ingress"]["routes"].insert(
        0, {"match": {"path": {"prefix": "/v2/"}}, "service": "service1"}
    )
    graph = graph_diff(Mesh.parse(old_data), Mesh.parse(new_data))
    marked = [(edge.lines[0], edge.state) for edge in graph.edges if edge.state]
    assert marked == [("/v2/*", "added"), ("when /beta/*", "added")]


def _newer_route_features() -> dict[str, Any]:
    """Redirects, direct answers, rewrites, header changes, destinationHeaders, several mirrors,
    CORS, a sticky cookie and a workload scoped by `calls`."""
    data: dict[str, Any] = yaml.safe_load(DEMO_MESH.read_text())
    service1 = data["services"]["service1"]
    # istio: the builtin plane's mirror copies leave before destinationHeaders apply.
    data["dataPlane"] = "istio"
    service1["versions"]["v3"] = {"image": "sailplan/demo-users:0.3.0"}
    service1["versions"]["v4"] = {"image": "sailplan/demo-users:0.4.0"}
    service1["routes"] = [
        {
            "name": "old-login",
            "match": {"path": {"prefix": "/login"}},
            "redirect": {"uri": "/v2/login", "code": 302},
        },
        {
            "name": "moved",
            "match": {"path": {"exact": "/shop"}},
            "redirect": {"scheme": "https", "authority": "shop.example.com", "port": 8443},
        },
        {
            "match": {"path": {"exact": "/maintenance"}},
            "respond": {"status": 503, "body": 'down "now"'},
            "fault": {"delay": {"fixed": "1s", "percent": 50}},
        },
        {
            "name": "api",
            "match": [{"path": {"prefix": "/api/"}}, {"path": {"prefix": "/v1/api/"}}],
            "to": "v1",
            "rewrite": {"uri": "/", "authority": "users.internal"},
            "headers": {
                "request": {"set": {"x-canary": "false"}},
                "response": {"remove": ["server"]},
            },
            "cors": {"allowOrigins": [{"exact": "https://a.example"}, {"prefix": "https://b."}]},
        },
        {
            "name": "canary",
            "split": {"v1": 80, "v2": 20},
            "destinationHeaders": {"v2": {"request": {"add": {"x-canary": "true"}}}},
            "mirrors": [{"to": "v3", "percent": 20}, {"to": "v4", "percent": 5}],
        },
    ]
    service1["policy"] = {"loadBalancer": {"hashCookie": {"name": "session", "ttl": "1h"}}}
    data["services"]["service2"]["calls"] = ["service1"]
    return data


def test_the_newer_route_features_are_said_on_their_edges() -> None:
    chart = parse_mermaid(to_mermaid(mesh_graph(Mesh.parse(_newer_route_features()))))
    assert chart.nodes["svc_service1"] == (
        "service1<br/>:8088/http<br/>load balancer sticky by cookie session (ttl 1h)"
    )
    assert chart.nodes["svc_service2"] == (
        "service2<br/>:8880/http<br/>routes for service1 only; other calls pass through"
    )
    # A route that answers itself reaches no version: its edge loops on the service.
    assert chart.edges[1:] == [
        ("svc_service1", "-->", "old-login<br/>when /login*<br/>302 → /v2/login", "svc_service1"),
        (
            "svc_service1",
            "-->",
            "moved<br/>when /shop<br/>301 → https://shop.example.com:8443",
            "svc_service1",
        ),
        (
            "svc_service1",
            "-->",
            "when /maintenance<br/>answers 503 with body #quot;down \\#quot;now\\#quot;#quot;"
            "<br/>fault delay 1s at 50%",
            "svc_service1",
        ),
        (
            "svc_service1",
            "-->",
            "api<br/>when /api/* | /v1/api/*<br/>sets x-canary: false on requests<br/>"
            "removes server from answers<br/>rewrite /api/* | /v1/api/* → /<br/>"
            "rewrite Host → users.internal<br/>"
            "CORS allows origins https://a.example, https://b.*",
            "ver_service1_v1",
        ),
        ("svc_service1", "-->", "canary 80%", "ver_service1_v1"),
        (
            "svc_service1",
            "-->",
            "canary 20%<br/>adds x-canary: true to requests",
            "ver_service1_v2",
        ),
        ("svc_service1", "-.->", "canary: mirrors 20%", "ver_service1_v3"),
        ("svc_service1", "-.->", "canary: mirrors 5%", "ver_service1_v4"),
        ("svc_service2", "-->", "every request", "ver_service2_v1"),
    ]
    # The answering route with a fault is red, as a forwarding one would be.
    assert chart.link_styles == {3: "stroke:#cf222e,stroke-width:2px"}


def test_the_newer_route_features_as_dot_match_the_golden(update_golden: bool) -> None:
    dot = to_dot(mesh_graph(Mesh.parse(_newer_route_features())))
    golden = GOLDEN / "graph" / "route-features.dot"
    if update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(dot, encoding="utf-8")
    assert dot == golden.read_text(encoding="utf-8"), "run pytest --update-golden, read the diff"


def test_graphviz_draws_the_newer_route_features(tmp_path: Path) -> None:
    mesh = tmp_path / "features.yaml"
    mesh.write_text(yaml.safe_dump(_newer_route_features(), sort_keys=False))
    svg = tmp_path / "features.svg"
    assert main(["graph", str(mesh), "--format", "svg", "-o", str(svg)]) == 0
    texts = {t.text for t in ElementTree.parse(svg).iter("{http://www.w3.org/2000/svg}text")}
    assert {
        "302 → /v2/login",
        "rewrite Host → users.internal",
        "canary: mirrors 20%",
        "adds x-canary: true to requests",
        "routes for service1 only; other calls pass through",
    } <= texts


def test_a_changed_redirect_marks_its_looping_edge() -> None:
    old_data = _newer_route_features()
    new_data = copy.deepcopy(old_data)
    new_data["services"]["service1"]["routes"][0]["redirect"]["code"] = 301
    graph = graph_diff(Mesh.parse(old_data), Mesh.parse(new_data))
    marked = [(edge.lines, edge.state) for edge in graph.edges if edge.state]
    assert marked == [(("old-login", "when /login*", "301 → /v2/login"), "changed")]


def test_a_long_direct_answer_body_is_cut_short() -> None:
    data = _newer_route_features()
    data["services"]["service1"]["routes"][2]["respond"]["body"] = "<html>" + "x" * 100
    lines = {edge.lines for edge in mesh_graph(Mesh.parse(data)).edges if edge.kind == "answer"}
    body = '"<html>' + "x" * 34 + '…"'
    assert ("when /maintenance", f"answers 503 with body {body}", "fault delay 1s at 50%") in lines


def test_the_ingress_says_its_https_and_the_redirect_to_it() -> None:
    data: dict[str, Any] = yaml.safe_load(DEMO_MESH.read_text())
    data["ingress"]["port"] = 443
    data["ingress"]["hosts"] = ["shop.example.com"]
    data["ingress"]["tls"] = {"secretName": "shop-tls", "httpsRedirect": True}
    chart = parse_mermaid(to_mermaid(mesh_graph(Mesh.parse(data))))
    assert chart.nodes["ingress"] == (
        "ingress :443<br/>nodePort 32000<br/>hosts shop.example.com<br/>"
        "HTTPS: Secret shop-tls, TLSv1.2+<br/>port 80: 301 → https:// (same host and path)"
    )
    data["ingress"]["tls"] = {"issuer": {"name": "letsencrypt", "kind": "ClusterIssuer"}}
    data["ingress"]["tls"]["minVersion"] = "TLSv1.3"
    node = mesh_graph(Mesh.parse(data)).nodes[0]
    assert node.lines[3:] == ("HTTPS: issued by ClusterIssuer letsencrypt, TLSv1.3+",)
