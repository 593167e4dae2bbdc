# mediafs — build, run, test and benchmark.
#
#   make run     build, then mount ./media backed by the embedded Media Manager (foreground)
#   make test    install what the tests need, build, run every test
#   make bench   release build and the benchmarks (results in bench/results.md)

SWIFT        ?= swift
BUILD_FLAGS  ?=
MOUNTPOINT   ?= ./media
APT_PACKAGES := libfuse3-dev fuse3 rsync curl attr pkg-config
PIP_PACKAGES := tuspy==1.1.0 resumable-upload==0.3.0

.PHONY: all deps build release run serve test bench clean

all: build

## Install system packages and the Python test peers when missing (idempotent).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "Installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@python3 -c "import tusclient, resumable_upload" 2>/dev/null || python3 -m pip install -q $(PIP_PACKAGES)

build:
	$(SWIFT) build $(BUILD_FLAGS)

release:
	$(SWIFT) build -c release $(BUILD_FLAGS)

## Mount ./media backed by the embedded Media Manager, in the foreground (Ctrl-C unmounts).
run: deps build
	@mkdir -p $(MOUNTPOINT)
	$(SWIFT) run $(BUILD_FLAGS) mediafs mount $(MOUNTPOINT)

## Run the embedded Media Manager alone, in the foreground.
serve: build
	$(SWIFT) run $(BUILD_FLAGS) mediafs serve

test: deps
	$(SWIFT) build --build-tests $(BUILD_FLAGS)
	$(SWIFT) test --skip-build $(BUILD_FLAGS)

bench: deps release
	bench/run.sh

clean:
	$(SWIFT) package clean
