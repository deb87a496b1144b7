#!/bin/sh
# Redirect the pod's TCP traffic through the sidecar, as Istio's istio-iptables does in REDIRECT
# mode: outbound -> 15001, inbound -> 15006. The proxy's own traffic (uid/gid 1337) and its admin,
# health and mTLS ports are left alone. IPv4 only: HAProxy 2.6 cannot recover IPv6 original
# destinations. Idempotent: our chains are rebuilt, the jumps into them added once.
set -eu

uid="${SAILPLAN_PROXY_UID:-1337}"
outbound="${SAILPLAN_OUTBOUND_PORT:-15001}"
inbound="${SAILPLAN_INBOUND_PORT:-15006}"
mtls="${SAILPLAN_MTLS_PORT:-15007}"
exclude="${SAILPLAN_EXCLUDE_INBOUND_PORTS:-15020,15021}"
iptables="${SAILPLAN_IPTABLES:-iptables}"

rules() {
  echo "*nat"
  for chain in SAILPLAN_INBOUND SAILPLAN_IN_REDIRECT SAILPLAN_OUTPUT SAILPLAN_REDIRECT; do
    echo ":$chain - [0:0]"
  done
  echo "-A SAILPLAN_REDIRECT -p tcp -j REDIRECT --to-ports $outbound"
  echo "-A SAILPLAN_IN_REDIRECT -p tcp -j REDIRECT --to-ports $inbound"
  # Peers reach the proxy's own ports unredirected; the outbound port listens on loopback only,
  # so a peer dialling <pod IP>:$outbound is refused (no relay through this pod).
  for port in $(echo "$exclude,$outbound,$inbound,$mtls" | tr ',' ' '); do
    echo "-A SAILPLAN_INBOUND -p tcp --dport $port -j RETURN"
  done
  echo "-A SAILPLAN_INBOUND -p tcp -j SAILPLAN_IN_REDIRECT"
  echo "-A SAILPLAN_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN"
  for owner in uid gid; do
    # The proxy calling its own pod IP over lo is inbound traffic to the app.
    echo "-A SAILPLAN_OUTPUT -o lo ! -d 127.0.0.1/32 -m owner --$owner-owner $uid -j SAILPLAN_IN_REDIRECT"
    # The app talking to localhost stays local.
    echo "-A SAILPLAN_OUTPUT -o lo -m owner ! --$owner-owner $uid -j RETURN"
    # The proxy's own egress is never captured again.
    echo "-A SAILPLAN_OUTPUT -m owner --$owner-owner $uid -j RETURN"
  done
  echo "-A SAILPLAN_OUTPUT -d 127.0.0.1/32 -j RETURN"
  echo "-A SAILPLAN_OUTPUT -j SAILPLAN_REDIRECT"
  echo "COMMIT"
}

# --noflush keeps other rules; declaring our chains empties them first, so a re-run is clean.
rules | "$iptables-restore" --noflush

"$iptables" -t nat -C PREROUTING -p tcp -j SAILPLAN_INBOUND 2>/dev/null \
  || "$iptables" -t nat -A PREROUTING -p tcp -j SAILPLAN_INBOUND
"$iptables" -t nat -C OUTPUT -p tcp -j SAILPLAN_OUTPUT 2>/dev/null \
  || "$iptables" -t nat -A OUTPUT -p tcp -j SAILPLAN_OUTPUT

echo "sailplan-iptables: outbound -> $outbound, inbound -> $inbound, uid/gid $uid and ports $exclude,$mtls excluded"
