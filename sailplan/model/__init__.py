"""The mesh spec: pydantic models of services, versions, routes and ingress, validated as a whole.

No Pulumi and no I/O here: `sailplan.load_mesh` reads files, renderers read these models.
"""

from sailplan.model.base import Duration, SpecModel
from sailplan.model.errors import Problem, SpecError
from sailplan.model.ingress import Ingress, IngressRoute
from sailplan.model.match import Match, StringMatch
from sailplan.model.mesh import DataPlane, Mesh, MtlsMode
from sailplan.model.policy import ConnectionPool, LoadBalancer, OutlierDetection, Policy
from sailplan.model.route import (
    Abort,
    Cors,
    Delay,
    Fault,
    HeaderChanges,
    Headers,
    Mirror,
    Retries,
    Route,
)
from sailplan.model.security import (
    INGRESS,
    AllowRule,
    Authorization,
    PathRule,
    caller_identity,
    certificate_secret_name,
    gateway_service_account,
    ingress_identity,
    service_identity,
    spiffe_id,
)
from sailplan.model.service import (
    EnvFrom,
    EnvRef,
    KeyRef,
    LocalRun,
    Readiness,
    ResourceAmounts,
    Resources,
    Service,
    Version,
)

__all__ = [
    "INGRESS",
    "Abort",
    "AllowRule",
    "Authorization",
    "ConnectionPool",
    "Cors",
    "DataPlane",
    "Delay",
    "Duration",
    "EnvFrom",
    "EnvRef",
    "Fault",
    "HeaderChanges",
    "Headers",
    "Ingress",
    "IngressRoute",
    "KeyRef",
    "LoadBalancer",
    "LocalRun",
    "Match",
    "Mesh",
    "Mirror",
    "MtlsMode",
    "OutlierDetection",
    "PathRule",
    "Policy",
    "Problem",
    "Readiness",
    "ResourceAmounts",
    "Resources",
    "Retries",
    "Route",
    "Service",
    "SpecError",
    "SpecModel",
    "StringMatch",
    "Version",
    "caller_identity",
    "certificate_secret_name",
    "gateway_service_account",
    "ingress_identity",
    "service_identity",
    "spiffe_id",
]
