#!/usr/bin/env bash
# Jupyter Kernel Gateway in a venv of its own (build/kernel-gateway), for bench/speed.py to compare against:
# kept apart from Toolshed's .venv so neither's pins bend the other's. Idempotent: an existing env is reused.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
env_dir="${1:-$root/build/kernel-gateway}"
if [ -x "$env_dir/bin/jupyter-kernelgateway" ]; then
  echo "$env_dir"
  exit 0
fi
python3 -m venv "$env_dir"
"$env_dir/bin/pip" install --quiet --disable-pip-version-check "jupyter_kernel_gateway>=3,<4" ipykernel >&2
"$env_dir/bin/python" -m ipykernel install --prefix "$env_dir" --name python3 >&2
echo "$env_dir"
