"""Training losses of EMOCA's coarse and detail stages and of the emotion networks.

Sources (see docs/training.md for the full table):

* landmark, eye-closure, lip-closure losses, expression/shape regularisers, photometric loss and the
  detail regularisers (z_reg, shading smoothness, symmetry): DECA (Feng et al., SIGGRAPH 2021);
* emotion-consistency loss (features of a frozen emotion network on input vs. render), the mouth
  corner and relative (mouth-to-chin/nose) landmark distances: EMOCA (Danecek et al., CVPR 2022)
  and its code base;
* cross-entropy + MSE + concordance-correlation loss for the emotion networks: EMOCA's emotion
  recognition training (after Kossaifi et al., "Estimation of continuous valence and arousal
  levels from faces in naturalistic conditions", Nature Machine Intelligence 2021).
"""
from .detail import shading_smoothness, symmetry_loss, z_regulariser
from .emotion import ccc_loss, emotion_consistency, emotion_recognition_loss
from .landmarks import (EYE_PAIRS, LIP_PAIRS, MOUTH_CORNER_PAIRS, RELATIVE_PAIRS, closure_loss, eye_closure_loss,
                        landmark_weights, lip_closure_loss, mouth_loss, relative_landmark_loss, weighted_landmark_loss)
from .photometric import code_regulariser, masked_l1

__all__ = [
    "EYE_PAIRS", "LIP_PAIRS", "MOUTH_CORNER_PAIRS", "RELATIVE_PAIRS", "closure_loss", "eye_closure_loss",
    "lip_closure_loss", "mouth_loss", "relative_landmark_loss", "weighted_landmark_loss", "landmark_weights",
    "masked_l1", "code_regulariser", "ccc_loss", "emotion_consistency", "emotion_recognition_loss",
    "shading_smoothness", "symmetry_loss", "z_regulariser",
]
