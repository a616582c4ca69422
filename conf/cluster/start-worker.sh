#!/usr/bin/env bash
# A worker's Ray, the one source both conf/cluster/*.yaml run (worker_start_ray_commands):
#   start-worker.sh [extra `ray start` options]   (RAY_HEAD_IP is set by `ray up`; the head's GCS
#   port is $AVFUSION_RAY_PORT, 6379 unless the head's start set another)
set -euo pipefail
cd "$(dirname "$0")/../.."
ulimit -n 65536 2>/dev/null || true
exec .venv/bin/ray start --address="${RAY_HEAD_IP:?set by ray up}:${AVFUSION_RAY_PORT:-6379}" "$@"
