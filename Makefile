# infra-operator — common tasks. `make run` and `make test` are the two set-up commands of the README.
CARGO ?= cargo
PYTHON ?= python3
LOCAL ?= target/local
# Built and installed tools live outside the repository, shared by every checkout on this machine.
CACHE ?= $(HOME)/.cache/infra-operator
VENV := $(CACHE)/venv
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
KUBE_VERSION ?= v1.34.4
export INFRA_OPERATOR_CACHE := $(CACHE)
export KUBE_VERSION

.PHONY: build test unit fmt fmt-check lint crds run tools bench bench-instructions bench-scale bench-floor bench-soak clean

build:
	$(CARGO) build --release

# Every test: unit, guardrail corpus, webhook over TLS, and end to end on a real kube-apiserver.
test: tools
	$(CARGO) test --all-targets

# Tests that need no local stack (pure code, the webhook over TLS).
unit:
	$(CARGO) test --lib

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Regenerate manifests/crds/ from the Rust API types (a test fails when they differ).
crds:
	UPDATE_CRDS=1 $(CARGO) test --test crds

# kube-apiserver and kube-controller-manager built from the Go module proxy, kubectl and moto from PyPI;
# each step is skipped when cached.
tools: $(CACHE)/bin/kube-apiserver-$(KUBE_VERSION) $(CACHE)/bin/kube-controller-manager-$(KUBE_VERSION) $(VENV)/.installed

$(CACHE)/bin/kube-%-$(KUBE_VERSION): tests/stack/build-kube.sh
	tests/stack/build-kube.sh kube-$* $(KUBE_VERSION)

$(VENV)/.installed: tests/stack/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/stack/requirements.txt
	touch $@

# The whole product on a local control plane (etcd, kube-apiserver, moto, the operator) until Ctrl-C.
run: tools
	$(CARGO) build --release --bin infra-operator
	$(CARGO) build --release -p local-stack
	$(TARGET_DIR)/release/local-stack --repo-root . --operator-bin $(TARGET_DIR)/release/infra-operator --out $(LOCAL)

# Short runs: the guardrail engine (criterion) and the webhook under load over TLS (1 s phases).
bench:
	$(CARGO) bench --bench guardrails -- --warm-up-time 1 --measurement-time 3
	$(CARGO) bench --bench webhook_load -- --quick

# The webhook beside a TLS floor with the same TLS and HTTP settings, each pinned to CPU 0, loaded by
# vegeta (built once from the Go module proxy) on CPU 1; about 2 minutes (FLOOR_SECONDS, FLOOR_REPEATS).
bench-floor:
	$(CARGO) bench --bench admission_floor

# Instructions one review costs the webhook (review::answer on the example roles as kubectl sends
# them, per endpoint), and one new connection's TLS (a full handshake with the webhook's rustls
# configuration, as the API server makes it), counted by valgrind's callgrind: steady where time on
# a shared machine is not. Needs valgrind (Debian package `valgrind`); about a minute.
ROUNDS ?= 100
bench-instructions:
	$(CARGO) build --release --example review_instructions --example handshake_instructions
	@count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$$@" 2>&1 >/dev/null \
	    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }; \
	for endpoint in validate mutate; do \
	  base=$$(count $(TARGET_DIR)/release/examples/review_instructions 0 $$endpoint); \
	  total=$$(count $(TARGET_DIR)/release/examples/review_instructions $(ROUNDS) $$endpoint); \
	  reviews=$$($(TARGET_DIR)/release/examples/review_instructions 1 $$endpoint | cut -d' ' -f1); \
	  echo "$$endpoint: $$(( (total - base) / ($(ROUNDS) * reviews) )) instructions per review"; \
	done; \
	base=$$(count $(TARGET_DIR)/release/examples/handshake_instructions 0); \
	total=$$(count $(TARGET_DIR)/release/examples/handshake_instructions $(ROUNDS)); \
	echo "new connection: $$(( (total - base) / $(ROUNDS) )) instructions per TLS handshake"

# The reconciler at scale on the local stack (SCALE_ROLES, SCALE_CACHED, SCALE_CONCURRENCY); minutes.
bench-scale: tools
	$(CARGO) bench --bench reconcile_scale

# 2,000 roles created, updated and deleted behind the fault-injecting IAM proxy, without and with
# faults and SIGKILLs (SOAK_ROLES, SOAK_RATE, SOAK_BURST, SOAK_CONCURRENCY, SOAK_KILLS, SOAK_SEED);
# tens of minutes.
bench-soak: tools
	$(CARGO) bench --bench iam_soak

clean:
	$(CARGO) clean
