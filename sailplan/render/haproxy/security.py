"""mTLS and authorization on the builtin plane.

Every workload has one certificate directory (`<config dir>-certs`: `tls.crt`, `tls.key`,
`ca.crt`, the keys of the Secret cert-manager writes), used both ways: as the server certificate
of the inbound listener and as the client certificate of every connection to another sidecar.
All connections between sidecars (and from the gateway) are TLS 1.3, verified against the mesh
CA on both ends.

HAProxy 2.6 has no sample fetch for a certificate's SAN, so the caller's identity is read from
the certificate itself: a SPIFFE ID is the URI entry of the SAN extension, DER tag 0x86, its
length, then its bytes; `mesh.lua` (`sailplan_peer`) reads it once per connection, so the config
does not grow with the mesh. The server's identity is checked during the handshake: every
workload certificate also carries its identity as a DNS name (`identity_dns_name`), and a server
line to a service's sidecars has `verifyhost <that name>`, so a server whose certificate names
another workload fails the handshake and gets no request (the caller answers 503 `UF`, as for
any failed connection). Both certificates were verified against the mesh CA, so only the CA can
put a name there.

Inbound, per `mtls`:
- `strict`: the listener is TLS only (`verify required`): plaintext and foreign certificates
  fail the handshake.
- `permissive`: one port for both, as Istio's: a TCP listener looks at the first byte (0x16 is a
  TLS handshake record) and hands the connection over an abstract socket to the TLS or the plain
  bind of the HTTP listener, with the PROXY protocol so the caller's address survives the hop.
- `disable`: plaintext (`routing.inbound`), and no certificate is needed.

With `strict` and `permissive` the HTTP listener also binds the mTLS port (15007), TLS only, and
other sidecars and the gateway dial that one (`endpoints.servers`): their connections are always
TLS, so they skip the detection and its relay, which cost the callee two more sends and receives
a request. The inbound port stays what the mode says for everyone else (plaintext callers, and
iptables sending the service port there).
"""

from __future__ import annotations

from sailplan.model.security import (
    caller_identity,
    denies_by_default,
    service_identity,
    workload_dns_name,
)

from .context import Context, Writer
from .observability import frontend_lines
from .quoting import acl_name, bare, fetch_arg, quote

# Envoy's answer to a request its RBAC filter denies (403, text/plain).
RBAC_BODY = "RBAC: access denied"
XFCC_HEADER = "x-forwarded-client-cert"
CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"
CA_FILE = "ca.crt"
# A caller that connects and sends nothing is classified as plaintext after this long.
DETECT_TIMEOUT = "5s"


def meshed(ctx: Context) -> bool:
    """Whether sidecars speak mTLS to each other (`mtls` is not `disable`)."""
    return ctx.mesh.mtls != "disable"


def cert_dir_of(config_dir: str) -> str:
    """Where a proxy whose config is in `config_dir` finds its certificate: beside it, not in
    it, since a cluster mounts the config as a read-only ConfigMap volume and a volume mounted
    inside another needs a mount point the read-only one cannot give."""
    return f"{config_dir}-certs"


def cert_dir(ctx: Context) -> str:
    return cert_dir_of(ctx.config_dir)


def global_lines(ctx: Context) -> list[str]:
    if not meshed(ctx):
        return []
    # `crt .../tls.crt` then finds its key in `tls.key` (cert-manager's name), not `tls.crt.key`.
    return ["ssl-load-extra-del-ext"]


def _tls(ctx: Context) -> str:
    directory = cert_dir(ctx)
    return (
        f"ssl crt {directory}/{CERT_FILE} ca-file {directory}/{CA_FILE} verify required "
        "ssl-min-ver TLSv1.3"
    )


def server_tls(ctx: Context, service_name: str) -> str:
    """Options of a `server` line to one of `service_name`'s sidecars: mTLS with this workload's
    certificate, the peer verified against the mesh CA and named as the service during the
    handshake; empty when `mtls` is `disable`.

    Checked once per connection: until this, a rule after every answer hex-encoded the server's
    whole certificate to look for the service's URI SAN in it, about 26k of the caller's ~45k
    instructions per request that mTLS added on the bench's keep-alive path (bench/FINDINGS.md
    point 11), and a wrong server had the request before the caller noticed."""
    if not meshed(ctx):
        return ""
    name = workload_dns_name(service_identity(ctx.mesh, service_name))
    return f"{_tls(ctx)} verifyhost {bare(name)}"


def _peer_lines(ctx: Context, own: str) -> list[str]:
    """Who is calling and the XFCC header the app gets, both worked out once per connection
    (`sess.peer`, `sess.xfcc`). Each rule tests its variable before `ssl_c_used`, so on the
    connection's later requests the first, cheaper test settles it (HAProxy stops at the first
    false condition), and the header rule tests the variable alone: it is set exactly when the
    connection is mTLS. The header was removed first, so adding it is setting it."""
    lines = [
        f"http-request del-header {XFCC_HEADER}",
        # One Lua call per connection, whatever the size of the mesh.
        "http-request set-var(sess.peer) lua.sailplan_peer if !{ var(sess.peer) -m found } "
        "{ ssl_c_used }",
    ]
    # Envoy's format (forward_client_cert_details SANITIZE_SET, as Istio's sidecars): the
    # callee's identity, the SHA-256 of the caller's DER certificate, the caller's identity.
    # All three are the connection's (TLS 1.3 has no renegotiation), so the value is built
    # once per connection: serializing and hashing the certificate on every request was about
    # a fifth of the callee's instructions per request on the bench's keep-alive mTLS path.
    lines += [
        f"http-request set-var-fmt(sess.xfcc) By={fetch_arg(own)};"
        "Hash=%[ssl_c_der,sha2(256),hex,lower];URI=%[var(sess.peer)] "
        "if !{ var(sess.xfcc) -m found } { ssl_c_used }",
        f"http-request add-header {XFCC_HEADER} %[var(sess.xfcc)] if {{ var(sess.xfcc) -m found }}",
    ]
    return lines


def authorization_lines(ctx: Context, service_name: str) -> list[str]:
    """The service's `allow` rules (or the mesh's default deny) on the verified caller identity,
    method and path: a request no rule lets in gets Envoy's 403."""
    if not denies_by_default(ctx.mesh, service_name):
        return []
    rules = ctx.mesh.services[service_name].allow or []
    lines: list[str] = []
    alternatives: list[str] = []
    for index, rule in enumerate(rules):
        names = []
        if rule.sources is not None:
            name = acl_name("allow", str(index), "from")
            peers = " ".join(
                fetch_arg(caller_identity(ctx.mesh, source)) for source in rule.sources
            )
            lines.append(f"acl {name} var(sess.peer) -m str {peers}")
            names.append(name)
        if rule.methods is not None:
            name = acl_name("allow", str(index), "method")
            lines.append(f"acl {name} method {' '.join(bare(m) for m in rule.methods)}")
            names.append(name)
        if rule.paths is not None:
            name = acl_name("allow", str(index), "path")
            for path in rule.paths:
                match = "str" if path.kind == "exact" else "beg"
                lines.append(f"acl {name} path -m {match} {quote(path.value)}")
            names.append(name)
        if not names:
            # A rule without conditions lets every request in.
            return []
        alternatives.append(" ".join(names))
    deny = f"http-request return status 403 content-type text/plain string {quote(RBAC_BODY)}"
    if alternatives:
        deny += f" unless {' or '.join(alternatives)}"
    return [*lines, deny]


def inbound(ctx: Context, out: Writer, service_name: str) -> None:
    """The callee's side (15006) with mTLS: who calls, may they, then the app (`inbound_app`,
    written by `routing.inbound`)."""
    own = service_identity(ctx.mesh, service_name)
    bind = f"{ctx.ports.bind_address}:{ctx.ports.inbound}"
    rules = [
        *frontend_lines("inbound", logged=ctx.mesh.access_log),
        *_peer_lines(ctx, own),
        *authorization_lines(ctx, service_name),
        "default_backend inbound_app",
    ]
    mtls_bind = f"bind {ctx.ports.bind_address}:{ctx.ports.mtls} {_tls(ctx)}"
    if ctx.mesh.mtls == "strict":
        out.section("frontend inbound", f"bind {bind} {_tls(ctx)}", mtls_bind, *rules)
    else:
        # Abstract sockets: no file permissions, so workers that dropped root (the sandbox's
        # netns pods) reach them too; named after the runtime directory, so proxies sharing a
        # network namespace (the sandbox on 127.0.0.1) never meet.
        mtls_socket = f"abns@{ctx.runtime_dir}/inbound-mtls"
        plain_socket = f"abns@{ctx.runtime_dir}/inbound-plain"
        out.section(
            "frontend inbound",
            f"bind {bind}",
            "mode tcp",
            # The HTTP listener behind logs each request; this one would log connections.
            "no log",
            # An HTTP option from `defaults` that a TCP listener has no use for.
            "no option idle-close-on-response",
            f"tcp-request inspect-delay {DETECT_TIMEOUT}",
            "tcp-request content accept if { req.len gt 0 }",
            "use_backend inbound_mtls if { req.payload(0,1) -m bin 16 }",
            "default_backend inbound_plaintext",
            comment="permissive: a TLS ClientHello goes to the mTLS bind, anything else to the "
            "plaintext one",
        )
        for name, socket in (("mtls", mtls_socket), ("plaintext", plain_socket)):
            out.section(
                f"backend inbound_{name}",
                "mode tcp",
                "no log",
                f"server {name} {socket} send-proxy-v2",
            )
        out.section(
            "frontend inbound_http",
            f"bind {mtls_socket} accept-proxy {_tls(ctx)}",
            f"bind {plain_socket} accept-proxy",
            mtls_bind,
            *rules,
        )
