#!/usr/bin/env bash
# Start the local services the service tests talk to (PostgreSQL, Mosquitto) when they are down, and
# install Debian's Chromium for the dashboard's browser test when it is missing. `make test` runs this;
# nothing is skipped silently: if a service cannot be started, the tests that need it fail and say so.
set -u

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 50); do port_open "$1" && return 0; sleep 0.2; done
  echo "ensure-services: $2 did not come up on port $1" >&2
  return 1
}

if ! port_open 5432; then
  echo "ensure-services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  wait_port 5432 PostgreSQL || true
fi

if ! port_open 1883; then
  echo "ensure-services: starting Mosquitto"
  mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
  wait_port 1883 Mosquitto || true
fi

if ! command -v chromium >/dev/null 2>&1; then
  echo "ensure-services: installing Debian's chromium for the dashboard browser test"
  if [ "$(id -u)" = 0 ]; then
    (apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)) >/dev/null
  else
    sudo apt-get install -y -q chromium >/dev/null
  fi
fi
exit 0
