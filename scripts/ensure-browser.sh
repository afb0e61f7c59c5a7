#!/usr/bin/env bash
# Make sure Debian's chromium and chromium-driver are installed, for the browser tests.
# Never a downloaded browser: the tests drive /usr/bin/chromium through /usr/bin/chromedriver.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium and chromium-driver are missing and there is no apt-get to install them" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "Installing Debian's chromium and chromium-driver for the browser tests ..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  chromium chromium-driver fonts-dejavu-core >/dev/null
test -x /usr/bin/chromium && test -x /usr/bin/chromedriver
