"""Service policy: load balancing, connection pool, outlier detection."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sailplan.model import Duration, LoadBalancer, OutlierDetection, Policy
from sailplan.model.policy import ConnectionPool


def test_load_balancer_written_as_a_name_or_a_hash_header() -> None:
    assert LoadBalancer.model_validate("random").algorithm == "random"
    hashed = LoadBalancer.model_validate({"hashHeader": "x-user"})
    assert hashed.hash_header == "x-user"
    assert hashed.to_dict() == {"hashHeader": "x-user"}
    assert Policy.model_validate({"loadBalancer": "least-request"}).to_dict() == {
        "loadBalancer": "least-request"
    }


def test_outlier_detection_defaults_follow_istio() -> None:
    outlier = OutlierDetection()
    assert outlier.consecutive_5xx_errors == 5
    assert outlier.interval == Duration(10_000)
    assert outlier.base_ejection_time == Duration(30_000)
    assert outlier.max_ejection_percent == 10
    assert OutlierDetection.model_validate({"consecutive5xxErrors": 2}).consecutive_5xx_errors == 2


def test_connection_pool_takes_istios_names_and_round_trips() -> None:
    # The Circuit Breaking task's pool, plus the other fields Istio's tasks use.
    written = {
        "maxConnections": 1,
        "maxPendingRequests": 1,
        "maxRequestsPerConnection": 1,
        "http2MaxRequests": 100,
        "maxRetries": 2,
        "connectTimeout": "250ms",
        "idleTimeout": "90s",
    }
    pool = ConnectionPool.model_validate(written)
    assert pool.max_requests_per_connection == 1
    assert pool.connect_timeout == Duration(250)
    assert pool.to_dict() == written
    assert ConnectionPool.model_validate({"connectTimeout": "0.5s"}).to_dict() == {
        "connectTimeout": "500ms",
        "maxPendingRequests": 0,
    }


def test_an_empty_connection_pool_is_refused() -> None:
    with pytest.raises(ValidationError, match="a connection pool needs at least one field"):
        ConnectionPool.model_validate({})


def test_outlier_detection_in_words() -> None:
    assert OutlierDetection().phrase() == "eject after 5 consecutive 5xx for 30s"
    gateway = OutlierDetection.model_validate({"consecutiveGatewayErrors": 2})
    assert gateway.phrase() == "eject after 5 consecutive 5xx or 2 gateway errors for 30s"
