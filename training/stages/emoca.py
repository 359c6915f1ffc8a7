"""EMOCA's two training stages (Danecek et al., CVPR 2022), on our renderer and networks.

``emoca-coarse``: E_flame (DECA's encoder) frozen; E_expression (a ResNet-50 regressor, trunk
initialised from E_flame's) trainable; it predicts the 50 expression coefficients (and the jaw pose
with ``model.exp_deca_jaw_pose``), which replace E_flame's. Losses (weights in the config):
emotion consistency (MSE of the frozen emotion network's pooled features on the input and on the
render composited over the input), photometric (masked L1), landmarks (DECA's weighted L1), eye and
lip closure, optional mouth and relative landmark distances, expression regularisation.

``emoca-detail``: E_flame and E_expression frozen (from a coarse run or an EMOCA release); E_detail
and D_detail trainable. The displacement map D_detail(jaw, expression, detail code) bends the
coarse normals (``training.render.detail_normals``); losses: detail photometric loss through the
detail normals, DECA's regularisers z_reg (|displacement|), z_diff (UV shading smoothness),
z_sym (symmetry on unseen texels), optional emotion consistency on the detail render.

Landmark losses are computed in NDC units of the crop (pixel / 112 - 1), as DECA does, so the
official weights apply.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from emoca_edge.training import losses as L
from emoca_edge.training.camera import ndc_to_pixels, weak_perspective
from emoca_edge.training.flame import FLAME
from emoca_edge.training.models.deca import DETAIL_DIM, DETAIL_LATENT_DIM, DetailDecoder, ResnetEncoder, split_deca_code
from emoca_edge.training.render import (AlbedoModel, UVSpace, detail_normals, load_obj_uv, rasterize, sh_shading,
                                        view_normals_image)

from .base import Stage

log = logging.getLogger("emoca_edge.training")
SIZE = 224


def expression_layout(jaw: bool) -> list:
    return [("expression", 50)] + ([("jaw_pose", 3)] if jaw else [])


def build_networks(extra: dict) -> dict:
    """Fresh modules for a checkpoint's ``extra`` (``expression_layout``, ``stage``)."""
    out = sum(int(s) for _, s in extra["expression_layout"])
    nets = {"E_flame": ResnetEncoder(236), "E_expression": ResnetEncoder(out)}
    if extra["stage"] == "detail":
        nets["E_detail"] = ResnetEncoder(DETAIL_DIM)
        nets["D_detail"] = DetailDecoder(DETAIL_LATENT_DIM)
    return nets


def load_uv_mask(path: Path) -> torch.Tensor:
    """A UV-space mask image (e.g. DECA's ``uv_face_eye_mask.png``) -> (1, 1, H, W) float in [0, 1]
    (grey levels / 255; rows top to bottom = v from 1 to 0, the UV map convention)."""
    import cv2
    import numpy as np

    img = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_GRAYSCALE) if path.is_file() else None
    if img is None:
        raise ValueError(f"{path}: not a readable mask image")
    return torch.from_numpy(img.astype(np.float32) / 255.0)[None, None]


def _resolve(cfg_value, what: str, required: bool = True) -> Path | None:
    if cfg_value in (None, ""):
        if required:
            raise ValueError(f"model.{what} is not set (see docs/training.md)")
        return None
    p = Path(str(cfg_value)).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"model.{what}: {p} does not exist")
    return p.resolve()


class _EmocaBase(Stage):
    stage = "coarse"

    def _common(self):
        m = self.cfg["model"]
        from emoca_edge.export.flame_assets import load_flame_dir

        self.flame_dir = _resolve(m.get("flame_dir"), "flame_dir")
        arrays = load_flame_dir(self.flame_dir, n_shape=100, n_exp=50)
        self.flame = FLAME(arrays).to(self.device)
        self.faces = self.flame.faces
        self.uv = None
        if m.get("uv_obj"):
            uv, uv_faces = load_obj_uv(_resolve(m["uv_obj"], "uv_obj"))
            self.uv = UVSpace(uv, uv_faces, arrays["faces"], size=256).to(self.device)
        self.albedo = AlbedoModel(constant=float(m.get("albedo_constant", 0.5)))
        if m.get("albedo_model"):
            if self.uv is None:
                raise ValueError("model.albedo_model needs model.uv_obj (the UV layout of the albedo maps)")
            self.albedo = AlbedoModel.from_npz(_resolve(m["albedo_model"], "albedo_model"))
        self.albedo.to(self.device)
        self.face_mask = None
        if m.get("face_mask"):
            if self.uv is None:
                raise ValueError("model.face_mask needs model.uv_obj (the UV layout of the mask image)")
            self.face_mask = load_uv_mask(_resolve(m["face_mask"], "face_mask")).to(self.device)
        e = self.cfg["emotion"]
        self.emonet = None
        if float(self.cfg["loss"].get("emotion", 0)) or float(self.cfg["loss"].get("emotion_outputs", 0)):
            from .emonet import EmotionNet, load_emotion_net

            if e.get("checkpoint"):
                self.emonet = load_emotion_net(_resolve(e["checkpoint"], "checkpoint"), self.device)
            elif e.get("allow_random_init"):
                log.warning("emotion.checkpoint not set: the emotion network is RANDOMLY initialised "
                            "(only meaningful for tests); train one with `emoca-edge train emonet`")
                self.emonet = EmotionNet().to(self.device).eval()
            else:
                raise ValueError("emotion.checkpoint is not set: give an `emoca-edge train emonet` run (or set the "
                                 "emotion loss weights to 0)")
            self.emonet.requires_grad_(False)

    def extra_state(self) -> dict:
        return {"flame_dir": str(self.flame_dir), "expression_layout": [list(x) for x in self.layout],
                "stage": self.stage}

    # ------------------------------------------------------------------ forward pieces
    def coarse_codes(self, images: torch.Tensor) -> dict:
        """E_flame codes with E_expression's outputs substituted (dict of split_deca_code)."""
        with torch.no_grad():
            codes = split_deca_code(self.nets["E_flame"](images))
        codes["flame_expression"], codes["flame_jaw_pose"] = codes["expression"], codes["jaw_pose"]
        e = self.nets["E_expression"](images)
        start = 0
        for name, size in self.layout:
            codes[name] = e[:, start:start + size]
            start += size
        return codes

    def geometry(self, codes: dict) -> dict:
        fl = self.flame(codes["shape"], codes["expression"], codes["global_pose"], codes["jaw_pose"])
        cam = codes["camera"]
        verts_px = ndc_to_pixels(weak_perspective(fl.vertices, cam), SIZE)
        lmk_px = ndc_to_pixels(weak_perspective(fl.landmarks2d_3d, cam), SIZE)[..., :2]
        return {"vertices": fl.vertices, "vertices_px": verts_px, "landmarks_px": lmk_px}

    def shade(self, frags, normals: torch.Tensor, codes: dict) -> tuple:
        """(render (N,3,H,W) albedo x SH shading, mask (N,1,H,W)): the rendered region, times the UV
        face mask sampled at each pixel when ``model.face_mask`` is set (DECA's face + eye region)."""
        mask = frags.mask(normals.dtype)
        if self.face_mask is not None:
            n = normals.shape[0]
            mask = mask * self.uv.sample(self.face_mask.to(normals.dtype).expand(n, -1, -1, -1), frags)
        shading = sh_shading(normals, codes["light"])
        uv_alb = self.albedo.uv_albedo(codes["albedo"], normals.shape[0])
        albedo = self.uv.sample(uv_alb, frags) if uv_alb is not None else self.albedo.constant
        return albedo * shading * mask, mask

    def emotion_terms(self, images, render, mask, prefix="") -> dict:
        w = self.cfg["loss"]
        if self.emonet is None:
            return {}
        composite = render + images * (1 - mask)
        with torch.no_grad():
            f_in = self.emonet.features(images)
            o_in = self._head(f_in)
        f_out = self.emonet.features(composite)
        terms = {}
        if float(w.get("emotion", 0)):
            terms[prefix + "emotion"] = L.emotion_consistency(f_in, f_out) * float(w["emotion"])
        if float(w.get("emotion_outputs", 0)):
            o_out = self._head(f_out)
            d = (o_out["valence"] - o_in["valence"]).abs().mean() + (o_out["arousal"] - o_in["arousal"]).abs().mean() \
                + (F.softmax(o_out["expression_logits"], 1) - F.softmax(o_in["expression_logits"], 1)).abs().mean()
            terms[prefix + "emotion_outputs"] = d * float(w["emotion_outputs"])
        return terms

    def _head(self, feats):
        y = self.emonet.head(feats)
        n = self.emonet.n_expression
        return {"expression_logits": y[:, :n], "valence": y[:, n], "arousal": y[:, n + 1]}

    def validate(self, batches) -> dict:
        sums: dict = {}
        count = 0
        for b in batches:
            _, terms = self.training_step(b)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
        return {f"val_{k}": v / count for k, v in sums.items()} if count else {}


class CoarseStage(_EmocaBase):
    name = "emoca-coarse"
    stage = "coarse"

    def __init__(self, cfg, data_dir, device):
        super().__init__(cfg, data_dir, device)
        m = cfg["model"]
        self.layout = expression_layout(bool(m.get("exp_deca_jaw_pose", True)))
        out = sum(s for _, s in self.layout)
        init = _resolve(m.get("init"), "init")
        E_expression = None
        if init.is_dir():  # an EMOCA release folder: fine-tune its E_expression
            from emoca_edge.export.importers import import_emoca

            mods = import_emoca(init, stage="coarse")
            if mods.E_expression is None:
                raise ValueError(f"{init}: not an ExpDECA (EMOCA) model; give deca_model.tar to start from DECA")
            got = [tuple(x) for x in mods.config["expression_layout"]]
            if got != [tuple(x) for x in self.layout]:
                raise ValueError(f"{init}: E_expression predicts {got}, the config asks for {self.layout} "
                                 "(model.exp_deca_jaw_pose)")
            E_flame, E_expression = mods.E_flame, mods.E_expression
        else:
            from emoca_edge.export.importers import import_deca

            E_flame = import_deca(init).E_flame
        if E_expression is None:
            E_expression = ResnetEncoder(out)
            E_expression.encoder.load_state_dict(E_flame.encoder.state_dict())
            if m.get("init_head_from_flame", False):
                E_expression.layers[0].load_state_dict(E_flame.layers[0].state_dict())
                rows = list(range(150, 200)) + (list(range(203, 206)) if out == 53 else [])
                with torch.no_grad():
                    E_expression.layers[2].weight.copy_(E_flame.layers[2].weight[rows])
                    E_expression.layers[2].bias.copy_(E_flame.layers[2].bias[rows])
        self.nets = {"E_flame": E_flame, "E_expression": E_expression}
        self.trainable = ["E_expression"]
        self._common()
        self._place()

    def training_step(self, batch):
        w = self.cfg["loss"]
        images, lmk = batch["image"], batch["landmarks"]
        codes = self.coarse_codes(images)
        geo = self.geometry(codes)
        frags = rasterize(geo["vertices_px"], self.faces, SIZE, SIZE)
        render, mask = self.shade(frags, view_normals_image(frags, geo["vertices_px"], self.faces), codes)
        pred = geo["landmarks_px"] / (SIZE / 2) - 1
        gt = torch.cat([lmk[..., :2] / (SIZE / 2) - 1, lmk[..., 2:3]], -1)
        terms = {}
        if float(w.get("photometric", 0)):
            terms["photometric"] = L.masked_l1(render, images, mask) * float(w["photometric"])
        for key, fn in (("landmark", L.weighted_landmark_loss), ("eye_closure", L.eye_closure_loss),
                        ("lip_closure", L.lip_closure_loss), ("mouth", L.mouth_loss),
                        ("relative_landmarks", L.relative_landmark_loss)):
            if float(w.get(key, 0)):
                terms[key] = fn(pred, gt) * float(w[key])
        terms["expression_reg"] = L.code_regulariser(codes["expression"]) * float(w.get("expression_reg", 0))
        if float(w.get("jaw_reg", 0)) and any(n == "jaw_pose" for n, _ in self.layout):
            terms["jaw_reg"] = L.code_regulariser(codes["jaw_pose"], codes["flame_jaw_pose"]) * float(w["jaw_reg"])
        terms.update(self.emotion_terms(images, render, mask))
        total = sum(terms.values())
        terms["total"] = total
        return total, {k: v.detach() for k, v in terms.items()}


class DetailStage(_EmocaBase):
    name = "emoca-detail"
    stage = "detail"

    def __init__(self, cfg, data_dir, device):
        super().__init__(cfg, data_dir, device)
        m = cfg["model"]
        init = _resolve(m.get("init"), "init")
        E_detail = D_detail = None
        if init.is_dir() and (init / "cfg.yaml").is_file():  # EMOCA release folder (detail stage)
            from emoca_edge.export.importers import import_emoca

            mods = import_emoca(init, stage="detail")
            if mods.E_expression is None:
                raise ValueError(f"{init}: not an ExpDECA (EMOCA) model")
            E_flame, E_expression, E_detail, D_detail = mods.E_flame, mods.E_expression, mods.E_detail, mods.D_detail
            self.layout = [tuple(x) for x in mods.config["expression_layout"]]
        else:  # our emoca-coarse run
            from emoca_edge.training.trainer import load_checkpoint

            ck = load_checkpoint(init)
            if ck["target"] != "emoca-coarse":
                raise ValueError(f"{ck['path']}: model.init must be an emoca-coarse run or an EMOCA folder, "
                                 f"got a {ck['target']!r} checkpoint")
            self.layout = [tuple(x) for x in ck["extra"]["expression_layout"]]
            nets = build_networks(ck["extra"])
            for k in ("E_flame", "E_expression"):
                nets[k].load_state_dict(ck["modules"][k])
            E_flame, E_expression = nets["E_flame"], nets["E_expression"]
        if E_detail is None:
            if m.get("detail_init"):
                from emoca_edge.export.importers import import_deca

                mods = import_deca(_resolve(m["detail_init"], "detail_init"))
                E_detail, D_detail = mods.E_detail, mods.D_detail
            else:
                E_detail = ResnetEncoder(DETAIL_DIM)
                E_detail.encoder.load_state_dict(E_flame.encoder.state_dict())
                D_detail = DetailDecoder(DETAIL_LATENT_DIM)
        self.nets = {"E_flame": E_flame, "E_expression": E_expression, "E_detail": E_detail, "D_detail": D_detail}
        self.trainable = ["E_detail", "D_detail"]
        self._common()
        if self.uv is None:
            raise ValueError("emoca-detail needs model.uv_obj (FLAME's head_template.obj with UV coordinates)")
        self._place()

    def training_step(self, batch):
        w = self.cfg["loss"]
        images = batch["image"]
        with torch.no_grad():
            codes = self.coarse_codes(images)
            geo = self.geometry(codes)
        detail = self.nets["E_detail"](images)[:, :DETAIL_DIM]
        uv_z = self.nets["D_detail"](torch.cat([codes["jaw_pose"], codes["expression"], detail], 1))
        dn_uv, cn_uv = detail_normals(self.uv, geo["vertices"], uv_z)
        frags = rasterize(geo["vertices_px"], self.faces, SIZE, SIZE)
        render, mask = self.shade(frags, self.uv.sample(dn_uv, frags), codes)
        terms = {"photometric_detail": L.masked_l1(render, images, mask) * float(w.get("photometric_detail", 0))}
        texel = self.uv.texel_mask.to(uv_z.dtype)
        uv_shading = sh_shading(dn_uv, codes["light"]) * texel
        terms["z_reg"] = L.z_regulariser(uv_z) * float(w.get("z_reg", 0))
        terms["z_diff"] = L.shading_smoothness(uv_shading) * float(w.get("z_diff", 0))
        unseen = (cn_uv[:, 2:3] <= 0).to(uv_z.dtype) * texel  # texels facing away from the camera
        terms["z_sym"] = L.symmetry_loss(uv_z, unseen) * float(w.get("z_sym", 0))
        terms.update(self.emotion_terms(images, render, mask, prefix="detail_"))
        total = sum(terms.values())
        terms["total"] = total
        return total, {k: v.detach() for k, v in terms.items()}
