//! The network itself: LSTM over `[batch, seq, features]`, then a linear head to one logit per
//! step.

use serde::{Deserialize, Serialize};
use tch::nn::{self, LSTMState, Module, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::ModelError;

/// Shape of the edge network: everything needed to rebuild it before loading weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeNetConfig {
    /// Features per step (the width of the input).
    pub n_features: usize,
    /// LSTM hidden size.
    pub hidden: usize,
    /// Stacked LSTM layers.
    pub layers: usize,
    /// Dropout probability in training, applied between LSTM layers and before the head.
    /// Inference ([`EdgeNet::forward`], [`EdgeNet::step`]) never drops.
    pub dropout: f64,
}

impl EdgeNetConfig {
    /// Checks that the config describes a buildable network, naming the bad field.
    pub fn validate(&self) -> Result<(), ModelError> {
        let positive = [
            ("n_features", self.n_features),
            ("hidden", self.hidden),
            ("layers", self.layers),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ModelError::InvalidConfig(format!(
                    "{name} must be at least 1"
                )));
            }
            // Bound sizes so `4 * hidden` and the tensor shapes stay far inside i64.
            if value > 1 << 20 {
                return Err(ModelError::InvalidConfig(format!(
                    "{name} = {value} is implausibly large (limit {})",
                    1 << 20
                )));
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ModelError::InvalidConfig(format!(
                "dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        Ok(())
    }
}

/// Causal LSTM edge network. Cheap to keep around: it holds shallow references to the tensors of
/// the `VarStore` it was created in, so loading weights into that store updates the network.
#[derive(Debug)]
pub struct EdgeNet {
    cfg: EdgeNetConfig,
    n_features: i64,
    hidden: i64,
    layers: i64,
    /// PyTorch order: per layer `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`.
    lstm_weights: Vec<Tensor>,
    head: nn::Linear,
    device: Device,
}

impl EdgeNet {
    /// Creates the network's variables under `p` (as `lstm.*` and `head.*`), initialised like
    /// PyTorch's `nn.LSTM` (uniform ±1/√hidden) and `nn.Linear`.
    pub fn new(p: &nn::Path, cfg: &EdgeNetConfig) -> Result<Self, ModelError> {
        cfg.validate()?;
        // validate() bounds every size far below i64::MAX.
        let n_features = cfg.n_features as i64;
        let hidden = cfg.hidden as i64;
        let layers = cfg.layers as i64;
        let bound = 1.0 / (hidden as f64).sqrt();
        let init = nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let lp = p / "lstm";
        let mut lstm_weights = Vec::with_capacity(4 * cfg.layers);
        for layer in 0..layers {
            let in_dim = if layer == 0 { n_features } else { hidden };
            lstm_weights.push(lp.var(&format!("weight_ih_l{layer}"), &[4 * hidden, in_dim], init));
            lstm_weights.push(lp.var(&format!("weight_hh_l{layer}"), &[4 * hidden, hidden], init));
            lstm_weights.push(lp.var(&format!("bias_ih_l{layer}"), &[4 * hidden], init));
            lstm_weights.push(lp.var(&format!("bias_hh_l{layer}"), &[4 * hidden], init));
        }
        let head = nn::linear(p / "head", hidden, 1, Default::default());
        Ok(Self {
            cfg: *cfg,
            n_features,
            hidden,
            layers,
            lstm_weights,
            head,
            device: p.device(),
        })
    }

    /// The configuration the network was built from.
    pub fn config(&self) -> &EdgeNetConfig {
        &self.cfg
    }

    /// The all-zero LSTM state for `batch` sequences (`h` and `c` of shape
    /// `[layers, batch, hidden]`): the state before a market's first step.
    pub fn zero_state(&self, batch: i64) -> LSTMState {
        let zeros = Tensor::zeros(
            [self.layers, batch, self.hidden],
            (Kind::Float, self.device),
        );
        LSTMState((zeros.shallow_clone(), zeros))
    }

    /// Logits for every step of `xs` (`[batch, seq, features]` → `[batch, seq]`), starting from
    /// the zero state, in inference mode (no dropout). Step `t` depends only on steps `..=t`.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        self.forward_t(xs, false)
    }

    /// Logits for `xs` (`[batch, seq, features]`) starting from `state` (`None` = the zero
    /// state), and the state after the last step: truncated back-propagation through time
    /// carries it from one chunk to the next. With `train`, dropout is active.
    pub fn forward_from(
        &self,
        xs: &Tensor,
        state: Option<&LSTMState>,
        train: bool,
    ) -> (Tensor, LSTMState) {
        let dims = xs.size();
        assert!(
            dims.len() == 3 && dims[2] == self.n_features,
            "EdgeNet::forward_from expects [batch, seq, {}] input, got {dims:?}",
            self.n_features
        );
        let (out, state) = self.lstm(xs, state, train);
        let out = out.dropout(self.cfg.dropout, train);
        (self.head.forward(&out).squeeze_dim(-1), state)
    }

    /// One streaming step: `x` is `[batch, features]` (one snapshot per sequence), `state` the
    /// state returned by the previous step (`None` = start of the sequence). Returns the logits
    /// `[batch]` and the state to carry. Feeding a sequence step by step gives the same logits
    /// as [`EdgeNet::forward`] on the whole sequence.
    ///
    /// Inference only: it records no gradients, so carrying state over a long live session does
    /// not grow an autograd graph.
    pub fn step(&self, x: &Tensor, state: Option<&LSTMState>) -> (Tensor, LSTMState) {
        let dims = x.size();
        assert!(
            dims.len() == 2 && dims[1] == self.n_features,
            "EdgeNet::step expects [batch, {}] input, got {dims:?}",
            self.n_features
        );
        tch::no_grad(|| {
            let (out, state) = self.lstm(&x.unsqueeze(1), state, false);
            let logits = self.head.forward(&out.squeeze_dim(1)).squeeze_dim(-1);
            (logits, state)
        })
    }

    /// Runs the stacked LSTM over `[batch, seq, features]`, returning the top layer's outputs
    /// `[batch, seq, hidden]` and the final state.
    fn lstm(&self, xs: &Tensor, state: Option<&LSTMState>, train: bool) -> (Tensor, LSTMState) {
        let zero;
        let state = match state {
            Some(state) => state,
            None => {
                zero = self.zero_state(xs.size()[0]);
                &zero
            }
        };
        let LSTMState((h, c)) = state;
        let weights: Vec<&Tensor> = self.lstm_weights.iter().collect();
        let (out, h, c) = xs.lstm(
            &[h, c],
            &weights,
            true,
            self.layers,
            self.cfg.dropout,
            train,
            false,
            true,
        );
        (out, LSTMState((h, c)))
    }
}

impl ModuleT for EdgeNet {
    /// Like [`EdgeNet::forward`]; with `train` set, dropout is active (between LSTM layers and on
    /// the LSTM output before the head).
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let dims = xs.size();
        assert!(
            dims.len() == 3 && dims[2] == self.n_features,
            "EdgeNet::forward expects [batch, seq, {}] input, got {dims:?}",
            self.n_features
        );
        let (out, _) = self.lstm(xs, None, train);
        let out = out.dropout(self.cfg.dropout, train);
        self.head.forward(&out).squeeze_dim(-1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> EdgeNetConfig {
        EdgeNetConfig {
            n_features: 16,
            hidden: 64,
            layers: 2,
            dropout: 0.1,
        }
    }

    #[test]
    fn config_round_trips_through_json_and_rejects_unknown_fields() {
        let json = serde_json::to_string(&cfg()).unwrap();
        assert_eq!(
            json,
            r#"{"n_features":16,"hidden":64,"layers":2,"dropout":0.1}"#
        );
        assert_eq!(serde_json::from_str::<EdgeNetConfig>(&json).unwrap(), cfg());
        let typo = r#"{"n_features":16,"hiden":64,"layers":2,"dropout":0.1}"#;
        let err = serde_json::from_str::<EdgeNetConfig>(typo)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `hiden`"), "{err}");
    }

    #[test]
    fn invalid_configs_are_rejected_naming_the_field() {
        tch::set_num_threads(1);
        let cases = [
            (
                EdgeNetConfig {
                    n_features: 0,
                    ..cfg()
                },
                "n_features must be at least 1",
            ),
            (
                EdgeNetConfig { hidden: 0, ..cfg() },
                "hidden must be at least 1",
            ),
            (
                EdgeNetConfig { layers: 0, ..cfg() },
                "layers must be at least 1",
            ),
            (
                EdgeNetConfig {
                    hidden: 1 << 21,
                    ..cfg()
                },
                "hidden = 2097152 is implausibly large",
            ),
            (
                EdgeNetConfig {
                    dropout: 1.0,
                    ..cfg()
                },
                "dropout must be in [0, 1), got 1",
            ),
            (
                EdgeNetConfig {
                    dropout: -0.1,
                    ..cfg()
                },
                "dropout must be in [0, 1), got -0.1",
            ),
            (
                EdgeNetConfig {
                    dropout: f64::NAN,
                    ..cfg()
                },
                "dropout must be in [0, 1), got NaN",
            ),
        ];
        let vs = nn::VarStore::new(Device::Cpu);
        for (bad, want) in cases {
            let err = EdgeNet::new(&vs.root(), &bad).unwrap_err().to_string();
            assert!(err.contains(want), "{bad:?}: {err}");
        }
        // Nothing was created for the rejected configs.
        assert_eq!(vs.len(), 0);
        assert!(EdgeNet::new(&vs.root(), &cfg()).is_ok());
        assert_eq!(vs.len(), 4 * 2 + 2);
    }

    #[test]
    #[should_panic(expected = "EdgeNet::forward expects [batch, seq, 16] input, got [2, 5, 3]")]
    fn forward_rejects_the_wrong_feature_count() {
        tch::set_num_threads(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = EdgeNet::new(&vs.root(), &cfg()).unwrap();
        let _ = net.forward(&Tensor::zeros([2, 5, 3], (Kind::Float, Device::Cpu)));
    }
}
