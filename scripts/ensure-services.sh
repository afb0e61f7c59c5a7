#!/usr/bin/env bash
# Make sure the services the gateway needs answer; start locally installed ones that do not.
# Usage: scripts/ensure-services.sh rabbitmq [postgres]
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ensure_rabbitmq() {
  if port_open 5672; then return 0; fi
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "RabbitMQ is not answering on 127.0.0.1:5672; starting the local rabbitmq-server ..."
    rabbitmq-server -detached || true
    rabbitmqctl await_startup --timeout 120
    rabbitmqctl start_app >/dev/null 2>&1 || true
    for _ in $(seq 1 60); do port_open 5672 && return 0; sleep 1; done
  fi
  cat >&2 <<'MSG'
RabbitMQ does not answer on 127.0.0.1:5672 and no local rabbitmq-server could be started.
Start one, for example:   docker compose up -d rabbitmq
or point the gateway at yours:   export GATEWAY_AMQP_URL=amqp://user:pass@host:5672/
MSG
  return 1
}

ensure_postgres() {
  if port_open 5432; then return 0; fi
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "PostgreSQL is not answering on 127.0.0.1:5432; starting the local cluster ..."
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 60); do port_open 5432 && return 0; sleep 1; done
  fi
  echo "PostgreSQL does not answer on 127.0.0.1:5432. Start one, e.g.: docker compose up -d postgres" >&2
  return 1
}

for service in "$@"; do
  "ensure_${service}"
done
