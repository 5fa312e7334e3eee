#!/usr/bin/env bash
# Creates (once) the Python environment of the benchmarks and the PyTorch parity check:
#   <repo>/.bench-venv/   from bench/python/requirements.txt (pinned).
# PyTorch 2.13.0 from PyPI brings its CUDA wheels: about 4.7 GB on disk and a few minutes to
# install here; nothing else in the project needs it. Idempotent: a marker holding the
# requirements' sha256 makes a second run return at once, and a changed requirements file
# rebuilds the environment. Prints the environment's python on stdout.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
VENV="$ROOT/.bench-venv"
REQ="$ROOT/bench/python/requirements.txt"
WANT="$(sha256sum "$REQ" | cut -d' ' -f1)"
MARKER="$VENV/.setup-complete"
if [[ -f "$MARKER" && "$(<"$MARKER")" == "$WANT" ]]; then
    echo "$VENV/bin/python"
    exit 0
fi
command -v python3 >/dev/null 2>&1 || { echo "setup-venv: python3 not found on PATH" >&2; exit 1; }
mkdir -p "$ROOT/.bench-venv.lock.d"
exec 9>"$ROOT/.bench-venv.lock.d/lock"
flock 9
if [[ -f "$MARKER" && "$(<"$MARKER")" == "$WANT" ]]; then
    echo "$VENV/bin/python"
    exit 0
fi
echo "setup-venv: creating $VENV from $REQ (PyTorch with its CUDA wheels: ~4.7 GB, a few minutes)" >&2
rm -rf "$VENV"
python3 -m venv "$VENV"
start=$SECONDS
if ! "$VENV/bin/pip" install --quiet --progress-bar off --no-cache-dir -r "$REQ" >&2; then
    echo "setup-venv: pip install failed (log above); check access to PyPI" >&2
    exit 1
fi
echo "setup-venv: installed in $((SECONDS - start)) s" >&2
echo "$WANT" >"$MARKER"
echo "$VENV/bin/python"
