#!/usr/bin/env bash
# `make demo`: the whole pipeline on the local simulator, with no Kalshi account and no network
# beyond loopback (libtorch comes from PyPI through `make setup`, which the Makefile runs first).
#
#  1. generate six hours of one-minute markets with a planted edge (kalshi_sim generate: the
#     market maker's quotes shrink toward 50¢ against the hidden fair value);
#  2. label them from the markets sidecar (build_labels);
#  3. train the LSTM edge model (train_edge_rnn) and score it against the mid out of sample;
#     the strategy's time limits are then set for one-minute markets (train_edge_rnn's defaults
#     are for 15-minute ones: no entry in the last 60 s) before anything is evaluated;
#  4. evaluate it walk-forward (a model retrained per fold on earlier markets only) and on the
#     fixed holdout (evaluate_strategy), writing HTML reports;
#  5. paper-trade it with run_live (dry-run) against a live `kalshi_sim serve` with the same
#     planted edge, for DEMO_LIVE_SECONDS (default 160: two whole market lifecycles or more);
#  6. print where the reports, the strategy and the journal are and what they say.
#
# Everything goes under pipeline_data/demo/ (replaced on each run). DEMO_SEED changes the
# history and the live session.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CARGO="${CARGO:-cargo}"
LIVE_SECONDS="${DEMO_LIVE_SECONDS:-160}"
SEED="${DEMO_SEED:-3}"
EDGE="${DEMO_PLANTED_EDGE:-0.8}"
D="pipeline_data/demo"
CFG="config/demo.json"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
T0=$SECONDS
step() { echo; echo "== [$((SECONDS - T0)) s] $*"; }

step "building the simulator, the label tool, training, evaluation and the live runner (release)"
"$CARGO" build --release -p kalshi_sim -p build_labels -p train_edge_rnn -p evaluate_strategy -p run_live

rm -rf "$D"
mkdir -p "$D/reports"

step "1. history: six hours of 1-minute markets at 500 ms, planted edge $EDGE (kalshi_sim generate)"
"$BIN/kalshi_sim" generate --out-dir "$D/history" --days 0.25 --market-minutes 1 --snapshot-ms 500 \
    --depth 3 --requote-ms 500 --planted-edge "$EDGE" --seed "$SEED" --labels "$D/generated_labels.json" \
    2>&1 | tail -n 4

step "2. labels from the markets sidecar (build_labels)"
"$BIN/build_labels" --config "$CFG" 2>&1 | tail -n 3

step "3. training (train_edge_rnn; log: $D/train.log)"
"$BIN/train_edge_rnn" --config "$CFG" --epochs 6 --hidden 16 --window 60 --batch 16 --lr 0.01 \
    --seed 7 --threads 2 >"$D/train.log" 2>&1 || { tail -n 20 "$D/train.log"; exit 1; }
grep -E "^(test|verdict)" "$D/train.log" || tail -n 5 "$D/train.log"
# One-minute markets: entries allowed until 5 s before the close, 5 s between orders in a market.
python3 - "$D/model/strategy.json" <<'PY'
import json, sys
p = sys.argv[1]
s = json.load(open(p))
s["signals"]["min_seconds_to_close"] = 5
s["risk"]["no_entry_last_s"] = 5
s["risk"]["cooldown_s"] = 5
json.dump(s, open(p, "w"), indent=2)
PY
echo "strategy: signals.min_seconds_to_close 5, risk.no_entry_last_s 5, risk.cooldown_s 5 (one-minute markets)"

step "4a. walk-forward evaluation, a model retrained per fold (log: $D/walkforward.log)"
"$BIN/evaluate_strategy" --config "$CFG" --mode walkforward --train-markets 120 --test-markets 60 \
    --step-markets 60 --epochs 4 --jobs 2 --out "$D/reports/walkforward.json" >"$D/walkforward.log" 2>&1 \
    || { tail -n 20 "$D/walkforward.log"; exit 1; }
step "4b. fixed holdout: the model trained in step 3 on the markets after its training data (log: $D/fixed.log)"
"$BIN/evaluate_strategy" --config "$CFG" --mode fixed --test-frac 0.15 --out "$D/reports/fixed.json" \
    >"$D/fixed.log" 2>&1 || { tail -n 20 "$D/fixed.log"; exit 1; }

step "5. paper trading: run_live dry-run against a live simulator for ${LIVE_SECONDS} s (log: $D/run_live.log)"
ADDR_FILE="$D/sim/addr"
mkdir -p "$D/sim"
"$BIN/kalshi_sim" serve --addr 127.0.0.1:0 --addr-file "$ADDR_FILE" --market-seconds 60 \
    --planted-edge "$EDGE" --key-dir "$D/sim" --seed "$((SEED + 100))" >"$D/sim/kalshi_sim.log" 2>&1 &
SIM_PID=$!
trap 'kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
    [[ -s "$ADDR_FILE" ]] && break
    kill -0 "$SIM_PID" 2>/dev/null || { echo "error: the simulator exited; see $D/sim/kalshi_sim.log" >&2; exit 2; }
    sleep 0.1
done
ADDR="$(tr -d '[:space:]' <"$ADDR_FILE")"
"$BIN/run_live" --config "$CFG" --base-url "http://$ADDR/trade-api/v2" --duration "$LIVE_SECONDS" \
    --status-seconds 30 --discovery-seconds 5 --subscribe-lead-seconds 5 >"$D/run_live.out" 2>"$D/run_live.log" \
    || { tail -n 20 "$D/run_live.log"; exit 1; }
grep -E "\| open markets" "$D/run_live.log" | sed -E 's/^.*INFO //' | tail -n 3

step "6. what the demo says (total $((SECONDS - T0)) s)"
echo "training (test split, the model against the market's mid):"
grep -E "^(test|verdict)" "$D/train.log" | sed 's/^/  /'
echo "walk-forward ($D/reports/walkforward.html):"
grep -E "verdict|^overall" "$D/walkforward.log" | sed 's/^/  /' | tail -n 4
echo "fixed holdout ($D/reports/fixed.html):"
grep -E "verdict|^overall" "$D/fixed.log" | sed 's/^/  /' | tail -n 4
echo "paper trading (journal $D/live/journal.jsonl):"
sed 's/^/  /' "$D/run_live.out"
echo "strategy: $D/model/strategy.json"
echo
if grep -qE "verdict: (edge|fragile)" "$D/walkforward.log"; then
    echo "=> the planted edge was found out of sample: the walk-forward P&L interval per market lies above zero."
else
    echo "=> the planted edge was NOT shown out of sample this time (see $D/reports/walkforward.html)."
fi
echo "   demo total: $((SECONDS - T0)) s"
