#!/bin/sh
# Installs systemd-analyze, with which integration/systemd_test.go checks
# contrib/pcnode.service (`systemd-analyze verify`). Debian ships it in the
# systemd package. Idempotent: nothing is done when it is on PATH.
set -eu
if command -v systemd-analyze >/dev/null 2>&1; then
	echo "install-systemd-analyze: systemd-analyze: $(command -v systemd-analyze)"
	exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-systemd-analyze: installing systemd"
$SUDO apt-get update -qq
$SUDO apt-get install -y --no-install-recommends systemd
command -v systemd-analyze >/dev/null 2>&1 || {
	echo "install-systemd-analyze: systemd-analyze still missing after installing systemd" >&2
	exit 1
}
