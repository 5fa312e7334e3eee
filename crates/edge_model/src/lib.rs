//! The edge network: a causal LSTM over a market's feature sequence that estimates, at every
//! step, the logit of P(YES) for the market's final result.
//!
//! This is the only crate that links `tch`/libtorch, so the recorder, simulator and label tools
//! never need the 486 MB runtime. Training, replay and live inference share one network:
//! [`EdgeNet::forward`] runs whole sequences (training, evaluation), [`EdgeNet::step`] advances
//! one snapshot at a time with carried state (live), and both give the same outputs.
//!
//! Weights are saved as `.safetensors` ([`save_safetensors`], [`load_safetensors`]): libtorch's
//! own `VarStore::save("x.pt")` writes a format `VarStore::load` cannot read back. Parameter names
//! match a PyTorch module with submodules `lstm` (`nn.LSTM(batch_first=True)`) and `head`
//! (`nn.Linear(hidden, 1)`), so `safetensors.torch.load_file` + `load_state_dict` works in Python.
//!
//! ```
//! use edge_model::{EdgeNet, EdgeNetConfig};
//! use tch::{nn, Device, Kind, Tensor};
//!
//! tch::set_num_threads(1);
//! let vs = nn::VarStore::new(Device::Cpu);
//! let cfg = EdgeNetConfig { n_features: 3, hidden: 8, layers: 1, dropout: 0.0 };
//! let net = EdgeNet::new(&vs.root(), &cfg).unwrap();
//! let xs = Tensor::zeros([2, 5, 3], (Kind::Float, Device::Cpu)); // [batch, seq, features]
//! assert_eq!(net.forward(&xs).size(), [2, 5]); // one logit per step
//! ```

pub mod lstm_model;
mod net;
pub mod train;
pub mod trainer;
mod weights;

pub use lstm_model::{LoadError, LstmEdgeModel};
pub use net::{EdgeNet, EdgeNetConfig};
pub use tch::nn::LSTMState;
pub use weights::{load_safetensors, save_safetensors};

use std::path::PathBuf;

/// Errors from building the network or moving its weights to and from disk.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The network configuration cannot describe a network.
    #[error("invalid edge model config: {0}")]
    InvalidConfig(String),
    /// Writing a weights file failed.
    #[error("cannot write model weights to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: tch::TchError,
    },
    /// Reading or parsing a weights file failed.
    #[error("cannot read model weights from {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: tch::TchError,
    },
    /// A weights file was read but does not fit the network (names, shapes or dtypes differ).
    /// Nothing was loaded.
    #[error("model weights in {} do not match the network: {}", path.display(), problems.join("; "))]
    Mismatch {
        path: PathBuf,
        problems: Vec<String>,
    },
}
