"""The local sandbox: a mesh's apps, sidecars and ingress as processes on 127.0.0.1, running the
very proxy configs the cluster gets (explicit-proxy mode instead of iptables)."""
