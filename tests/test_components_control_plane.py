"""`IstioControlPlane` and `ProxyImage` under Pulumi's mock engine."""

from __future__ import annotations

import pulumi
import pytest
from conftest import REPO
from pulumi_support import register

from sailplan.components import IstioControlPlane, IstioControlPlaneArgs, ProxyImage, ProxyImageArgs
from sailplan.components.istio_control_plane import WEBHOOK_DRIFT_FIELDS, ignore_webhook_drift
from sailplan.components.proxy_image import default_context

REPOSITORY = "https://istio-release.storage.googleapis.com/charts"


def test_charts_come_from_the_release_repository_in_order() -> None:
    engine, outputs = register(
        lambda: pulumi.Output.all(
            *(lambda cp: (cp.revision, cp.system_namespace, cp.gateway_service))(
                IstioControlPlane("istio")
            )
        )
    )
    assert outputs == ["default", "istio-system", "istio-ingress/istio-ingressgateway"]
    charts = {r.name: r for r in engine.of_type("kubernetes:helm.sh/v4:Chart")}
    assert sorted(charts) == ["istio-base", "istio-gateway", "istio-istiod"]
    for name, chart in (("base", "base"), ("istiod", "istiod"), ("gateway", "gateway")):
        inputs = charts[f"istio-{name}"].inputs
        assert inputs["chart"] == chart
        assert inputs["version"] == "1.30.3"
        assert inputs["repositoryOpts"] == {"repo": REPOSITORY}
    assert charts["istio-istiod"].inputs["namespace"] == "istio-system"
    assert charts["istio-gateway"].inputs["name"] == "istio-ingressgateway"
    assert charts["istio-base"].urn in charts["istio-istiod"].dependencies
    assert charts["istio-istiod"].urn in charts["istio-gateway"].dependencies
    namespaces = {
        r.inputs["metadata"]["name"] for r in engine.of_type("kubernetes:core/v1:Namespace")
    }
    assert namespaces == {"istio-system", "istio-ingress"}


def test_typed_knobs_reach_the_chart_values() -> None:
    args = IstioControlPlaneArgs(
        version="1.30.1",
        revision="canary",
        istiod_resources={"requests": {"cpu": "200m"}},
        mesh_config={"accessLogFile": "/dev/stdout"},
        gateway_service_type="NodePort",
        gateway_node_port=32000,
    )
    engine, revision = register(lambda: IstioControlPlane("istio", args).revision)
    assert revision == "canary"
    istiod = engine.by_name("istio-istiod").inputs
    assert istiod["version"] == "1.30.1"
    assert istiod["values"] == {
        "global": {"istioNamespace": "istio-system"},
        "revision": "canary",
        "resources": {"requests": {"cpu": "200m"}},
        "meshConfig": {"accessLogFile": "/dev/stdout"},
    }
    service = engine.by_name("istio-gateway").inputs["values"]["service"]
    assert service["type"] == "NodePort"
    assert service["ports"][1] == {
        "name": "http2",
        "port": 80,
        "protocol": "TCP",
        "targetPort": 80,
        "nodePort": 32000,
    }


def test_webhook_drift_is_ignored_only_on_webhooks() -> None:
    opts = pulumi.ResourceOptions()
    webhook = pulumi.ResourceTransformArgs(
        custom=True,
        type_="kubernetes:admissionregistration.k8s.io/v1:ValidatingWebhookConfiguration",
        name="istiod-default-validator",
        props={"webhooks": []},
        opts=opts,
    )
    result = ignore_webhook_drift(webhook)
    assert result is not None
    assert result.opts.ignore_changes == WEBHOOK_DRIFT_FIELDS
    deployment = pulumi.ResourceTransformArgs(
        custom=True, type_="kubernetes:apps/v1:Deployment", name="istiod", props={}, opts=opts
    )
    assert ignore_webhook_drift(deployment) is None


def test_an_explicit_image_skips_the_build() -> None:
    engine, ref = register(
        lambda: ProxyImage("proxy", ProxyImageArgs(image="ghcr.io/x/proxy:1")).ref
    )
    assert ref == "ghcr.io/x/proxy:1"
    assert engine.of_type("docker-build:index:Image") == []


def test_the_build_uses_proxy_image_and_keeps_the_password_secret() -> None:
    args = ProxyImageArgs(
        repository="reg.example/proxy",
        tag="2",
        push=True,
        registry="reg.example",
        username="u",
        password="s3cret",
    )
    engine, ref = register(lambda: ProxyImage("proxy", args).ref)
    image = engine.of_type("docker-build:index:Image")[0].inputs
    assert image["context"]["location"].endswith("/sailplan/proxy_image")
    assert image["dockerfile"]["location"].endswith("/sailplan/proxy_image/Dockerfile")
    assert image["platforms"] == ["linux/amd64"]
    assert image["push"] is True
    # The credentials travel as a Pulumi secret: masked in previews, encrypted in state.
    registries = image["registries"]
    assert registries[pulumi.runtime.rpc._special_sig_key] == pulumi.runtime.rpc._special_secret_sig
    assert registries["value"][0]["address"] == "reg.example"
    assert ref.startswith("reg.example/proxy:2@sha256:")


def test_an_image_from_another_resource_is_accepted_as_an_output() -> None:
    def build() -> pulumi.Output[str]:
        built = ProxyImage("built", ProxyImageArgs(repository="reg.example/proxy", tag="7"))
        return ProxyImage("reused", ProxyImageArgs(image=built.ref)).ref

    engine, ref = register(build)
    assert ref == f"reg.example/proxy:7@sha256:{'0' * 64}"
    assert len(engine.of_type("docker-build:index:Image")) == 1


def test_the_build_context_is_the_packaged_one() -> None:
    context = default_context()
    assert context == REPO / "sailplan" / "proxy_image"
    assert sorted(p.name for p in context.iterdir()) == [
        "Dockerfile",
        "entrypoint.sh",
        "init-iptables.sh",
    ]


LOAD_BALANCER = {
    "spec": {"type": "LoadBalancer", "ports": [{"name": "http2", "port": 80, "nodePort": 31380}]},
    "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}},
}
GATEWAY_ID = "istio-ingress/istio-ingressgateway"


def test_the_gateway_address_is_read_from_the_charts_service() -> None:
    engine, address = register(
        lambda: IstioControlPlane("istio").gateway_address, live={GATEWAY_ID: LOAD_BALANCER}
    )
    assert address == "203.0.113.7:80"
    assert engine.reads == [("kubernetes:core/v1:Service", GATEWAY_ID)]


def test_a_load_balancer_without_an_address_yet_gives_none() -> None:
    pending = {"spec": LOAD_BALANCER["spec"], "status": {"loadBalancer": {}}}
    _, address = register(
        lambda: IstioControlPlane("istio").gateway_address, live={GATEWAY_ID: pending}
    )
    assert address is None


def test_a_node_port_gateway_address_uses_the_allocated_node_port() -> None:
    live = {GATEWAY_ID: {"spec": {"type": "NodePort", "ports": [
        {"name": "status-port", "port": 15021, "nodePort": 30021},
        {"name": "http2", "port": 80, "nodePort": 31380},
    ]}}}  # fmt: skip
    args = IstioControlPlaneArgs(gateway_service_type="NodePort")
    _, address = register(lambda: IstioControlPlane("istio", args).gateway_address, live=live)
    assert address == "<any node address>:31380"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            IstioControlPlaneArgs(gateway_service_type="NodePort", gateway_node_port=32080),
            "<any node address>:32080",
        ),
        (
            IstioControlPlaneArgs(gateway_service_type="ClusterIP", gateway_port=8080),
            "istio-ingressgateway.istio-ingress.svc.cluster.local:8080",
        ),
        (IstioControlPlaneArgs(install_gateway=False), None),
    ],
)
def test_a_gateway_address_the_arguments_fix_needs_no_read(
    args: IstioControlPlaneArgs, expected: str | None
) -> None:
    engine, address = register(lambda: IstioControlPlane("istio", args).gateway_address)
    assert address == expected
    assert engine.reads == []


def test_a_preview_does_not_read_the_service_the_chart_has_not_created() -> None:
    seen: list[object] = []
    engine, _ = register(
        lambda: IstioControlPlane("istio").gateway_address.apply(seen.append), preview=True
    )
    assert engine.reads == []
    assert seen == []  # unknown in a preview: the apply never runs
