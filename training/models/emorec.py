"""EMOCA's emotion regressor on 3D parameters ("EMOCA-emorec"): an MLP on FLAME codes.

Layout (official ``mlp.model.*`` keys with the ``mlp.`` prefix removed, so ``model.N.*`` here):
``num_layers`` x [Linear(hidden), BatchNorm1d (optional), LeakyReLU(0.2)] then Linear(hidden, n_out)
— with 4 layers and BatchNorm the Linear layers sit at indices 0, 3, 6, 9, 12 and the BatchNorms at
1, 4, 7, 10.

Input: the concatenation, in this order, of the enabled codes: shape (identity), expression,
global pose, jaw pose, detail code (see :meth:`EmoRecMLP.assemble_input`).
Output columns: ``n_expression`` expression logits, then valence, then arousal.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

INPUT_ORDER = ("shape", "expression", "global_pose", "jaw_pose", "detail")
ACTIVATIONS = ("none", "log_softmax", "softmax", "tanh", "sigmoid")


def _apply(name: str, x: torch.Tensor) -> torch.Tensor:
    if name == "none":
        return x
    if name == "log_softmax":
        return F.log_softmax(x, dim=1)
    if name == "softmax":
        return F.softmax(x, dim=1)
    if name == "tanh":
        return torch.tanh(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    raise ValueError(f"EmoRecMLP: unsupported activation {name!r}; expected one of {ACTIVATIONS}")


class EmoRecMLP(nn.Module):
    """FLAME codes (N, in_size) -> ``expression_logits`` (N, n_expression), ``valence`` (N,), ``arousal`` (N,).

    ``input_dims`` maps each used input (names from :data:`INPUT_ORDER`) to its width; the default is
    shape 100 + expression 50 + jaw 3 = 153. ``expression_logits`` are log-probabilities when
    ``exp_activation`` is ``"log_softmax"`` (the official default).
    """

    def __init__(self, input_dims: dict | None = None, hidden: int = 2048, num_layers: int = 4,
                 batch_norm: bool = True, n_expression: int = 8, predict_valence: bool = True,
                 predict_arousal: bool = True, exp_activation: str = "log_softmax",
                 v_activation: str = "none", a_activation: str = "none"):
        super().__init__()
        if input_dims is None:
            input_dims = {"shape": 100, "expression": 50, "jaw_pose": 3}
        unknown = sorted(set(input_dims) - set(INPUT_ORDER))
        if unknown:
            raise ValueError(f"EmoRecMLP: unknown inputs {unknown}; expected names from {INPUT_ORDER}")
        for a in (exp_activation, v_activation, a_activation):
            if a not in ACTIVATIONS:
                raise ValueError(f"EmoRecMLP: unsupported activation {a!r}; expected one of {ACTIVATIONS}")
        self.input_dims = {k: int(input_dims[k]) for k in INPUT_ORDER if k in input_dims}
        self.in_size = sum(self.input_dims.values())
        self.n_expression = int(n_expression)
        self.predict_valence = bool(predict_valence)
        self.predict_arousal = bool(predict_arousal)
        self.exp_activation, self.v_activation, self.a_activation = exp_activation, v_activation, a_activation
        self.out_size = self.n_expression + int(self.predict_valence) + int(self.predict_arousal)
        layers: list[nn.Module] = []
        width = self.in_size
        for _ in range(num_layers):
            layers.append(nn.Linear(width, hidden))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(nn.LeakyReLU(0.2))
            width = hidden
        layers.append(nn.Linear(width, self.out_size))
        self.model = nn.Sequential(*layers)

    def assemble_input(self, **codes: torch.Tensor) -> torch.Tensor:
        """Concatenate the used codes in the official order; each must be (N, width)."""
        parts = []
        for name, width in self.input_dims.items():
            if name not in codes:
                raise ValueError(f"EmoRecMLP.assemble_input: missing input {name!r} (N, {width})")
            t = codes[name]
            if t.dim() != 2 or int(t.shape[1]) != width:
                raise ValueError(f"EmoRecMLP.assemble_input: {name!r} must be (N, {width}), got {tuple(t.shape)}")
            parts.append(t)
        return torch.cat(parts, dim=1)

    def forward(self, x: torch.Tensor) -> dict:
        y = self.model(x)
        out = {"expression_logits": _apply(self.exp_activation, y[:, :self.n_expression])}
        i = self.n_expression
        if self.predict_valence:
            out["valence"] = _apply(self.v_activation, y[:, i])
            i += 1
        if self.predict_arousal:
            out["arousal"] = _apply(self.a_activation, y[:, i])
        return out
