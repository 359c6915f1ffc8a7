"""``emonet``: the image emotion network of EMOCA's emotion-consistency loss, trained on AffectNet.

Network (:class:`EmotionNet`): the VGGFace2-style ResNet-50 (``training.models.resnet``, variant
``vggface2``) and a Linear(2048, 10) head: 8 expression logits (AffectNet order), valence, arousal.
Input: RGB crops (N, 3, 224, 224) in [0, 1]; internally converted to the VGGFace2 convention
(BGR, 0..255, minus the VGGFace2 channel means), so the trunk can be initialised from VGGFace2
weights (``model.init``: a state dict of our parameter names, loaded weights-only).
The loss network uses :meth:`EmotionNet.features`, the 2048-d pooled features.
Losses: cross-entropy (classes) + MSE and 1 - CCC (valence, arousal); weights in the config.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from emoca_edge.training import metrics as M
from emoca_edge.training.losses import emotion_recognition_loss
from emoca_edge.training.models.resnet import ResNet50

from .base import Stage

VGGFACE2_MEAN_BGR = (91.4953, 103.8827, 131.0912)


class EmotionNet(nn.Module):
    """images (N, 3, 224, 224) RGB [0, 1] -> {expression_logits (N, 8), valence (N,), arousal (N,)}."""

    output_names = ["expression_logits", "valence", "arousal"]

    def __init__(self, n_expression: int = 8):
        super().__init__()
        self.n_expression = int(n_expression)
        self.backbone = ResNet50("vggface2")
        self.head = nn.Linear(2048, self.n_expression + 2)
        self.register_buffer("mean_bgr", torch.tensor(VGGFACE2_MEAN_BGR).reshape(1, 3, 1, 1))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.flip(images, [1]) * 255.0 - self.mean_bgr
        return self.backbone(x)

    def forward(self, images: torch.Tensor) -> dict:
        y = self.head(self.features(images))
        return {"expression_logits": y[:, :self.n_expression], "valence": y[:, self.n_expression],
                "arousal": y[:, self.n_expression + 1]}


def load_emotion_net(path, device="cpu") -> EmotionNet:
    """An :class:`EmotionNet` from an ``emonet`` run folder or checkpoint (weights only)."""
    from emoca_edge.training.trainer import load_checkpoint

    ck = load_checkpoint(path)
    if ck["target"] != "emonet":
        raise ValueError(f"{ck['path']}: a {ck['target']!r} checkpoint, expected an 'emonet' one")
    net = EmotionNet(int(ck["extra"].get("n_expression", 8)))
    net.load_state_dict(ck["modules"]["emonet"])
    return net.to(device).eval()


class EmoNetStage(Stage):
    name = "emonet"

    def __init__(self, cfg, data_dir, device):
        super().__init__(cfg, data_dir, device)
        m = cfg["model"]
        net = EmotionNet(int(m.get("n_expression", 8)))
        if m.get("init"):
            sd = torch.load(m["init"], map_location="cpu", weights_only=True)
            missing, unexpected = net.load_state_dict(sd, strict=False)
            bad = [k for k in unexpected]
            if bad or [k for k in missing if not k.startswith("head.") and k != "mean_bgr"]:
                raise ValueError(f"{m['init']}: state dict does not match EmotionNet (missing {missing[:5]}, "
                                 f"unexpected {bad[:5]})")
        self.nets = {"emonet": net}
        self.trainable = ["emonet"]
        self._place()

    def extra_state(self) -> dict:
        return {"n_expression": self.nets["emonet"].n_expression}

    def training_step(self, batch):
        out = self.nets["emonet"](batch["image"])
        terms = emotion_recognition_loss(out, batch["expression"], batch["valence"], batch["arousal"],
                                         self.cfg["loss"])
        return terms["total"], terms

    def validate(self, batches) -> dict:
        return evaluate_emotion(lambda b: self.nets["emonet"](b["image"]), batches)


def evaluate_emotion(predict, batches) -> dict:
    """Accuracy, and CCC / PCC / RMSE / SAGR of valence and arousal over all batches."""
    logits, lab, val, val_gt, aro, aro_gt = [], [], [], [], [], []
    for b in batches:
        out = predict(b)
        logits.append(out["expression_logits"].cpu().numpy())
        lab.append(b["expression"].cpu().numpy())
        val.append(out["valence"].cpu().numpy())
        val_gt.append(b["valence"].cpu().numpy())
        aro.append(out["arousal"].cpu().numpy())
        aro_gt.append(b["arousal"].cpu().numpy())
    if not logits:
        return {}
    cat = np.concatenate
    return M.emotion_metrics(cat(logits), cat(lab), cat(val), cat(val_gt), cat(aro), cat(aro_gt))
