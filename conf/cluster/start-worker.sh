#!/usr/bin/env bash
# A worker's Ray, the one source both conf/cluster/*.yaml run (worker_start_ray_commands), then
# conf/cluster/follow-head.sh, which stops it when the head is gone (`ray down`).
#   start-worker.sh [extra `ray start` options]   (RAY_HEAD_IP is set by `ray up`; the head's GCS
#   port is $AVFUSION_RAY_PORT, 6379 unless the head's start set another)
set -euo pipefail
cd "$(dirname "$0")/../.."
head=${RAY_HEAD_IP:?set by ray up} port=${AVFUSION_RAY_PORT:-6379}
ulimit -n 65536 2>/dev/null || true
.venv/bin/ray start --address="$head:$port" "$@"
# One follower per node: an earlier one (a restarted node) must not stop the Ray started now.
pidfile=$HOME/.avfusion/follow-head.pid
mkdir -p "$(dirname "$pidfile")"
if [ -s "$pidfile" ] && tr '\0' ' ' <"/proc/$(cat "$pidfile")/cmdline" 2>/dev/null | grep -q 'conf/cluster/follow-head.sh'; then
    kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
fi
setsid nohup conf/cluster/follow-head.sh "$head" "$port" >>"$HOME/.avfusion/follow-head.log" 2>&1 </dev/null &
echo $! >"$pidfile"
