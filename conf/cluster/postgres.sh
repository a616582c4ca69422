#!/usr/bin/env bash
# The tracking server's PostgreSQL (sourced by conf/cluster/mlflow-server.sh; Debian's `postgresql`).
# A private cluster in $AVFUSION_PGDATA on 127.0.0.1:$AVFUSION_PG_PORT (default 5433, beside
# Debian's own cluster on 5432), started as a child of the server script so that stopping the
# script stops it too. Initialised on first use, then reused: the role and database `mlflow` are
# created if missing (and the database `optuna`, owned by that role, for the searches' Optuna studies:
# tracking.optuna_storage, README "Cluster") and the role's password is set on every start from AVFUSION_PG_PASSWORD in
# the secrets file (never on a command line). PostgreSQL refuses to run as root: as root its
# tools run as the `postgres` system user (the one place that knows this; benchmarks and tests
# start their PostgreSQL through this script).
#   needs: $root (the server's data folder), AVFUSION_PG_PASSWORD; sets: backend_uri, pg_pid

pg_port=${AVFUSION_PG_PORT:-5433}
if [ "$(id -u)" = 0 ]; then
    pg_as() { runuser -u postgres -- "$@"; }
    # The postgres user cannot enter root's home: its cluster lives under its own.
    pgdata=${AVFUSION_PGDATA:-/var/lib/postgresql/avfusion-$pg_port}
else
    pg_as() { "$@"; }
    pgdata=${AVFUSION_PGDATA:-$root/pgdata}
fi
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/postgres" ]; then
    echo "mlflow-server: PostgreSQL not found under /usr/lib/postgresql (apt-get install postgresql)" >&2
    exit 2
fi
: "${AVFUSION_PG_PASSWORD:?mlflow-server: $secrets sets no AVFUSION_PG_PASSWORD (the database password)}"

mkdir -p "$pgdata"
if [ "$(id -u)" = 0 ]; then
    chown postgres: "$pgdata"
    if ! runuser -u postgres -- test -w "$pgdata"; then
        echo "mlflow-server: the postgres user cannot write $pgdata (a folder above it is closed to it)" >&2
        exit 2
    fi
fi
chmod 700 "$pgdata"
if [ ! -s "$pgdata/PG_VERSION" ]; then
    # Only the server's own OS user over the socket (peer) and password logins over TCP.
    pg_as "$pg_bin/initdb" -D "$pgdata" --auth-local=peer --auth-host=scram-sha-256 \
        --encoding=UTF8 >/dev/null
fi
pg_as "$pg_bin/postgres" -D "$pgdata" -p "$pg_port" -k "$pgdata" \
    -c listen_addresses=127.0.0.1 -c max_connections=200 >>"$root/postgres.log" 2>&1 &
pg_pid=$!
for _ in $(seq 120); do
    pg_as "$pg_bin/pg_isready" -q -h "$pgdata" -p "$pg_port" && break
    if ! kill -0 "$pg_pid" 2>/dev/null; then
        echo "mlflow-server: PostgreSQL did not start; see $root/postgres.log" >&2
        exit 2
    fi
    sleep 0.5
done
pg_as "$pg_bin/pg_isready" -q -h "$pgdata" -p "$pg_port" ||
    { echo "mlflow-server: PostgreSQL did not answer within 60 s; see $root/postgres.log" >&2; exit 2; }
# Idempotent: role and database made once, the password follows the secrets file (SQL quoting).
pg_password=${AVFUSION_PG_PASSWORD//\'/\'\'}
pg_as "$pg_bin/psql" -q -v ON_ERROR_STOP=1 -h "$pgdata" -p "$pg_port" -d postgres >/dev/null <<SQL
SELECT 'CREATE ROLE mlflow LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mlflow')\gexec
ALTER ROLE mlflow PASSWORD '$pg_password';
SELECT 'CREATE DATABASE mlflow OWNER mlflow' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'mlflow')\gexec
SELECT 'CREATE DATABASE optuna OWNER mlflow' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'optuna')\gexec
SQL
# libpq reads the password from the environment: it never shows in `ps` or in MLflow's logs.
export PGPASSWORD=$AVFUSION_PG_PASSWORD
backend_uri="postgresql+psycopg://mlflow@127.0.0.1:$pg_port/mlflow"
