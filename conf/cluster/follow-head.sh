#!/usr/bin/env bash
# A worker's Ray follows its head (started by conf/cluster/start-worker.sh): once the head's GCS at
# HOST:PORT stops answering (three checks in a row), `ray stop` here. Ray's raylet would exit on its
# own a minute later, but its log monitor would not: with the local provider `ray down` only runs
# `ray stop` on the head, so without this a worker machine kept Ray processes after `ray down`.
#   follow-head.sh HOST PORT
set -uo pipefail
host=${1:?usage: follow-head.sh HOST PORT} port=${2:?usage: follow-head.sh HOST PORT}
interval=${AVFUSION_FOLLOW_HEAD_INTERVAL_S:-5}
cd "$(dirname "$0")/../.."
gcs_up() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }
misses=0
while [ "$misses" -lt 3 ]; do
    if gcs_up; then misses=0; else misses=$((misses + 1)); fi
    sleep "$interval"
done
echo "follow-head: Ray's head at $host:$port is gone; stopping this node's Ray"
exec .venv/bin/ray stop
