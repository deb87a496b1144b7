#!/bin/sh
# sailplan-proxy MODE
#   proxy    the sidecar: HAProxy on the mounted config, reloaded seamlessly when it changes
#   gateway  the ingress gateway: the same, with the gateway's config
#   init     install the iptables redirect (the init container; needs NET_ADMIN + NET_RAW)
#
# Environment: SAILPLAN_CONFIG_DIR (/etc/sailplan), SAILPLAN_CERT_DIR (the config dir + "-certs",
# the mesh certificate Secret: tls.crt, tls.key, ca.crt), SAILPLAN_RUNTIME_DIR (/var/run/sailplan),
# SAILPLAN_POLL_SECONDS (2), SAILPLAN_HAPROXY (haproxy).
set -eu

mode="${1:-proxy}"
config_dir="${SAILPLAN_CONFIG_DIR:-/etc/sailplan}"
cert_dir="${SAILPLAN_CERT_DIR:-$config_dir-certs}"
# The gateway's ingress certificate (`ingress.tls`), renewed by cert-manager as the mesh one is.
ingress_cert_dir="$config_dir-ingress-tls"
runtime_dir="${SAILPLAN_RUNTIME_DIR:-/var/run/sailplan}"
poll="${SAILPLAN_POLL_SECONDS:-2}"
haproxy="${SAILPLAN_HAPROXY:-haproxy}"
# HAProxy reads every *.cfg of the directory in name order: a sidecar's 00-global.cfg and
# 10-inbound.cfg, the mesh's 20-outbound*.cfg projected beside them; the gateway's haproxy.cfg.
config="$config_dir"

log() { echo "sailplan-proxy: $*" >&2; }

case "$mode" in
  init)
    here=$(dirname "$0")
    if [ -x "$here/sailplan-iptables" ]; then exec "$here/sailplan-iptables"; fi
    exec "$here/init-iptables.sh" ;;
  proxy|gateway) ;;
  *) log "unknown mode '$mode': use proxy, gateway or init"; exit 2 ;;
esac

# A Kubernetes ConfigMap, projected or Secret mount swaps a `..data` symlink; the visible files
# are links into it, so reading them through the links sees every update at once, of every
# ConfigMap projected into the directory. The certificate counts too: cert-manager renews it into
# the Secret, and the reload below puts the new one in service (new workers load it; old ones
# finish their requests on the old one), so rotation drops nothing.
fingerprint() { cat "$config_dir"/* "$cert_dir"/* "$ingress_cert_dir"/* 2>/dev/null | cksum; }

if ! "$haproxy" -c -q -f "$config"; then
  log "the configuration in $config is invalid; not starting"
  exit 1
fi

mkdir -p "$runtime_dir"
"$haproxy" -W -db -S "$runtime_dir/master.sock" -f "$config" &
master=$!
log "started haproxy (master pid $master) in $mode mode"

stopping=0
# SIGUSR1 asks the master for a soft stop: workers finish the requests in flight, then exit.
drain() { stopping=1; kill -USR1 "$master" 2>/dev/null || true; }
trap drain TERM INT

last=$(fingerprint)
while kill -0 "$master" 2>/dev/null && [ "$stopping" = 0 ]; do
  sleep "$poll" &
  wait $! 2>/dev/null || true
  [ "$stopping" = 0 ] || break
  current=$(fingerprint)
  [ "$current" != "$last" ] || continue
  last=$current
  if "$haproxy" -c -q -f "$config" 2>"$runtime_dir/check.log"; then
    # SIGUSR2 makes the master re-read the config and start new workers on the same listening
    # sockets; old workers finish their requests: no connection is refused.
    kill -USR2 "$master"
    log "configuration or certificate changed: reloaded"
  else
    log "configuration or certificate changed but is invalid; keeping the running one: $(cat "$runtime_dir/check.log")"
  fi
done

status=0
wait "$master" || status=$?
log "haproxy exited with status $status"
exit "$status"
