"""Whole-chain reconstruction modules, one per family, exported as ONE ONNX graph each.

Each module takes aligned crops ``images`` (N, 3, 224, 224) float32 RGB in [0, 1] (no mean/std)
and returns a dict whose keys are the bundle output names of docs/design.md, in this order:

``shape`` (N,S), ``expression`` (N,50), ``global_pose`` (N,3), ``jaw_pose`` (N,3) (axis-angle,
radians), ``camera`` (N,3: s, tx, ty), ``vertices`` (N,5023,3, metres, model space, posed, before
the camera), ``landmarks3d`` (N,68,3, model space), ``landmarks2d`` (N,68,2, crop pixels, x right,
y down: weak-perspective projection of FLAME's 68 dynamic-contour landmarks, pixel = (ndc+1)*112),
then where the family has them ``albedo`` (N,50), ``light`` (N,9,3), ``detail`` (N,128),
``detail_uv`` (N,256,256, the detail decoder's displacement before any fixed map), ``eyelids``
(N,2), and with an emotion head ``valence`` (N,), ``arousal`` (N,), ``expression_logits`` (N,8).

* :class:`DecaReconstruction` — E_flame (236-d code) -> FLAME; detail stage adds E_detail (128) and
  D_detail(concat of the conditioning codes, by default jaw 3, expression 50, detail 128).
* :class:`EmocaReconstruction` — DECA plus E_expression, whose output replaces the expression
  (and the global and/or jaw pose with ``exp_deca_global_pose`` / ``exp_deca_jaw_pose``); the detail
  decoder is conditioned on the final (replaced) codes.
* :class:`SmirkReconstruction` — SMIRK's three MobileNetV3 encoders -> FLAME with 300 identity
  components and the two eyelid blendshapes.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from emoca_edge.training.camera import ndc_to_pixels, weak_perspective
from emoca_edge.training.flame import FLAME

from .deca import split_deca_code

IMAGE_SIZE = 224
BASE_OUTPUTS = ("shape", "expression", "global_pose", "jaw_pose", "camera", "vertices", "landmarks3d", "landmarks2d")
EMOTION_OUTPUTS = ("valence", "arousal", "expression_logits")
# D_detail conditioning codes: config name -> output name (official concatenation order).
DETAIL_CONDITIONING = {"globalpose": "global_pose", "jawpose": "jaw_pose", "identity": "shape",
                       "expression": "expression", "detail": "detail", "detailemo": "detail_emo"}


class EmotionHead(nn.Module):
    """EMOCA's emotion regressor on reconstruction codes: wraps an ``EmoRecMLP`` and feeds it the
    codes it was trained on (``mlp.input_dims``: names from shape, expression, global_pose,
    jaw_pose, detail, concatenated in that order)."""

    def __init__(self, mlp: nn.Module):
        super().__init__()
        self.mlp = mlp
        self.inputs = list(mlp.input_dims)

    def forward(self, codes: dict) -> dict:
        out = self.mlp(self.mlp.assemble_input(**{k: codes[k] for k in self.inputs}))
        return {k: out[k] for k in EMOTION_OUTPUTS if k in out}


def project_landmarks(points: torch.Tensor, camera: torch.Tensor, size: int = IMAGE_SIZE) -> torch.Tensor:
    """Model-space points (N,P,3) -> crop pixels (N,P,2) with the weak-perspective camera (N,3)."""
    return ndc_to_pixels(weak_perspective(points, camera), size)[..., :2]


class _FlameReconstruction(nn.Module):
    """Shared tail: FLAME decode, landmark projection, output ordering, optional emotion head."""

    family = ""

    def __init__(self, flame: FLAME, emotion: nn.Module | None = None):
        super().__init__()
        self.flame = flame
        self.emotion = EmotionHead(emotion) if emotion is not None and not isinstance(emotion, EmotionHead) \
            else emotion

    def _decode(self, codes: dict, eyelids: torch.Tensor | None = None) -> dict:
        fl = self.flame(codes["shape"], codes["expression"], codes["global_pose"], codes["jaw_pose"], eyelids)
        out = {k: codes[k] for k in ("shape", "expression", "global_pose", "jaw_pose", "camera")}
        out["vertices"] = fl.vertices
        out["landmarks3d"] = fl.landmarks3d
        out["landmarks2d"] = project_landmarks(fl.landmarks2d_3d, codes["camera"])
        return out

    def _emotion(self, codes: dict, out: dict) -> None:
        if self.emotion is not None:
            out.update(self.emotion(codes))

    @property
    def output_names(self) -> list[str]:
        raise NotImplementedError


class DecaReconstruction(_FlameReconstruction):
    """DECA: images -> E_flame code -> FLAME (+ E_detail / D_detail when given).

    ``detail_conditioning``: D_detail input codes (names of :data:`DETAIL_CONDITIONING`), concatenated
    in the official fixed order; default jaw pose, expression, detail code.
    """

    family = "deca"

    def __init__(self, E_flame: nn.Module, flame: FLAME, E_detail: nn.Module | None = None,
                 D_detail: nn.Module | None = None, *, n_shape: int = 100, n_tex: int = 50, n_exp: int = 50,
                 n_detail: int = 128, detail_conditioning: Sequence[str] = ("jawpose", "expression", "detail"),
                 emotion: nn.Module | None = None):
        super().__init__(flame, emotion)
        if (E_detail is None) != (D_detail is None):
            raise ValueError("E_detail and D_detail must be given together (detail stage) or both omitted (coarse)")
        if flame.n_shape != n_shape or flame.n_exp != n_exp:
            raise ValueError(f"FLAME has {flame.n_shape} shape / {flame.n_exp} expression components, the encoder "
                             f"predicts {n_shape} / {n_exp}")
        unknown = [c for c in detail_conditioning if c not in DETAIL_CONDITIONING]
        if unknown:
            raise ValueError(f"unknown detail conditioning {unknown}; expected names from {list(DETAIL_CONDITIONING)}")
        self.E_flame = E_flame
        self.E_detail = E_detail
        self.D_detail = D_detail
        self.n_shape, self.n_tex, self.n_exp, self.n_detail = int(n_shape), int(n_tex), int(n_exp), int(n_detail)
        self.detail_conditioning = [c for c in DETAIL_CONDITIONING if c in detail_conditioning]

    @property
    def has_detail(self) -> bool:
        return self.E_detail is not None

    @property
    def output_names(self) -> list[str]:
        names = list(BASE_OUTPUTS)
        if self.n_tex:
            names.append("albedo")
        names.append("light")
        if self.has_detail:
            names += ["detail", "detail_uv"]
        if self.emotion is not None:
            names += [n for n in EMOTION_OUTPUTS if n in self._emotion_outputs()]
        return names

    def _emotion_outputs(self) -> list[str]:
        mlp = self.emotion.mlp
        outs = ["expression_logits"] if getattr(mlp, "n_expression", 0) else []
        if getattr(mlp, "predict_valence", False):
            outs.append("valence")
        if getattr(mlp, "predict_arousal", False):
            outs.append("arousal")
        return outs

    def encode(self, images: torch.Tensor) -> dict:
        """Parameter codes (before FLAME) of this family."""
        return split_deca_code(self.E_flame(images), self.n_shape, self.n_tex, self.n_exp)

    def forward(self, images: torch.Tensor) -> dict:
        codes = self.encode(images)
        if self.has_detail:
            d = self.E_detail(images)
            codes["detail"] = d[:, :self.n_detail]
            codes["detail_emo"] = d[:, self.n_detail:]
            latent = torch.cat([codes[DETAIL_CONDITIONING[c]] for c in self.detail_conditioning], dim=1)
            codes["detail_uv"] = self.D_detail(latent)[:, 0]
        out = self._decode(codes)
        if self.n_tex:
            out["albedo"] = codes["albedo"]
        out["light"] = codes["light"]
        if self.has_detail:
            out["detail"] = codes["detail"]
            out["detail_uv"] = codes["detail_uv"]
        self._emotion(codes, out)
        return {k: out[k] for k in self.output_names}


class EmocaReconstruction(DecaReconstruction):
    """EMOCA: DECA + E_expression. ``expression_layout``: E_expression output parts in order, as
    ``[(name, size)]`` with names ``expression`` / ``global_pose`` / ``jaw_pose`` (the importer's
    ``config["expression_layout"]``); each replaces E_flame's value of that name."""

    family = "emoca"

    def __init__(self, E_flame: nn.Module, E_expression: nn.Module, flame: FLAME, E_detail: nn.Module | None = None,
                 D_detail: nn.Module | None = None, *, expression_layout: Sequence = (("expression", 50),),
                 **kwargs):
        super().__init__(E_flame, flame, E_detail, D_detail, **kwargs)
        layout = [(str(n), int(s)) for n, s in expression_layout]
        sizes = {"expression": self.n_exp, "global_pose": 3, "jaw_pose": 3}
        for n, s in layout:
            if n not in sizes or sizes[n] != s:
                raise ValueError(f"expression_layout entry {(n, s)} is not one of {sizes}")
        self.E_expression = E_expression
        self.expression_layout = layout

    def encode(self, images: torch.Tensor) -> dict:
        codes = super().encode(images)
        e = self.E_expression(images)
        start = 0
        for name, size in self.expression_layout:
            codes[name] = e[:, start:start + size]
            start += size
        return codes


class SmirkReconstruction(_FlameReconstruction):
    """SMIRK: pose/camera, shape (300) and expression (50 + 2 eyelids + 3 jaw) encoders -> FLAME with
    eyelid blendshapes added after skinning."""

    family = "smirk"

    def __init__(self, encoder: nn.Module, flame: FLAME):
        super().__init__(flame, None)
        if not flame.has_eyelids:
            raise ValueError("SMIRK needs FLAME arrays with l_eyelid / r_eyelid")
        self.encoder = encoder

    @property
    def output_names(self) -> list[str]:
        return list(BASE_OUTPUTS) + ["eyelids"]

    def forward(self, images: torch.Tensor) -> dict:
        codes = self.encoder(images)
        out = self._decode(codes, eyelids=codes["eyelids"])
        out["eyelids"] = codes["eyelids"]
        return {k: out[k] for k in self.output_names}
