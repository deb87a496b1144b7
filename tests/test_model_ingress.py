"""The ingress."""

from __future__ import annotations

from sailplan.model import Ingress


def test_ingress_defaults_to_port_80_for_any_host() -> None:
    ingress = Ingress.model_validate({"routes": [{"service": "web"}]})
    assert (ingress.port, ingress.hosts, ingress.node_port) == (80, ["*"], None)
    assert ingress.routes[0].is_catch_all


def test_wildcard_hosts_are_accepted() -> None:
    ingress = Ingress.model_validate(
        {"hosts": ["*.example.com", "shop.example.com"], "routes": [{"service": "web"}]}
    )
    assert ingress.hosts == ["*.example.com", "shop.example.com"]
