#!/usr/bin/env bash
# Starts llmproxy the way the team's reference bench (run.sh) expects as its --gateway-cmd: model
# fake-model on the bench's fake upstream as an openai-compatible provider, the bench's key as the
# master key, state in the bench's scratch folder, every other setting on its default (the response
# cache on: time its miss path with `run.sh --unique`). LLMPROXY_CACHE=off turns the cache off, for
# the one-repeated-body configuration. Uses BENCH_PORT, BENCH_UPSTREAM_BASE, BENCH_WORKDIR, BENCH_API_KEY.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
workdir="${BENCH_WORKDIR:-$(mktemp -d)}"
cat > "$workdir/llmproxy.toml" <<TOML
[providers.bench]
kind = "openai-compatible"
base_url = "${BENCH_UPSTREAM_BASE:-http://127.0.0.1:18081/v1}"
api_key_env = "OPENAI_API_KEY"
models = ["${BENCH_MODEL:-fake-model}"]
[logging]
level = "${LLMPROXY_LOG_LEVEL:-info}"
${BENCH_EXTRA_TOML:-}
TOML
export LLMPROXY_MASTER_KEY="${BENCH_API_KEY:-sk-bench}"
exec "${PYTHON:-$here/.venv/bin/python}" -m llmproxy --config "$workdir/llmproxy.toml" serve \
  --port "${BENCH_PORT:-8000}" --data-dir "$workdir/data"
