"""Names, labels and ports shared by the renderers, the components and the sandbox.

Renderers use these instead of string literals so one change here changes every output.
"""

from typing import Final

MANAGED_BY: Final = "sailplan"
PART_OF_LABEL: Final = "app.kubernetes.io/part-of"
NAME_LABEL: Final = "app.kubernetes.io/name"
VERSION_LABEL: Final = "app.kubernetes.io/version"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
APP_LABEL: Final = "app"
WORKLOAD_VERSION_LABEL: Final = "version"

ISTIO_INJECT_LABEL: Final = "sidecar.istio.io/inject"
ISTIO_NAMESPACE_INJECTION_LABEL: Final = "istio-injection"

# The builtin sidecar's ports, as Istio's sidecar uses them.
PROXY_OUTBOUND_PORT: Final = 15001
PROXY_INBOUND_PORT: Final = 15006
PROXY_ADMIN_PORT: Final = 15020
PROXY_HEALTH_PORT: Final = 15021
# Sidecar to sidecar mTLS (mtls: strict or permissive): callers' proxies dial it, TLS only, so
# their connections skip the inbound port's check for a TLS ClientHello and the relay behind it.
PROXY_MTLS_PORT: Final = 15007
PROXY_HEALTH_PATH: Final = "/healthz/ready"
PROXY_UID: Final = 1337
PROXY_CONTAINER_NAME: Final = "sailplan-proxy"
PROXY_INIT_CONTAINER_NAME: Final = "sailplan-init"
PROXY_IMAGE_DEFAULT: Final = "ghcr.io/sailplan/proxy:0.1.0"
# The gateway-api plane's ingress Gateway class unless told otherwise: Istio's, which also serves
# as the ingress next to Linkerd (which has no gateway of its own).
GATEWAY_CLASS_DEFAULT: Final = "istio"

# Apps listen on $PORT; sailplan sets it to the service port.
APP_PORT_ENV: Final = "PORT"

# Istio's ingress gateway as installed by its official `gateway` chart (release name = pod label).
ISTIO_SYSTEM_NAMESPACE: Final = "istio-system"
ISTIO_GATEWAY_NAMESPACE: Final = "istio-ingress"
ISTIO_GATEWAY_RELEASE: Final = "istio-ingressgateway"
ISTIO_GATEWAY_SELECTOR: Final = {"istio": "ingressgateway"}
