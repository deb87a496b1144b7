"""Every rendered pod against the Pod Security Standards (Kubernetes v1.30 policies).

`violations()` implements the checks of the `baseline` and `restricted` levels as the Pod Security
Standards page lists them, on a pod spec: what Pod Security Admission would refuse in a namespace
labelled `pod-security.kubernetes.io/enforce: <level>`. The builtin plane's `explicit-proxy`
interception meets `restricted`; its `iptables` interception does not even meet `baseline`, because
the init container that installs the redirect needs NET_ADMIN and NET_RAW (and runs as root).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import DEMO_MESH, EXAMPLE_MESHES
from model_support import edited

import sailplan
from sailplan.render.manifests import render_manifests

# Capabilities `baseline` lets a container add; `restricted` lets it add only NET_BIND_SERVICE.
_BASELINE_CAPABILITIES = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}
_RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}


def _containers(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod.get(field, [])


def _baseline(pod: dict[str, Any]) -> list[str]:
    found = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            found.append(f"{field}: true")
    pod_context = pod.get("securityContext", {})
    if pod_context.get("windowsOptions", {}).get("hostProcess"):
        found.append("hostProcess")
    for sysctl in pod_context.get("sysctls", []):
        if sysctl["name"] not in _SAFE_SYSCTLS:
            found.append(f"sysctl {sysctl['name']}")
    if pod_context.get("seccompProfile", {}).get("type") == "Unconfined":
        found.append("pod seccompProfile Unconfined")
    for volume in pod.get("volumes", []):
        if "hostPath" in volume:
            found.append(f"hostPath volume {volume['name']}")
    for container in _containers(pod):
        name = container["name"]
        context = container.get("securityContext", {})
        if context.get("privileged"):
            found.append(f"{name}: privileged")
        if context.get("windowsOptions", {}).get("hostProcess"):
            found.append(f"{name}: hostProcess")
        added = set(context.get("capabilities", {}).get("add", [])) - _BASELINE_CAPABILITIES
        if added:
            found.append(f"{name}: adds capabilities {sorted(added)}")
        if context.get("procMount", "Default") != "Default":
            found.append(f"{name}: procMount")
        if context.get("seccompProfile", {}).get("type") == "Unconfined":
            found.append(f"{name}: seccompProfile Unconfined")
        if context.get("appArmorProfile", {}).get("type") == "Unconfined":
            found.append(f"{name}: appArmorProfile Unconfined")
        for port in container.get("ports", []):
            if port.get("hostPort"):
                found.append(f"{name}: hostPort {port['hostPort']}")
    return found


def _restricted(pod: dict[str, Any]) -> list[str]:
    found = _baseline(pod)
    pod_context = pod.get("securityContext", {})
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']} of type {sorted(kinds)}")
    if pod_context.get("runAsUser") == 0:
        found.append("pod runAsUser: 0")
    pod_non_root = pod_context.get("runAsNonRoot") is True
    pod_seccomp = pod_context.get("seccompProfile", {}).get("type") in (
        "RuntimeDefault",
        "Localhost",
    )
    for container in _containers(pod):
        name = container["name"]
        context = container.get("securityContext", {})
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        non_root = context.get("runAsNonRoot")
        if non_root is False or (non_root is None and not pod_non_root):
            found.append(f"{name}: runAsNonRoot is not true")
        if context.get("runAsUser") == 0:
            found.append(f"{name}: runAsUser: 0")
        seccomp = context.get("seccompProfile", {}).get("type")
        if seccomp is None and not pod_seccomp:
            found.append(f"{name}: no seccompProfile RuntimeDefault or Localhost")
        capabilities = context.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            found.append(f"{name}: does not drop ALL capabilities")
        extra = set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}
        if extra:
            found.append(f"{name}: adds capabilities {sorted(extra)}")
    return found


def violations(pod: dict[str, Any], level: str) -> list[str]:
    """What Pod Security Admission at `level` ("baseline" or "restricted") would refuse."""
    found = _restricted(pod) if level == "restricted" else _baseline(pod)
    return list(dict.fromkeys(found))  # a rule both levels share is reported once


def _pods(text: str, plane: str | None = None) -> dict[str, dict[str, Any]]:
    mesh = sailplan.load_mesh_text(text)
    return {
        m["metadata"]["name"]: m["spec"]["template"]["spec"]
        for m in render_manifests(mesh, plane)  # type: ignore[arg-type]
        if m["kind"] == "Deployment"
    }


SCENARIOS = [DEMO_MESH, *EXAMPLE_MESHES]


def _with(path: Path, **fields: Any) -> str:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return yaml.safe_dump({**data, **fields})


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_explicit_proxy_pods_meet_restricted(scenario: Path) -> None:
    pods = _pods(_with(scenario, dataPlane="builtin", interception="explicit-proxy"))
    assert pods
    for name, pod in pods.items():
        assert violations(pod, "restricted") == [], name


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_iptables_pods_fail_baseline_only_for_the_init_container(scenario: Path) -> None:
    pods = _pods(_with(scenario, dataPlane="builtin"))
    for name, pod in pods.items():
        if name.endswith("-gateway"):
            # The gateway is no intercepted workload: no init container, restricted as it is.
            assert violations(pod, "restricted") == [], name
            continue
        assert violations(pod, "baseline") == [
            "sailplan-init: adds capabilities ['NET_ADMIN', 'NET_RAW']"
        ], name
        assert violations(pod, "restricted") == [
            "sailplan-init: adds capabilities ['NET_ADMIN', 'NET_RAW']",
            "sailplan-init: runAsNonRoot is not true",
            "sailplan-init: runAsUser: 0",
        ], name


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_istio_pods_as_rendered_meet_restricted(scenario: Path) -> None:
    # Before injection: istiod then adds Envoy and, without istio-cni, its NET_ADMIN init container.
    for name, pod in _pods(_with(scenario, dataPlane="istio")).items():
        assert violations(pod, "restricted") == [], name


def test_the_checker_sees_what_each_level_refuses() -> None:
    # A checker that finds nothing would make every test above pass: each rule must fire.
    pod = {
        "hostNetwork": True,
        "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}, {"name": "n", "nfs": {}}],
        "containers": [
            {
                "name": "app",
                "ports": [{"containerPort": 80, "hostPort": 80}],
                "securityContext": {
                    "privileged": True,
                    "capabilities": {"add": ["SYS_ADMIN", "CHOWN"]},
                },
            }
        ],
    }
    assert violations(pod, "baseline") == [
        "hostNetwork: true",
        "sysctl kernel.msgmax",
        "hostPath volume h",
        "app: privileged",
        "app: adds capabilities ['SYS_ADMIN']",
        "app: hostPort 80",
    ]
    assert violations(pod, "restricted")[6:] == [
        "volume h of type ['hostPath']",
        "volume n of type ['nfs']",
        "app: allowPrivilegeEscalation is not false",
        "app: runAsNonRoot is not true",
        "app: no seccompProfile RuntimeDefault or Localhost",
        "app: does not drop ALL capabilities",
        "app: adds capabilities ['CHOWN', 'SYS_ADMIN']",
    ]


def test_explicit_proxy_keeps_the_sidecar_and_app_as_hardened_as_iptables() -> None:
    text = yaml.safe_dump(edited({"interception": "explicit-proxy"}))
    pod = _pods(text)["service1-v1"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sidecar = pod["initContainers"][0]
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["securityContext"]["runAsUser"] == 1337


def test_an_explicit_proxy_namespace_enforces_restricted() -> None:
    def labels(edits: dict[str, Any]) -> dict[str, str]:
        mesh = sailplan.load_mesh_text(yaml.safe_dump(edited(edits)))
        [namespace] = [m for m in render_manifests(mesh) if m["kind"] == "Namespace"]
        return dict(namespace["metadata"]["labels"])

    assert labels({"interception": "explicit-proxy"})["pod-security.kubernetes.io/enforce"] == (
        "restricted"
    )
    # iptables pods could not run under it: the cluster's own default applies.
    assert "pod-security.kubernetes.io/enforce" not in labels({})
