#!/usr/bin/env bash
# Builds Kubo (the reference IPFS implementation) for the share interop test
# (integration/share_kubo_test.go) and caches the binary as
# $(go env GOPATH)/bin/ipfs-$VERSION.
#
# `go install github.com/ipfs/kubo/cmd/ipfs@vX` is refused because Kubo's go.mod
# replaces go-libp2p with a fork the module proxy does not serve. So this
# script downloads the module's own source through the Go module proxy (go mod
# download), copies it, drops that one replace directive (requiring a released
# go-libp2p with the fork's fix instead) and builds ./cmd/ipfs.
#
# Idempotent: nothing is done when the binary is there. Needs Go and the
# module proxy; takes a few minutes on two cores.
set -euo pipefail

VERSION="${KUBO_VERSION:-v0.43.1}"
bin="$(go env GOPATH)/bin/ipfs-${VERSION#v}"
if [ -x "$bin" ]; then
	echo "install-kubo: $bin present"
	exit 0
fi

work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

# go mod download needs a module to run in; a scratch one keeps the
# project's go.mod untouched.
(cd "$work" && go mod init scratch >/dev/null 2>&1)
dir="$(cd "$work" && go mod download -json "github.com/ipfs/kubo@$VERSION" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
	echo "install-kubo: go mod download gave no source directory for kubo@$VERSION" >&2
	exit 1
fi

src="$work/kubo"
cp -R "$dir" "$src"
chmod -R u+w "$src"
# Drop the replace of go-libp2p (one line, or a line inside a replace block).
sed -i -E '/^[[:space:]]*(replace[[:space:]]+)?github\.com\/libp2p\/go-libp2p[[:space:]]+=>/d' "$src/go.mod"
if grep -qE 'github\.com/libp2p/go-libp2p[[:space:]]+=>' "$src/go.mod"; then
	echo "install-kubo: could not drop the go-libp2p replace from go.mod" >&2
	exit 1
fi

# With the fork gone, the go-libp2p that Kubo requires (v0.49.0) does not
# build against the webtransport-go it also requires (v0.13.0); the fork
# was exactly that fix. A released go-libp2p that has it (the one pcnode
# pins) takes its place; go build then settles go.sum (-mod=mod).
(cd "$src" && go mod edit -require="github.com/libp2p/go-libp2p@${KUBO_LIBP2P:-v0.51.0}")

mkdir -p "$(dirname "$bin")"
echo "install-kubo: building kubo $VERSION (this takes a few minutes)"
(cd "$src" && GOFLAGS=-mod=mod go build -trimpath -o "$bin.tmp" ./cmd/ipfs)
mv "$bin.tmp" "$bin"
"$bin" version
echo "install-kubo: installed $bin"
