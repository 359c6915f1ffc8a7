"""DECA networks: ResNet-50 regressors (E_flame, E_detail, EMOCA's E_expression) and the detail decoder.

Module and parameter names match the official DECA state dicts, so the ``E_flame`` / ``E_detail`` /
``D_detail`` sub-dicts of ``deca_model.tar`` (and the ``deca.E_*`` / ``deca.D_detail`` parts of an
EMOCA checkpoint) load without renaming:

* ``ResnetEncoder``: ``encoder.*`` (ResNet-50 trunk), ``layers.0`` = Linear(2048, 1024),
  ``layers.1`` = ReLU, ``layers.2`` = Linear(1024, out_dim).
* ``DetailDecoder``: ``l1.0`` = Linear(latent, 128*8*8) and ``conv_blocks.N`` (see the class).
"""
from __future__ import annotations

import torch
from torch import nn

from .resnet import ResNet50

# Sizes of the DECA code (E_flame output), in order.
DECA_CODE_LAYOUT = (("shape", 100), ("albedo", 50), ("expression", 50), ("pose", 6), ("camera", 3), ("light", 27))
DECA_CODE_DIM = sum(n for _, n in DECA_CODE_LAYOUT)  # 236
DETAIL_DIM = 128
# DECA's detail decoder input: concat(jaw pose 3, expression 50, detail code 128).
DETAIL_LATENT_DIM = 3 + 50 + DETAIL_DIM  # 181


class ResnetEncoder(nn.Module):
    """ResNet-50 trunk + MLP head: images (N, 3, 224, 224) in [0, 1] -> (N, out_dim)."""

    def __init__(self, out_dim: int):
        super().__init__()
        self.out_dim = int(out_dim)
        self.encoder = ResNet50("deca")
        self.layers = nn.Sequential(nn.Linear(2048, 1024), nn.ReLU(), nn.Linear(1024, self.out_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(self.encoder(images))


class DetailDecoder(nn.Module):
    """DECA's detail generator: latent (N, latent_dim) -> UV displacement map (N, 1, 256, 256).

    Layout of ``conv_blocks`` (indices are the official parameter prefixes)::

        0 BatchNorm2d(128)                 (default eps 1e-5)
        1 Upsample x2 bilinear (align_corners=False)     8 -> 16
        2 Conv3x3 128->128, 3 BatchNorm2d(128, eps=0.8), 4 LeakyReLU(0.2)
        5 Upsample, 6 Conv 128->64, 7 BN(64, eps=0.8), 8 LeakyReLU      -> 32
        9 Upsample, 10 Conv 64->64, 11 BN(64, eps=0.8), 12 LeakyReLU    -> 64
        13 Upsample, 14 Conv 64->32, 15 BN(32, eps=0.8), 16 LeakyReLU   -> 128
        17 Upsample, 18 Conv 32->16, 19 BN(16, eps=0.8), 20 LeakyReLU   -> 256
        21 Conv3x3 16->out_channels, 22 Tanh

    The output is ``tanh(.) * out_scale`` (0.01): displacement along the normal in FLAME model
    units (metres). The eps of 0.8 reproduces the official ``BatchNorm2d(C, 0.8)``, whose second
    positional argument is eps, not momentum.
    """

    init_size = 8
    bn_eps_trap = 0.8

    def __init__(self, latent_dim: int = DETAIL_LATENT_DIM, out_channels: int = 1, out_scale: float = 0.01):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.out_scale = float(out_scale)
        self.l1 = nn.Sequential(nn.Linear(self.latent_dim, 128 * self.init_size ** 2))
        blocks: list[nn.Module] = [nn.BatchNorm2d(128)]
        for cin, cout in ((128, 128), (128, 64), (64, 64), (64, 32), (32, 16)):
            blocks += [
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(cin, cout, 3, stride=1, padding=1),
                nn.BatchNorm2d(cout, eps=self.bn_eps_trap),
                nn.LeakyReLU(0.2),
            ]
        blocks += [nn.Conv2d(16, out_channels, 3, stride=1, padding=1), nn.Tanh()]
        self.conv_blocks = nn.Sequential(*blocks)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        x = self.l1(latent).reshape(-1, 128, self.init_size, self.init_size)
        return self.conv_blocks(x) * self.out_scale


def split_deca_code(code: torch.Tensor, n_shape: int = 100, n_tex: int = 50, n_exp: int = 50) -> dict:
    """Split an E_flame output (N, n_shape+n_tex+n_exp+6+3+27) into named parts.

    Returns a dict: ``shape`` (N, n_shape), ``albedo`` (N, n_tex), ``expression`` (N, n_exp),
    ``global_pose`` (N, 3) and ``jaw_pose`` (N, 3) axis-angle radians, ``camera`` (N, 3) = (s, tx, ty),
    ``light`` (N, 9, 3) spherical-harmonics coefficients x RGB.
    """
    expected = n_shape + n_tex + n_exp + 6 + 3 + 27
    if code.dim() != 2 or int(code.shape[1]) != expected:
        raise ValueError(f"split_deca_code: expected a code of shape (N, {expected}), got {tuple(code.shape)}")
    sizes = (("shape", n_shape), ("albedo", n_tex), ("expression", n_exp), ("global_pose", 3), ("jaw_pose", 3),
             ("camera", 3), ("light", 27))
    out = {}
    start = 0
    for name, n in sizes:
        out[name] = code[:, start:start + n]
        start += n
    out["light"] = out["light"].reshape(-1, 9, 3)
    return out
