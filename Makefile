SHELL := /bin/bash
# Courier: `make run` starts the server on ./data, `make test` runs every test.
# Both install what a fresh machine lacks (Debian packages as root, Python packages with pip).

SWIFT      ?= swift
DATA       ?= ./data
PORT       ?= 8080
PYTHON     ?= python3
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_STAMP  := .build/.apt-updated

.PHONY: run build release test unit e2e deps test-deps pg-deps bench fuzz fuzz-build clean

# libFuzzer targets (Fuzz/): FUZZ_SECONDS each; a crash fails the run and leaves its input in
# Fuzz/regressions/<target>/ (commit it: the tests replay it). Longer: make fuzz FUZZ_SECONDS=3600
FUZZ_TARGETS ?= zip multipart rules update task import client patch
FUZZ_SECONDS ?= 120
FUZZ_BUILD   := COURIER_FUZZ=1 $(SWIFT) build -c release --scratch-path .build-fuzz --toolset Fuzz/toolset.json

deps:
	@pkg-config --exists libcmark || { $(MAKE) --no-print-directory apt PKGS="libcmark-dev pkg-config"; }
	@[ -f /usr/include/zlib.h ] || $(MAKE) --no-print-directory apt PKGS="zlib1g-dev"
	@[ -f /usr/include/sqlite3.h ] || $(MAKE) --no-print-directory apt PKGS="libsqlite3-dev"

apt:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(PKGS)

test-deps: deps
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		$(MAKE) --no-print-directory apt PKGS="chromium chromium-driver"
	@command -v unzip >/dev/null && command -v zip >/dev/null && command -v openssl >/dev/null || \
		$(MAKE) --no-print-directory apt PKGS="unzip zip openssl"
	@$(PYTHON) -c "import selenium, pytest" 2>/dev/null || $(PYTHON) -m pip install -q selenium pytest

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

run: build
	$(SWIFT) run courier serve --data $(DATA) --port $(PORT)

unit: deps
	$(SWIFT) test

e2e: test-deps build
	$(PYTHON) -m pytest -q tests/e2e

# PostgreSQL's server for the PostgreSQL store's tests: a throwaway cluster per run (tests/pg/cluster.sh).
pg-deps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || $(MAKE) --no-print-directory apt PKGS="postgresql"

test: test-deps pg-deps
	$(SWIFT) build --build-tests
	@mkdir -p .build
	@pg=$$(mktemp -d /tmp/courier-pg.XXXXXX); trap 'bash tests/pg/cluster.sh stop '"$$pg" EXIT; \
		COURIER_TEST_POSTGRES=$$(bash tests/pg/cluster.sh start "$$pg") || exit 1; export COURIER_TEST_POSTGRES; \
		$(SWIFT) test --skip-build --disable-swift-testing 2>&1 | tee .build/xctest.log; status=$${PIPESTATUS[0]}; \
		if [ $$status -ne 0 ]; then echo "--- failing XCTest lines:"; grep -E "error:|failed \(" .build/xctest.log | head -40; exit $$status; fi; \
		$(PYTHON) -m pytest -q tests/e2e
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=30
	@echo "fuzz targets: $(words $(FUZZ_TARGETS)) passed, 0 failed"

fuzz-build: deps
	@for t in $(FUZZ_TARGETS); do $(FUZZ_BUILD) --product fuzz-$$t || exit 1; done

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p .build-fuzz/corpus/$$t Fuzz/regressions/$$t; \
		echo "fuzz-$$t: $(FUZZ_SECONDS) s"; \
		.build-fuzz/release/fuzz-$$t .build-fuzz/corpus/$$t Fuzz/corpus/$$t Fuzz/regressions/$$t \
			-max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1 \
			-artifact_prefix=Fuzz/regressions/$$t/ 2>.build-fuzz/fuzz-$$t.log \
			|| { tail -40 .build-fuzz/fuzz-$$t.log; echo "fuzz-$$t found a crash: see Fuzz/regressions/$$t/"; exit 1; }; \
		grep -E "stat::number_of_executed_units|stat::new_units_added" .build-fuzz/fuzz-$$t.log | tr '\n' ' '; echo; \
	done

bench: release
	@command -v hyperfine >/dev/null && command -v zip >/dev/null || $(MAKE) --no-print-directory apt PKGS="hyperfine zip unzip openssl"
	bash bench/ingest.sh

clean:
	rm -rf .build
