#!/usr/bin/env bash
# Every node's setup, the one source both conf/cluster/*.yaml run (setup_commands; the head also
# with --head). Installs the project from the checkout `ray up` synced to ~/avfusion into its own
# venv (pip's registry or its cache; AVFUSION_TORCH_SPEC picks the torch build, default `torch`),
# and on the head Debian's postgresql for the tracking server (conf/cluster/mlflow-server.sh).
# Safe to rerun: `ray up` runs it again on every update.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${1:-}" = --head ] && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    sudo=$([ "$(id -u)" = 0 ] || echo "sudo -n")
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "${AVFUSION_TORCH_SPEC:-torch}"
.venv/bin/python -m pip install -q -e ".[cluster]"
line="export PATH=$PWD/.venv/bin:\$PATH"
grep -qxF "$line" ~/.bashrc 2>/dev/null || echo "$line" >> ~/.bashrc
