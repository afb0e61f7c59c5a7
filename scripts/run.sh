#!/usr/bin/env bash
# `make run`: serve the gateway on the embedded store; with no GATEWAY_C112_URL, also run
# the bundled 112 simulator and point the gateway at it. Development secrets are made
# once into var/dev.env (never used when you set your own).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
mkdir -p var
DEV_ENV_FILE="${DEV_ENV_FILE:-var/dev.env}"

if [ ! -f "$DEV_ENV_FILE" ]; then
  "$BIN/gateway" new-secret --env > "$DEV_ENV_FILE"
fi
if ! grep -q '^DEV_DATA_KEYS=' "$DEV_ENV_FILE"; then  # a dev.env made before data keys
  echo "DEV_DATA_KEYS=$("$BIN/gateway" new-secret --data-key)" >> "$DEV_ENV_FILE"
fi
# shellcheck disable=SC1090
set -a; . "$DEV_ENV_FILE"; set +a
: "${GATEWAY_INBOUND_SECRET:=$DEV_INBOUND_SECRET}"
: "${GATEWAY_DATA_KEYS:=$DEV_DATA_KEYS}"
export GATEWAY_DATA_KEYS
: "${GATEWAY_HTTP_PORT:=8080}"
export GATEWAY_INBOUND_SECRET GATEWAY_HTTP_PORT

sim_pid=""
cleanup() { [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [ -z "${GATEWAY_C112_URL:-}" ]; then
  : "${GATEWAY_C112_SECRET:=$DEV_C112_SECRET}"
  export GATEWAY_C112_SECRET
  SIM_PORT="${SIM_112_PORT:-8112}"
  "$BIN/gateway" simulate-112 --port "$SIM_PORT" --secret "$GATEWAY_C112_SECRET" &
  sim_pid=$!
  export GATEWAY_C112_URL="http://127.0.0.1:${SIM_PORT}/v1/messages"
  echo "112 simulator: http://127.0.0.1:${SIM_PORT}/_sim/messages (what 112 received)"
fi

cat <<MSG
Gateway:        http://127.0.0.1:${GATEWAY_HTTP_PORT}/readyz   /metrics   /openapi.json
Send a sample:  set -a; . ${DEV_ENV_FILE}; set +a; export GATEWAY_INBOUND_SECRET=\$DEV_INBOUND_SECRET
                .venv/bin/gateway send-report tests/fixtures/valid-01-app-basic.json
MSG
"$BIN/gateway" serve &
gw_pid=$!
trap 'kill $gw_pid 2>/dev/null; cleanup' EXIT INT TERM
wait "$gw_pid"
