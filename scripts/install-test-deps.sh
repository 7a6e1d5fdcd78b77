#!/bin/sh
# Installs what `make test` needs beyond Go and the modules in go.mod.
# Idempotent: it checks first, installs only what is missing, and prints
# what it checked. Tests that need a tool this script cannot provide skip
# with a message naming the tool.
set -eu
cd "$(dirname "$0")/.."

need() { # need TOOL: report whether TOOL is on PATH
	if command -v "$1" >/dev/null 2>&1; then
		echo "install-test-deps: $1: $(command -v "$1")"
	else
		echo "install-test-deps: $1: missing" >&2
		return 1
	fi
}

need go
echo "install-test-deps: $(go version)"

# The dnslink package's tests run Knot DNS, unbound and dig on loopback;
# its own script installs them from Debian's archive when missing.
if [ -x scripts/install-dns-tools.sh ]; then
	scripts/install-dns-tools.sh
fi

# The network-namespace testbed (integration/netns) needs ip, nft and ping.
if [ -x scripts/install-netns-tools.sh ]; then
	scripts/install-netns-tools.sh
fi

# The share interop test runs a stock Kubo; its script builds it once from
# the Go module proxy and caches it in $(go env GOPATH)/bin.
if [ -x scripts/install-kubo.sh ]; then
	scripts/install-kubo.sh
fi

# The dashboard's browser tests drive headless Chromium.
if [ -x scripts/install-browser.sh ]; then scripts/install-browser.sh; fi

# integration/systemd_test.go checks contrib/pcnode.service with systemd-analyze.
if [ -x scripts/install-systemd-analyze.sh ]; then scripts/install-systemd-analyze.sh; fi

echo "install-test-deps: done"
