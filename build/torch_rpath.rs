//! Shared build script for every crate that links `tch` (reference it with
//! `package.build = "../../build/torch_rpath.rs"`).
//!
//! torch-sys links libtorch dynamically but gives the final binaries no rpath, and cargo only adds
//! library paths inside `target/`, so binaries and `cargo test` would die at start-up with
//! `libtorch_cpu.so: cannot open shared object file` unless LD_LIBRARY_PATH is set (and
//! `[env] LD_LIBRARY_PATH` does not reach `cargo test`). This script embeds the libtorch lib dir
//! as an rpath in the crate's bins, examples, tests (unit, integration, doc) and benches.
//!
//! Requirements for the crate using it:
//! - depend on `torch-sys.workspace = true` directly: torch-sys declares `links = "tch"`, and only
//!   a direct dependent's build script receives its `DEP_TCH_LIBTORCH_LIB`;
//! - `rustc-link-arg` is not inherited, so every crate whose targets link tch (also through
//!   another crate, e.g. a binary using `edge_model`) needs both of these lines itself.
//!
//! The directory is whatever torch-sys linked against: `$LIBTORCH/lib`, i.e. the project's
//! `.libtorch/libtorch-<version>-cpu/lib` via `.cargo/config.toml`, or a user's own libtorch.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let dir = match std::env::var("DEP_TCH_LIBTORCH_LIB") {
        Ok(dir) => dir,
        Err(_) => panic!(
            "DEP_TCH_LIBTORCH_LIB is not set: this crate must depend on torch-sys directly \
             (`torch-sys.workspace = true` in [dependencies]) for the libtorch rpath"
        ),
    };
    let path = Path::new(&dir);
    assert!(
        path.is_absolute(),
        "libtorch lib dir {dir:?} is relative; set LIBTORCH to an absolute path (or run \
         scripts/setup-libtorch.sh and use the repository's .cargo/config.toml)"
    );
    assert!(
        path.join("libtorch_cpu.so").exists() || path.join("libtorch_cpu.dylib").exists(),
        "no libtorch_cpu in {dir}: run scripts/setup-libtorch.sh (or `make setup`)"
    );
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
}
