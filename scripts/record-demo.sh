#!/usr/bin/env bash
# `make record-demo`: the recorder alone on a fresh machine, with no Kalshi account and no network
# beyond loopback. Builds the simulator and the recorder (no libtorch needed), starts the
# simulator on a free port with 30-second markets (its throwaway key goes to pipeline_data/sim/,
# where config/sim.json looks for it), records DEMO_SECONDS (default 120) of order books into
# pipeline_data/sim/highres/, reads the files back and prints what was recorded, then labels the
# recorded markets that have settled (sync_labels against the same simulator).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CARGO="${CARGO:-cargo}"
DEMO_SECONDS="${DEMO_SECONDS:-120}"
SIM_DIR="pipeline_data/sim"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"

echo "== building kalshi_sim, download_highres and sync_labels (release)"
"$CARGO" build --release -p kalshi_sim -p download_highres -p sync_labels

mkdir -p "$SIM_DIR"
ADDR_FILE="$SIM_DIR/kalshi_sim.addr"
rm -f "$ADDR_FILE"
echo "== starting the simulator (log: $SIM_DIR/kalshi_sim.log)"
"$BIN/kalshi_sim" serve --addr 127.0.0.1:0 --addr-file "$ADDR_FILE" \
    --market-seconds 30 --key-dir "$SIM_DIR" --seed 7 >"$SIM_DIR/kalshi_sim.log" 2>&1 &
SIM_PID=$!
cleanup() {
    kill "$SIM_PID" 2>/dev/null || true
    wait "$SIM_PID" 2>/dev/null || true
    rm -f "$ADDR_FILE"
}
trap cleanup EXIT

for _ in $(seq 1 300); do
    [[ -s "$ADDR_FILE" ]] && break
    if ! kill -0 "$SIM_PID" 2>/dev/null; then
        echo "error: the simulator exited; see $SIM_DIR/kalshi_sim.log" >&2
        exit 2
    fi
    sleep 0.1
done
[[ -s "$ADDR_FILE" ]] || { echo "error: the simulator did not start" >&2; exit 2; }
ADDR="$(tr -d '[:space:]' <"$ADDR_FILE")"

echo "== recording ${DEMO_SECONDS}s from http://$ADDR (log: $SIM_DIR/download_highres.log)"
rc=0
"$BIN/download_highres" --config config/sim.json --base-url "http://$ADDR/trade-api/v2" \
    --duration "$DEMO_SECONDS" --capture --depth 5 --status-seconds 15 \
    2> >(tee "$SIM_DIR/download_highres.log" >&2) || rc=$?
if [[ $rc -ne 0 ]]; then
    echo "error: download_highres exited with $rc" >&2
    exit "$rc"
fi

echo "== what is on disk (read back with the snapshot reader)"
"$BIN/download_highres" --config config/sim.json --summary

echo "== labelling what was recorded (sync_labels asks the simulator for settled outcomes)"
"$BIN/sync_labels" --config config/sim.json --base-url "http://$ADDR/trade-api/v2"
