"""Service policy: load balancing, connection pool, outlier detection."""

from __future__ import annotations

from sailplan.model import Duration, LoadBalancer, OutlierDetection, Policy


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
