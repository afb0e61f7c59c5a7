#!/usr/bin/env bash
# Put Prometheus's own promtool in .tools/, for the test that checks /metrics with it:
# taken out of Debian's prometheus package, which is not installed (no server, no service).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOL="$ROOT/.tools/promtool"
if [ -x "$TOOL" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "promtool is missing and there is no apt-get to fetch Debian's prometheus package" >&2
  exit 1
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
echo "Fetching promtool from Debian's prometheus package for the /metrics test ..."
(cd "$WORK" && apt-get download -qq prometheus 2>/dev/null || { apt-get update -qq && apt-get download -qq prometheus; })
dpkg-deb -x "$WORK"/prometheus_*.deb "$WORK/package"
mkdir -p "$ROOT/.tools"
install -m 0755 "$WORK/package/usr/bin/promtool" "$TOOL"
"$TOOL" --version >/dev/null
