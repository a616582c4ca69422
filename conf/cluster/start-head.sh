#!/usr/bin/env bash
# The head's services, the one source both conf/cluster/*.yaml run (head_start_ray_commands): Ray's
# head, then the tracking server (conf/cluster/mlflow-server.sh: PostgreSQL, --serve-artifacts,
# basic-auth) under conf/cluster/track-head.sh, which stops it when Ray's head stops, so `ray down`
# leaves nothing running. A server from an earlier start (mlruns/server.pid) is stopped first.
#   start-head.sh [extra `ray start` options]
# Ports: Ray's GCS $AVFUSION_RAY_PORT (6379), MLflow $AVFUSION_MLFLOW_PORT (5000), PostgreSQL
# $AVFUSION_PG_PORT (5433, loopback only). Ray's dashboard (no authentication) stays on 127.0.0.1:
# reach it with `ray dashboard CLUSTER.yaml`.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=$PWD/.venv/bin:$PATH
ray_port=${AVFUSION_RAY_PORT:-6379}
port=${AVFUSION_MLFLOW_PORT:-5000}
mkdir -p mlruns
ulimit -n 65536 2>/dev/null || true
.venv/bin/ray start --head --port="$ray_port" --autoscaling-config="$HOME/ray_bootstrap_config.yaml" \
    --dashboard-host=127.0.0.1 "$@"

# Only a PID whose command line is our supervisor is ours to stop (the file may be stale).
if [ -s mlruns/server.pid ]; then
    old=$(cat mlruns/server.pid)
    if tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null | grep -q 'conf/cluster/track-head.sh'; then
        kill -TERM "$old" 2>/dev/null || true
        for _ in $(seq 120); do kill -0 "$old" 2>/dev/null || break; sleep 0.5; done
    fi
fi
# Its own session: the SSH session of `ray up` ends without taking the server with it.
setsid nohup conf/cluster/track-head.sh "$ray_port" "$PWD/mlruns" 0.0.0.0 "$port" postgres \
    >>mlruns/server.log 2>&1 </dev/null &
echo $! >mlruns/server.pid
# `ray up` fails here, with the server's last lines, rather than later in the first search.
for _ in $(seq 600); do
    if python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/health', timeout=5)" 2>/dev/null; then
        echo "start-head: MLflow tracking server on port $port (log: $PWD/mlruns/server.log)"
        exit 0
    fi
    if ! kill -0 "$(cat mlruns/server.pid)" 2>/dev/null; then
        echo "start-head: the tracking server did not start:" >&2
        tail -n 20 mlruns/server.log >&2
        exit 1
    fi
    sleep 0.5
done
echo "start-head: the tracking server did not answer on port $port within 300 s; see $PWD/mlruns/server.log" >&2
exit 1
