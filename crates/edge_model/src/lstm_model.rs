//! The LSTM behind [`pipeline::features::EdgeModel`]: one carried state per market, one
//! [`EdgeNet::step`] per feature step. Replay and live load it from a `strategy.json`.

use std::collections::HashMap;

use pipeline::features::{EdgeModel, Normalizer, N_FEATURES};
use pipeline::schema::strategy::{Device as SpecDevice, Strategy, StrategyError};
use pipeline::MarketTicker;
use tch::nn::{LSTMState, VarStore};
use tch::{Device, Tensor};

use crate::{load_safetensors, EdgeNet, EdgeNetConfig, ModelError};

/// Why a strategy's model cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Strategy(#[from] StrategyError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{0}")]
    Features(String),
    #[error("device {0}: {1}")]
    Device(String, String),
}

/// Maps the strategy file's device to a libtorch device, or says why it cannot be used.
pub fn device(d: SpecDevice) -> Result<Device, LoadError> {
    match d {
        SpecDevice::Cpu => Ok(Device::Cpu),
        SpecDevice::Auto => Ok(Device::cuda_if_available()),
        SpecDevice::Cuda(n) => {
            if tch::Cuda::is_available() {
                Ok(Device::Cuda(n.unwrap_or(0)))
            } else {
                Err(LoadError::Device(
                    d.to_string(),
                    "this libtorch has no CUDA (the project installs the CPU-only build; point LIBTORCH at a CUDA build to use a GPU)".into(),
                ))
            }
        }
        SpecDevice::Mps => Err(LoadError::Device(
            d.to_string(),
            "MPS is not supported by this build".into(),
        )),
    }
}

/// The trained network plus the per-market LSTM states.
pub struct LstmEdgeModel {
    // Holds the tensors `net` refers to.
    vs: VarStore,
    net: EdgeNet,
    device: Device,
    states: HashMap<MarketTicker, LSTMState>,
}

impl LstmEdgeModel {
    /// Wraps a network (e.g. just trained).
    pub fn new(vs: VarStore, net: EdgeNet) -> LstmEdgeModel {
        let device = vs.device();
        LstmEdgeModel {
            vs,
            net,
            device,
            states: HashMap::new(),
        }
    }

    /// Loads the model of a loaded strategy: checks the weights' sha256, the feature list and
    /// the shapes, and returns it with the strategy's normaliser.
    pub fn load(strategy: &Strategy) -> Result<(LstmEdgeModel, Normalizer), LoadError> {
        let spec = strategy.model.as_ref().ok_or(StrategyError::NoModel)?;
        let norm = Normalizer::from_specs(&spec.features).map_err(LoadError::Features)?;
        if spec.n_features != N_FEATURES {
            return Err(LoadError::Features(format!(
                "model.n_features is {}, this build computes {N_FEATURES}",
                spec.n_features
            )));
        }
        strategy.verify_weights()?;
        let dev = device(spec.device)?;
        let mut vs = VarStore::new(dev);
        let net = EdgeNet::new(
            &vs.root(),
            &EdgeNetConfig {
                n_features: spec.n_features,
                hidden: spec.hidden,
                layers: spec.layers,
                dropout: spec.dropout,
            },
        )?;
        load_safetensors(&mut vs, &spec.weights)?;
        Ok((LstmEdgeModel::new(vs, net), norm))
    }

    /// A fresh model (no market states) with a copy of the weights in `vs` (built for `cfg`):
    /// one per replay run of the same trained network.
    pub fn copy_of(vs: &VarStore, cfg: &EdgeNetConfig) -> Result<LstmEdgeModel, ModelError> {
        let mut nvs = VarStore::new(vs.device());
        let net = EdgeNet::new(&nvs.root(), cfg)?;
        nvs.copy(vs)
            .map_err(|e| ModelError::InvalidConfig(format!("copying weights: {e}")))?;
        Ok(LstmEdgeModel::new(nvs, net))
    }

    /// A fresh copy of this model (same weights, no market states).
    pub fn copy(&self) -> Result<LstmEdgeModel, ModelError> {
        LstmEdgeModel::copy_of(&self.vs, self.net.config())
    }

    pub fn net(&self) -> &EdgeNet {
        &self.net
    }

    /// Markets with a carried state.
    pub fn markets(&self) -> usize {
        self.states.len()
    }
}

impl EdgeModel for LstmEdgeModel {
    fn step(&mut self, market: &MarketTicker, x: &[f32], reset: bool) -> f64 {
        if reset {
            self.states.remove(market);
        }
        let input = Tensor::from_slice(x)
            .view([1, x.len() as i64])
            .to_device(self.device);
        let (logit, state) = self.net.step(&input, self.states.get(market));
        self.states.insert(market.clone(), state);
        let z = logit.double_value(&[0]);
        1.0 / (1.0 + (-z).exp())
    }

    fn forget(&mut self, market: &MarketTicker) {
        self.states.remove(market);
    }
}
