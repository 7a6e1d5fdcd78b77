#!/usr/bin/env bash
# Installs the DNS software that the dnslink package's integration tests run on
# loopback: Knot DNS (knotd, knotc), kdig (knot-dnsutils), unbound, dig
# (bind9-dnsutils) and, where Debian has it, dnsperf for the load figures.
#
# Idempotent: packages already installed are left alone; nothing is done when
# every tool is present. Needs root (or sudo) and Debian's package archive.
set -euo pipefail

# tool -> package that ships it
declare -A pkgs=(
	[knotd]=knot
	[kdig]=knot-dnsutils
	[unbound]=unbound
	[dig]=bind9-dnsutils
	[dnsperf]=dnsperf
)
optional=(dnsperf)

missing=()
for tool in "${!pkgs[@]}"; do
	if ! command -v "$tool" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$tool" ]; then
		missing+=("${pkgs[$tool]}")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-dns-tools: all DNS tools present"
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq

required=()
for p in "${missing[@]}"; do
	is_opt=0
	for o in "${optional[@]}"; do
		if [ "${pkgs[$o]}" = "$p" ]; then is_opt=1; fi
	done
	if [ $is_opt -eq 1 ]; then
		# dnsperf is not in every Debian release: install it only if the archive has it.
		if apt-cache show "$p" >/dev/null 2>&1; then
			required+=("$p")
		else
			echo "install-dns-tools: $p not available here, skipping (load figures use the Go load tester)"
		fi
	else
		required+=("$p")
	fi
done
if [ ${#required[@]} -gt 0 ]; then
	echo "install-dns-tools: installing ${required[*]}"
	$SUDO apt-get install -y --no-install-recommends "${required[@]}"
fi
# The packages may start daemons on installation (on systemd machines); the
# tests start their own on free loopback ports and do not need them.
for svc in knot unbound; do
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
		$SUDO systemctl stop "$svc" || true
	fi
done
echo "install-dns-tools: done"
