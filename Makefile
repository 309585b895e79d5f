# securetf: every target sets itself up; running any of them twice is harmless.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.securetf-installed
# Debian packages the project needs (FUSE, namespaces, redirection, strace for
# securetf run --trace-writes, erofs-utils for environment images; openssl, gocryptfs,
# stunnel4 and socat are the benchmarks' baselines; gcc and libssl-dev build the relay).
APT_PACKAGES := openssl fuse3 libfuse3-3 iproute2 nftables util-linux strace gocryptfs postgresql stunnel4 socat erofs-utils gcc libc6-dev libssl-dev
# The network shield's data path (docs/net-shield.md, ADR 0017), compiled beside its module.
RELAY := src/securetf/shield/net/securetf-relay
RELAY_SRC := src/securetf/shield/net/relay.c

.PHONY: setup apt relay test test-soak test-fast lint format bench demo demo-distributed clean

setup: $(STAMP) $(RELAY)

relay: $(RELAY)

$(RELAY): $(RELAY_SRC)
	@$(MAKE) --no-print-directory apt
	cc -O2 -Wall -Wextra -Werror -o $@ $< -lssl -lcrypto -lpthread

# tensorflow-serving-api and tf-keras go in with --no-deps: their dependencies would pull in
# the full tensorflow wheel next to tensorflow-cpu, which serves them as well. tf-keras is
# Keras 2, which TF_USE_LEGACY_KERAS=1 puts behind tf.keras: Keras 3's fit does not run
# under MultiWorkerMirroredStrategy (keras-team/keras#20585).
$(STAMP): pyproject.toml Makefile
	@$(MAKE) --no-print-directory apt
	@test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,tf,serve]'
	$(PY) -m pip install --quiet --no-deps 'tensorflow-serving-api==2.21.*'
	$(PY) -m pip install --quiet --no-deps 'tf-keras==2.21.*'
	@touch $@

apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks demo
	$(VENV)/bin/ruff format --check src tests benchmarks demo
	$(VENV)/bin/mypy

# Two workers, each test file on one of them (its module fixtures set up once); the
# slowest tests are listed at the end.
PYTEST_PARALLEL := -n 2 --dist loadfile --durations=25

test: lint
	$(VENV)/bin/pytest $(PYTEST_PARALLEL) -m 'not soak'

# Wider variants of the slow suites (3-worker jobs...), kept out of make test's budget; CI
# runs them after make test.
test-soak: setup
	$(VENV)/bin/pytest $(PYTEST_PARALLEL) -m soak

# The suite without the slow marks, for quick local iterations.
test-fast: setup
	$(VENV)/bin/pytest -m 'not slow and not soak'

bench: setup
	$(PY) -m benchmarks.run

# TEE=sgx|tdx|sev-snp: the same job on emulated hardware of that kind (test roots).
TEE ?= sim
demo: setup
	$(PY) -m demo --tee $(TEE)

# The 2-worker TensorFlow job through the network shield, on hosts that are network
# namespaces of its own (removed on exit); prints PASS/FAIL per check, non-zero on a FAIL.
demo-distributed: setup
	$(PY) -m demo.distributed

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build src/*.egg-info $(RELAY)

# Apply the formatter and the safe lint fixes.
format: setup
	$(VENV)/bin/ruff format src tests benchmarks demo
	$(VENV)/bin/ruff check --fix src tests benchmarks demo
