"""The edge model's weights in PyTorch: rebuild the network with nn.LSTM + nn.Linear, load
model.safetensors, and reproduce the Rust predictions on a saved batch.

    python bench/python/torch_parity.py MODEL_DIR BATCH.safetensors

MODEL_DIR holds strategy.json and model.safetensors (train_edge_rnn --outdir); BATCH comes from
`cargo run --release -p edge_model --example export_batch -- MODEL_DIR/strategy.json BATCH`.
Exits 1 when any probability differs by more than 1e-5.
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

TOLERANCE = 1e-5


class EdgeNet(nn.Module):
    """The same network as edge_model::EdgeNet: LSTM over [batch, seq, features], a linear head
    to one logit per step; the tensor names match (lstm.*, head.*)."""

    def __init__(self, n_features: int, hidden: int, layers: int):
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out).squeeze(-1)


def main() -> int:
    model_dir, batch_path = Path(sys.argv[1]), Path(sys.argv[2])
    spec = json.loads((model_dir / "strategy.json").read_text())["model"]
    net = EdgeNet(spec["n_features"], spec["hidden"], spec["layers"])
    weights = Path(spec["weights"])
    if not weights.is_absolute():
        weights = model_dir / weights
    net.load_state_dict(load_file(str(weights)), strict=True)
    net.eval()
    batch = load_file(str(batch_path))
    with torch.no_grad():
        p = torch.sigmoid(net(batch["x"]))
    diff = (p - batch["p"]).abs().max().item()
    diff_step = (p - batch["p_step"]).abs().max().item()
    print(
        f"torch {torch.__version__}: {tuple(p.shape)} probabilities, max |PyTorch - Rust| = "
        f"{diff:.2e} (whole sequence), {diff_step:.2e} (Rust step by step); tolerance {TOLERANCE:g}"
    )
    return 0 if max(diff, diff_step) <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
