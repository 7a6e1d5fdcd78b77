#!/usr/bin/env bash
# Installs headless Chromium for the dashboard's browser tests
# (integration/dashboard_test.go, driven by chromedp). Debian's package
# "chromium" ships /usr/bin/chromium.
#
# Idempotent and quiet: nothing is done when Chromium is present. Needs root
# (or sudo) and Debian's package archive; nothing is fetched at test time.
set -euo pipefail

for b in chromium chromium-browser google-chrome; do
	if command -v "$b" >/dev/null 2>&1; then
		echo "install-browser: $b: $(command -v "$b")"
		exit 0
	fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "install-browser: chromium: $(command -v chromium)"
