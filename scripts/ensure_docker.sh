#!/usr/bin/env bash
# Makes sure a Docker engine answers: installs docker.io and starts dockerd when missing (root only). Then makes
# gVisor available to it (issue 31): installs Debian's runsc and registers it as the Docker runtime "runsc" in
# /etc/docker/daemon.json, merged with what is there, reloading dockerd (SIGHUP) only when that file changed, and
# only for a dockerd this script started; any other engine's configuration is left alone, with the steps to take
# by hand. Without gVisor the server still runs (TOOLSHED_SANDBOX_RUNTIME=auto falls back to runc and says so).
set -euo pipefail

LOG=/var/log/toolshed-dockerd.log
CONFIG=/etc/docker/daemon.json
# --network=none: Docker's "none" network inside gVisor's own network stack (without it runsc refuses to start a
# container without a network namespace of its own). --host-uds=create: the kernel's ZMQ sockets, bound inside the
# sandbox in its bind-mounted run dir, are real host sockets the server can connect to (and nothing more: the
# sandbox still cannot connect to host sockets).
RUNSC_ENTRY='{"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none", "--host-uds=create"]}'

say() { echo "[docker] $*" >&2; }
engine_answers() { docker info >/dev/null 2>&1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

# A dockerd this script started writes to $LOG (see start_dockerd); any other is somebody else's.
started_here() {
  local pid
  pid=$(cat /var/run/docker.pid 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(readlink "/proc/$pid/fd/1" 2>/dev/null)" = "$LOG" ]
}

# Registered as the sandboxes need it: with --host-uds=create (see gvisor.py).
runsc_registered() { docker info --format '{{json .Runtimes.runsc}}' 2>/dev/null | grep -q -- '--host-uds=create'; }

how_to_register() {
  say "gVisor is not registered (with --host-uds=create) with this Docker engine, which this script did not start, so" \
      "its configuration is left alone; sandboxes will run under runc. For gVisor: apt-get install runsc, add" \
      "\"runtimes\": {\"runsc\": $RUNSC_ENTRY} to $CONFIG, then \`kill -HUP \$(cat /var/run/docker.pid)\`."
}

install_runsc() {
  command -v runsc >/dev/null 2>&1 && return 0
  say "installing runsc (gVisor)"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq runsc >/dev/null; }; then
    say "could not install runsc; sandboxes will run under runc"
    return 1
  fi
}

# Merges the runsc runtime into $CONFIG; exit status 0 when the file changed, 1 when it already said so, 2 when
# it is not a JSON object (then it is not touched).
merge_config() {
  mkdir -p "$(dirname "$CONFIG")"
  python3 - "$CONFIG" "$RUNSC_ENTRY" <<'PY'
import json, os, sys
path, entry = sys.argv[1], json.loads(sys.argv[2])
try:
    with open(path) as f:
        config = json.load(f)
except FileNotFoundError:
    config = {}
except ValueError:
    sys.exit(2)
if not isinstance(config, dict) or not isinstance(config.get("runtimes", {}), dict):
    sys.exit(2)
if config.get("runtimes", {}).get("runsc") == entry:
    sys.exit(1)
config.setdefault("runtimes", {})["runsc"] = entry
with open(path + ".partial", "w") as f:
    json.dump(config, f, indent=2)
os.replace(path + ".partial", path)
PY
}

# Installs and registers runsc for a dockerd this script starts (running=no) or started (running=yes).
register_runsc() {
  local running=$1 status=0
  install_runsc || return 0
  merge_config || status=$?
  if [ "$status" -eq 2 ]; then
    say "$CONFIG is not a JSON object; not touching it. Sandboxes will run under runc."
  elif [ "$status" -eq 0 ] && [ "$running" = yes ]; then
    say "registered runsc in $CONFIG; reloading dockerd"
    kill -HUP "$(cat /var/run/docker.pid)"
    for _ in $(seq 1 20); do
      runsc_registered && return 0
      sleep 0.5
    done
    say "dockerd did not pick up runsc after SIGHUP; see $LOG"
  fi
}

start_dockerd() {
  if ! command -v dockerd >/dev/null 2>&1; then
    say "installing docker.io"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io >/dev/null
  fi
  register_runsc no
  say "starting dockerd"
  nohup dockerd >"$LOG" 2>&1 &
  for _ in $(seq 1 60); do
    engine_answers && return 0
    sleep 1
  done
  say "dockerd did not come up; see $LOG"
  return 1
}

if engine_answers; then
  if is_root && started_here; then
    register_runsc yes
  elif ! runsc_registered; then
    how_to_register
  fi
  exit 0
fi
if ! is_root; then
  echo "No Docker engine answers and this is not root: install Docker and start it, or add this user to the" \
       "docker group, then run make again." >&2
  exit 1
fi
start_dockerd
