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

bench-deps: os-deps
	@command -v wrk >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; }

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
