"""Network definitions whose parameter names match the official DECA / EMOCA / SMIRK state dicts."""
from .deca import DetailDecoder, ResnetEncoder, split_deca_code
from .emorec import EmoRecMLP
from .mobilenetv3 import MobileNetV3Features, tf_mobilenetv3_large_minimal_100, tf_mobilenetv3_small_minimal_100
from .resnet import ResNet50
from .smirk import SmirkEncoder

__all__ = [
    "DetailDecoder", "EmoRecMLP", "MobileNetV3Features", "ResNet50", "ResnetEncoder", "SmirkEncoder",
    "split_deca_code", "tf_mobilenetv3_large_minimal_100", "tf_mobilenetv3_small_minimal_100",
]
