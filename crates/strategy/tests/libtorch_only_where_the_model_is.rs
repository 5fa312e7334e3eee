//! ARCHITECTURE.md's invariant "libtorch only where the model is": the runtime, the core, the
//! client, the simulator, the recorder and the label tools never depend on tch / torch-sys.

use std::path::Path;
use std::process::Command;

const CRATES: [&str; 7] = [
    "strategy",
    "pipeline",
    "market_data",
    "kalshi_sim",
    "download_highres",
    "build_labels",
    "sync_labels",
];

#[test]
fn libtorch_only_where_the_model_is() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for krate in CRATES {
        let out = Command::new(env!("CARGO"))
            .current_dir(&root)
            .args([
                "tree",
                "--offline",
                "-e",
                "normal",
                "--prefix",
                "none",
                "-p",
                krate,
            ])
            .output();
        let out = match out {
            Ok(o) if o.status.success() => o,
            Ok(o) => {
                eprintln!(
                    "skipping libtorch_only_where_the_model_is: `cargo tree -p {krate}` failed \
                     offline: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                return;
            }
            Err(e) => {
                eprintln!("skipping libtorch_only_where_the_model_is: cannot run cargo: {e}");
                return;
            }
        };
        let tree = String::from_utf8_lossy(&out.stdout);
        assert!(
            tree.lines().next().is_some_and(|l| l.starts_with(krate)),
            "unexpected cargo tree output for {krate}: {tree}"
        );
        let torch: Vec<&str> = tree
            .lines()
            .filter(|l| {
                let name = l.split_whitespace().next().unwrap_or("");
                name == "tch" || name == "torch-sys"
            })
            .collect();
        assert!(torch.is_empty(), "{krate} depends on libtorch: {torch:?}");
    }
}

#[test]
fn the_check_would_see_tch_in_edge_model() {
    // The detector itself works: edge_model does link tch.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let Ok(out) = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            "edge_model",
        ])
        .output()
    else {
        eprintln!("skipping: cannot run cargo");
        return;
    };
    if !out.status.success() {
        eprintln!(
            "skipping: cargo tree -p edge_model failed offline: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return;
    }
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.lines().any(|l| l.starts_with("tch ")), "{tree}");
}
