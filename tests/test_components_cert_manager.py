"""`CertManager` and the builtin `Mesh`'s certificates under Pulumi's mock engine."""

from __future__ import annotations

import pytest
from pulumi_support import register

from sailplan.components import ArgsError, CertManager, CertManagerArgs

CHART = "kubernetes:helm.sh/v4:Chart"


def test_the_chart_comes_pinned_from_jetstack_with_its_crds() -> None:
    engine, namespace = register(lambda: CertManager("cm").namespace)
    assert namespace == "cert-manager"
    [chart] = engine.of_type(CHART)
    assert chart.name == "cm-chart"
    assert chart.inputs["chart"] == "cert-manager"
    assert chart.inputs["version"] == "v1.21.1"
    assert chart.inputs["repositoryOpts"] == {"repo": "https://charts.jetstack.io"}
    assert chart.inputs["namespace"] == "cert-manager"
    assert chart.inputs["values"] == {
        "crds": {"enabled": True},
        "enableCertificateOwnerRef": True,
    }
    [ns] = engine.of_type("kubernetes:core/v1:Namespace")
    assert ns.inputs["metadata"]["name"] == "cert-manager"
    assert ns.urn in chart.dependencies


def test_extra_values_and_another_version_reach_the_chart() -> None:
    args = CertManagerArgs(version="v1.20.3", namespace="pki", extra_values={"replicaCount": 2})
    engine, _ = register(lambda: CertManager("cm", args).namespace)
    [chart] = engine.of_type(CHART)
    assert chart.inputs["version"] == "v1.20.3"
    assert chart.inputs["namespace"] == "pki"
    assert chart.inputs["values"]["replicaCount"] == 2
    assert chart.inputs["values"]["crds"] == {"enabled": True}


def test_an_existing_cert_manager_deploys_nothing() -> None:
    def build() -> object:
        manager = CertManager("cm", CertManagerArgs(install=False))
        assert manager.ready == []
        return manager.namespace

    engine, namespace = register(build)
    assert namespace == "cert-manager"
    assert [r.type for r in engine.registrations] == ["sailplan:index:CertManager"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"version": "1.21.1"},
            "CertManagerArgs.version: '1.21.1' is not a cert-manager chart version: give 'v' "
            "and major.minor.patch such as 'v1.21.1'",
        ),
        (
            {"namespace": "Cert_Manager"},
            "CertManagerArgs.namespace: 'Cert_Manager' is not a namespace name",
        ),
        ({"install": "no"}, "CertManagerArgs.install: must be True or False, not str 'no'"),
        (
            {"install": False, "extra_values": {"replicaCount": 2}},
            "CertManagerArgs.install: False says cert-manager is installed some other way, so "
            "version=, repository= and extra_values= would not be used: drop them",
        ),
    ],
    ids=["version-without-v", "namespace", "install-not-bool", "install-false-with-values"],
)
def test_wrong_arguments_are_refused_with_their_path(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ArgsError) as error:
        CertManagerArgs(**kwargs)  # type: ignore[arg-type]
    assert str(error.value).startswith(message)
