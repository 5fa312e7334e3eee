#!/usr/bin/env bash
# Install the trimmed, CPU-only libtorch that `tch` 0.26 links against, into
#   <repo>/.libtorch/libtorch-2.13.0-cpu/
# (see shared/LIBTORCH.md for why it looks like this).
#
# The libraries come from PyPI's torch==2.13.0 wheel plus the two small CUDA runtime wheels that
# libtorch_cpu.so has DT_NEEDED entries on (they load fine without a GPU or driver). Every wheel
# is pinned by sha256. `.cargo/config.toml` points torch-sys at the result via LIBTORCH.
#
# Idempotent and safe to run concurrently: a completion marker makes a second run return at once,
# an flock serialises concurrent runs, the tree is assembled in a temporary folder inside
# .libtorch/ and renamed into place only when complete, and the wheels are deleted afterwards.
#
# Usage: scripts/setup-libtorch.sh        (from any working directory)
set -euo pipefail

readonly TORCH_VERSION="2.13.0"
readonly TORCH_SHA256="60fcdcb2f3876e21146cb4524ef06397d727ca9ad5f020818547e25075fe3cb7"
readonly CUDART_VERSION="13.0.96"
readonly CUDART_SHA256="7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548"
readonly CUPTI_VERSION="13.0.85"
readonly CUPTI_SHA256="4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
readonly ROOT
readonly BASE="$ROOT/.libtorch"
readonly NAME="libtorch-${TORCH_VERSION}-cpu"
readonly DEST="$BASE/$NAME"
readonly MARKER_NAME=".setup-complete"
readonly MARKER="$DEST/$MARKER_NAME"
# The marker's content: changing any pin (or this layout version) invalidates an old install.
readonly LAYOUT_VERSION="1"
readonly MARKER_CONTENT="layout=$LAYOUT_VERSION torch=$TORCH_SHA256 cudart=$CUDART_SHA256 cupti=$CUPTI_SHA256"

log() { printf 'setup-libtorch: %s\n' "$*" >&2; }
die() {
    printf 'setup-libtorch: error: %s\n' "$*" >&2
    exit 1
}

is_installed() {
    [[ -f "$MARKER" ]] && [[ "$(<"$MARKER")" == "$MARKER_CONTENT" ]]
}

# Fast path: no lock, no python, no network.
if is_installed; then
    echo "setup-libtorch: libtorch $TORCH_VERSION (CPU) already installed at $DEST"
    exit 0
fi

[[ "$(uname -s)" == "Linux" && "$(uname -m)" == "x86_64" ]] ||
    die "only Linux x86_64 is supported (this is $(uname -s) $(uname -m)); install libtorch $TORCH_VERSION yourself and set LIBTORCH"
command -v python3 >/dev/null 2>&1 ||
    die "python3 not found on PATH; it is needed to download (pip) and extract (zipfile) the wheels"
python3 -m pip --version >/dev/null 2>&1 ||
    die "'python3 -m pip' does not work; install pip for $(command -v python3) (e.g. python3 -m ensurepip)"
command -v flock >/dev/null 2>&1 || die "flock not found (package util-linux)"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum not found (package coreutils)"

mkdir -p "$BASE"
exec 9>"$BASE/.setup.lock"
if ! flock -n 9; then
    log "another setup run holds $BASE/.setup.lock; waiting for it"
    flock 9
fi

# Another run may have finished while we waited for the lock.
if is_installed; then
    echo "setup-libtorch: libtorch $TORCH_VERSION (CPU) already installed at $DEST"
    exit 0
fi

# We hold the lock, so any temporary folder left behind was left by a killed run.
for stale in "$BASE"/.tmp-*; do
    [[ -e "$stale" ]] || continue
    log "removing leftover $stale from an interrupted run"
    rm -rf -- "$stale"
done

TMP="$(mktemp -d "$BASE/.tmp-XXXXXX")"
readonly TMP
cleanup() { rm -rf -- "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

readonly WHEELS="$TMP/wheels"
readonly STAGE="$TMP/$NAME"
mkdir -p "$WHEELS"

cat >"$TMP/requirements.txt" <<EOF
torch==$TORCH_VERSION --hash=sha256:$TORCH_SHA256
nvidia-cuda-runtime==$CUDART_VERSION --hash=sha256:$CUDART_SHA256
nvidia-cuda-cupti==$CUPTI_VERSION --hash=sha256:$CUPTI_SHA256
EOF

log "downloading torch $TORCH_VERSION + CUDA runtime wheels from PyPI (about 540 MB)"
start=$SECONDS
# All four platform tags: with only manylinux_2_28, pip finds no CUDA runtime wheels.
# --no-cache-dir: the wheels are deleted afterwards; don't leave 540 MB in ~/.cache/pip either.
if ! python3 -m pip download \
    --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_25_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --require-hashes --no-cache-dir --progress-bar off \
    --dest "$WHEELS" -r "$TMP/requirements.txt" >"$TMP/pip.log" 2>&1; then
    cat "$TMP/pip.log" >&2
    die "pip download failed (log above). Check network access to PyPI (or PIP_INDEX_URL / proxy settings). \
A hash mismatch means the file pip got is not the pinned wheel: do not bypass it."
fi
log "downloaded in $((SECONDS - start)) s"

# Verify the pins ourselves as well, independently of pip.
verify() {
    local pattern="$1" want="$2" files
    shopt -s nullglob
    files=("$WHEELS"/$pattern)
    shopt -u nullglob
    ((${#files[@]} == 1)) || die "expected exactly one wheel matching $pattern in $WHEELS, found ${#files[@]}"
    local got
    got="$(sha256sum -- "${files[0]}" | cut -d' ' -f1)"
    [[ "$got" == "$want" ]] || die "sha256 mismatch for ${files[0]##*/}: got $got, want $want"
    printf '%s\n' "${files[0]}"
}
TORCH_WHL="$(verify "torch-${TORCH_VERSION}-*.whl" "$TORCH_SHA256")"
CUDART_WHL="$(verify "nvidia_cuda_runtime-${CUDART_VERSION}-*.whl" "$CUDART_SHA256")"
CUPTI_WHL="$(verify "nvidia_cuda_cupti-${CUPTI_VERSION}-*.whl" "$CUPTI_SHA256")"
log "sha256 verified for $(basename "$TORCH_WHL"), $(basename "$CUDART_WHL"), $(basename "$CUPTI_WHL")"

log "extracting into $STAGE"
python3 - "$STAGE" "$TORCH_WHL" "$CUDART_WHL" "$CUPTI_WHL" <<'PY'
import os, shutil, sys, zipfile

stage, torch_whl, cudart_whl, cupti_whl = sys.argv[1:]
inc = os.path.join(stage, "include")
lib = os.path.join(stage, "lib")
os.makedirs(inc)
os.makedirs(lib)

def copy_member(zf, info, dest):
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with zf.open(info) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    mode = (info.external_attr >> 16) & 0o777
    os.chmod(dest, mode if mode else 0o644)

def fail(msg):
    sys.exit(f"setup-libtorch: error: {msg}")

with zipfile.ZipFile(torch_whl) as zf:
    n_headers = 0
    wanted_libs = {"libtorch_cpu.so", "libc10.so", "libgomp.so.1"}
    found_libs = set()
    for info in zf.infolist():
        name = info.filename
        if info.is_dir():
            continue
        if name.startswith("torch/include/"):
            rel = name[len("torch/include/"):]
            if ".." in rel.split("/"):
                fail(f"refusing unsafe path {name!r} in {torch_whl}")
            copy_member(zf, info, os.path.join(inc, rel))
            n_headers += 1
        elif name.startswith("torch/lib/") and name[len("torch/lib/"):] in wanted_libs:
            base = name[len("torch/lib/"):]
            copy_member(zf, info, os.path.join(lib, base))
            os.chmod(os.path.join(lib, base), 0o755)
            found_libs.add(base)
    if n_headers == 0:
        fail(f"no torch/include/ headers in {torch_whl}")
    missing = wanted_libs - found_libs
    if missing:
        fail(f"{torch_whl} lacks torch/lib/{', torch/lib/'.join(sorted(missing))}")

for whl, member in [(cudart_whl, "nvidia/cu13/lib/libcudart.so.13"),
                    (cupti_whl, "nvidia/cu13/lib/libcupti.so.13")]:
    with zipfile.ZipFile(whl) as zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            fail(f"{whl} lacks {member}")
        dest = os.path.join(lib, os.path.basename(member))
        copy_member(zf, info, dest)
        os.chmod(dest, 0o755)
PY

# The wheel's real libtorch.so pulls in libtorch_cuda.so (470 MB + cuBLAS/cuDNN) at start-up.
# A GNU ld linker script satisfies torch-sys's `-ltorch` with just the CPU library (ld and lld).
printf 'INPUT(libtorch_cpu.so)\n' >"$STAGE/lib/libtorch.so"
ln -s libgomp.so.1 "$STAGE/lib/libgomp.so"
# torch-sys reads this to check the version.
printf '%s\n' "$TORCH_VERSION" >"$STAGE/build-version"
printf '%s\n' "$MARKER_CONTENT" >"$STAGE/$MARKER_NAME"

# Replace an incomplete or outdated install, if any, then move the new tree into place atomically.
if [[ -e "$DEST" || -L "$DEST" ]]; then
    log "replacing incomplete or outdated $DEST"
    mv -T -- "$DEST" "$TMP/old"
fi
mv -T -- "$STAGE" "$DEST"

size="$(du -sh "$DEST" | cut -f1)"
echo "setup-libtorch: installed libtorch $TORCH_VERSION (CPU, $size) at $DEST in $SECONDS s"
