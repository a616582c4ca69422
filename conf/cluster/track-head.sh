#!/usr/bin/env bash
# The head's tracking server for as long as Ray's head runs (started by conf/cluster/start-head.sh):
# runs conf/cluster/mlflow-server.sh and stops it (the server, then its PostgreSQL) when Ray's GCS on
# 127.0.0.1:RAY_PORT stops answering, e.g. after `ray down`, or when this script gets SIGTERM.
#   track-head.sh RAY_PORT DATA_DIR [HOST] [PORT] [sqlite|postgres]     (arguments of mlflow-server.sh)
set -uo pipefail
ray_port=${1:?usage: track-head.sh RAY_PORT DATA_DIR [HOST] [PORT] [BACKEND]}
shift
interval=${AVFUSION_TRACK_HEAD_INTERVAL_S:-5}
"$(dirname "$0")/mlflow-server.sh" "$@" &
server=$!
stop() {
    trap - TERM INT EXIT
    kill -TERM "$server" 2>/dev/null
    wait "$server" 2>/dev/null
}
trap 'stop; exit 143' TERM INT
trap stop EXIT
gcs_up() { (exec 3<>"/dev/tcp/127.0.0.1/$ray_port") 2>/dev/null; }
while kill -0 "$server" 2>/dev/null && gcs_up; do
    sleep "$interval" &
    wait $! # interruptible: SIGTERM is handled at once, not after the sleep
done
kill -0 "$server" 2>/dev/null && echo "track-head: Ray's head (port $ray_port) is gone; stopping the tracking server"
