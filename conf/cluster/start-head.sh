#!/usr/bin/env bash
# The head's services, the one source both conf/cluster/*.yaml run (head_start_ray_commands):
# the tracking server (conf/cluster/mlflow-server.sh: PostgreSQL, --serve-artifacts, basic-auth;
# left in place when one already answers, e.g. on a second `ray up`), then Ray's head.
#   start-head.sh [extra `ray start` options]
# Ray's dashboard (no authentication) stays on 127.0.0.1: reach it with `ray dashboard CLUSTER.yaml`.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=$PWD/.venv/bin:$PATH
port=${AVFUSION_MLFLOW_PORT:-5000}
mkdir -p mlruns
if ! python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/health', timeout=5)" 2>/dev/null; then
    nohup conf/cluster/mlflow-server.sh "$PWD/mlruns" 0.0.0.0 "$port" postgres \
        >>mlruns/server.log 2>&1 </dev/null &
    echo $! >mlruns/server.pid
fi
ulimit -n 65536 2>/dev/null || true
exec .venv/bin/ray start --head --port=6379 --autoscaling-config="$HOME/ray_bootstrap_config.yaml" \
    --dashboard-host=127.0.0.1 "$@"
