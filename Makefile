# Entry points for building, testing and linting the workspace.
#
# `setup` installs the CPU-only libtorch that tch links against into .libtorch/ (about 18 s and
# 540 MB of downloads the first time, instant afterwards); every target that compiles runs it
# first, because building tch without it fails with `torch/torch.h: No such file`.
# Binary targets (train, ...) arrive with the binaries themselves. The recorder and the label
# tools never link tch, so `record-demo`, `download`, `labels` and `sync-labels` do not run `setup`
# (a recorder on a small server never needs the 486 MB runtime).

SHELL := bash
CARGO ?= cargo
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
CONFIG ?= config/runtime.json
# Extra build_labels arguments, e.g. LABELS_ARGS="--archive 'old/*.json' --strict".
LABELS_ARGS ?=
# sync_labels outputs (default: the config's labels_path / unresolved_path) and extra arguments,
# e.g. SYNC_LABELS_ARGS="--snapshots 'pipeline_data/highres/KXBTC15M_2026*.jsonl.gz'".
LABELS_OUT ?=
UNRESOLVED_OUT ?=
SYNC_LABELS_ARGS ?=
# The original pipeline's spelling: make sync-labels SYNC_ARGS="--output … --unresolved-out …".
SYNC_ARGS ?=

.PHONY: help setup build test lint fmt bench clean-libtorch demo record-demo download regrid labels sync-labels train smoke-train evaluate live-dry torch-parity

# The targets, a line each (from the `##` after each rule).
help: ## this list
	@grep -E '^[a-z-]+:.*## ' "$(ROOT)/Makefile" | sed -E 's/^([a-z-]+):.*## /\1\t/' | \
		awk -F'\t' '{ printf "  make %-15s %s\n", $$1, $$2 }'

setup: ## install the CPU-only libtorch 2.13.0 tch links against into .libtorch/ (once)
	@"$(ROOT)/scripts/setup-libtorch.sh"

build: setup ## release build of every crate
	cd "$(ROOT)" && $(CARGO) build --release --workspace

# One intra-op thread per test process: parallel test binaries each spawning one thread per core
# once ran 30x slower on 2 cores (shared/LIBTORCH.md).
test: setup ## cargo test --workspace (the README test command)
	cd "$(ROOT)" && OMP_NUM_THREADS=1 $(CARGO) test --workspace

lint: setup ## cargo fmt --check and cargo clippy --all-targets -D warnings
	cd "$(ROOT)" && $(CARGO) fmt --all -- --check
	cd "$(ROOT)" && $(CARGO) clippy --workspace --all-targets -- -D warnings

# Benchmarks print figures; nothing asserts a time.
bench: setup ## every cargo bench target (snapshot_io, recorder_cpu, regrid_rate, decision_latency); figures, no asserts
	cd "$(ROOT)" && OMP_NUM_THREADS=1 $(CARGO) bench --workspace

# The first thing to run on a fresh machine: the whole pipeline on the local simulator, no account
# (scripts/demo.sh): a generated history with a planted edge, labels, training, walk-forward and
# fixed evaluation, then run_live paper-trading against a live simulator; everything under
# pipeline_data/demo/. DEMO_LIVE_SECONDS (160), DEMO_SEED (3), DEMO_PLANTED_EDGE (0.8).
demo: setup ## the whole pipeline on the simulator: history, labels, training, evaluation, paper trading
	@CARGO="$(CARGO)" "$(ROOT)/scripts/demo.sh"

# The recorder alone on the simulator: DEMO_SECONDS (120) of order books into
# pipeline_data/sim/highres, read back, then labelled with sync_labels (no libtorch needed).
record-demo: ## the simulator plus two minutes of recording, read back and labelled (no account)
	@DEMO_SECONDS="$(DEMO_SECONDS)" CARGO="$(CARGO)" "$(ROOT)/scripts/record-demo.sh"

DEMO_SECONDS ?= 120

# Record the configured series (real Kalshi with config/runtime.json; CONFIG=config/sim.json for
# a running simulator). Extra flags: make download ARGS="--capture --depth 5".
download: ## record the configured series: download_highres --config $(CONFIG) $(ARGS)
	cd "$(ROOT)" && $(CARGO) run --release -p download_highres -- --config "$(CONFIG)" $(ARGS)

# Re-grid recorded captures offline into snapshot files, markers and a markets sidecar (no
# network): make regrid CAPTURES='pipeline_data/highres/*.capture.jsonl.gz' OUT=pipeline_data/regrid
# ARGS="--snapshot-ms 250 --depth 5" (May 2026 recordings: ARGS="--use-yes-price false
# --markets ../shared/data/kalshi_kxbtc15m_2026-05/markets.jsonl").
CAPTURES ?=
OUT ?=
regrid: ## re-grid captures offline: CAPTURES='GLOB' OUT=DIR [ARGS=...]
	@test -n "$(CAPTURES)" && test -n "$(OUT)" || { echo "usage: make regrid CAPTURES='FILE_OR_GLOB ...' OUT=DIR [ARGS=...]" >&2; exit 2; }
	cd "$(ROOT)" && $(CARGO) run --release -p download_highres -- --config "$(CONFIG)" \
		--from-capture $(foreach c,$(CAPTURES),'$(c)') --out-dir "$(OUT)" $(ARGS)

# Labels (labels/v1) and the unresolved list from local data: label files, the markets
# sidecars and captures in data_dir, and any --archive. Offline; exit 1 only with --strict.
labels: ## labels from local data: build_labels --config $(CONFIG) $(LABELS_ARGS)
	cd "$(ROOT)" && $(CARGO) run --release -p build_labels -- --config "$(CONFIG)" $(LABELS_ARGS)

# Labels for the markets in the snapshot files (data_dir), asking the exchange's REST API only
# for outcomes not known yet (/markets, then /historical/markets). Signed only if the
# configured key file exists. Exit 1 when fetching stopped early (run again).
sync-labels: ## labels from the exchange for what is missing: sync_labels $(SYNC_ARGS)
	cd "$(ROOT)" && $(CARGO) run --release -p sync_labels -- --config "$(CONFIG)" \
		$(if $(LABELS_OUT),--output "$(LABELS_OUT)") \
		$(if $(UNRESOLVED_OUT),--unresolved-out "$(UNRESOLVED_OUT)") $(SYNC_LABELS_ARGS) $(SYNC_ARGS)

# Formatting compiles nothing, so it does not need libtorch.
fmt: ## format the code
	cd "$(ROOT)" && $(CARGO) fmt --all

clean-libtorch: ## remove .libtorch/
	rm -rf "$(ROOT)/.libtorch"

# Training (train_edge_rnn): snapshots in the config's data_dir + labels_path -> the folder of
# strategy_path (model.safetensors, strategy.json, metrics.json). TRAIN_ARGS adds flags, e.g.
# TRAIN_ARGS="--epochs 30 --hidden 64 --threads 2".
TRAIN_ARGS ?=
SMOKE_DIR ?= pipeline_data/smoke

# After training, a fixed-mode evaluation of the new strategy on the latest markets, as the
# original did (EVAL_AFTER_TRAIN=0 skips it; POST_TRAIN_EVAL_ARGS replaces its arguments). It
# refuses markets the model was trained on, so it evaluates the training run's test split.
EVAL_AFTER_TRAIN ?= 1
POST_TRAIN_EVAL_ARGS ?= --mode fixed --test-frac 0.15
# Where train writes (the folder of the config's strategy_path unless TRAIN_ARGS has --outdir).
STRATEGY ?=
EVAL_ARGS ?=

train: setup ## train_edge_rnn $(TRAIN_ARGS), then a fixed evaluation unless EVAL_AFTER_TRAIN=0
	cd "$(ROOT)" && $(CARGO) build --release -p train_edge_rnn -p evaluate_strategy
	cd "$(ROOT)" && target/release/train_edge_rnn --config "$(CONFIG)" $(TRAIN_ARGS)
	@if [ "$(EVAL_AFTER_TRAIN)" != "0" ]; then \
		cd "$(ROOT)" && target/release/evaluate_strategy --config "$(CONFIG)" \
			$(if $(STRATEGY),--strategy "$(STRATEGY)") $(POST_TRAIN_EVAL_ARGS); \
	fi

# Out-of-sample replay of a strategy (STRATEGY=, default the config's strategy_path), e.g.
# EVAL_ARGS="--mode walkforward --train-markets 200 --test-markets 50 --step-markets 50 --epochs 3".
evaluate: setup ## evaluate_strategy on STRATEGY= with EVAL_ARGS (fixed or walk-forward)
	cd "$(ROOT)" && $(CARGO) run --release -p evaluate_strategy -- --config "$(CONFIG)" \
		$(if $(STRATEGY),--strategy "$(STRATEGY)") $(EVAL_ARGS)

# The strategy on the live series without sending an order (original: make live-dry STRATEGY=…
# SERIES=…): fills simulated against the live book, journal and data in the config's live_dir.
# LIVE_ARGS adds flags, e.g. LIVE_ARGS="--duration 600 --metrics-addr 127.0.0.1:9184". Real
# orders are never sent from make: run `target/release/run_live --live …` yourself.
SERIES ?=
LIVE_ARGS ?=
live-dry: setup ## run_live dry-run of STRATEGY= on SERIES= (no orders) $(LIVE_ARGS)
	cd "$(ROOT)" && $(CARGO) run --release -p run_live -- --config "$(CONFIG)" \
		$(if $(STRATEGY),--strategy "$(STRATEGY)") $(if $(SERIES),--series "$(SERIES)") $(LIVE_ARGS)

# A tiny model on a tiny generated history, in seconds (plus the build): generate, train, load.
smoke-train: setup ## a tiny model on a tiny generated history, then --check
	cd "$(ROOT)" && rm -rf "$(SMOKE_DIR)" && $(CARGO) build --release -p kalshi_sim -p train_edge_rnn
	cd "$(ROOT)" && target/release/kalshi_sim generate --out-dir "$(SMOKE_DIR)/data" --days 0.1 \
		--market-minutes 2 --snapshot-ms 500 --depth 0 --planted-edge 0.5 --seed 1
	cd "$(ROOT)" && target/release/train_edge_rnn --config config/sim.json \
		--snapshots "$(SMOKE_DIR)/data/*.snap_*ms.jsonl.gz" --labels "$(SMOKE_DIR)/data/labels.json" \
		--outdir "$(SMOKE_DIR)/model" --epochs 2 --hidden 8 --window 60 --batch 16
	cd "$(ROOT)" && target/release/train_edge_rnn --check "$(SMOKE_DIR)/model/strategy.json"

# The trained model's weights in PyTorch: nn.LSTM + nn.Linear loaded from model.safetensors
# reproduce this build's predictions on a saved batch within 1e-5. Installs bench/python's
# environment into .bench-venv/ the first time (PyTorch 2.13.0 with its CUDA wheels: ~4.7 GB).
# make torch-parity MODEL=pipeline_data/smoke/model
MODEL ?=
torch-parity: setup ## the weights in PyTorch reproduce our predictions: MODEL=DIR
	@test -n "$(MODEL)" || { echo "usage: make torch-parity MODEL=DIR (a train_edge_rnn --outdir)" >&2; exit 2; }
	@CARGO="$(CARGO)" "$(ROOT)/scripts/torch-parity.sh" "$(MODEL)"
