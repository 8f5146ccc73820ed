#!/usr/bin/env bash
# The quick-start demo: start a worker, classify the bundled samples, print results, stop the worker.
# Runs on the embedded defaults: SQLite file ./docqueue.db and the local Redis (or an embedded one).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .docqueue
export HF_HUB_OFFLINE=1

docqueue db upgrade >/dev/null
docqueue worker --queues classify --pool solo > .docqueue/demo-worker.log 2>&1 &
worker=$!
trap 'kill $worker 2>/dev/null; wait $worker 2>/dev/null || true' EXIT

out=$(docqueue submit classify 'samples/*.txt' --labels "contract,invoice,news,email" --wait --timeout 600 | tee /dev/stderr)
batch=$(printf '%s\n' "$out" | tail -n 1)
echo
echo "docqueue results $batch --format jsonl:"
docqueue results "$batch" --format jsonl
