# Courier: `make run` starts the server on ./data, `make test` runs every test.
# Both install what a fresh machine lacks (Debian packages as root, Python packages with pip).

SWIFT      ?= swift
DATA       ?= ./data
PORT       ?= 8080
PYTHON     ?= python3
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_STAMP  := .build/.apt-updated

.PHONY: run build release test unit e2e deps test-deps bench clean

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

test: test-deps
	$(SWIFT) build
	$(SWIFT) test
	$(PYTHON) -m pytest -q tests/e2e

bench: release
	@command -v hyperfine >/dev/null && command -v zip >/dev/null || $(MAKE) --no-print-directory apt PKGS="hyperfine zip unzip openssl"
	bash bench/ingest.sh

clean:
	rm -rf .build
