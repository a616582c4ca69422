#!/usr/bin/env bash
# The head's MLflow tracking server, behind MLflow's basic-auth app (both conf/cluster/*.yaml run it).
#   conf/cluster/mlflow-server.sh DATA_DIR [HOST] [PORT] [sqlite|postgres]   (0.0.0.0 5000 sqlite)
# Backend store: a SQLite file in DATA_DIR (one machine), or PostgreSQL (the clusters: many nodes
# logging at once), a private cluster started by conf/cluster/postgres.sh as this script's child.
# Artifacts always go through the server (--serve-artifacts) into DATA_DIR/artifacts. Stopping
# this script (SIGTERM/SIGINT) stops the server and its PostgreSQL.
# Credentials never live in this repo: the admin password (and the Flask secret key) come from
# $AVFUSION_MLFLOW_SECRETS (default ~/.avfusion/mlflow-auth.env, mode 600) on the head:
#   MLFLOW_AUTH_ADMIN_PASSWORD=...        MLFLOW_FLASK_SERVER_SECRET_KEY=...
#   AVFUSION_PG_PASSWORD=...              (the PostgreSQL backend's database password)
# Clients (the driver, every trial, `python -m ensembling`) authenticate with MLflow's standard
# MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD or ~/.mlflow/credentials.
set -euo pipefail
root=${1:?usage: mlflow-server.sh DATA_DIR [HOST] [PORT]}
host=${2:-0.0.0.0}
port=${3:-5000}
backend=${4:-sqlite}
secrets=${AVFUSION_MLFLOW_SECRETS:-$HOME/.avfusion/mlflow-auth.env}
if [ ! -r "$secrets" ]; then
    echo "mlflow-server: no $secrets with MLFLOW_AUTH_ADMIN_PASSWORD=...; refusing to serve without authentication" >&2
    exit 2
fi
set -a
# shellcheck disable=SC1090
. "$secrets"
set +a
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?mlflow-server: $secrets sets no MLFLOW_AUTH_ADMIN_PASSWORD}"
export MLFLOW_FLASK_SERVER_SECRET_KEY=${MLFLOW_FLASK_SERVER_SECRET_KEY:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
mkdir -p "$root"
root=$(cd "$root" && pwd)
# The auth app's settings (no secret in them): users live in their own SQLite database; a signed-in
# user may read every experiment, only the admin (and users granted more) may change them. A
# checked password is remembered for a minute (MLflow's auth cache, keyed by an HMAC): without it
# every request pays a deliberately slow PBKDF2 check, which with many trials logging at once
# was most of the server's CPU (benchmarks/bench_tracking.py); a changed password takes effect
# within that minute.
cat > "$root/basic_auth.ini" <<INI
[mlflow]
default_permission = READ
auth_cache_ttl_seconds = ${AVFUSION_MLFLOW_AUTH_CACHE_S:-60}
database_uri = sqlite:///$root/basic_auth.db
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
export MLFLOW_AUTH_CONFIG_PATH="$root/basic_auth.ini"
# MLflow's job runner (GenAI judges, trace roll-ups: eight more processes) is not used here.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}
mlflow=$(dirname "$0")/../../.venv/bin/mlflow
[ -x "$mlflow" ] || mlflow=mlflow
case $backend in
sqlite)
    exec "$mlflow" server --app-name basic-auth --host "$host" --port "$port" \
        --backend-store-uri "sqlite:///$root/mlflow.db" \
        --serve-artifacts --artifacts-destination "$root/artifacts" ;;
postgres)
    pg_pid='' server_pid=''
    tree() { # a process and all its descendants (uvicorn's workers), ours to stop
        local child
        echo "$1"
        for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do tree "$child"; done
    }
    stop() {
        trap - TERM INT EXIT
        # shellcheck disable=SC2046
        [ -z "$server_pid" ] || kill -TERM $(tree "$server_pid") 2>/dev/null || true
        [ -z "$server_pid" ] || wait "$server_pid" 2>/dev/null || true
        [ -z "$pg_pid" ] || pg_as "$pg_bin/pg_ctl" -D "$pgdata" stop -m fast >/dev/null 2>&1 || true
        [ -z "$pg_pid" ] || wait "$pg_pid" 2>/dev/null || true
    }
    trap 'stop; exit 143' TERM INT
    trap stop EXIT
    # shellcheck source=conf/cluster/postgres.sh
    . "$(dirname "$0")/postgres.sh"
    "$mlflow" server --app-name basic-auth --host "$host" --port "$port" \
        --backend-store-uri "$backend_uri" \
        --serve-artifacts --artifacts-destination "$root/artifacts" &
    server_pid=$!
    wait "$server_pid" ;;
*)
    echo "mlflow-server: backend $backend is neither sqlite nor postgres" >&2
    exit 2 ;;
esac
