# mediafs — build, run, test and benchmark.
#
#   make run     build, then mount ./media backed by the embedded Media Manager (foreground)
#   make test    install what the tests need, build, run every test
#   make bench   release build and the benchmarks (results in bench/results.md)
#   make install release build, then install mediafs, its mount helper, completions, man page and
#                systemd unit under PREFIX (default /usr/local; DESTDIR honoured); make uninstall

SWIFT        ?= swift
BUILD_FLAGS  ?=
MOUNTPOINT   ?= ./media
APT_PACKAGES := libfuse3-dev fuse3 rsync curl attr pkg-config
PIP_PACKAGES := tuspy==1.1.0 resumable-upload==0.3.0

# Installation layout. For an fstab line of type fuse.mediafs, mount(8) runs mount.fuse.mediafs if
# it is in /sbin (SBINDIR=/sbin), and otherwise mount.fuse3, whose /bin/sh finds mediafs in
# /usr/local/bin or /usr/bin (mount(8) clears PATH; those are in the shell's default one).
PREFIX       ?= /usr/local
DESTDIR      ?=
BINDIR       ?= $(PREFIX)/bin
SBINDIR      ?= $(PREFIX)/sbin
MANDIR       ?= $(PREFIX)/share/man
DATADIR      ?= $(PREFIX)/share
UNITDIR      ?= $(PREFIX)/lib/systemd/system
# The binary to install; by default the release build (made by `make install`).
BINARY       ?=
INSTALL      ?= install

.PHONY: all deps build release run serve test bench clean install uninstall

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

# The tests serve FUSE mounts from their own process. Swift's crash backtracer would spawn a
# helper that inherits the descriptors of files open on those mounts; closing them at its exec
# waits for the paused process to answer, so a crash hung the run instead of failing it.
test: deps
	$(SWIFT) build --build-tests $(BUILD_FLAGS)
	SWIFT_BACKTRACE=enable=no $(SWIFT) test --skip-build $(BUILD_FLAGS)

bench: deps release
	bench/run.sh

## Install (BINARY=path installs that binary instead of building the release one).
install: $(if $(BINARY),,release)
	@bin="$(BINARY)"; [ -n "$$bin" ] || bin="$$($(SWIFT) build -c release $(BUILD_FLAGS) --show-bin-path)/mediafs"; \
	set -e; \
	$(INSTALL) -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(SBINDIR)" "$(DESTDIR)$(MANDIR)/man8" "$(DESTDIR)$(UNITDIR)" \
		"$(DESTDIR)$(DATADIR)/bash-completion/completions" "$(DESTDIR)$(DATADIR)/zsh/site-functions" \
		"$(DESTDIR)$(DATADIR)/fish/vendor_completions.d"; \
	$(INSTALL) -m 0755 "$$bin" "$(DESTDIR)$(BINDIR)/mediafs"; \
	ln -sf "$(BINDIR)/mediafs" "$(DESTDIR)$(SBINDIR)/mount.fuse.mediafs"; \
	"$$bin" --generate-completion-script bash > "$(DESTDIR)$(DATADIR)/bash-completion/completions/mediafs"; \
	"$$bin" --generate-completion-script zsh > "$(DESTDIR)$(DATADIR)/zsh/site-functions/_mediafs"; \
	"$$bin" --generate-completion-script fish > "$(DESTDIR)$(DATADIR)/fish/vendor_completions.d/mediafs.fish"; \
	$(INSTALL) -m 0644 dist/mediafs.8 "$(DESTDIR)$(MANDIR)/man8/mediafs.8"; \
	sed 's|@BINDIR@|$(BINDIR)|g' dist/systemd/mediafs@.service > "$(DESTDIR)$(UNITDIR)/mediafs@.service"; \
	chmod 0644 "$(DESTDIR)$(UNITDIR)/mediafs@.service" "$(DESTDIR)$(DATADIR)/bash-completion/completions/mediafs" \
		"$(DESTDIR)$(DATADIR)/zsh/site-functions/_mediafs" "$(DESTDIR)$(DATADIR)/fish/vendor_completions.d/mediafs.fish"; \
	echo "Installed mediafs in $(DESTDIR)$(BINDIR)"

uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/mediafs" "$(DESTDIR)$(SBINDIR)/mount.fuse.mediafs" "$(DESTDIR)$(MANDIR)/man8/mediafs.8" \
		"$(DESTDIR)$(UNITDIR)/mediafs@.service" "$(DESTDIR)$(DATADIR)/bash-completion/completions/mediafs" \
		"$(DESTDIR)$(DATADIR)/zsh/site-functions/_mediafs" "$(DESTDIR)$(DATADIR)/fish/vendor_completions.d/mediafs.fish"

clean:
	$(SWIFT) package clean
