#!/usr/bin/env bash
# Makes sure a Docker engine answers: installs docker.io and starts dockerd when missing (root only).
set -euo pipefail

engine_answers() { docker info >/dev/null 2>&1; }

if engine_answers; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "No Docker engine answers and this is not root: install Docker and start it, or add this user to the" \
       "docker group, then run make again." >&2
  exit 1
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "[docker] installing docker.io" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi
echo "[docker] starting dockerd" >&2
nohup dockerd >/var/log/toolshed-dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  engine_answers && exit 0
  sleep 1
done
echo "dockerd did not come up; see /var/log/toolshed-dockerd.log" >&2
exit 1
