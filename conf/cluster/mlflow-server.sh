#!/usr/bin/env bash
# The head's MLflow tracking server, behind MLflow's basic-auth app (both conf/cluster/*.yaml run it).
#   conf/cluster/mlflow-server.sh DATA_DIR [HOST] [PORT]      (default 0.0.0.0 5000)
# Credentials never live in this repo: the admin password (and the Flask secret key) come from
# $AVFUSION_MLFLOW_SECRETS (default ~/.avfusion/mlflow-auth.env, mode 600) on the head:
#   MLFLOW_AUTH_ADMIN_PASSWORD=...        MLFLOW_FLASK_SERVER_SECRET_KEY=...
# Clients (the driver, every trial, `python -m ensembling`) authenticate with MLflow's standard
# MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD or ~/.mlflow/credentials.
set -euo pipefail
root=${1:?usage: mlflow-server.sh DATA_DIR [HOST] [PORT]}
host=${2:-0.0.0.0}
port=${3:-5000}
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
# user may read every experiment, only the admin (and users granted more) may change them.
cat > "$root/basic_auth.ini" <<INI
[mlflow]
default_permission = READ
database_uri = sqlite:///$root/basic_auth.db
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
export MLFLOW_AUTH_CONFIG_PATH="$root/basic_auth.ini"
mlflow=$(dirname "$0")/../../.venv/bin/mlflow
[ -x "$mlflow" ] || mlflow=mlflow
exec "$mlflow" server --app-name basic-auth --host "$host" --port "$port" \
    --backend-store-uri "sqlite:///$root/mlflow.db" \
    --serve-artifacts --artifacts-destination "$root/artifacts"
