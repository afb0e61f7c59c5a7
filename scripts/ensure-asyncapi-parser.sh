#!/usr/bin/env bash
# Install the official AsyncAPI parser (the version tests/asyncapi/package.json pins) for
# the test that checks contracts/asyncapi.json with it. Node.js and npm come from the
# machine; no install script of any package runs.
set -euo pipefail

DIR="$(cd "$(dirname "$0")/../tests/asyncapi" && pwd)"
WANTED="$(node -p "require('$DIR/package.json').dependencies['@asyncapi/parser']")"
INSTALLED="$DIR/node_modules/@asyncapi/parser/package.json"
if [ -f "$INSTALLED" ] && [ "$(node -p "require('$INSTALLED').version")" = "$WANTED" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm is missing: the AsyncAPI document test needs Node.js and npm" >&2
  exit 1
fi
echo "Installing @asyncapi/parser $WANTED for the AsyncAPI document test ..."
npm install --prefix "$DIR" --no-package-lock --ignore-scripts --no-audit --no-fund --loglevel=error
