"""``emorec``: EMOCA's emotion regressor on 3D parameters (an MLP on FLAME codes), trained on AffectNet.

The codes come from a frozen reconstruction bundle (``model.bundle``: a deca/emoca bundle, run with
ONNX Runtime on each augmented crop), so the regressor learns exactly the codes the deployed
bundle produces; the MLP is ``training.models.emorec.EmoRecMLP`` (default 4 x 2048, BatchNorm,
LeakyReLU, log-softmax expression output). Losses: NLL of the log-softmax (= cross-entropy),
MSE + 1 - CCC on valence and arousal. ``emoca-edge export`` merges the MLP into a copy of the
bundle (one graph, as ``emoca-edge import emorec`` does for official regressors).
"""
from __future__ import annotations

import numpy as np
import torch

from emoca_edge.training.losses import emotion_recognition_loss
from emoca_edge.training.models.emorec import INPUT_ORDER, EmoRecMLP

from .base import Stage
from .emonet import evaluate_emotion


class EmoRecStage(Stage):
    name = "emorec"

    def __init__(self, cfg, data_dir, device):
        super().__init__(cfg, data_dir, device)
        from emoca_edge.bundle import Bundle
        from emoca_edge.reconstruct import Reconstructor

        m = cfg["model"]
        if not m.get("bundle"):
            raise ValueError("emorec: model.bundle is not set; give the deca/emoca bundle whose codes the regressor "
                             "reads (e.g. --set model.bundle=bundles/emoca)")
        bundle = Bundle.load(m["bundle"])
        inputs = list(m.get("inputs") or ["shape", "expression", "jaw_pose"])
        unknown = [k for k in inputs if k not in INPUT_ORDER]
        missing = [k for k in inputs if k not in bundle.output_names]
        if unknown or missing:
            raise ValueError(f"emorec: model.inputs {inputs}: unknown {unknown}, not output by bundle "
                             f"{bundle.path} {missing}")
        dims = {k: int(bundle.manifest["outputs"][k]["shape"][1]) for k in inputs}
        self.reconstructor = Reconstructor(bundle, device=str(m.get("bundle_device") or "cpu"))
        self.bundle_path = str(bundle.path)
        self.mlp_kwargs = dict(input_dims=dims, hidden=int(m.get("hidden", 2048)), num_layers=int(m.get("num_layers", 4)),
                               batch_norm=bool(m.get("batch_norm", True)), n_expression=int(m.get("n_expression", 8)))
        self.nets = {"mlp": EmoRecMLP(**self.mlp_kwargs)}
        self.trainable = ["mlp"]
        self._place()

    def extra_state(self) -> dict:
        return {"mlp_kwargs": {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.mlp_kwargs.items()},
                "bundle": self.bundle_path}

    def codes(self, images: torch.Tensor) -> torch.Tensor:
        out = self.reconstructor.run_prepared(np.ascontiguousarray(images.detach().cpu().numpy(), np.float32))
        mlp = self.nets["mlp"]
        return mlp.assemble_input(**{k: torch.from_numpy(out[k]).to(self.device) for k in mlp.input_dims})

    def training_step(self, batch):
        out = self.nets["mlp"](self.codes(batch["image"]))
        terms = emotion_recognition_loss(out, batch["expression"], batch["valence"], batch["arousal"],
                                         self.cfg["loss"], logits_are_log_probs=True)
        return terms["total"], terms

    def validate(self, batches) -> dict:
        return evaluate_emotion(lambda b: self.nets["mlp"](self.codes(b["image"])), batches)
