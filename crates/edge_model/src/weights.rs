//! Weights on disk as `.safetensors`, checked strictly against the network on load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tch::nn::VarStore;
use tch::Tensor;

use crate::ModelError;

/// Writes every variable of `vs` to `path` in safetensors format (names sorted, so the same
/// weights give the same file). The file is written beside `path` under a temporary name and
/// renamed into place, so a crash never leaves a truncated weights file at `path`.
pub fn save_safetensors(vs: &VarStore, path: impl AsRef<Path>) -> Result<(), ModelError> {
    let path = path.as_ref();
    let write_err = |source| ModelError::Write {
        path: path.to_path_buf(),
        source,
    };
    let named: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    let named: Vec<(&str, &Tensor)> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let tmp = tmp_path(path);
    if let Err(e) = Tensor::write_safetensors(&named, &tmp) {
        // Best effort: the write error is what matters.
        let _ = std::fs::remove_file(&tmp);
        return Err(write_err(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        write_err(e.into())
    })
}

/// Loads the weights in `path` into `vs`. The file must hold exactly the variables of `vs`,
/// each with the same shape and dtype; otherwise nothing is loaded and the error lists every
/// mismatch (missing, unexpected, wrong shape or dtype). libtorch's own loader would silently
/// broadcast a wrong-shaped tensor or convert its dtype.
pub fn load_safetensors(vs: &mut VarStore, path: impl AsRef<Path>) -> Result<(), ModelError> {
    let path = path.as_ref();
    let file: BTreeMap<String, Tensor> = Tensor::read_safetensors(path)
        .map_err(|source| ModelError::Read {
            path: path.to_path_buf(),
            source,
        })?
        .into_iter()
        .collect();
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();

    let mut problems = Vec::new();
    for (name, var) in &vars {
        match file.get(name) {
            None => problems.push(format!("missing tensor `{name}`")),
            Some(t) if t.size() != var.size() => problems.push(format!(
                "tensor `{name}` has shape {:?} in the file but {:?} in the network",
                t.size(),
                var.size()
            )),
            Some(t) if t.kind() != var.kind() => problems.push(format!(
                "tensor `{name}` has dtype {:?} in the file but {:?} in the network",
                t.kind(),
                var.kind()
            )),
            Some(_) => {}
        }
    }
    for name in file.keys().filter(|n| !vars.contains_key(*n)) {
        problems.push(format!("unexpected tensor `{name}`"));
    }
    if !problems.is_empty() {
        return Err(ModelError::Mismatch {
            path: path.to_path_buf(),
            problems,
        });
    }

    tch::no_grad(|| {
        for (name, var) in &vars {
            let mut var = var.shallow_clone();
            var.f_copy_(&file[name].to_device(var.device()))
                .map_err(|source| ModelError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
        }
        Ok(())
    })
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}
