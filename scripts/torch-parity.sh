#!/usr/bin/env bash
# The edge model's weights in PyTorch: exports a batch with this build's predictions
# (edge_model example export_batch) and reproduces them with nn.LSTM + nn.Linear
# (bench/python/torch_parity.py). Exit 1 when they differ by more than 1e-5.
#   scripts/torch-parity.sh MODEL_DIR        (MODEL_DIR: a train_edge_rnn --outdir)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
MODEL="${1:?usage: scripts/torch-parity.sh MODEL_DIR}"
[[ -f "$MODEL/strategy.json" ]] || { echo "torch-parity: $MODEL/strategy.json not found" >&2; exit 2; }
PY="$("$ROOT/bench/python/setup-venv.sh")"
BATCH="$(mktemp -d)/batch.safetensors"
cd "$ROOT"
"${CARGO:-cargo}" run --quiet --release -p edge_model --example export_batch -- "$MODEL/strategy.json" "$BATCH"
"$PY" "$ROOT/bench/python/torch_parity.py" "$MODEL" "$BATCH"
