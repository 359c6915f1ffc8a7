"""Datasets for training: AffectNet-format CSV (labels + 68 landmarks) and generic image folders."""
from .affectnet import AFFECTNET_COLUMNS, AffectNetDataset
from .augment import Augmentation
from .folder import ImageFolderDataset
from .common import collate_skip

__all__ = ["AFFECTNET_COLUMNS", "AffectNetDataset", "Augmentation", "ImageFolderDataset", "collate_skip"]
