#!/usr/bin/env bash
# Installs the tools that the network-namespace tests (integration/netns and
# integration/netns_*_test.go) drive: ip and tc (iproute2), nft (nftables)
# and ping (iputils-ping). They build the test's own virtual hosts, LANs and
# NAT routers; see docs/TESTBED.md.
#
# Idempotent: a tool already on PATH (or in /usr/sbin, /sbin) is left alone;
# nothing is done when every tool is present. Needs root (or sudo) and
# Debian's package archive.
set -euo pipefail

# tool -> package that ships it
declare -A pkgs=(
	[ip]=iproute2
	[tc]=iproute2
	[nft]=nftables
	[ping]=iputils-ping
)

have() {
	command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

missing=()
for tool in ip tc nft ping; do
	if have "$tool"; then
		echo "install-netns-tools: $tool: present"
		continue
	fi
	p=${pkgs[$tool]}
	case " ${missing[*]-} " in
	*" $p "*) ;;
	*) missing+=("$p") ;;
	esac
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-netns-tools: all netns tools present"
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
echo "install-netns-tools: installing ${missing[*]}"
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
# nftables may ship a service that loads /etc/nftables.conf into the root
# namespace; the tests load their own rules only inside their namespaces.
echo "install-netns-tools: done"
