# Entry points for building, testing and linting the workspace.
#
# `setup` installs the CPU-only libtorch that tch links against into .libtorch/ (about 18 s and
# 540 MB of downloads the first time, instant afterwards); every target that compiles runs it
# first, because building tch without it fails with `torch/torch.h: No such file`.
# Binary targets (download, labels, train, ...) arrive with the binaries themselves.

SHELL := bash
CARGO ?= cargo
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))

.PHONY: setup build test lint fmt bench clean-libtorch

setup:
	@"$(ROOT)/scripts/setup-libtorch.sh"

build: setup
	cd "$(ROOT)" && $(CARGO) build --release --workspace

# One intra-op thread per test process: parallel test binaries each spawning one thread per core
# once ran 30x slower on 2 cores (shared/LIBTORCH.md).
test: setup
	cd "$(ROOT)" && OMP_NUM_THREADS=1 $(CARGO) test --workspace

lint: setup
	cd "$(ROOT)" && $(CARGO) fmt --all -- --check
	cd "$(ROOT)" && $(CARGO) clippy --workspace --all-targets -- -D warnings

# Benchmarks print figures; nothing asserts a time.
bench: setup
	cd "$(ROOT)" && OMP_NUM_THREADS=1 $(CARGO) bench --workspace

# Formatting compiles nothing, so it does not need libtorch.
fmt:
	cd "$(ROOT)" && $(CARGO) fmt --all

clean-libtorch:
	rm -rf "$(ROOT)/.libtorch"
